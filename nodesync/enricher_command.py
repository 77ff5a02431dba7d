"""``spo log-enricher``: the log enricher and the recorder of one node (``enableLogEnricher``).

One process per node, in the spod's ``<spod>-log-enricher`` DaemonSet (its own
ServiceAccount: nodesync stays unable to write profiles or read pods). It
follows the audit log (:mod:`nodesync.following`) and, for every SECCOMP or AVC
record of a process in a pod's container:

- prints one JSON line telling the record with its pod (:mod:`nodesync.enriching`)
  and counts it in ``security_profiles_operator_seccomp_profile_audit_total``;
- accumulates what the containers marked by the recording webhook did
  (:mod:`nodesync.recording`) and, when such a pod has Succeeded or is gone,
  creates its recorded SeccompProfile or SelinuxProfile
  (:mod:`nodesync.recording_agent`); recordings with ``mergeStrategy:
  containers`` are merged when they are deleted (:mod:`nodesync.recording_merge`).

Three threads: the audit log, the watch of this node's pods
(:mod:`nodesync.nodepods`), the merge poll. The pod watch does not finish a pod
itself: it queues the pod, and the audit-log thread finishes it once it has
read what auditd wrote up to ``--finish-delay`` seconds after the pod was seen
done, so that a container's last records are in its profile.

Nothing is lost on a restart: the position in the audit log and what the
recorder accumulated are saved together, atomically, in ``--state-dir``.

Without auditd the kernel rate-limits the audit records it logs; the recorder
then says so at ERROR and refuses to create any profile (an incomplete profile
breaks the workload it is meant for).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hooks.api import GROUP
from nodesync import serving
from nodesync.auditlog import last_event_time
from nodesync.command import Loops, add_agent_arguments, stop_on_signals
from nodesync.containers import ContainerResolver, read_cgroup
from nodesync.enriching import LogEnricher
from nodesync.following import Follower, StateFile
from nodesync.logs import about, configure
from nodesync.metrics import Metrics
from nodesync.nodepods import NodePods, selector
from nodesync.process_events import CAP_NET_ADMIN, ProcessEvents, drop_capability
from nodesync.process_events import Unavailable as ProcessEventsUnavailable
from nodesync.processes import ProcessTable
from nodesync.recording import Loss, LossDetector, Recorder, read_lost_counter
from nodesync.reporting import event_body

if TYPE_CHECKING:  # imported when run: it is not needed to parse the arguments
    from nodesync.recording_agent import Decision, RecordingAgent

log = logging.getLogger(__name__)

DEFAULT_METRICS_BIND = "0.0.0.0:8086"
COMPONENT = "spo-log-enricher"
RETRY_SECONDS = 10.0  # a recorded pod whose ProfileRecording could not be read waits this long
STATE_FILE = "audit-log.json"
DEFAULT_AUDIT_LOG = "/var/log/audit/audit.log"
NO_AUDITD = (
    "auditd is not running on this node: audit records go to the kernel log, which "
    "rate-limits them, so recordings would miss syscalls; no recorded profile is created "
    "until the log enricher runs on a node with auditd"
)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_agent_arguments(
        parser,
        metrics_bind=DEFAULT_METRICS_BIND,
        node_help="(env NODE_NAME; required)",
        namespace_help="record and merge in NS only",
    )
    parser.add_argument(
        "--audit-log",
        default=os.environ.get("AUDIT_LOG_PATH") or DEFAULT_AUDIT_LOG,
        metavar="PATH",
        help=f"the audit log to follow (env AUDIT_LOG_PATH; default {DEFAULT_AUDIT_LOG})",
    )
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("STATE_DIR") or None,
        metavar="DIR",
        help="where the position in the audit log and the recording so far are saved "
        "(default: not saved; a restart starts at the end of the log)",
    )
    parser.add_argument(
        "--memory-optimization",
        action=argparse.BooleanOptionalAction,
        default=_flag("ENABLE_MEMORY_OPTIMIZATION"),
        help="cache only the pods labelled spo.x-k8s.io/enable-recording "
        "(env ENABLE_MEMORY_OPTIMIZATION)",
    )
    parser.add_argument(
        "--finish-delay",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long after a recorded pod is done its last audit records are waited for",
    )
    parser.add_argument(
        "--merge-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often deleted recordings with mergeStrategy containers are looked for",
    )
    parser.add_argument(
        "--require-auditd",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="refuse to record when no auditd process runs on the node (default on)",
    )
    parser.add_argument(
        "--kernel-log",
        default="/dev/kmsg",
        metavar="PATH",
        help="the kernel log, read for reports of dropped audit records ('' not to read it)",
    )
    parser.add_argument(
        "--process-events",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow process creation (the kernel's proc connector: hostNetwork, and CAP_NET_ADMIN "
        "before Linux 6.6) so that records of processes that have exited are attributed "
        "(default on)",
    )
    parser.add_argument(
        "--lost-counter",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="watch the kernel's lost audit records counter with auditctl -s, where it works",
    )


def auditd_pid(proc_root: Path | str = "/proc") -> int | None:
    """The pid of a process named ``auditd`` (the host's, with hostPID), None when none runs."""
    for entry in Path(proc_root).iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "auditd":
                return int(entry.name)
        except OSError:
            continue
    return None


def auditd_running(proc_root: Path | str = "/proc") -> bool:
    return auditd_pid(proc_root) is not None


class Every:
    """True when called first, then at most once per ``interval`` seconds of ``clock``."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: float | None = None

    def __call__(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True


class AuditdWatch:
    """Looks every ``interval`` seconds whether auditd runs: while it does not, records are being
    lost (an ongoing loss, which refuses every profile); once it runs again, the recordings that
    start from then on are complete."""

    REASON = "no-auditd"

    def __init__(
        self,
        detector: LossDetector,
        proc_root: Path | str = "/proc",
        interval: float = 5.0,
        *,
        running: Callable[[Path | str], bool] = auditd_running,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.detector = detector
        self.proc_root = proc_root
        self._running = running
        self._due = Every(interval, clock)

    def check(self) -> None:
        if not self._due():
            return
        missing = self.detector.ongoing(self.REASON)
        if self._running(self.proc_root):
            if missing:
                self.detector.end(self.REASON)
                log.warning(
                    "auditd runs now: pods recorded from now on get their profiles; those "
                    "recorded while it did not run do not",
                    extra=about("", ""),
                )
        elif not missing:
            log.error("%s", NO_AUDITD, extra={**about("", ""), "reason": self.REASON})
            self.detector.add(Loss(self.REASON, NO_AUDITD, ongoing=True))


class KernelLogWatch:
    """The kernel's own reports of dropped audit records (``audit: backlog limit exceeded``,
    ``audit_lost=``, rate limits), read from ``/dev/kmsg`` as they come; and the kernel's lost
    counter (``auditctl -s``) where it can be read. Each is optional: without them, only what
    the audit log itself says is seen, and the log says so once."""

    def __init__(
        self,
        detector: LossDetector,
        kmsg: Path | str | None = "/dev/kmsg",
        *,
        counter: Callable[[], int | None] | None = read_lost_counter,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.detector = detector
        self._due = Every(interval, clock)
        self._fd: int | None = None
        if kmsg is not None:
            try:
                self._fd = os.open(kmsg, os.O_RDONLY | os.O_NONBLOCK)
                os.lseek(self._fd, 0, os.SEEK_END)  # what the kernel says from now on
            except OSError as error:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                log.warning(
                    "cannot read the kernel log %s (%s): audit records the kernel drops are "
                    "noticed only through its lost counter",
                    kmsg,
                    error.strerror or error,
                    extra=about("", ""),
                )
        self._counter = counter
        if counter is not None:
            first = counter()
            if first is None:
                self._counter = None
                log.info("the kernel's lost counter cannot be read here (auditctl -s)", extra=about("", ""))
            else:
                detector.counter(first)

    def check(self) -> None:
        if not self._due():
            return
        if self._fd is not None:
            self.detector.read_kmsg(self._fd)
        if self._counter is not None:
            self.detector.counter(self._counter())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Deferred:
    """Pod events from the watch thread, replayed in the audit-log thread ``delay`` seconds later."""

    def __init__(self, delay: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.delay = delay
        self._clock = clock
        self._queue: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    def later(self, call: Callable[[], object], delay: float | None = None) -> None:
        """Run ``call`` in ``delay`` seconds (default: this queue's)."""
        wait = self.delay if delay is None else delay
        with self._lock:
            heapq.heappush(self._queue, (self._clock() + wait, next(self._order), call))

    def run_due(self) -> int:
        """Run every call whose time has come, in order; how many ran."""
        ran = 0
        while True:
            with self._lock:
                if not self._queue or self._queue[0][0] > self._clock():
                    return ran
                _, _, call = heapq.heappop(self._queue)
            call()
            ran += 1


class DeferredRecording:
    """The recording agent seen from the pod watch.

    What the agent knows changes at once (a recorded pod is remembered, and so
    saved, as soon as it is seen; the pods a fresh list lacks are decided gone
    against what was known at that moment), while finishing a pod, which reads
    what the recorder has, waits ``deferred``'s delay for the pod's last records.
    """

    def __init__(self, agent: RecordingAgent, deferred: Deferred) -> None:
        self.agent = agent
        self.deferred = deferred

    def observe(self, pod: Mapping[str, Any]) -> None:
        self.agent.remember(pod)
        # later, only to finish it: this state must not replace a newer one remembered since
        # (the saved state would then lack the container ids the newer one names)
        self.deferred.later(lambda: self.agent.settle(pod))

    def deleted(self, pod: Mapping[str, Any]) -> None:
        self.deferred.later(lambda: self.agent.deleted(pod))

    def relist(self, pods: Iterable[Mapping[str, Any]]) -> None:
        listed = list(pods)
        gone = self.agent.gone(listed)  # against what is known now, not when the list's turn comes
        for pod in listed:
            self.observe(pod)
        for pod in gone:
            self.deleted(pod)


class RecorderState(StateFile):
    """The follower's positions, the recorder's traces and the recorded pods not finished yet,
    in one file written atomically: whatever a restart resumes from, it is one moment's."""

    def __init__(
        self, path: Path | str, recorder: Recorder, agent: RecordingAgent | None = None
    ) -> None:
        super().__init__(path)
        self.recorder = recorder
        self.agent = agent

    def document(self, positions: Any) -> dict[str, Any]:
        document = super().document(positions)
        document["recorded"] = self.recorder.snapshot()
        if self.agent is not None:
            document["pods"] = self.agent.snapshot()
        return document

    def restore(self) -> int:
        """Put the saved traces and pods back; how many containers the traces cover."""
        loaded = self.load_document()
        pods = loaded.get("pods")
        if self.agent is not None and isinstance(pods, list):
            self.agent.restore(pods)
        recorded = loaded.get("recorded")
        if not isinstance(recorded, dict):
            return 0
        return self.recorder.restore(recorded)


def event(node: str, decision: Decision) -> dict[str, Any]:
    """The Event telling a ProfileRecording what became of one of its containers' profiles."""
    target = decision.target
    failed = decision.profile is None
    if failed:
        message = f"{target.kind} {decision.name} of container {target.ref.container} of pod {target.ref.pod} was not created: {decision.error}"
    else:
        message = f"recorded {target.kind} {decision.name} from container {target.ref.container} of pod {target.ref.pod}"
    involved = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ProfileRecording",
        "name": target.recording,
        "namespace": target.ref.namespace,
    }
    return event_body(
        involved,
        "ProfileNotRecorded" if failed else "ProfileRecorded",
        message[:1024],
        warning=failed,
        component=COMPONENT,
        node=node,
    )


