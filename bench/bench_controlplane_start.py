"""Time the e2e control plane (etcd + kube-apiserver) from nothing to /readyz.

Uses the cached binaries (building them first if needed; the build is not
timed), starts and stops the control plane --runs times, and prints one JSON
object. Baseline measured in the same run: etcd alone becoming healthy, so
`ratio_to_etcd` says how much the apiserver adds on this (noisy) machine.

    .venv/bin/python -m bench.bench_controlplane_start [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from tests.helpers.controlplane import ControlPlane, ensure_binaries, pinned_versions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    begin = time.monotonic()
    bin_dir = ensure_binaries()
    ensure_s = time.monotonic() - begin

    runs = []
    for _ in range(args.runs):
        plane = ControlPlane(bin_dir)
        t0 = time.monotonic()
        try:
            plane.start()
            ready = time.monotonic() - t0
            t1 = time.monotonic()
            plane.kubectl("get", "namespaces")
            first_kubectl = time.monotonic() - t1
        finally:
            t2 = time.monotonic()
            plane.stop()
            stop = time.monotonic() - t2
        runs.append(
            {
                "start_s": round(ready, 3),
                "pki_s": round(plane.timings["pki_s"], 3),
                "etcd_ready_s": round(plane.timings["etcd_ready_s"], 3),
                "apiserver_ready_s": round(plane.timings["apiserver_ready_s"], 3),
                "first_kubectl_s": round(first_kubectl, 3),
                "stop_s": round(stop, 3),
            }
        )

    start_median = statistics.median(r["start_s"] for r in runs)
    etcd_median = statistics.median(r["etcd_ready_s"] for r in runs)
    versions = pinned_versions()
    print(
        json.dumps(
            {
                "benchmark": "controlplane_start",
                "kubernetes": versions.kubernetes,
                "etcd": versions.etcd,
                "bin_dir": str(bin_dir),
                "ensure_binaries_s": round(ensure_s, 3),
                "runs": runs,
                "start_median_s": round(start_median, 3),
                "baseline_etcd_ready_median_s": round(etcd_median, 3),
                "ratio_to_etcd": round(start_median / etcd_median, 2) if etcd_median else None,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
