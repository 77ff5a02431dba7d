"""SeccompProfiles applied at once until Installed on every node: the whole, through the real
kube-apiserver, per profile, at two sizes.

For each size, from scratch: a control plane (etcd + kube-apiserver, cached binaries) with
the README's install (as the e2e tests' ``installed`` fixture does it), the real ``spo
hooks`` as metacontroller/base/hooks.yaml runs it (bench/deployed.py: 2 gunicorn workers when
the figures below were measured, 1 since), the emulated Metacontroller (``tests/helpers/
metacontroller_loop.py``: watch-driven, 5 workers per controller as Metacontroller's
default; no client rate limit, as with ``--client-go-qps`` raised) running the
SeccompProfile controller, and ``--nodes`` real ``python -m nodesync`` processes, each
with its own node name, its own bound ServiceAccount token and its own kubelet folder
(on tmpfs: twenty simulated nodes share one disk, real nodes do not). Then N
SeccompProfiles are created at once and the clock runs until every one is ``Installed`` on
every node (its Ready message says so); the costs are read once the loop is idle again.

Reported per profile, each from the most direct source:

- API requests, from the API server's own counters: every resource request
  (``apiserver_request_total``), and per client from the flow schemas this bench adds
  (``apiserver_flowcontrol_dispatched_requests_total``), one for Metacontroller's
  ServiceAccount, one for nodesync's; the loop's own client-side count beside them;
- CPU seconds (user + system, from ``/proc``; robust to other load on the machine, unlike
  the wall clock): the hooks (gunicorn master and workers), the loop (every thread of
  this process but the main one, which only creates the profiles and waits), nodesync
  (all nodes together);
- the loop's syncs and hook calls, and the hook request bytes.

The baseline, measured in the same run, is the first size (100 profiles); the ratios are
the cost per profile at the last size over the cost per profile at the first: 1.0 is flat.

    .venv/bin/python -m bench.bench_throughput [--profiles 100 1000] [--nodes 20]

bench/bench_cost.py runs the same with the webhook and the hooks' metrics container beside,
and reports CPU seconds and memory per component.

Measured on the shared 2-core machine (2026-12-01, other helpers' builds and tests running,
load 10 to 50; the wall clock is not to be trusted, the CPU seconds are), 20 nodes,
``--profiles 100 1000 --sample``: all Installed after 85 s (100) and 1,407 s (1,000).

=================================  =======  =======  =====
per profile                          100    1,000    ratio
=================================  =======  =======  =====
API requests (API server)            75.5     73.8    0.98
  Metacontroller's (flow schema)     14.4     12.5    0.87
  nodesync's (flow schema)           60.0     60.1    1.00
syncs                                6.55     7.23    1.10
hook request KiB                    145.3    204.6    1.41
hooks CPU ms                         33.0     33.7    1.02
loop (Metacontroller) CPU ms        144.3    502.6    3.48
nodesync CPU ms (20 nodes)          184.0    156.9    0.85
API server + etcd CPU ms            458.2    416.9    0.91
=================================  =======  =======  =====

Flat but for the loop. The sampler says where it goes at 1,000: 60 % of its busy samples
in the related-object handlers (``findRelatedParents``: every node status event checks
every profile's rules; ``cached_rules``, ``matches``, ``selector_matches``), 30 % in the
syncs' listing of the namespace's node statuses (the ``list`` comprehension), and 43 % of
all under an informer's relist (the emulation's watch fell behind and was relisted; its
changed objects went through the same handlers). The hook bytes per profile
grew 1.4 times; why is not established (later syncs carrying more node statuses is
the likely reason, unverified).

Measured again after the cuts of the same day (node statuses created in their final state,
``ignoreStatusChanges``, the pod-usage labels, one hooks worker), load 1 to 2.3, 20 nodes,
``--profiles 100 1000``; "A" at 12:58-13:10 UTC, "B" at 13:15-13:28 after the profile status
stopped counting nodes in its message (it changed with each node's report: a status write
per profile and node):

=================================  =============  ==============
per profile                         A: 100 / 1,000  B: 100 / 1,000
=================================  =============  ==============
all Installed (s)                     7.9 / 684     12.0 / 717
API requests (API server)            49.4 / 70.1    49.2 / 61.7
  Metacontroller's                    8.4 / 29.0     8.2 / 20.5
  nodesync's                         40.0 / 40.0    40.0 / 40.0
  status writes (PUT .../status)     2.53 / 12.47   2.00 / 2.00
syncs                                2.79 / 13.49   3.18 / 15.52
hook request KiB                     55.3 / 260     66.9 / 301
hooks CPU ms                          6.4 / 36.6    10.2 / 41.5
loop (Metacontroller) CPU ms         20.8 / 564     33.3 / 622
nodesync CPU ms (20 nodes)           46.3 / 58.5    58.6 / 54.8
API server + etcd CPU ms             74.6 / 250     127 / 170
=================================  =============  ==============

At 100 profiles the nodes' reports of a profile arrive together and a few syncs answer them
all; at 1,000 the emulation is slower than the reports (its CPU per profile grows with the
profiles, as above), they arrive one by one, and each is a sync: about one per node (15.5
for 20 nodes), each carrying the profile's node statuses so far, and one GET of the profile
by Metacontroller (its ``AtomicStatusUpdate``) whatever the answer. With "B" the status is
written twice per profile (Pending or Installed first, then the last state) whatever the
number of nodes. What stays above flat is Metacontroller's by its design: syncs per node
report, and its own CPU.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import deployed
from tests.helpers import readme_install
from tests.helpers.controlplane import ControlPlane, ensure_binaries
from tests.helpers.metacontroller_common import api_for
from tests.helpers.metacontroller_loop import Metacontroller, controllers
from tests.helpers.nodesync_process import NodeSync

ROOT = Path(__file__).resolve().parent.parent
GROUP = "security-profiles-operator.x-k8s.io"
NS = "bench-throughput"
OPERATOR_NS = "security-profiles-operator"
CREATORS = 10  # kubectl processes creating the profiles together
TICK = os.sysconf("SC_CLK_TCK")
FLOW_SCHEMAS = {
    "bench-metacontroller": ("metacontroller", "metacontroller"),
    "bench-nodesync": (OPERATOR_NS, "spo-nodesync"),
}


# -- CPU and memory of processes ----------------------------------------------------------------


def _proc_stats() -> dict[int, tuple[int, float, int]]:
    """Every process: pid -> (parent pid, CPU seconds incl. reaped children, peak RSS KiB)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        cpu = sum(int(f) for f in fields[11:15]) / TICK  # utime stime cutime cstime
        peak = next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0
        )
        found[int(entry)] = (int(fields[1]), cpu, peak)
    return found