def follow(
    follower: Follower,
    agent: RecordingAgent,
    enricher: LogEnricher,
    deferred: Deferred,
    stop: threading.Event,
    *,
    auditd: AuditdWatch | None = None,
    kernel: KernelLogWatch | None = None,
    processes: ProcessEvents | None = None,
) -> None:
    """Read the audit log until ``stop``: enrich and record every batch, run what is due.

    The process events are applied after a batch is read and before it is
    accounted: every process created before a record of the batch was written
    is then known (:mod:`nodesync.processes`).
    """
    try:
        while not stop.is_set():
            if auditd is not None:
                auditd.check()
            if kernel is not None:
                kernel.check()
            batch = follower.poll()
            if processes is not None:
                processes.drain()
            if batch:
                agent.consume(batch, each=enricher)
                sys.stdout.flush()  # the enriched lines of a batch leave together
                follower.commit()
                if processes is not None:
                    read = last_event_time(batch)
                    if read is not None:
                        processes.table.read_until(read)
            deferred.run_due()
            follower.maybe_checkpoint()
            if not batch:
                stop.wait(follower.poll_interval)
    finally:
        follower.checkpoint()
        follower.close()
        if kernel is not None:
            kernel.close()
        if processes is not None:
            processes.close()


def open_process_events(proc_dir: Path | str) -> ProcessEvents | None:
    """The process events of this node, or None (said at WARNING) when they cannot be read."""
    table = ProcessTable(lambda pid: read_cgroup(pid, proc_dir))
    try:
        events = ProcessEvents(table)
        events.confirm()
    except ProcessEventsUnavailable as missing:
        log.warning(
            "process events cannot be read (%s): records of processes that exit before they are "
            "read cannot be attributed and are counted as vanished",
            missing.strerror or missing,
            extra=about("", ""),
        )
        return None
    dropped = drop_capability(CAP_NET_ADMIN)
    log.info(
        "following process creation (proc connector)%s",
        "; CAP_NET_ADMIN given up" if dropped else "",
        extra=about("", ""),
    )
    return events


