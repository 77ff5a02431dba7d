"""Admission latency of the binding webhook with 1,000 bindings in the pod's namespace, over
HTTPS, against the webhook's in-memory table; and what keeping that table costs per watch event.

The webhook app (``create_webhook_app``) runs under the real server of ``spo webhook``
(``hooks.cluster.serving``: gevent, one worker) with a certificate made by openssl for
127.0.0.1. Its table is a ``WatchedTables`` fed, as the watches feed it, the ProfileBindings
and SeccompProfiles of 1,000 bindings in namespace ``bench`` (999 image bindings and one
``*`` binding) plus 4,000 in other namespaces. The pod has an init container and four
containers, two of them bound. The baseline is ``/admit-allow``, a trivial admission route in
the same server (answers allowed with the uid), sent the same AdmissionReview; load comes
from wrk (HTTPS, keep-alive) in a second process. Numbers:

- ``in_process``: ``admit()`` itself, timed in this process (p50/p99 over
  20,000 calls, table already loaded): the hook's own cost;
- ``server_histogram``: the hook latency the server measured itself
  (``spo_hook_request_duration_seconds``): decoding, ``admit``, encoding;
- ``wrk``: round trips over HTTPS for both routes, and their ratio;
- ``table_updates``: the CPU of one watch event (store it, resolve its namespace again,
  publish), for an event in the 1,000-binding namespace and in a 10-binding one, with 1,000
  and with 5,000 bindings in the cluster: it follows the event's namespace, not the
  cluster; a burst of 1,000 events through the publisher thread (rebuilds at most every
  100 ms): rebuilds, CPU per event, and the time from the last event to the table that has
  it; a lone event's time to its table.

    .venv/bin/python -m bench.bench_binding_webhook [--seconds 10] [--connections 2]

Targets: p99 in the hook process under 5 ms; binding route at least half the baseline's
requests per second; a coalesced event's CPU flat in the size of the cluster and effective
within 1 s.

Measured (2026-12-01, the shared 2-core machine, load 2 to 4, ``--seconds 10``): ``admit``
p99 0.17 ms in process; the server's own histogram p99 at most 2.5 ms (baseline 1 ms), 99.9 %
under 5 ms; 904 against 771 requests per second (wrk's p99, 94 and 147 ms, is the loaded
machine's scheduling, for both routes). One event: 17 ms in the 1,000-binding namespace with
1,010 bindings in the cluster, 22 ms with 5,010; 0.13 and 0.11 ms in the 10-binding one. A burst
of 1,000 events: 2 rebuilds, 0.08 ms of CPU per event, in the table 46 ms after the last; a
lone event in its table after 0.9 ms (p50), 3.2 ms at most.

The decorator's share of a profile event is none: its only related object is the spod
(``tests/e2e/test_metacontroller_emulation.py::test_loop_runs_every_controller_of_the_install``
counts its syncs while profiles are created and become Installed: zero).
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
import threading
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
from hooks.cluster.webhook.tables import BINDINGS as BINDING_KIND
from hooks.cluster.webhook.tables import WATCHED, WatchedTables
from tests.helpers.fake_apiserver import objects_of

NS = "bench"
SMALL = "small"
BINDINGS = 1000
TARGET_P99_MS = 5.0
REPO = Path(__file__).resolve().parents[1]


def app() -> Flask:
    """What the server serves: the webhook app on a ``WatchedTables`` fed the bench's objects,
    with the /admit-allow baseline."""
    from bench.baselines import with_baselines
    from hooks.cluster.app import create_webhook_app

    return with_baselines(create_webhook_app(watched(binding_table())))


def watched(wanted: table.BindingTable) -> WatchedTables:
    """A ``WatchedTables`` listed, as the watches list it, from the objects whose table is
    ``wanted``."""
    objects = objects_of(wanted)
    tables = WatchedTables()
    for kind in WATCHED:
        tables.relist(kind, objects[kind.plural])
    tables.rebuild()
    return tables


def binding_table(other_namespaces: int = 4) -> table.BindingTable:
    def entry(i: int, namespace: str) -> table.Entry:
        return table.Entry(
            f"b-{i:04d}",
            table.SECCOMP,
            f"p-{i:04d}",
            "Installed",
            f"operator/{namespace}/p-{i:04d}.json",
        )

    namespaces: dict[str, dict[str, tuple[table.Entry, ...]]] = {
        SMALL: {f"small-{i}:1": (entry(i, SMALL),) for i in range(10)}
    }
    for namespace in [NS, *(f"other-{n}" for n in range(other_namespaces))]:
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
    loaded = watched(binding_table()).bindings().table
    assert table.encode(loaded) == table.encode(binding_table())  # the watched table is the table
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


def _changed(namespace: str, i: int, generation: int) -> dict[str, Any]:
    """A MODIFIED ProfileBinding of ``namespace`` (its image changes with ``generation``)."""
    return {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha1",
        "kind": "ProfileBinding",
        "metadata": {
            "name": f"b-{i:04d}",
            "namespace": namespace,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "profileRef": {"kind": "SeccompProfile", "name": f"p-{i:04d}"},
            "image": f"registry.example.com/app-{i:04d}:{generation}",
        },
    }


def _per_event_ms(tables: WatchedTables, namespace: str, events: int = 100) -> float:
    """CPU ms of one event (store, resolve its namespace, publish), events one by one."""
    started = time.process_time()
    for n in range(events):
        tables.event(BINDING_KIND, "MODIFIED", _changed(namespace, n % 10, n))
        tables.rebuild()
    return round((time.process_time() - started) / events * 1000, 3)


def table_updates() -> dict[str, Any]:
    one_by_one = {}
    for other in (0, 4):  # 1,000 + 10 bindings in the cluster, then 5,000 + 10
        tables = watched(binding_table(other))
        total = tables.bindings().table.count()
        one_by_one[f"cluster_{total}_bindings"] = {
            "event_in_namespace_of_1000_ms": _per_event_ms(tables, NS),
            "event_in_namespace_of_10_ms": _per_event_ms(tables, SMALL),
        }
    tables = watched(binding_table())
    stop = threading.Event()
    publisher = threading.Thread(target=tables.publish_forever, args=(stop,), daemon=True)
    publisher.start()
    try:
        time.sleep(0.2)
        rebuilds = tables.rebuilds
        cpu = time.process_time()
        burst = 1000
        for n in range(burst):
            tables.event(BINDING_KIND, "MODIFIED", _changed(NS, n % 999, 10_000 + n))
        sent = time.monotonic()
        last = f"registry.example.com/app-{(burst - 1) % 999:04d}:{10_000 + burst - 1}"
        while last not in tables.bindings().table.of(NS):
            time.sleep(0.001)
        effective_ms = (time.monotonic() - sent) * 1000
        burst_cpu = time.process_time() - cpu
        burst_rebuilds = tables.rebuilds - rebuilds
        time.sleep(0.3)
        lone: list[float] = []
        for n in range(20):
            started = time.monotonic()
            tables.event(BINDING_KIND, "MODIFIED", _changed(SMALL, 0, 20_000 + n))
            wanted = f"registry.example.com/app-0000:{20_000 + n}"
            while wanted not in tables.bindings().table.of(SMALL):
                time.sleep(0.0005)
            lone.append((time.monotonic() - started) * 1000)
            time.sleep(0.15)
    finally:
        stop.set()
        publisher.join(2.0)
    lone.sort()
    return {
        "one_by_one": one_by_one,
        "burst_of_1000_events_in_namespace_of_1000": {
            "rebuilds": burst_rebuilds,
            "cpu_per_event_ms": round(burst_cpu / burst * 1000, 3),
            "last_event_to_table_ms": round(effective_ms, 1),
        },
        "lone_event_to_table_ms": {
            "p50": round(lone[len(lone) // 2], 2),
            "max": round(lone[-1], 2),
        },
    }


def decorator_share() -> dict[str, Any]:
    """What the namespace decorator asks to be synced on: a related rule that matches a
    profile, binding or recording would sync it on every event of one."""
    from hooks.cluster.contract import CustomizeRequest
    from hooks.cluster.namespace import decorator

    parent = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": decorator.OPERATOR_NAMESPACE},
    }
    rules = decorator.customize(CustomizeRequest.model_validate({"parent": parent}))
    related = [rule.resource for rule in rules.relatedResources or []]
    watched = {kind.plural for kind in WATCHED}
    return {
        "related_resources": related,
        "syncs_per_profile_binding_or_recording_event": sum(r in watched for r in related),
    }


def serve(bind: str, certfile: str, keyfile: str) -> None:
    """The server ``spo webhook`` runs (one gevent worker), serving ``app()``."""
    from hooks.cluster import serving

    serving.serve(bind, 1, certfile, keyfile, factory=app)


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
    parser.add_argument("--serve", nargs=3, metavar=("BIND", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return 0
    if not shutil.which("wrk") or not shutil.which("openssl"):
        print("wrk and openssl are needed (apt-get install wrk openssl)", file=sys.stderr)
        return 2
    pure = in_process()
    updates = table_updates()
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cert, key = certificate(folder)
        body = folder / "review.json"
        body.write_text(json.dumps(review()))
        metrics_dir = folder / "metrics"
        metrics_dir.mkdir()
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "PYTHONPATH": str(REPO),
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.bench_binding_webhook",
                "--serve",
                f"127.0.0.1:{port}",
                str(cert),
                str(key),
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
        "server": "spo webhook's: gevent, 1 worker",
        "connections": args.connections,
        "seconds": args.seconds,
        "in_process": pure,
        "server_histogram": served,
        "server_histogram_baseline": histogram(metrics, "admit-allow"),
        "wrk": {"binding": binding, "admit_allow": baseline},
        "rps_ratio_binding_over_baseline": round(binding["rps"] / baseline["rps"], 3),
        "p99_ms_ratio_binding_over_baseline": round(binding["p99_ms"] / baseline["p99_ms"], 3),
        "table_updates": updates,
        "decorator": decorator_share(),
        "targets": {
            "in_process_p99_ms_below": TARGET_P99_MS,
            "rps_ratio_at_least": 0.5,
            "burst_last_event_to_table_ms_below": 1000,
        },
        "meets_targets": pure["p99_ms"] < TARGET_P99_MS
        and served["p99_at_most_ms"] <= TARGET_P99_MS
        and binding["rps"] / baseline["rps"] >= 0.5
        and updates["burst_of_1000_events_in_namespace_of_1000"]["last_event_to_table_ms"] < 1000,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