def _tree(stats: dict[int, tuple[int, float, int]], roots: list[int]) -> list[int]:
    """``roots`` and all their descendants that are alive."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    found = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in stats:
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_usage(roots: list[int]) -> tuple[float, float]:
    """CPU seconds and summed peak RSS (MiB) of ``roots`` and all their descendants."""
    stats = _proc_stats()
    pids = _tree(stats, roots)
    return sum(stats[p][1] for p in pids), sum(stats[p][2] for p in pids) / 1024


MEMORY_FIELDS = ("Rss", "Pss", "Pss_Anon")


def process_memory(pid: int) -> dict[str, float]:
    """``MEMORY_FIELDS`` of one process (MiB, ``/proc/<pid>/smaps_rollup``); empty if gone."""
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, _, value = line.partition(":")
            if name in MEMORY_FIELDS:
                found[name] = int(value.split()[0]) / 1024
    return found


def tree_memory(roots: list[int]) -> dict[str, float]:
    """``MEMORY_FIELDS`` summed over ``roots`` and their descendants, now (MiB).

    RSS counts a shared page in every process that maps it. PSS splits it between them
    (gunicorn's workers share the pages their master loaded), so it adds up to what the
    processes take together, but its file part (code, shared libraries) is also split with
    every other process of the machine that maps the same files (other Python processes of
    this virtualenv). ``Pss_Anon``, the anonymous part (the heap), is shared only within a
    process tree (after a fork): it is what the tree itself holds, whatever else runs."""
    total = dict.fromkeys(MEMORY_FIELDS, 0.0)
    for pid in _tree(_proc_stats(), roots):
        for name, value in process_memory(pid).items():
            total[name] += value
    return total


class MemoryWatch:
    """Every ``interval`` seconds, the ``MEMORY_FIELDS`` of each component's process tree, summed;
    keeps the highest sums seen. PSS has no high-water mark of its own, so its peak is sampled
    (a peak shorter than the interval may be missed); the peak RSS per process (``VmHWM``) is
    exact and read at the end (``tree_usage``)."""

    def __init__(
        self,
        components: dict[str, list[int]],
        interval: float = 1.0,
        *,
        tick: Callable[[], object] | None = None,
        every: float = 0.0,
    ) -> None:
        self.components = components
        self._tick = tick  # also run every ``every`` seconds, in this thread
        self._every = every
        self.peak: dict[str, dict[str, float]] = {
            name: dict.fromkeys(MEMORY_FIELDS, 0.0) for name in components
        }
        self.cpu = 0.0  # its own CPU seconds, taken out of the loop's
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        for name, roots in self.components.items():
            for field_name, value in tree_memory(roots).items():
                self.peak[name][field_name] = max(self.peak[name][field_name], value)

    def _run(self) -> None:
        self._sample()
        ticked = time.monotonic() - self._every  # the first tick at once
        while not self._stop.wait(self._interval):
            self._sample()
            if self._tick is not None and time.monotonic() - ticked >= self._every:
                ticked = time.monotonic()
                self._tick()
        self._sample()
        self.cpu = time.thread_time()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- the API server's counters ------------------------------------------------------------------


def _labels(text: str) -> dict[str, str]:
    found = {}
    for part in text.split('",'):
        name, _, value = part.partition('="')
        found[name.strip()] = value.rstrip('"')
    return found


def server_requests(plane: ControlPlane) -> tuple[Counter[str], Counter[str]]:
    """(resource requests by ``verb resource``, dispatched requests by flow schema)."""
    code, body = plane.get("/metrics", timeout=60)
    assert code == 200, f"/metrics: {code}"
    requests: Counter[str] = Counter()
    flows: Counter[str] = Counter()
    for line in body.splitlines():
        if line.startswith(("apiserver_request_total{", "apiserver_flowcontrol_dispatched")):
            head, _, value = line.rpartition(" ")
            name, _, rest = head.partition("{")
            labels = _labels(rest.rstrip("}"))
            if name == "apiserver_request_total" and labels.get("resource"):
                sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
                requests[f"{labels['verb']} {labels['resource']}{sub}"] += int(float(value))
            elif name == "apiserver_flowcontrol_dispatched_requests_total":
                flows[labels.get("flow_schema", "")] += int(float(value))
    return requests, flows


def flow_schema(name: str, namespace: str, account: str) -> dict[str, Any]:
    """A flow schema of one ServiceAccount, at the priority level its requests get anyway
    (``workload-low``, the default ``service-accounts`` schema's), only to count them."""
    everything = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "matchingPrecedence": 100,
            "priorityLevelConfiguration": {"name": "workload-low"},
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "serviceAccount": {"namespace": namespace, "name": account},
                        }
                    ],
                    "resourceRules": [{**everything, "clusterScope": True, "namespaces": ["*"]}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }


