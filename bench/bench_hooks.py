"""Sync throughput of the SeccompProfile hook through the real gunicorn server, on loopback.

The hook gets a 400-syscall profile with 1,000 node statuses and 200 pods as
related objects; the baseline is a trivial JSON echo route in the same server,
sent the same body, run side by side. Load comes from wrk (Debian's package)
in a second process. Prints one JSON object; the ratio is what to compare
between machines, since absolute times here are noisy.

    .venv/bin/python -m bench.bench_hooks [--seconds 10] [--connections 4] [--workers 2]

Targets: sync p99 under 10 ms, and at least half the echo route's requests per second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from bench.loadgen import (
    free_port,
    histogram,
    run_wrk,
    wait_ready,
)
from hooks.api import syscalls

GROUP = "security-profiles-operator.x-k8s.io"
NS = "bench"


def payload() -> dict[str, Any]:
    arches = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    names = sorted(syscalls.names("SCMP_ARCH_X86_64") | syscalls.names("SCMP_ARCH_X86"))[:400]
    parent = {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": "big", "namespace": NS, "uid": "u-big", "generation": 3},
        "spec": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": arches,
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
        },
    }
    statuses = {
        f"{NS}/big-node-{i:04d}": {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "SecurityProfileNodeStatus",
            "metadata": {
                "name": f"big-node-{i:04d}",
                "namespace": NS,
                "labels": {
                    "spo.x-k8s.io/profile-id": "SeccompProfile-big",
                    "spo.x-k8s.io/node-name": f"node-{i:04d}",
                    "spo.x-k8s.io/profile-state": "Installed",
                    "spo.x-k8s.io/profile-kind": "SeccompProfile",
                },
            },
            "nodeName": f"node-{i:04d}",
            "status": "Installed",
        }
        for i in range(1000)
    }
    pods = {
        f"{NS}/web-{i:03d}": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"web-{i:03d}", "namespace": NS, "labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "nginx:1.27",
                        "securityContext": {
                            "seccompProfile": {
                                "type": "Localhost",
                                "localhostProfile": (
                                    f"operator/{NS}/{'big' if i % 2 else 'other'}.json"
                                ),
                            }
                        },
                    }
                ]
            },
            "status": {"phase": "Running"},
        }
        for i in range(200)
    }
    return {
        "controller": {"metadata": {"name": "seccompprofile-controller"}},
        "parent": parent,
        "children": {"ConfigMap.v1": {}},
        "related": {
            f"SecurityProfileNodeStatus.{GROUP}/v1alpha1": statuses,
            "Pod.v1": pods,
            f"SeccompProfile.{GROUP}/v1beta1": {f"{NS}/big": parent},
        },
        "finalizing": False,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        body.write_text(json.dumps(payload()))
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": tmp}
        server = subprocess.Popen(
            [  # the real server of `spo hooks`, with the /echo baseline mounted beside the hooks
                sys.executable,
                "-m",
                "bench.baselines",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
            ],
            env=env,
            cwd=Path(__file__).resolve().parent.parent,  # where `-m bench.baselines` is found
        )
        try:
            wait_ready(f"{base}/readyz")
            request = urllib.request.Request(
                f"{base}/seccompprofile/sync",
                data=body.read_bytes(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.loads(response.read())
            assert answer["status"]["status"] == "Installed", answer["status"]
            assert len(answer["status"]["activeWorkloads"]) == 100
            run_wrk(f"{base}/echo", body, 2, args.connections)  # warm up both routes
            run_wrk(f"{base}/seccompprofile/sync", body, 2, args.connections)
            echo = run_wrk(f"{base}/echo", body, args.seconds, args.connections)
            sync = run_wrk(f"{base}/seccompprofile/sync", body, args.seconds, args.connections)
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:  # loopback only
                metrics = response.read().decode()
            sync["server_side_p99_ms_at_most"] = histogram(metrics, "seccompprofile-sync")[
                "p99_at_most_ms"
            ]
            echo["server_side_p99_ms_at_most"] = histogram(metrics, "echo")["p99_at_most_ms"]
        finally:
            server.terminate()
            server.wait(timeout=20)
    result = {
        "benchmark": "seccompprofile-sync-vs-echo",
        "body_bytes": body_size(),
        "workers": args.workers,
        "connections": args.connections,
        "seconds": args.seconds,
        "sync": sync,
        "echo": echo,
        "rps_ratio_sync_over_echo": round(sync["rps"] / echo["rps"], 3),
        "targets": {"sync_p99_ms_below": 10, "rps_ratio_at_least": 0.5},
        "meets_targets": sync["p99_ms"] < 10 and sync["rps"] / echo["rps"] >= 0.5,
    }
    print(json.dumps(result, indent=2))
    return 0


def body_size() -> int:
    return len(json.dumps(payload()))


if __name__ == "__main__":
    raise SystemExit(main())
