"""The cost of checking a RawSelinuxProfile near the largest a ConfigMap holds.

A RawSelinuxProfile of ``--rules`` allow rules (15,000 make about 0.9 MB of CIL,
close to the ConfigMap limit) is translated: read as CIL (``cilreader``), checked
statement by statement, wrapped, and read again (``check_wrapped``). The
baseline, measured in the same run, is the SelinuxProfile with the same rules as
``spec.allow`` (patterns and deny list per rule, no CIL reading). Printed: the
best of ``--repeat`` runs of each, and their ratio.

    python bench/bench_cil_validation.py [--rules 15000] [--repeat 5]

Target: the raw profile within 10 times the structured one.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from hooks.api.rawselinuxprofile import RawSelinuxProfile
from hooks.api.selinuxprofile import SelinuxProfile
from hooks.cluster.selinux.translation import translate

PERMS = ["read", "write", "open", "getattr"]
META = {"name": "bench", "namespace": "team-a"}


def best(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=15000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    types = [f"type{i:05d}_t" for i in range(args.rules)]
    policy = "(blockinherit container)\n" + "".join(
        f"(allow process {name} (file ({' '.join(PERMS)})))\n" for name in types
    )
    raw = RawSelinuxProfile.model_validate({"metadata": META, "spec": {"policy": policy}})
    structured = SelinuxProfile.model_validate(
        {"metadata": META, "spec": {"allow": {name: {"file": PERMS} for name in types}}}
    )
    raw_seconds = best(lambda: translate(raw), args.repeat)
    structured_seconds = best(lambda: translate(structured), args.repeat)
    print(f"policy: {len(policy.encode())} bytes, {args.rules} rules")
    print(f"RawSelinuxProfile: {raw_seconds * 1000:.0f} ms")
    print(f"SelinuxProfile (baseline): {structured_seconds * 1000:.0f} ms")
    print(f"ratio: {raw_seconds / structured_seconds:.2f}")


if __name__ == "__main__":
    main()