# -- where the loop's threads are ---------------------------------------------------------------

WAITING = (
    *("threading.py", "socket.py", "ssl.py", "selectors.py", "client.py:_read_status"),
    *("thread.py:_worker", "subprocess.py"),  # the kubectl processes' threads, waiting
)


class Sampler:
    """Every 10 ms, the Python stack of every thread but the main one and its own, when its
    innermost frame is not a wait (a lock, a socket, a condition): counts per function,
    inclusive (the function is on the stack) and exclusive (it is the innermost)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.inclusive: Counter[str] = Counter()
        self.exclusive: Counter[str] = Counter()
        self.samples = 0
        self.cpu = 0.0  # its own CPU seconds, taken out of the loop's
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._interval = interval
        self._thread.start()

    @staticmethod
    def _name(code: Any) -> str:
        return f"{Path(code.co_filename).name}:{code.co_name}"

    def _run(self) -> None:
        skip = {threading.main_thread().ident, threading.get_ident()}
        while not self._stop.wait(self._interval):
            for ident, frame in sys._current_frames().items():
                if ident in skip:
                    continue
                top = self._name(frame.f_code)
                if top.startswith(WAITING):
                    continue
                self.samples += 1
                self.exclusive[top] += 1
                seen = set()
                walker: Any = frame
                while walker is not None:
                    seen.add(self._name(walker.f_code))
                    walker = walker.f_back
                for name in seen:
                    self.inclusive[name] += 1
        self.cpu = time.thread_time()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, top: int = 15) -> dict[str, Any]:
        def share(counter: Counter[str]) -> dict[str, float]:
            return {k: round(v / max(self.samples, 1), 3) for k, v in counter.most_common(top)}

        return {
            "busy_samples": self.samples,
            "inclusive": share(self.inclusive),
            "exclusive": share(self.exclusive),
        }


# -- the cluster --------------------------------------------------------------------------------


def install(plane: ControlPlane) -> None:
    """What tests/e2e/conftest.py's ``installed`` fixture does (the README's install), and
    the flow schemas that count each client's requests."""
    readme_install.install(plane)
    plane.apply([flow_schema(name, *who) for name, who in FLOW_SCHEMAS.items()])
    plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})


