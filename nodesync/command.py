"""``spo nodesync``: the command-line layer of the node agent."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from hooks.api.profilestate import ProfileState
from nodesync import serving
from nodesync.agent import Agent
from nodesync.logs import about, configure
from nodesync.materialising import Materialiser
from nodesync.metrics import Metrics
from nodesync.outcomes import Outcome
from nodesync.plan import Perms
from nodesync.reading import FolderError, folder_signature, iter_folder
from nodesync.reporting import NodeStatusReporter, NoStatus
from nodesync.seccompsupport import seccomp_supported

log = logging.getLogger(__name__)

DEFAULT_KUBELET_DIR = "/var/lib/kubelet"
DEFAULT_METRICS_BIND = "0.0.0.0:8085"


def _owner(value: str) -> tuple[int, int]:
    uid, _, gid = value.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected UID:GID, got {value!r}") from error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubelet-dir",
        default=os.environ.get("KUBELET_DIR", DEFAULT_KUBELET_DIR),
        help="the kubelet's root; profiles go to <dir>/seccomp/operator (env KUBELET_DIR)",
    )
    parser.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME", ""),
        help="this node's name (env NODE_NAME; required unless --from-dir)",
    )
    parser.add_argument(
        "--from-dir", metavar="DIR", help="read ConfigMap YAML/JSON from DIR, not the API"
    )
    parser.add_argument(
        "--once", action="store_true", help="converge once and exit (with --from-dir)"
    )
    parser.add_argument(
        "--metrics-bind",
        default=os.environ.get("METRICS_BIND", DEFAULT_METRICS_BIND),
        metavar="HOST:PORT",
        help="where to serve /healthz, /readyz and /metrics ('' to disable)",
    )
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None)
    parser.add_argument("--proc-dir", default="/proc", help="where the kernel's /proc is mounted")
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
    parser.add_argument("--watch-timeout", type=int, default=300, help="seconds per watch request")
    parser.add_argument("--workers", type=int, default=16, help="parallel file writes")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"))


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


def _stop_on_signals(stop: threading.Event, interrupt: Callable[[], None] | None = None) -> None:
    """SIGTERM and SIGINT set ``stop``; ``interrupt`` ends a blocking read (an idle watch)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if interrupt is not None:
            interrupt()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def run(args: argparse.Namespace) -> int:
    configure(args.node_name, getattr(logging, str(args.log_level).upper(), logging.INFO))
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
    if args.from_dir:
        agent = Agent(materialiser, NoStatus())
        folder = Path(args.from_dir)
        if args.once:
            try:
                outcomes = agent.relist(iter_folder(folder))
            except FolderError as error:
                log.error("%s: nothing changed", error, extra=about("", ""))
                return 2
            summary = _summary(outcomes)
            sys.stdout.write(json.dumps(summary) + "\n")
            return 1 if summary["errors"] else 0
        stop = threading.Event()
        _stop_on_signals(stop)
        server = (
            serving.start(args.metrics_bind, metrics, agent.ready) if args.metrics_bind else None
        )
        try:
            poll_folder(folder, agent, stop, args.poll_interval)
        finally:
            if server is not None:
                server.shutdown()
        return 0
    if not args.node_name:
        log.error("--node-name (or NODE_NAME) is required to talk to the API", extra=about("", ""))
        return 2
    # The kubernetes client costs ~30 MiB and a second of start-up: only the API mode loads it.
    from nodesync.requesting import KubernetesCluster
    from nodesync.watching import Watcher

    cluster = KubernetesCluster(args.kubeconfig)
    agent = Agent(materialiser, NodeStatusReporter(cluster, args.node_name, metrics))
    stop = threading.Event()
    _stop_on_signals(stop, cluster.interrupt)
    server = serving.start(args.metrics_bind, metrics, agent.ready) if args.metrics_bind else None
    try:
        Watcher(cluster, agent, stop, timeout=args.watch_timeout).run()
    finally:
        if server is not None:
            server.shutdown()
    return 0


def poll_folder(folder: Path, agent: Agent, stop: threading.Event, interval: float) -> None:
    """Converge whenever the folder's files change, until ``stop`` is set."""
    seen: tuple[tuple[str, int, int], ...] | None = None
    while not stop.is_set():
        signature = folder_signature(folder)
        if signature != seen:
            try:
                agent.relist(iter_folder(folder))
                seen = signature
            except FolderError as error:
                log.error("%s: nothing changed, trying again", error, extra=about("", ""))
        stop.wait(interval)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spo nodesync", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
