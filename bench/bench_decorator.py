"""The namespace decorator's work per profile event, through the real kube-apiserver: none.

For each size, from scratch: a control plane with the README's install, the real ``spo hooks``
and the emulated Metacontroller (``tests/helpers/metacontroller_loop.py``, watch-driven, as
Metacontroller syncs a parent again on every change of a related object) running the
SeccompProfile controller and ``spo-namespace-decorator``. N SeccompProfiles are created at
once; the clock runs until each has its ConfigMap and a status, then until the loop is idle.
Reported: the decorator's syncs and request bytes during that time (before the webhook kept
its own tables, every profile event synced it with every profile of the cluster: 678 to 710
syncs and 179 to 183 MB of request JSON for 200 profiles under the real Metacontroller), and
the SeccompProfile controller's beside them.

    .venv/bin/python -m bench.bench_decorator [--profiles 100 1000 5000]

Measured (2026-12-01, the shared 2-core machine under other helpers' node tests): 100
profiles, 0 decorator calls and 0 bytes (the SeccompProfile controller: 300 calls), all
synced and idle in 9.1 s; 1,000 profiles, 0 and 0 (3,000), 88.6 s. The decorator ran 9 to 10
hook calls while the install settled (the spod), none after. 5,000 profiles (`--profiles
5000`, same machine, quieter): 1 decorator call of 9,220 bytes in 412.1 s (its 300 s resync,
not a profile's event) against 15,001 SeccompProfile controller calls.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

import yaml

from bench.bench_throughput import CREATORS, GROUP, NS, create_all, hooks, install, profile
from tests.helpers.controlplane import ControlPlane, ensure_binaries
from tests.helpers.metacontroller_common import api_for
from tests.helpers.metacontroller_loop import Metacontroller, controllers

DECORATOR = "spo-namespace-decorator"
SECCOMP = "seccompprofile-controller"


def measure(binaries: Any, profiles: int) -> dict[str, Any]:
    plane = ControlPlane(binaries)
    plane.start()
    try:
        install(plane)
        with (
            hooks() as (hook_base, _),
            Metacontroller(api_for(plane), hook_base, controllers(SECCOMP, DECORATOR)) as loop,
        ):
            loop.wait_idle(timeout=120)
            decorator = loop.hooks_of(DECORATOR).stats
            assert decorator.calls["sync"] >= 1  # it runs: the install's Namespace was synced
            seccomp = loop.hooks_of(SECCOMP).stats
            before = (sum(decorator.calls.values()), sum(decorator.request_bytes.values()))
            before_seccomp = sum(seccomp.calls.values())
            informer = loop.informers.get(loop.api.resource(f"{GROUP}/v1beta1", "seccompprofiles"))
            chunks = [
                yaml.safe_dump_all([profile(i) for i in range(k, profiles, CREATORS)])
                for k in range(min(CREATORS, profiles))
            ]
            started = time.monotonic()
            create_all(plane, chunks)
            while sum(bool((o.get("status") or {}).get("status")) for o in informer.list(NS)) < (
                profiles
            ):
                assert time.monotonic() - started < 3600
                time.sleep(0.1)
            loop.wait_idle(timeout=600, quiet=1.0)
            seconds = time.monotonic() - started
            loop.raise_errors()
            calls = sum(decorator.calls.values()) - before[0]
            sent = sum(decorator.request_bytes.values()) - before[1]
            seccomp_calls = sum(seccomp.calls.values()) - before_seccomp
    finally:
        plane.stop()
    return {
        "profiles": profiles,
        "seconds_to_all_synced_and_idle": round(seconds, 1),
        "decorator_hook_calls_at_install": before[0],
        "decorator_hook_calls": calls,
        "decorator_request_bytes": sent,
        "seccompprofile_hook_calls": seccomp_calls,
        "decorator_calls_per_profile": round(calls / profiles, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--profiles", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binaries = ensure_binaries()
    runs = []
    for count in args.profiles:
        runs.append(measure(binaries, count))
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "decorator-work-per-profile-event", "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
