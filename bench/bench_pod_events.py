"""What one pod event costs the profile controllers, through the real kube-apiserver, as the
number of profiles and pods in its namespace grows.

For each profile count, from scratch: a control plane (etcd + kube-apiserver) with the
README's install, the real ``spo hooks``, and the emulated Metacontroller
(``tests/helpers/metacontroller_loop.py``, watch-driven) running the SeccompProfile
controller and the pod-usage decorator (``metacontroller/base/pod-usage-decorator.yaml``).
K SeccompProfiles are created, then pods (no node runs them: they stay Pending, which a
profile counts as running), one in ten using one of the profiles (round robin), the rest
none; once the loop is idle, one annotation change on each of ``--events`` pods that use
nothing, then on as many that use a profile (as a status or probe change would be), the
loop running until idle after each batch. Reported per pod event of each kind: the syncs of
the profile controller and of the decorator, and the bytes of hook requests each was sent.
A profile sync carries the pods that use the profile (``pods_using_each_used_profile``),
never the others.

Before pods were labelled with what they use, each profile asked for every pod of its
namespace: a pod event synced all K profiles, each request carrying all P pods (K x P).
The baseline is the first size measured in the same run (the fewest profiles and pods);
the ratios are the cost per event at each size over it: 1.0 is flat.

    .venv/bin/python -m bench.bench_pod_events [--profiles 10 100 1000] [--pods 100 1000]

Measured 2026-12-01 on the shared 2-core machine, 100 events of each kind per size
(syncs and bytes are counts, not times: the load does not change them):

========  ======  =========  ==============================  ==================================
profiles   pods   users of   event of a pod using nothing    event of a pod using a profile
                  a profile  profile syncs  decorator syncs  profile syncs (bytes)  decorator
========  ======  =========  =============  ===============  =====================  ==========
      10     100          1            0.0   1.0 (2,581 B)       1.0 (9,099 B)      1.0 (2,897 B)
      10   1,000         10            0.0   1.0 (2,582 B)       1.0 (28,054 B)     1.0 (2,898 B)
     100     100          1            0.0   1.0 (2,581 B)       1.0 (9,099 B)      1.0 (2,897 B)
     100   1,000          1            0.0   1.0 (2,582 B)       1.0 (9,101 B)      1.0 (2,898 B)
   1,000     100          1            0.0   1.0 (2,582 B)       1.0 (9,101 B)      1.0 (2,898 B)
   1,000   1,000          1            0.0   1.0 (2,582 B)       1.0 (9,101 B)      1.0 (2,898 B)
========  ======  =========  =============  ===============  =====================  ==========

Flat in the profiles and in the pods that do not use the profile; a profile's request grows
only with the pods that use it (10 at 10 profiles and 1,000 pods). Before, the same event
cost K syncs of P pods each: at 1,000 profiles and 1,000 pods, 1,000 syncs of about 2.6 MB
(computed from the per-pod size above, not measured).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from bench.bench_throughput import create_all, hooks
from tests.helpers import readme_install
from tests.helpers.controlplane import ControlPlane, ensure_binaries
from tests.helpers.metacontroller_common import api_for
from tests.helpers.metacontroller_loop import Metacontroller, controllers

GROUP = "security-profiles-operator.x-k8s.io"
NS = "bench-pod-events"
PROFILES = "seccompprofile-controller"
DECORATOR = "spo-pod-usage"
CREATORS = 5
USING_ONE_IN = 10


def profile(i: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": f"p-{i:05d}", "namespace": NS},
        "spec": {"defaultAction": "SCMP_ACT_LOG"},
    }


def pod(i: int, profiles: int) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if i % USING_ONE_IN == 0:
        used = f"p-{(i // USING_ONE_IN) % profiles:05d}"
        context = {
            "seccompProfile": {
                "type": "Localhost",
                "localhostProfile": f"operator/{NS}/{used}.json",
            }
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"pod-{i:05d}", "namespace": NS},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": context}]},
    }


def chunks(objects: list[dict[str, Any]]) -> list[str]:
    return [
        "\n---\n".join(json.dumps(o) for o in objects[k::CREATORS])
        for k in range(min(CREATORS, len(objects)))
    ]


def costs(loop: Metacontroller) -> dict[str, tuple[int, int]]:
    """Per controller: (syncs, hook request bytes) so far."""
    found = {}
    for name in (PROFILES, DECORATOR):
        stats = loop.hooks_of(name).stats
        with stats.lock:
            calls = sum(n for hook, n in stats.calls.items() if hook != "customize")
            sent = sum(n for hook, n in stats.request_bytes.items() if hook != "customize")
        found[name] = (calls, sent)
    return found


def events(loop: Metacontroller, names: list[str], round_: int) -> dict[str, float]:
    """One annotation change on each pod of ``names``; what they cost per event."""
    resource = loop.api.resource("v1", "pods")
    before = costs(loop)
    for name in names:
        loop.api.patch(resource, NS, name, {"metadata": {"annotations": {"bench": str(round_)}}})
    loop.wait_idle(timeout=600, quiet=1.0)
    after = costs(loop)
    per = 1.0 / len(names)
    return {
        f"{name}_{what}": round((after[name][i] - before[name][i]) * per, 2)
        for name in (PROFILES, DECORATOR)
        for i, what in enumerate(("syncs", "request_bytes"))
    }


def event_costs(loop: Metacontroller, pods: int, count: int, round_: int) -> dict[str, Any]:
    """Per event of a pod that uses nothing, and of a pod that uses a profile."""
    users = [f"pod-{i:05d}" for i in range(0, pods, USING_ONE_IN)]
    bystanders = [f"pod-{i:05d}" for i in range(pods) if i % USING_ONE_IN]
    found: dict[str, Any] = {}
    for what, names in (("bystander", bystanders), ("user", users)):
        step = max(1, len(names) // count)
        for key, value in events(loop, names[::step][:count], 2 * round_ + len(found)).items():
            found[f"{what}_event_{key}"] = value
    return found


def measure(
    binaries: Path, profiles: int, pod_counts: list[int], count: int
) -> list[dict[str, Any]]:
    plane = ControlPlane(binaries)
    plane.start()
    runs: list[dict[str, Any]] = []
    try:
        readme_install.install(plane)
        plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        with (
            hooks() as (hook_base, _),
            Metacontroller(
                api_for(plane), hook_base, controllers(PROFILES, DECORATOR), workers=5
            ) as loop,
        ):
            create_all(plane, chunks([profile(i) for i in range(profiles)]))
            made = 0
            for pods in sorted(pod_counts):
                create_all(plane, chunks([pod(i, profiles) for i in range(made, pods)]))
                made = pods
                loop.wait_idle(timeout=900, quiet=1.0)
                users = pods // USING_ONE_IN
                runs.append(
                    {
                        "profiles": profiles,
                        "pods": pods,
                        "pods_using_each_used_profile": max(1, users // profiles),
                    }
                    | event_costs(loop, pods, count, len(runs))
                )
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
            loop.raise_errors()
    finally:
        plane.stop()
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--profiles", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--pods", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--events", type=int, default=100)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binaries = ensure_binaries()
    runs = [r for k in sorted(args.profiles) for r in measure(binaries, k, args.pods, args.events)]
    base = runs[0]
    keys = [k for k in base if k.endswith(("_syncs", "_request_bytes"))]
    result = {
        "benchmark": "pod-event-cost",
        "runs": runs,
        "ratio_over_first": [
            {"profiles": r["profiles"], "pods": r["pods"]}
            | {k: round(r[k] / base[k], 2) if base[k] else None for k in keys}
            for r in runs
        ],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
