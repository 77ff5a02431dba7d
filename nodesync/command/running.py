"""What both node programs' commands share: their common arguments, their threads, their signals."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import threading
from collections.abc import Callable, Mapping
from types import FrameType

from nodesync.nodeio.logs import about
from nodesync.nodeio.metricsauth import DEFAULT_TTL

log = logging.getLogger(__name__)

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _namespace(value: str) -> str:
    if not _NAMESPACE.match(value):
        raise argparse.ArgumentTypeError(f"not a namespace name: {value!r}")
    return value


def _env_namespace() -> str | None:
    value = os.environ.get("WATCH_NAMESPACE", "").strip()
    return value or None


def add_agent_arguments(
    parser: argparse.ArgumentParser, *, metrics_bind: str, node_help: str, namespace_help: str
) -> None:
    """The arguments of both node agents (``spo nodesync``, ``spo log-enricher``)."""
    parser.add_argument(
        "--node-name", default=os.environ.get("NODE_NAME", ""), help=f"this node's name {node_help}"
    )
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None)
    parser.add_argument(
        "--namespace",
        type=_namespace,
        default=_env_namespace(),
        metavar="NS",
        help=f"{namespace_help} (env WATCH_NAMESPACE; default: every namespace)",
    )
    parser.add_argument(
        "--metrics-bind",
        default=os.environ.get("METRICS_BIND", metrics_bind),
        metavar="HOST:PORT",
        help="where to serve /healthz, /readyz and /metrics ('' to disable)",
    )
    parser.add_argument("--proc-dir", default="/proc", help="where the kernel's /proc is mounted")
    parser.add_argument("--watch-timeout", type=int, default=300, help="seconds per watch request")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"))


def add_metrics_auth_ttl(parser: argparse._ActionsContainer) -> None:
    """``--metrics-auth-ttl``: how long a metrics reader's token review is reused (every
    program that checks tokens: nodesync, the hooks, the webhook, the hooks' metrics)."""
    parser.add_argument(
        "--metrics-auth-ttl",
        type=float,
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help=f"how long a token's review is reused (default {DEFAULT_TTL:g})",
    )


def stop_on_signals(stop: threading.Event, interrupt: Callable[[], None] | None = None) -> None:
    """SIGTERM and SIGINT set ``stop``; ``interrupt`` ends a blocking read (an idle watch)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if interrupt is not None:
            interrupt()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


class Loops:
    """Run each loop in a thread of its own until ``stop`` is set; a loop that fails stops all.

    The main thread only waits (and so takes the signals). Returns 1 when a loop failed."""

    JOIN_TIMEOUT = 30.0

    def __init__(
        self,
        loops: Mapping[str, Callable[[], None]],
        stop: threading.Event,
        interrupt: Callable[[], None],
    ) -> None:
        self.loops = dict(loops)
        self.stop = stop
        self.interrupt = interrupt
        self.failed: list[str] = []
        self.threads: list[threading.Thread] = []

    def _run(self, name: str, loop: Callable[[], None]) -> None:
        try:
            loop()
        except Exception:
            self.failed.append(name)
            log.exception("the %s loop failed: stopping", name, extra=about("", ""))
        finally:
            if not self.stop.is_set():
                self.stop.set()
                self.interrupt()

    def run(self) -> int:
        self.threads = [
            threading.Thread(
                target=self._run, args=(name, loop), name=f"nodesync-{name}", daemon=True
            )
            for name, loop in self.loops.items()
        ]
        for thread in self.threads:
            thread.start()
        while not self.stop.wait(1.0):
            pass
        for thread in self.threads:
            thread.join(self.JOIN_TIMEOUT)
        return 1 if self.failed else 0

    def healthy(self) -> bool:
        """Every loop is running (or stopping because it was told to)."""
        if self.failed:
            return False
        return self.stop.is_set() or all(thread.is_alive() for thread in self.threads)
