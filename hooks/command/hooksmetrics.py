"""``spo hooks-metrics``: the hooks' numbers over HTTPS, to bearer tokens only.

The hooks pod's ``metrics`` container. The hooks container writes its numbers into a
prometheus_client multiprocess folder on the pod's shared ``/tmp`` and serves no
``/metrics`` of its own; this program reads that folder at each scrape and serves it at
``/metrics`` over HTTPS, once the API server says the bearer token may get ``/metrics``
(TokenReview and SubjectAccessReview: :mod:`nodesync.nodeio.metricsauth`, nodesync's own
check). Every other path on that port is refused the same way (401, 403, then 404). The
kubelet's probes get ``/healthz`` and ``/readyz`` on a plain port: ready once the
certificate could be read.

One process, the HTTPS listener nodesync serves its metrics with (bounded connections,
I/O deadlines, the certificate read again when it changes), no web framework: the one
container of the pod that holds a token parses no hook request, and it costs about half
the memory of a gunicorn master and worker (bench/bench_cost.py).
"""

from __future__ import annotations

import argparse
import logging
import threading

from hooks.cluster.metrics import folders_exposition
from nodesync.command.running import add_metrics_auth_ttl

log = logging.getLogger(__name__)

DEFAULT_BIND = "0.0.0.0:8443"
DEFAULT_PROBES = "0.0.0.0:8081"
METRICS_PATH = "/metrics"


def add_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--bind",
        default=DEFAULT_BIND,
        metavar="HOST:PORT",
        help=f"the HTTPS listener of /metrics (default {DEFAULT_BIND})",
    )
    command.add_argument(
        "--probes",
        default=DEFAULT_PROBES,
        metavar="HOST:PORT",
        help=f"plain HTTP /healthz and /readyz for the kubelet (default {DEFAULT_PROBES})",
    )
    command.add_argument("--certfile", required=True, metavar="PATH", help="certificate (PEM)")
    command.add_argument("--keyfile", required=True, metavar="PATH", help="its private key (PEM)")
    command.add_argument(
        "--metrics-dir",
        action="append",
        required=True,
        metavar="DIR",
        help="a PROMETHEUS_MULTIPROC_DIR whose numbers /metrics serves (repeatable)",
    )
    command.add_argument(
        "--kubeconfig",
        default=None,
        metavar="PATH",
        help="credentials for the token reviews (default: the pod's ServiceAccount, "
        "else $KUBECONFIG)",
    )
    add_metrics_auth_ttl(command)
    command.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nodesync.command.running import stop_on_signals
    from nodesync.nodeio import serving
    from nodesync.nodeio.metricsauth import MetricsGuard
    from nodesync.nodeio.requesting import KubernetesCluster

    folders = tuple(args.metrics_dir)
    tls = serving.TlsFiles(args.certfile, args.keyfile)
    guard = MetricsGuard(KubernetesCluster(args.kubeconfig), ttl=args.metrics_auth_ttl)
    stop = threading.Event()
    stop_on_signals(stop)
    servers = [
        serving.start_secure(
            args.bind, {METRICS_PATH: lambda: folders_exposition(folders)}, guard.check, tls
        ),
        serving.start(args.probes, None, lambda: tls.context() is not None),
    ]
    log.info("serving the numbers of %s", ", ".join(folders))
    try:
        stop.wait()
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    return 0
