"""What the project's own processes cost to install N SeccompProfiles, beside the Go operator.

One run of ``bench_throughput.measure`` per size (100 is the in-run baseline, then 1,000), with
everything it can run as deployed (bench/deployed.py): the hooks pod's two containers (the
``hooks`` container with its manifest's gunicorn workers; the ``metrics`` container over HTTPS,
its /metrics read every 15 s with a token, as Prometheus would), the webhook pod (``spo
webhook`` with its real list and watch of the four kinds, so it holds every profile), and
``--nodes`` nodesync processes. Metacontroller is the emulation of
tests/helpers/metacontroller_loop.py (its CPU and memory are those of this Python process, not
of the real Metacontroller: the real one's are the issue's, below).

Per component: CPU seconds (user + system, ``/proc``, over the run: from the first create to
the loop idle again), the peak RSS of each process (``VmHWM``) summed over the component's
processes, and the peak of the summed PSS (``smaps_rollup``, sampled every second: PSS splits
the pages gunicorn's workers share with their master, so it adds up to what the processes take
together). Plus the hook request bytes per profile (what Metacontroller sends; its CPU follows
them) and the API requests per profile.

    .venv/bin/python -m bench.bench_cost [--profiles 100 1000] [--nodes 1]

The Go operator's figures are constants, from the issue (16, part E): with one simulated node
and the same real API server, 1,000 SeccompProfiles applied at once were all Installed in 421 s
by the Go operator v0.8.4, its manager and daemon taking 29.8 CPU s and 207 MiB together, the
API server 128.7 CPU s; the project under the real Metacontroller took 76 CPU s (Metacontroller
57, hooks 12, nodesync 6.5) and 560 MiB (hooks 220, webhook 131 idle, Metacontroller 154,
nodesync 54).

Measured on the shared 2-core machine, 2026-12-01 10:00-10:04 UTC (load average 1 to 4: a CI
run and other helpers' benchmarks; the CPU seconds are to be trusted, the wall clock is not),
one node, ``--profiles 100 1000``, back to back: "before" is the tree of commit 88520c1 (the
hooks with two workers, node statuses with a status subresource, the kubernetes client) with
this bench copied in, "after" is this commit. Columns: CPU seconds over the run at 1,000
profiles; memory at 1,000: HWM (each process's peak RSS, summed), PSS (sampled peak of the
sum) and anon (the same for anonymous PSS, the heap, which no other process on the machine
shares). All 1,000 Installed in 80 s before, 51 s after.

==============================  =========================  ========================
1,000 profiles, one node        CPU s  before -> after      HWM / PSS / anon MiB
==============================  =========================  ========================
hooks container                   7.8 -> 6.6                 167/109/105 -> 113/67/62
hooks pod, metrics container      0.1 -> 0.1                 120/81/77 -> 106/62/57
webhook                           1.8 -> 1.6                 121/82/78 -> 108/63/58
nodesync (one)                    3.6 -> 2.8                 55/39/37 -> 43/29/27
the project's own, together      13.2 -> 11.0                463/312/297 -> 370/220/204
Metacontroller EMULATION         40.5 -> 29.8                (this Python process)
API server + etcd                35.7 -> 32.9                577/533/444 -> 550/550/420
Go operator (issue)              29.8 (manager + daemon)     207
real Metacontroller (issue)      57.0                        154
==============================  =========================  ========================

Per profile, before -> after: hook request 26.9 -> 24.4 KiB, hook calls 4.42 -> 4.33, syncs
3.36 -> 3.00, API requests 12.4 -> 11.0 (nodesync's 3.0 -> 2.0: its node status is created in
its final state, with no status patch after it). The project's own processes now take 11.0
CPU s and 220 MiB (PSS; 370 MiB counting shared pages once per process) for what took the Go
operator 29.8 CPU s and 207 MiB; the hooks pod runs two replicas and the webhook two, so a
cluster holds twice the hooks pod and the webhook (plus Metacontroller, 154 MiB in the
issue). What a hook request holds, per profile at 1,000 (a throw-away count over 20
profiles, 26.5 KiB): the CompositeController itself, sent with every call, 7.9 KiB (30 %);
the parent 6.3; its ConfigMap 4.9; the SecurityProfilesOperatorDaemon (the syscall policy)
4.2; its node statuses 2.6; of which managedFields 6.4 KiB (24 %).

Twenty nodes, after only (``--nodes 20 --profiles 100 1000``, 10:06-10:13 UTC, load 2 to 4;
all Installed in 383 s): the project's own 75.6 CPU s (hooks 15.5, webhook 3.8, nodesync
56.0, that is 2.8 a node), 1,187 MiB HWM, 731 PSS (a nodesync 43 HWM, 27 PSS); the
emulation 249 CPU s, the API server and etcd 134; per profile 52.0 API requests (nodesync's
40.0: two a node), 124 KiB of hook requests, 5.44 syncs. bench_throughput's docstring has the
same load measured before (not back to back, heavier load): 73.8 requests, 60.1 of them
nodesync's, 205 KiB, 7.23 syncs per profile.

Then the profile controllers were given ``parentResource.ignoreStatusChanges`` (their hooks'
answer depends on spec, children and related objects only, so the sync that followed
Metacontroller's own status write answered the same). Back to back, one node, ``--profiles
100 1000``, 10:17-10:24 UTC, load 3 to 6 (a CI run beside it), before -> after at 1,000:
syncs per profile 3.0 -> 2.0, hook calls 4.2 -> 3.21, hook request 24.1 -> 15.7 KiB, API
requests 11.0 -> 10.0 (Metacontroller's 8.0 -> 7.0), CPU seconds: hooks 6.45 -> 5.04,
the emulation 30.2 -> 23.4, API server and etcd 34.6 -> 31.6; the project's own 10.9 ->
9.3 CPU s, memory unchanged (370 MiB HWM, 218 PSS).

Then the hooks pod's ``metrics`` container became ``spo hooks-metrics``, one process serving
/metrics alone (nodesync's HTTPS listener and token check) in place of a gunicorn master and
worker running the whole hooks app. Back to back, one node, ``--profiles 100 1000``,
12:05-12:08 UTC, load 1 to 3, before -> after at 1,000: the metrics container 106/61/57 ->
43/30/27 MiB (HWM/PSS/anon), 0.1 -> 0.0 CPU s; the project's own 369/219/203 -> 305/189/173
MiB and 11.7 -> 10.1 CPU s (the rest is the machine's noise: the hooks 6.4 -> 5.3, the
webhook 1.9 -> 1.7, nodesync 3.4 -> 3.1, for the same code). The project's own processes,
one replica each, now hold less memory (PSS) than the Go operator's manager and daemon (189
against 207 MiB) at a third of their CPU.

Then nodesync's process stopped loading pydantic (the names it reads from model-free modules,
node statuses built as dicts; ``spo``'s parser loads the record and log-enricher modules only
for those commands), which the hooks' metrics container, built on nodesync's modules, gains
too. One node, ``--profiles 100 1000``, 12:37-12:38 UTC, load under 1, at 1,000 (before is
the run above): nodesync 43/29/27 -> 32/22/20 MiB (HWM/PSS/anon), 3.1 -> 2.6 CPU s; the
metrics container 43/30/27 -> 31/21/19; the project's own 305/189/173 -> 278/171/156 MiB and
8.8 CPU s (the hooks 4.8, the webhook 1.3, on a quieter machine than the run above).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from bench.bench_throughput import Options, measure
from tests.helpers.controlplane import ensure_binaries

# From the issue (16 E): the Go operator v0.8.4, 1,000 profiles, one node, same API server.
GO_OPERATOR = {"cpu_s": 29.8, "memory_mib": 207.0, "apiserver_cpu_s": 128.7}
# From the issue: this project under the real Metacontroller, same load.
REAL_METACONTROLLER = {"cpu_s": 57.0, "memory_mib": 154.0}

# the project's own processes, in the order of the table
OWN = ("hooks", "hooks_metrics", "webhook", "nodesync")
LABELS = {
    "hooks": "hooks container (gunicorn)",
    "hooks_metrics": "hooks pod, metrics container",
    "webhook": "webhook (spo webhook)",
    "nodesync": "nodesync, all nodes",
    "loop": "Metacontroller EMULATION (Python)",
    "apiserver_etcd": "API server + etcd",
}


def _row(cells: list[str]) -> str:
    return f"{cells[0]:<36}" + "".join(f"{c:>11}" for c in cells[1:])


def _peaks(run: dict[str, Any], name: str, share: int = 1) -> list[str]:
    """HWM, PSS and anonymous PSS of component ``name`` (MiB), divided by ``share``."""
    cells = []
    for key in ("peak_hwm_mib", "sampled_peak_pss_mib", "sampled_peak_pss_anon_mib"):
        value = run.get(key, {}).get(name)
        cells.append("-" if value is None else f"{value / share:.0f}")
    return cells


def table(runs: list[dict[str, Any]]) -> str:
    """CPU seconds at each size, then the memory peaks of the last size, per component; the
    project's own total; the figures of the issue."""
    last = runs[-1]
    sizes = [f"CPU s@{r['profiles']}" for r in runs]
    lines = [_row(["component", *sizes, "HWM MiB", "PSS MiB", "anon MiB"])]
    for name in (*OWN, "loop", "apiserver_etcd"):
        if name in last["cpu_s"]:
            cpu = [f"{r['cpu_s'][name]:.1f}" for r in runs]
            lines.append(_row([LABELS[name], *cpu, *_peaks(last, name)]))
    nodes = last["nodes"]
    if nodes > 1:
        per_node = [f"{r['cpu_s']['nodesync'] / r['nodes']:.1f}" for r in runs]
        lines.append(_row(["nodesync, per node", *per_node, *_peaks(last, "nodesync", nodes)]))
    own_cpu = [f"{sum(r['cpu_s'].get(n, 0.0) for n in OWN):.1f}" for r in runs]
    own = [
        f"{sum(last.get(key, {}).get(n, 0.0) for n in OWN):.0f}"
        for key in ("peak_hwm_mib", "sampled_peak_pss_mib", "sampled_peak_pss_anon_mib")
    ]
    lines.append(_row(["the project's own, together", *own_cpu, *own]))
    blank = [""] * (len(runs) - 1)
    go, real = GO_OPERATOR, REAL_METACONTROLLER
    lines += [
        _row(["Go operator 1,000, 1 node (issue)", *blank, f"{go['cpu_s']:.1f}",
              f"{go['memory_mib']:.0f}"]),
        _row(["  its API server (issue)", *blank, f"{go['apiserver_cpu_s']:.1f}"]),
        _row(["real Metacontroller 1,000 (issue)", *blank, f"{real['cpu_s']:.1f}",
              f"{real['memory_mib']:.0f}"]),
    ]  # fmt: skip
    per = [r["per_profile"] for r in runs]
    lines.append("")
    lines.append(_row(["per profile", *[str(r["profiles"]) for r in runs]]))
    for key in ("hook_request_kib", "hook_calls", "syncs", "api_requests", "api_requests_nodesync"):
        lines.append(_row([key, *[f"{p[key]}" for p in per]]))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--profiles", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=5, help="the loop's, per controller")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binaries = ensure_binaries()
    options = Options(metrics=True, webhook=True, memory=True)
    runs = []
    for count in args.profiles:
        runs.append(measure(binaries, count, args.nodes, args.workers, options))
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    print(table(runs))
    print(json.dumps({"benchmark": "cost-per-component", "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