def run(args: argparse.Namespace) -> int:
    configure(args.node_name, getattr(logging, str(args.log_level).upper(), logging.INFO))
    if not args.node_name:
        log.error("--node-name (or NODE_NAME) is required", extra=about("", ""))
        return 2

    from nodesync.recording_agent import RecordingAgent
    from nodesync.recording_merge import merge_loop
    from nodesync.requesting import KubernetesCluster
    from nodesync.watching import Watcher

    stop = threading.Event()
    metrics = Metrics()
    processes = open_process_events(args.proc_dir) if args.process_events else None
    resolver = ContainerResolver(
        args.proc_dir, remembered=processes.remembered if processes is not None else None
    )
    recorder = Recorder(resolver.lookup)

    pods_cluster = KubernetesCluster(args.kubeconfig, namespace=args.namespace)
    api = KubernetesCluster(args.kubeconfig, namespace=args.namespace)
    deferred = Deferred(args.finish_delay)
    agent = RecordingAgent(
        recorder,
        api.create_profile,
        recording=api.get_profile_recording,
        report=lambda decision: api.create_event(
            decision.target.ref.namespace, event(args.node_name, decision)
        ),
        retry=lambda call: deferred.later(call, RETRY_SECONDS),
    )
    state: RecorderState | None = None
    if args.state_dir:
        Path(args.state_dir).mkdir(parents=True, exist_ok=True)
        state = RecorderState(Path(args.state_dir) / STATE_FILE, recorder, agent)
        restored = state.restore()
        if restored:
            log.info("restored the recording of %d containers", restored, extra=about("", ""))
    follower = Follower(Path(args.audit_log), state)
    auditd = AuditdWatch(recorder.detector, args.proc_dir) if args.require_auditd else None
    if auditd is not None:
        auditd.check()  # now, so that the log says it at start
    kernel = KernelLogWatch(
        recorder.detector, args.kernel_log or None, counter=read_lost_counter if args.lost_counter else None
    )
    if not Path(args.audit_log).exists():
        log.warning("%s does not exist yet: waiting for it", args.audit_log, extra=about("", ""))
    pods = NodePods(DeferredRecording(agent, deferred))
    enricher = LogEnricher(args.node_name, metrics.registry, pods.lookup)
    source = pods_cluster.pods_of_node(args.node_name, selector(args.memory_optimization))
    log.info(
        "following %s; pods of node %s%s",
        args.audit_log,
        args.node_name,
        " labelled spo.x-k8s.io/enable-recording" if args.memory_optimization else "",
        extra=about(args.namespace or "", ""),
    )

    def interrupt() -> None:
        pods_cluster.interrupt()
        api.interrupt()

    stop_on_signals(stop, interrupt)
    loops: dict[str, Callable[[], None]] = {
        "audit-log": lambda: follow(
            follower,
            agent,
            enricher,
            deferred,
            stop,
            auditd=auditd,
            kernel=kernel,
            processes=processes,
        ),
        "pods": Watcher(source, pods, stop, timeout=args.watch_timeout).run,
        "merge": lambda: merge_loop(
            api.list_profile_recordings,
            api.list_profiles,
            api.create_profile,
            api.delete_profile,
            stop,
            args.merge_interval,
        ),
    }
    runner = Loops(loops, stop, interrupt)
    server = (
        serving.start(args.metrics_bind, metrics, pods.ready, runner.healthy)
        if args.metrics_bind
        else None
    )
    try:
        return runner.run()
    finally:
        if server is not None:
            server.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spo log-enricher", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