@contextlib.contextmanager
def hooks() -> Iterator[tuple[str, int]]:
    """The hooks container as hooks.yaml runs it (bench/deployed.py): (base URL, gunicorn
    master's pid)."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-hooks-") as folder,
        deployed.hooks_pod(None, Path(folder)) as pod,
    ):
        yield pod.base, pod.hooks_pid


@contextlib.contextmanager
def nodes(plane: ControlPlane, count: int, folder: Path) -> Iterator[list[NodeSync]]:
    """``count`` nodesync processes, ready, each with its node name, token and folder."""
    agents = []
    try:
        for i in range(count):
            node = f"node-{i:02d}"
            kubeconfig = plane.node_agent_kubeconfig(OPERATOR_NS, "spo-nodesync", node)
            work = folder / node
            work.mkdir()
            agent = NodeSync(kubeconfig, work / "kubelet", work / "nodesync.log", node=node)
            agent.start()
            agents.append(agent)
        deadline = time.monotonic() + 180
        for agent in agents:
            while True:
                with contextlib.suppress(OSError):
                    if agent.get("/readyz")[0] == 200:
                        break
                assert agent.proc is not None and agent.proc.poll() is None, agent.tail()
                assert time.monotonic() < deadline, f"{agent.node} not ready\n{agent.tail()}"
                time.sleep(0.2)
        yield agents
    finally:
        for agent in agents:
            if agent.proc is not None:
                agent.stop(timeout=30)


def profile(i: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": f"p-{i:05d}", "namespace": NS},
        "spec": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {
                    "names": ["read", "write", "openat", "close", "exit_group"],
                    "action": "SCMP_ACT_ALLOW",
                }
            ],
        },
    }


def create_all(plane: ControlPlane, chunks: list[str]) -> None:
    """``kubectl create -f -`` of every chunk at once, each in its own process (its own client
    rate limit; and no thread of this process, where the loop's threads hold the interpreter
    lock, slows the creating down)."""
    with concurrent.futures.ThreadPoolExecutor(len(chunks)) as pool:
        done = [
            pool.submit(plane.kubectl, "create", "-f", "-", input=c, timeout=900) for c in chunks
        ]
        for future in done:
            future.result()


# -- one size -----------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """The counters at one moment."""

    requests: Counter[str] = field(default_factory=Counter)
    flows: Counter[str] = field(default_factory=Counter)
    loop_requests: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # by component (its process trees)
    process_cpu: float = 0.0
    main_cpu: float = 0.0


def snapshot(
    plane: ControlPlane, loop: Metacontroller, components: dict[str, list[int]]
) -> Snapshot:
    requests, flows = server_requests(plane)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Snapshot(
        requests=requests,
        flows=flows,
        loop_requests=sum(loop.api.requests.values()),
        cpu={name: tree_usage(roots)[0] for name, roots in components.items()},
        process_cpu=usage.ru_utime + usage.ru_stime,
        main_cpu=time.thread_time(),
    )


@dataclass
class Options:
    """What a run measures beyond the profiles' path (``bench_cost`` asks for all of it)."""

    sample: bool = False  # where the loop's threads spend their time
    metrics: bool = False  # the hooks pod's metrics container, scraped every ``SCRAPE`` s
    webhook: bool = False  # ``spo webhook`` watching the cluster
    memory: bool = False  # RSS and PSS of every component, sampled every second


