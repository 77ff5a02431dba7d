"""nodesync as a real process (``python -m nodesync``) for the end-to-end tests, and the waits.

Every wait polls against a deadline; no sleep decides an outcome.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hooks.api import GROUP
from hooks.api.nodestatus import KIND as NODE_STATUS
from hooks.api.nodestatuslabels import status_name
from tests.helpers.controlplane import ControlPlane, free_port

REPO = Path(__file__).resolve().parent.parent.parent
NODE = "node-e2e"
DEADLINE = 90.0  # seconds; generous: nodesync may sit in its reconnect backoff
T = TypeVar("T")
# Settings nodesync reads from its environment: the tests give them as flags only.
ENV = (
    "KUBECONFIG",
    "NODE_NAME",
    "KUBELET_DIR",
    "METRICS_BIND",
    "LOG_LEVEL",
    "SELINUX_POLICY_DIR",
    "SELINUXD_SOCKET",
    "WATCH_NAMESPACE",
    "ENABLE_MEMORY_OPTIMIZATION",
    "AUDIT_LOG_PATH",
    "STATE_DIR",
)


class NodeSync:
    """``python -m nodesync`` in API mode, its log in a file."""

    def __init__(
        self,
        kubeconfig: Path,
        kubelet: Path,
        log: Path,
        extra: Sequence[str] = (),
        node: str = NODE,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.kubelet = kubelet
        self.log = log
        self.extra = list(extra)
        self.node = node
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "nodesync",
            "--kubeconfig",
            str(self.kubeconfig),
            "--node-name",
            self.node,
            "--kubelet-dir",
            str(self.kubelet),
            "--metrics-bind",
            f"127.0.0.1:{self.port}",
            *self.extra,
        ]

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ENV}
        argv = self.argv()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=env,
            )

    def stop(self, timeout: float) -> int | None:
        """SIGTERM, then the exit code; None (and SIGKILL) when it did not exit within
        ``timeout``."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
            return None

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records written so far."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def count(self, prefix: str) -> int:
        return sum(1 for record in self.records() if str(record.get("msg", "")).startswith(prefix))

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"----- last {lines} lines of {self.log} -----\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    def file(self, namespace: str, name: str) -> Path:
        return self.kubelet / "seccomp" / "operator" / namespace / f"{name}.json"


def eventually(what: str, check: Callable[[], T], agent: NodeSync, timeout: float = DEADLINE) -> T:
    """Call ``check`` until it returns without AssertionError; fail with its last message."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError as error:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: not so after {timeout:.0f}s: {error}\n{agent.tail()}"
                ) from None
        if agent.proc is not None and agent.proc.poll() is not None:
            raise AssertionError(
                f"nodesync exited with {agent.proc.returncode} while waiting for {what}\n"
                f"{agent.tail()}"
            )
        time.sleep(0.1)


def node_status(
    plane: ControlPlane, namespace: str, profile: str, node: str = NODE
) -> dict[str, Any] | None:
    path = (
        f"/apis/{GROUP}/v1alpha1/namespaces/{namespace}/{NODE_STATUS.plural}/"
        f"{status_name(profile, node)}"
    )
    code, body = plane.get(path)
    if code == 404:
        return None
    assert code == 200, f"GET {path}: {code} {body}"
    found: dict[str, Any] = json.loads(body)
    return found
