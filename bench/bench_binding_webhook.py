"""Admission latency of the binding webhook with 1,000 bindings in the pod's namespace, over HTTPS.

The hooks run under gunicorn with a certificate made by openssl for
127.0.0.1; the table file holds 1,000 bindings in namespace ``bench`` (999
image bindings and one ``*`` binding) plus 4,000 in other namespaces. The pod
has an init container and four containers, two of them bound. The baseline is
``/admit-allow``, a trivial admission route in the same server (answers
allowed with the uid), sent the same AdmissionReview; load comes from wrk
(HTTPS, keep-alive) in a second process. Three numbers:

- ``in_process``: ``admit()`` itself, timed in this process (p50/p99 over
  20,000 calls, table already loaded): the hook's own cost;
- ``server_histogram``: the hook latency the server measured itself
  (``spo_hook_request_duration_seconds``): decoding, ``admit``, encoding;
- ``wrk``: round trips over HTTPS for both routes, and their ratio.

    .venv/bin/python -m bench.bench_binding_webhook [--seconds 10] [--connections 2] [--workers 2]

Target: p99 in the hook process under 5 ms; binding route at least half the
baseline's requests per second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from flask import Flask

from bench.loadgen import (
    free_port,
    histogram,
    run_wrk,
    wait_ready,
)
from hooks.cluster.binding import admission, table

NS = "bench"
BINDINGS = 1000
TARGET_P99_MS = 5.0
REPO = Path(__file__).resolve().parents[1]


def app() -> Flask:
    """What gunicorn serves: the hook app with the binding blueprint and the /admit-allow
    baseline."""
    from bench.baselines import app as with_baselines

    return with_baselines()


def binding_table() -> table.BindingTable:
    def entry(i: int, namespace: str) -> table.Entry:
        return table.Entry(
            f"b-{i:04d}",
            table.SECCOMP,
            f"p-{i:04d}",
            "Installed",
            f"operator/{namespace}/p-{i:04d}.json",
        )

    namespaces: dict[str, dict[str, tuple[table.Entry, ...]]] = {}
    for namespace in [NS, *(f"other-{n}" for n in range(4))]:
        images: dict[str, tuple[table.Entry, ...]] = {
            f"registry.example.com/app-{i:04d}:1.0": (entry(i, namespace),)
            for i in range(BINDINGS - 1)
        }
        images[table.WILDCARD] = (
            table.Entry(
                "everything", table.SELINUX, "web", "Installed", f"web_{namespace}.process"
            ),
        )
        namespaces[namespace] = images
    return table.BindingTable(namespaces)


def review() -> dict[str, Any]:
    def container(name: str, image: str) -> dict[str, Any]:
        return {
            "name": name,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            "env": [{"name": f"VAR_{i}", "value": f"value-{i}"} for i in range(10)],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-",
            "namespace": NS,
            "labels": {"app": "web", "tier": "front"},
        },
        "spec": {
            "initContainers": [container("setup", "busybox:1.36")],
            "containers": [
                container("app", "registry.example.com/app-0042:1.0"),
                container("sidecar", "registry.example.com/app-0777:1.0"),
                container("proxy", "envoyproxy/envoy:v1.31"),
                container("metrics", "prom/node-exporter:v1.8"),
            ],
            "securityContext": {},
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
        },
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench-0000-0000",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": NS,
            "operation": "CREATE",
            "userInfo": {"username": "bench"},
            "object": pod,
            "dryRun": False,
        },
    }


def in_process(iterations: int = 20000) -> dict[str, float]:
    loaded = table.decode(table.encode(binding_table()))
    parsed = admission.AdmissionReviewRequest.model_validate(review())
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        admission.admit(parsed, loaded)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return {
        "p50_ms": round(samples[len(samples) // 2] * 1000, 4),
        "p99_ms": round(samples[int(len(samples) * 0.99)] * 1000, 4),
    }


def certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("openssl"):
        print("wrk and openssl are needed (apt-get install wrk openssl)", file=sys.stderr)
        return 2
    pure = in_process()
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cert, key = certificate(folder)
        table_file = folder / "bindings.json"
        table_file.write_text(table.encode(binding_table()))
        body = folder / "review.json"
        body.write_text(json.dumps(review()))
        metrics_dir = folder / "metrics"
        metrics_dir.mkdir()
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "SPO_BINDINGS_FILE": str(table_file),
            "PYTHONPATH": str(REPO),
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--certfile",
                str(cert),
                "--keyfile",
                str(key),
                "--workers",
                str(args.workers),
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--log-level",
                "error",
                "bench.bench_binding_webhook:app()",
            ],
            cwd=REPO,
            env=env,
        )
        context = ssl.create_default_context(cafile=str(cert))
        try:
            wait_ready(f"{base}/readyz", context)
            request = urllib.request.Request(
                f"{base}/mutate-v1-pod-binding",
                data=body.read_bytes(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                answer = json.loads(response.read())["response"]
            assert answer["allowed"] and answer["patchType"] == "JSONPatch", answer
            run_wrk(f"{base}/admit-allow", body, 2, args.connections)  # warm up both routes
            run_wrk(f"{base}/mutate-v1-pod-binding", body, 2, args.connections)
            baseline = run_wrk(f"{base}/admit-allow", body, args.seconds, args.connections)
            binding = run_wrk(f"{base}/mutate-v1-pod-binding", body, args.seconds, args.connections)
            with urllib.request.urlopen(f"{base}/metrics", timeout=10, context=context) as response:
                metrics = response.read().decode()
        finally:
            server.terminate()
            server.wait(timeout=20)
    served = histogram(metrics, "binding-admission")
    result = {
        "benchmark": "binding-webhook-vs-trivial-admission-https",
        "bindings_in_namespace": BINDINGS,
        "review_bytes": len(json.dumps(review())),
        "workers": args.workers,
        "connections": args.connections,
        "seconds": args.seconds,
        "in_process": pure,
        "server_histogram": served,
        "server_histogram_baseline": histogram(metrics, "admit-allow"),
        "wrk": {"binding": binding, "admit_allow": baseline},
        "rps_ratio_binding_over_baseline": round(binding["rps"] / baseline["rps"], 3),
        "p99_ms_ratio_binding_over_baseline": round(binding["p99_ms"] / baseline["p99_ms"], 3),
        "targets": {"in_process_p99_ms_below": TARGET_P99_MS, "rps_ratio_at_least": 0.5},
        "meets_targets": pure["p99_ms"] < TARGET_P99_MS
        and served["p99_at_most_ms"] <= TARGET_P99_MS
        and binding["rps"] / baseline["rps"] >= 0.5,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