SCRAPE = 15.0  # seconds between two reads of the hooks' /metrics (a usual Prometheus interval)


def measure(
    binaries: Path, profiles: int, node_count: int, workers: int, options: Options | None = None
) -> dict[str, Any]:
    options = options or Options()
    plane = ControlPlane(binaries)
    plane.start()
    folder = Path(tempfile.mkdtemp(prefix="bench-throughput-", dir=_tmpfs()))
    try:
        install(plane)
        manifest = controllers("seccompprofile-controller")
        with contextlib.ExitStack() as running:
            pod = running.enter_context(
                deployed.hooks_pod(plane if options.metrics else None, folder)
            )
            agents = running.enter_context(nodes(plane, node_count, folder))
            components = {
                "hooks": [pod.hooks_pid],
                "nodesync": [a.proc.pid for a in agents if a.proc is not None],
                "apiserver_etcd": plane.pids(),
            }
            if pod.metrics_pid is not None:
                components["hooks_metrics"] = [pod.metrics_pid]
            if options.webhook:
                components["webhook"] = [running.enter_context(deployed.webhook_pod(plane, folder))]
            loop = running.enter_context(
                Metacontroller(api_for(plane), pod.base, manifest, workers=workers)
            )
            loop.wait_idle(timeout=120)
            informer = loop.informers.get(loop.api.resource(f"{GROUP}/v1beta1", "seccompprofiles"))
            reports = loop.informers.get(
                loop.api.resource(f"{GROUP}/v1alpha1", "securityprofilenodestatuses")
            )
            chunks = [
                yaml.safe_dump_all([profile(i) for i in range(k, profiles, CREATORS)])
                for k in range(min(CREATORS, profiles))
            ]
            sampler = Sampler() if options.sample else None
            token = deployed.reader_token(plane) if options.metrics else ""
            scrapes: Counter[int] = Counter()
            watch = (
                MemoryWatch(
                    {**components, "loop": [os.getpid()]},
                    tick=lambda: scrapes.update([pod.scrape(token)]) if token else None,
                    every=SCRAPE,
                )
                if options.memory
                else None
            )
            before = snapshot(plane, loop, components)
            started = time.monotonic()
            create_all(plane, chunks)
            created_s = time.monotonic() - started
            while True:
                # every profile Installed, and every node's report in (a profile's status
                # names no count of nodes); a node status says its state at the top level
                done = sum(
                    (p.get("status") or {}).get("status") == "Installed" for p in informer.list(NS)
                )
                if done == profiles and (
                    sum(s.get("status") == "Installed" for s in reports.list(NS))
                    == profiles * node_count
                ):
                    break
                assert time.monotonic() - started < 3600, f"{done} of {profiles} Installed"
                time.sleep(0.1)
            seconds = time.monotonic() - started
            loop.wait_idle(timeout=600, quiet=1.0)
            if sampler is not None:
                sampler.stop()
            if watch is not None:
                watch.stop()
            after = snapshot(plane, loop, components)
            loop.raise_errors()
            files = sum(1 for a in agents for _ in (a.kubelet / "seccomp" / "operator").rglob("*"))
            assert files >= profiles * node_count, files
            hook_stats = loop.hooks_of("seccompprofile-controller").stats
            peak_hwm = {name: tree_usage(roots)[1] for name, roots in components.items()}
            at_end = {
                name: {
                    str(pid): {k: round(v, 1) for k, v in process_memory(pid).items()}
                    for pid in _tree(_proc_stats(), roots)
                }
                for name, roots in components.items()
                if name != "apiserver_etcd"
            }
            syncs = sum(loop.syncs.values())
    finally:
        plane.stop()
        shutil.rmtree(folder, ignore_errors=True)
    requests = after.requests - before.requests
    flows = after.flows - before.flows
    cpu = {name: after.cpu[name] - before.cpu[name] for name in components}
    cpu["loop"] = (after.process_cpu - before.process_cpu) - (after.main_cpu - before.main_cpu)
    cpu["loop"] -= sum(s.cpu for s in (sampler, watch) if s is not None)
    per = 1.0 / profiles
    result: dict[str, Any] = {
        "profiles": profiles,
        "nodes": node_count,
        "seconds_to_all_installed": round(seconds, 1),
        "seconds_to_create": round(created_s, 1),
        "per_profile": {
            "wall_ms": round(seconds * per * 1000, 1),
            "api_requests": round(sum(requests.values()) * per, 1),
            "api_requests_metacontroller": round(flows["bench-metacontroller"] * per, 1),
            "api_requests_nodesync": round(flows["bench-nodesync"] * per, 1),
            "loop_client_requests": round((after.loop_requests - before.loop_requests) * per, 1),
            "syncs": round(syncs * per, 2),
            "hook_calls": round(sum(hook_stats.calls.values()) * per, 2),
            "hook_request_kib": round(sum(hook_stats.request_bytes.values()) * per / 1024, 1),
            "hooks_cpu_ms": round(cpu["hooks"] * per * 1000, 2),
            "loop_cpu_ms": round(cpu["loop"] * per * 1000, 2),
            "nodesync_cpu_ms": round(cpu["nodesync"] * per * 1000, 2),
            "apiserver_etcd_cpu_ms": round(cpu["apiserver_etcd"] * per * 1000, 2),
        },
        "requests_by_verb_and_resource": dict(requests.most_common(12)),
        "loop_samples": sampler.report() if sampler is not None else None,
        "cpu_s": {name: round(value, 2) for name, value in cpu.items()},
        "peak_rss_mib": {
            "hooks": round(peak_hwm["hooks"]),
            "nodesync_per_node": round(peak_hwm["nodesync"] / node_count),
        },
        # the peak RSS of each process (VmHWM), summed over the component's processes
        "peak_hwm_mib": {name: round(value, 1) for name, value in peak_hwm.items()},
    }
    if watch is not None:
        for field_name in MEMORY_FIELDS:
            result[f"sampled_peak_{field_name.lower()}_mib"] = {
                name: round(peaks[field_name], 1) for name, peaks in watch.peak.items()
            }
        result["process_memory_mib_at_end"] = at_end
    if token:
        result["metrics_scrapes"] = {str(code): n for code, n in scrapes.items()}
    return result


def _tmpfs() -> str | None:
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--profiles", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=5, help="the loop's, per controller")
    parser.add_argument(
        "--sample",
        action="store_true",
        help="also sample where the loop's threads spend their time (what grows with N)",
    )
    args = parser.parse_args()
    # Backgrounded, SIGINT is ignored; SIGTERM then stops everything this bench started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binaries = ensure_binaries()
    runs = []
    for count in args.profiles:
        runs.append(measure(binaries, count, args.nodes, args.workers, Options(sample=args.sample)))
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    first, last = runs[0]["per_profile"], runs[-1]["per_profile"]
    result = {
        "benchmark": "profiles-installed-on-every-node",
        "runs": runs,
        f"ratio_per_profile_{runs[-1]['profiles']}_over_{runs[0]['profiles']}": {
            key: round(last[key] / first[key], 2) if first[key] else None for key in first
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
