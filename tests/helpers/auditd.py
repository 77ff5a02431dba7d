"""auditd for the tests: find it, start it (and stop it afterwards) when it does not run.

The recorder's tests read auditd's own log, ``/var/log/audit/audit.log``. When
auditd is missing or cannot start, the test skips, or fails when ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nodesync.enricher.losses import auditd_pid
from tests.helpers.runc_bundle import missing
from tests.helpers.unavailable import unavailable

AUDIT_LOG = Path("/var/log/audit/audit.log")
WAIT = 30.0


def running_auditd() -> int | None:
    """The pid of the running auditd, None when there is none."""
    return auditd_pid()


def _binary() -> str:
    binary = shutil.which("auditd") or (
        "/usr/sbin/auditd" if Path("/usr/sbin/auditd").exists() else None
    )
    if binary is None:
        missing("auditd is not installed")
    if os.geteuid() != 0:
        missing("auditd needs root")
    return binary


def start() -> int:
    """Start auditd; its pid once it runs and its log exists."""
    done = subprocess.run([_binary()], capture_output=True, text=True, check=False, timeout=30)
    deadline = time.monotonic() + WAIT
    pid = running_auditd()
    while pid is None and time.monotonic() < deadline:
        time.sleep(0.05)
        pid = running_auditd()
    if pid is None:
        missing(f"auditd did not start: {done.stderr.strip()}")
    while not AUDIT_LOG.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + WAIT
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@contextmanager
def auditd_running() -> Iterator[int]:
    """The pid of a running auditd; started (and stopped afterwards) if none runs."""
    if os.uname().machine != "x86_64":
        unavailable("the workloads' syscall numbers are x86-64's")
    pid = running_auditd()
    started = pid is None
    if pid is None:
        pid = start()
    try:
        yield pid
    finally:
        if started:
            stop(pid)


@contextmanager
def auditd_stopped() -> Iterator[None]:
    """No auditd for the duration (one that ran is started again afterwards)."""
    _binary()
    pid = running_auditd()
    if pid is not None:
        stop(pid)
    try:
        yield
    finally:
        if pid is not None:
            start()
