"""``spo nodesync``: the command-line layer of the node agent.

Seccomp profiles are always installed. SELinux policies are too when a policy
drop directory is given (``--selinux-dir``, env ``SELINUX_POLICY_DIR``, as the
spod's DaemonSet sets it with ``enableSelinux``; or ``--selinux`` for the
default one): their ``.cil`` files go there, and selinuxd (``--selinuxd-socket``,
env ``SELINUXD_SOCKET``) or nodesync itself (``--selinux-installer batch``)
installs them. In API mode each kind has its own watcher, in its own thread;
``/readyz`` waits for both first lists, ``/healthz`` fails when a loop died.

``--namespace`` (env ``WATCH_NAMESPACE``) restricts nodesync to one namespace:
it lists and watches ConfigMaps there only and writes node statuses there only,
so a Role in that namespace is all the rights it needs.

Metrics: with ``--secure-metrics-bind`` (API mode), ``/metrics`` (the reconcile
loops) and ``/metrics-spod`` (the operator's counters, the log enricher's of this
node included when ``--enricher-metrics-socket`` names its socket) are served over
HTTPS to bearer tokens allowed to ``get`` them, and the plain ``--metrics-bind``
listener keeps ``/healthz`` and ``/readyz`` only. Without it, the plain listener
serves ``/metrics`` too (everything, to anyone who reaches it). docs/metrics.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path

from hooks.api.profilestate import ProfileState
from nodesync.command.running import (
    Loops,
    add_agent_arguments,
    add_metrics_auth_ttl,
    stop_on_signals,
)
from nodesync.nodeio import serving
from nodesync.nodeio.agent import NodeAgent, poll_loop
from nodesync.nodeio.atomicfiles import Perms
from nodesync.nodeio.logs import about, configure
from nodesync.nodeio.metrics import Metrics
from nodesync.nodeio.metricsauth import MetricsGuard, Reviews
from nodesync.nodeio.outcomes import Outcome
from nodesync.nodeio.reading import FolderError, folder_signature, iter_folder
from nodesync.nodeio.reporting import NodeStatusReporter, NoStatus
from nodesync.seccomp.materialising import Materialiser
from nodesync.seccomp.support import seccomp_supported
from nodesync.selinux.batch import SemoduleInstaller
from nodesync.selinux.dropdir import DropDir
from nodesync.selinux.reporter import SELECTOR as SELINUX_SELECTOR
from nodesync.selinux.reporter import SelinuxStatusReporter
from nodesync.selinux.selinuxd import DEFAULT_SOCKET, SelinuxdClient
from nodesync.selinux.sync import Backend, BatchBackend, SelinuxdBackend, SelinuxSync

log = logging.getLogger(__name__)

DEFAULT_KUBELET_DIR = "/var/lib/kubelet"
DEFAULT_METRICS_BIND = "0.0.0.0:8085"
DEFAULT_SELINUX_DIR = "/etc/selinux.d"  # where the spod's DaemonSet mounts the drop directory
INSTALLERS = ("selinuxd", "batch")
SECCOMP_CONTROLLER = "seccompprofile"  # controller_runtime_reconcile_*{controller=...}
SELINUX_CONTROLLER = "selinuxprofile"
CONTROLLERS_PATH = "/metrics"
SPOD_PATH = "/metrics-spod"


def _owner(value: str) -> tuple[int, int]:
    uid, _, gid = value.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected UID:GID, got {value!r}") from error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_agent_arguments(
        parser,
        metrics_bind=DEFAULT_METRICS_BIND,
        node_help="(env NODE_NAME; required unless --from-dir)",
        namespace_help="watch ConfigMaps and write node statuses in NS only",
    )
    parser.add_argument(
        "--kubelet-dir",
        default=os.environ.get("KUBELET_DIR", DEFAULT_KUBELET_DIR),
        help="the kubelet's root; profiles go to <dir>/seccomp/operator (env KUBELET_DIR)",
    )
    parser.add_argument(
        "--from-dir", metavar="DIR", help="read ConfigMap YAML/JSON from DIR, not the API"
    )
    parser.add_argument(
        "--once", action="store_true", help="converge once and exit (with --from-dir)"
    )
    parser.add_argument(
        "--file-owner",
        type=_owner,
        default=None,
        metavar="UID:GID",
        help="owner of the files and directories written (default: this process)",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=1.0, help="--from-dir polling, seconds"
    )
    parser.add_argument("--workers", type=int, default=16, help="parallel file writes")
    secure = parser.add_argument_group("authenticated metrics (API mode)")
    secure.add_argument(
        "--secure-metrics-bind",
        default=os.environ.get("SECURE_METRICS_BIND", ""),
        metavar="HOST:PORT",
        help="serve /metrics and /metrics-spod over HTTPS there, to bearer tokens allowed to "
        "get them (env SECURE_METRICS_BIND; default: off)",
    )
    secure.add_argument(
        "--tls-cert-file", metavar="PATH", help="the HTTPS certificate (PEM), read again on change"
    )
    secure.add_argument("--tls-key-file", metavar="PATH", help="its private key (PEM)")
    add_metrics_auth_ttl(secure)
    secure.add_argument(
        "--enricher-metrics-socket",
        default=os.environ.get("ENRICHER_METRICS_SOCKET") or None,
        metavar="PATH",
        help="the log enricher's socket: its audit counters join /metrics-spod "
        "(env ENRICHER_METRICS_SOCKET)",
    )
    selinux = parser.add_argument_group("SELinux")
    selinux.add_argument(
        "--selinux",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="install SELinux policies too (default: when --selinux-dir is given); "
        f"without --selinux-dir they go to {DEFAULT_SELINUX_DIR}",
    )
    selinux.add_argument(
        "--selinux-dir",
        default=os.environ.get("SELINUX_POLICY_DIR") or None,
        metavar="DIR",
        help="the policy drop directory: <policy>.cil files go there (env SELINUX_POLICY_DIR; "
        "setting it enables SELinux)",
    )
    selinux.add_argument(
        "--selinux-installer",
        choices=INSTALLERS,
        default="selinuxd",
        help="selinuxd installs the files and is asked how it went (default), "
        "or batch: nodesync runs semodule itself, one transaction for every change",
    )
    selinux.add_argument(
        "--selinuxd-socket",
        default=os.environ.get("SELINUXD_SOCKET") or DEFAULT_SOCKET,
        metavar="PATH",
        help=f"selinuxd's status socket (env SELINUXD_SOCKET; default {DEFAULT_SOCKET})",
    )
    selinux.add_argument(
        "--selinux-poll-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often to ask selinuxd about the policies still pending",
    )
    selinux.add_argument(
        "--semodule-root",
        default=None,
        metavar="DIR",
        help="batch installer: an alternate policy root (semodule -p; the policy is built, "
        "not loaded)",
    )


def _summary(outcomes: Sequence[Outcome]) -> dict[str, object]:
    errors = [o for o in outcomes if o.state is ProfileState.ERROR]
    return {
        "profiles": len(outcomes),
        "written": sum(1 for o in outcomes if o.changed),
        "errors": [
            {"namespace": o.namespace, "name": o.name, "reason": o.reason, "message": o.message}
            for o in errors
        ],
    }


def selinux_dir(args: argparse.Namespace) -> Path | None:
    """The policy drop directory when SELinux is enabled, else None."""
    if args.selinux is False:
        return None
    if args.selinux_dir:
        return Path(args.selinux_dir)
    return Path(DEFAULT_SELINUX_DIR) if args.selinux else None


def selinux_sync(
    args: argparse.Namespace, folder: Path, metrics: Metrics | None = None
) -> SelinuxSync:
    backend: Backend
    if args.selinux_installer == "batch":
        root = args.semodule_root
        backend = BatchBackend(SemoduleInstaller(root=root, reload=root is None))
    else:
        backend = SelinuxdBackend(SelinuxdClient(args.selinuxd_socket))
    return SelinuxSync(DropDir(folder), backend, metrics=metrics)


def run(args: argparse.Namespace) -> int:
    configure(args.node_name, getattr(logging, str(args.log_level).upper(), logging.INFO))
    if args.secure_metrics_bind and not (args.tls_cert_file and args.tls_key_file):
        log.error(
            "--secure-metrics-bind needs --tls-cert-file and --tls-key-file", extra=about("", "")
        )
        return 2
    if args.secure_metrics_bind and args.from_dir:
        log.error("--secure-metrics-bind needs the API (not --from-dir)", extra=about("", ""))
        return 2
    metrics = Metrics()
    supported = seccomp_supported(Path(args.proc_dir))
    if not supported:
        log.error("seccomp is not supported on this node: installing nothing", extra=about("", ""))
    perms = Perms.of_process()
    if args.file_owner is not None:
        perms = Perms(uid=args.file_owner[0], gid=args.file_owner[1])
    materialiser = Materialiser(
        args.kubelet_dir, perms=perms, supported=supported, metrics=metrics, workers=args.workers
    )
    drop = selinux_dir(args)
    if drop is not None:
        log.info(
            "SELinux policies go to %s (installer: %s)",
            drop,
            args.selinux_installer,
            extra=about("", ""),
        )
    if args.from_dir:
        return run_local(args, materialiser, metrics, drop)
    if not args.node_name:
        log.error("--node-name (or NODE_NAME) is required to talk to the API", extra=about("", ""))
        return 2
    return run_api(args, materialiser, metrics, drop)


def run_local(
    args: argparse.Namespace, materialiser: Materialiser, metrics: Metrics, drop: Path | None
) -> int:
    """Converge to the ConfigMaps of a folder: once, or whenever its files change.

    Each agent streams the folder itself rather than sharing a list of every
    object: holding 10,000 parsed ConfigMaps at once costs tens of MiB. An agent
    reads all it is given before it changes anything, so a file that cannot be
    read (FolderError) stops the round before any change.
    """
    agents: list[NodeAgent] = [
        NodeAgent(materialiser, NoStatus(), metrics=metrics, controller=SECCOMP_CONTROLLER)
    ]
    selinux = None
    if drop is not None:
        selinux = NodeAgent(
            selinux_sync(args, drop, metrics),
            NoStatus(),
            metrics=metrics,
            controller=SELINUX_CONTROLLER,
        )
        agents.append(selinux)
    folder = Path(args.from_dir)
    if args.once:
        try:
            outcomes = [
                outcome for agent in agents for outcome in agent.relist(iter_folder(folder))
            ]
        except FolderError as error:
            log.error("%s: nothing changed", error, extra=about("", ""))
            return 2
        summary = _summary(outcomes)
        sys.stdout.write(json.dumps(summary) + "\n")
        return 1 if summary["errors"] else 0
    stop = threading.Event()
    stop_on_signals(stop)
    server = (
        serving.start(args.metrics_bind, metrics, lambda: all(a.ready.is_set() for a in agents))
        if args.metrics_bind
        else None
    )
    try:
        poll_folder(
            folder,
            agents,
            stop,
            args.poll_interval,
            tick=selinux.poll if selinux is not None else None,
        )
    finally:
        if server is not None:
            server.shutdown()
    return 0


def run_api(
    args: argparse.Namespace, materialiser: Materialiser, metrics: Metrics, drop: Path | None
) -> int:
    # The kubernetes client costs ~30 MiB and a second of start-up: only the API mode loads it.
    from nodesync.nodeio.requesting import KubernetesCluster
    from nodesync.nodeio.watching import Watcher

    if args.namespace:
        log.info("watching namespace %s only", args.namespace, extra=about(args.namespace, ""))
    stop = threading.Event()
    cluster = KubernetesCluster(args.kubeconfig, namespace=args.namespace)
    clusters = [cluster]
    agent = NodeAgent(
        materialiser,
        NodeStatusReporter(cluster, args.node_name, metrics),
        metrics=metrics,
        controller=SECCOMP_CONTROLLER,
    )
    ready = [agent.ready]
    loops: dict[str, Callable[[], None]] = {
        "seccomp": Watcher(cluster, agent, stop, timeout=args.watch_timeout).run
    }
    if drop is not None:
        # A watch being read belongs to one connection: the SELinux watcher has its own.
        other = KubernetesCluster(args.kubeconfig, namespace=args.namespace)
        clusters.append(other)
        selinux = NodeAgent(
            selinux_sync(args, drop, metrics),
            SelinuxStatusReporter(other, args.node_name, metrics),
            metrics=metrics,
            controller=SELINUX_CONTROLLER,
        )
        ready.append(selinux.ready)
        loops["selinux"] = Watcher(
            other, selinux, stop, selector=SELINUX_SELECTOR, timeout=args.watch_timeout
        ).run
        loops["selinux-poll"] = functools.partial(
            poll_loop, selinux, stop, args.selinux_poll_interval
        )

    def interrupt() -> None:
        for each in clusters:
            each.interrupt()

    stop_on_signals(stop, interrupt)
    runner = Loops(loops, stop, interrupt)
    servers = []
    if args.metrics_bind:
        servers.append(
            serving.start(
                args.metrics_bind,
                None if args.secure_metrics_bind else metrics,
                lambda: all(e.is_set() for e in ready),
                runner.healthy,
            )
        )
    if args.secure_metrics_bind:
        servers.append(secure_metrics(args, metrics, KubernetesCluster(args.kubeconfig)))
    try:
        return runner.run()
    finally:
        for server in servers:
            server.shutdown()


def secure_metrics(
    args: argparse.Namespace, metrics: Metrics, reviews: Reviews
) -> ThreadingHTTPServer:
    """The HTTPS listener of ``/metrics`` and ``/metrics-spod`` (the Service ``metrics``)."""
    socket_path = args.enricher_metrics_socket

    def spod() -> bytes:
        own = metrics.spod_exposition()
        if not socket_path:
            return own
        return own + (serving.fetch_unix(socket_path, SPOD_PATH) or b"")

    guard = MetricsGuard(reviews, ttl=args.metrics_auth_ttl)
    return serving.start_secure(
        args.secure_metrics_bind,
        {CONTROLLERS_PATH: metrics.controllers_exposition, SPOD_PATH: spod},
        guard.check,
        serving.TlsFiles(args.tls_cert_file, args.tls_key_file),
    )


def poll_folder(
    folder: Path,
    agents: Sequence[NodeAgent],
    stop: threading.Event,
    interval: float,
    *,
    tick: Callable[[], None] | None = None,
) -> None:
    """Converge whenever the folder's files change, until ``stop`` is set; ``tick`` every round."""
    seen: tuple[tuple[str, int, int], ...] | None = None
    while not stop.is_set():
        signature = folder_signature(folder)
        if signature != seen:
            try:
                for agent in agents:
                    agent.relist(iter_folder(folder))
                seen = signature
            except FolderError as error:
                log.error("%s: nothing changed, trying again", error, extra=about("", ""))
        if tick is not None:
            tick()
        stop.wait(interval)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spo nodesync", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
