"""Lost audit records: what tells of them (the kernel's log lines, its lost counter, auditd
not running), and which recordings they spoil."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from nodesync.nodeio.logs import about

KERNEL_LOG_WARNING: Final = (
    "audit records are read from the kernel log: without auditd the kernel rate-limits "
    "them (printk_ratelimit) and drops records, so a recorded profile can miss syscalls; "
    "run auditd on the node (or set kernel.printk_ratelimit=0) for a complete recording"
)


class RecordsLost(RuntimeError):
    """Audit records were dropped while recording: the recording is incomplete."""


@dataclass(frozen=True, slots=True)
class Loss:
    """Records were lost: at ``at`` (seconds since the epoch, when it was noticed; 0: not yet
    stamped), or for as long as a condition lasts (``ongoing``: no auditd, the kernel log)."""

    # rate-limit, backlog-limit, printk-limit, lost-counter, suppressed, kernel-log, no-auditd
    reason: str
    detail: str
    count: int = 0  # records known lost (0: unknown)
    at: float = 0.0
    ongoing: bool = False


# What the kernel prints when it drops audit records (kernel/audit.c, with pr_fmt "audit: ")
# and when printk's rate limit drops its own messages, as the whole of a kernel log message:
# anchored at both ends, so that free text that merely contains these words (a userspace
# ``type=USER ... msg='... audit rate limit exceeded'``, which any process with
# CAP_AUDIT_WRITE can write) is no loss. A /dev/kmsg line must also be of the kernel's own
# facility (0): whatever userspace writes there gets another one.
_KERNEL_LOSS: Final = re.compile(
    r"(?:(?P<prival>\d+),\d+,\d+,[^;]*;)?"  # /dev/kmsg: priority,sequence,time,flags;
    r"(?:kernel: )?(?:\[ *\d+\.\d+\] )?"  # syslog's tag, dmesg's time
    r"(?:audit: (?P<limit>rate|backlog|printk) limit exceeded"
    r"|audit: audit_lost=(?P<lost>\d+) audit_rate_limit=\d+ audit_backlog_limit=\d+"
    r"|kauditd_printk_skb: (?P<suppressed>\d+) callbacks suppressed)"
    r"\s*",
    re.ASCII,
)
_KERNEL_FACILITY_PRIVALS: Final = range(8)  # facility 0 (kern), any level


def loss_of_line(line: str) -> Loss | None:
    """The loss a kernel message on ``line`` reports (any log form), None for other lines."""
    match = _KERNEL_LOSS.fullmatch(line)
    if match is None:
        return None
    prival = match.group("prival")
    if prival is not None and int(prival) not in _KERNEL_FACILITY_PRIVALS:
        return None
    text = line.strip()
    if match.group("limit"):
        return Loss(f"{match.group('limit')}-limit", text)
    if match.group("lost"):
        return Loss("lost-counter", text, int(match.group("lost")))
    return Loss("suppressed", text, int(match.group("suppressed")))


def lost_counter(auditctl_status: str) -> int | None:
    """The ``lost`` value of ``auditctl -s`` output, None if it has none."""
    for line in auditctl_status.splitlines():
        key, _, value = line.partition(" ")
        if key == "lost" and value.strip().isdigit():
            return int(value.strip())
    return None


def read_lost_counter(auditctl: str = "auditctl") -> int | None:
    """The kernel's count of lost audit records (``auditctl -s``), None if it cannot be read."""
    try:
        done = subprocess.run(
            [auditctl, "-s"], capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return lost_counter(done.stdout) if done.returncode == 0 else None


def printk_ratelimited(proc_root: Path | str = "/proc") -> bool:
    """Whether the kernel rate-limits printk (``kernel.printk_ratelimit`` > 0)."""
    try:
        text = Path(proc_root, "sys/kernel/printk_ratelimit").read_text()
    except OSError:
        return True
    return text.strip() != "0"


class LossDetector:
    """Collects every sign of lost audit records; logs each kind once, at ERROR.

    A loss makes incomplete the recordings that were under way when it was
    noticed (:meth:`ensure_complete` with the recording's start), not the later
    ones; an ongoing loss (no auditd) makes every recording incomplete until it
    :meth:`ends <end>`. Only the newest ``KEEP`` losses are kept: dropping older
    ones never changes whether a loss happened since some moment.
    """

    KEEP: Final = 100

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.losses: list[Loss] = []
        self._said: set[str] = set()
        self._counter: int | None = None
        self._clock = clock

    @property
    def lost(self) -> bool:
        return bool(self.losses)

    def add(self, loss: Loss) -> None:
        if not loss.at:
            loss = replace(loss, at=self._clock())
        self.losses.append(loss)
        ongoing = [each for each in self.losses if each.ongoing]
        points = [each for each in self.losses if not each.ongoing]
        self.losses = ongoing + points[-self.KEEP :]
        if loss.reason not in self._said:
            self._said.add(loss.reason)
            log.error(
                "audit records were lost: the recording is incomplete (%s: %s)",
                loss.reason,
                loss.detail,
                extra={"reason": loss.reason},
            )

    def observe(self, line: str) -> bool:
        """Check one line that is not a SECCOMP/AVC record; True if it reports a loss."""
        loss = loss_of_line(line)
        if loss is None:
            return False
        self.add(loss)
        return True

    def kernel_log_source(self, proc_root: Path | str = "/proc") -> None:
        """Records come from the kernel log: flag it unless printk is not rate-limited."""
        if printk_ratelimited(proc_root):
            self.add(Loss("kernel-log", KERNEL_LOG_WARNING))
        else:
            log.warning("audit records are read from the kernel log (printk_ratelimit is 0)")

    def counter(self, value: int | None) -> None:
        """Feed the kernel's lost counter; a rise since the first value is a loss."""
        if value is None:
            return
        if self._counter is not None and value > self._counter:
            self.add(
                Loss(
                    "lost-counter",
                    f"audit lost counter {self._counter} -> {value}",
                    value - self._counter,
                )
            )
        if self._counter is None or value > self._counter:
            self._counter = value

    def scan_kmsg(self, path: Path | str = "/dev/kmsg") -> int:
        """Read what ``path`` (``/dev/kmsg`` or a copy of it) holds now; the losses it reports."""
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            return self.read_kmsg(fd)
        finally:
            os.close(fd)

    def read_kmsg(self, fd: int) -> int:
        """Read the kernel log records ``fd`` has ready (non-blocking); the losses they report."""
        before = len(self.losses)
        while True:
            try:
                chunk = os.read(fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # /dev/kmsg: a record was overwritten; go on
                continue
            if not chunk:
                break
            for line in chunk.decode("utf-8", "replace").splitlines():
                self.observe(line)  # with its prefix: the facility says who wrote it
        return len(self.losses) - before

    def ongoing(self, reason: str) -> bool:
        return any(loss.ongoing and loss.reason == reason for loss in self.losses)

    def end(self, reason: str) -> None:
        """An ongoing loss is over: it stays a loss of the recordings under way until now."""
        now = self._clock()
        self.losses = [
            replace(loss, ongoing=False, at=now) if loss.ongoing and loss.reason == reason else loss
            for loss in self.losses
        ]
        self._said.discard(reason)

    def ensure_complete(self, since: float = 0.0) -> None:
        """Raise RecordsLost if records were lost since ``since`` (epoch seconds; 0: ever)."""
        found = [loss for loss in self.losses if loss.ongoing or loss.at >= since]
        if found:
            reasons = ", ".join(sorted({loss.reason for loss in found}))
            raise RecordsLost(f"audit records were lost while recording ({reasons})")


NO_AUDITD = (
    "auditd is not running on this node: audit records go to the kernel log, which "
    "rate-limits them, so recordings would miss syscalls; no recorded profile is created "
    "until the log enricher runs on a node with auditd"
)

log = logging.getLogger(__name__)


def auditd_pid(proc_root: Path | str = "/proc") -> int | None:
    """The pid of a process named ``auditd`` (the host's, with hostPID), None when none runs."""
    for entry in Path(proc_root).iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "auditd":
                return int(entry.name)
        except OSError:
            continue
    return None


def auditd_running(proc_root: Path | str = "/proc") -> bool:
    return auditd_pid(proc_root) is not None


class Every:
    """True when called first, then at most once per ``interval`` seconds of ``clock``."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: float | None = None

    def __call__(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True


class AuditdWatch:
    """Looks every ``interval`` seconds whether auditd runs: while it does not, records are being
    lost (an ongoing loss, which refuses every profile); once it runs again, the recordings that
    start from then on are complete."""

    REASON = "no-auditd"

    def __init__(
        self,
        detector: LossDetector,
        proc_root: Path | str = "/proc",
        interval: float = 5.0,
        *,
        running: Callable[[Path | str], bool] = auditd_running,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.detector = detector
        self.proc_root = proc_root
        self._running = running
        self._due = Every(interval, clock)

    def check(self) -> None:
        if not self._due():
            return
        missing = self.detector.ongoing(self.REASON)
        if self._running(self.proc_root):
            if missing:
                self.detector.end(self.REASON)
                log.warning(
                    "auditd runs now: pods recorded from now on get their profiles; those "
                    "recorded while it did not run do not",
                    extra=about("", ""),
                )
        elif not missing:
            log.error("%s", NO_AUDITD, extra={**about("", ""), "reason": self.REASON})
            self.detector.add(Loss(self.REASON, NO_AUDITD, ongoing=True))


class KernelLogWatch:
    """The kernel's own reports of dropped audit records (``audit: backlog limit exceeded``,
    ``audit_lost=``, rate limits), read from ``/dev/kmsg`` as they come; and the kernel's lost
    counter (``auditctl -s``) where it can be read. Each is optional: without them, only what
    the audit log itself says is seen, and the log says so once."""

    def __init__(
        self,
        detector: LossDetector,
        kmsg: Path | str | None = "/dev/kmsg",
        *,
        counter: Callable[[], int | None] | None = read_lost_counter,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.detector = detector
        self._due = Every(interval, clock)
        self._fd: int | None = None
        if kmsg is not None:
            try:
                self._fd = os.open(kmsg, os.O_RDONLY | os.O_NONBLOCK)
                os.lseek(self._fd, 0, os.SEEK_END)  # what the kernel says from now on
            except OSError as error:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                log.warning(
                    "cannot read the kernel log %s (%s): audit records the kernel drops are "
                    "noticed only through its lost counter",
                    kmsg,
                    error.strerror or error,
                    extra=about("", ""),
                )
        self._counter = counter
        if counter is not None:
            first = counter()
            if first is None:
                self._counter = None
                log.info(
                    "the kernel's lost counter cannot be read here (auditctl -s)",
                    extra=about("", ""),
                )
            else:
                detector.counter(first)

    def check(self) -> None:
        if not self._due():
            return
        if self._fd is not None:
            self.detector.read_kmsg(self._fd)
        if self._counter is not None:
            self.detector.counter(self._counter())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
