"""Audit records of seccomp and SELinux, parsed from one line of text.

Two line forms carry the same record:

- auditd's log (``/var/log/audit/audit.log``)::

    type=SECCOMP msg=audit(1700000000.123:42): auid=... pid=7 comm="mkdir" exe="/bin/busybox" sig=0
    arch=c000003e syscall=83 compat=0 ip=0x... code=0x7ffc0000

  optionally prefixed by ``node=NAME `` (auditd's ``name_format``) and, with
  ``log_format = ENRICHED``, followed by a 0x1d byte and auditd's interpretation
  (``ARCH=x86_64 SYSCALL=mkdir``), which is ignored here;
- the kernel log (``/dev/kmsg``, syslog, the journal), when no auditd runs::

    audit: type=1326 audit(1700000000.123:42): auid=... pid=7 ...

  where 1326 is SECCOMP and 1400 is AVC.

An AVC record (``type=AVC`` / ``type=1400``)::

    avc:  denied  { read write } for  pid=7 comm="cat" name="x" ...
    scontext=u:r:container_t:s0:c1,c2 tcontext=u:object_r:var_t:s0 tclass=file permissive=1

The kernel quotes a string value only if it has no byte below 0x21, above 0x7e
or a double quote; otherwise it logs the bytes in hex, unquoted. So no such
value holds a space, and a value either is quoted text or is hex (or ``(null)``).
Not all values are escaped: the subject's label (``subj=``) is the LSM's text as
it is, and a userspace record's ``msg='...'`` any text its sender wrote. Two rules
hold on every path here, line by line or a batch at once, for the recorder and the
log enricher alike: a line is the record its *first* ``type=`` names, and a
record's pid is its own ``pid=`` (:func:`own_pid_at`), the last of the line.

This is the recorder's hot path. :func:`parse` builds the whole record (for the
log enricher) with one regular expression anchored on the fixed order of the
fields; :func:`scan`, what a recording needs (pid, arch, syscall), with three
``str.find``. A record whose fields are in another order falls back to
searching each field. ``bench/bench_recorder.py`` times the choices.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Final, TypeVar

SECCOMP_TYPE: Final = 1326
AVC_TYPE: Final = 1400
ENRICHED_SEPARATOR: Final = "\x1d"

_SECCOMP_NAMES: Final = frozenset({"SECCOMP", "1326"})
_AVC_NAMES: Final = frozenset({"AVC", "1400"})


@dataclass(slots=True)
class SeccompRecord:
    """One ``type=SECCOMP`` record: a syscall a seccomp filter decided to log (or kill).

    Not frozen: a frozen dataclass costs a third more to build, and this is built
    once per record on the hot path. Treat it as immutable.
    """

    timestamp: float  # seconds since the epoch, millisecond resolution
    serial: int  # the audit event serial; with the timestamp it names the event
    pid: int  # in the initial PID namespace
    comm: str
    exe: str
    arch: int  # AUDIT_ARCH_* (0xc000003e for x86_64)
    syscall: int  # the number as the task's ABI sees it (x32 numbers carry 0x40000000)
    code: int  # the seccomp action (0x7ffc0000 = SECCOMP_RET_LOG)

    @property
    def kind(self) -> str:
        return "seccomp"


@dataclass(slots=True)
class AvcRecord:
    """One ``type=AVC`` record: SELinux permissions denied (or audited as granted)."""

    timestamp: float
    serial: int
    pid: int  # 0 when the record names no process
    comm: str
    exe: str
    scontext: str
    tcontext: str
    tclass: str
    perms: tuple[str, ...]
    denied: bool  # False for "granted" (auditallow)
    permissive: bool

    @property
    def kind(self) -> str:
        return "selinux"

    @property
    def source_type(self) -> str:
        return context_type(self.scontext)

    @property
    def target_type(self) -> str:
        return context_type(self.tcontext)


AuditRecord = SeccompRecord | AvcRecord


def context_type(context: str) -> str:
    """The type of an SELinux context ``user:role:type[:level]`` ('' if it has none)."""
    parts = context.split(":", 3)
    return parts[2] if len(parts) > 2 else ""


def decode_value(raw: str) -> str:
    """A logged string value: quoted text, or the hex the kernel logs for untrusted bytes."""
    if raw.startswith('"'):
        return raw[1:-1] if raw.endswith('"') and len(raw) > 1 else raw[1:]
    if raw and len(raw) % 2 == 0:
        try:
            return bytes.fromhex(raw).decode("utf-8", "replace")
        except ValueError:
            return raw
    return raw


def is_number(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` and ``int`` also take other scripts' digits)."""
    return text.isascii() and text.isdigit()


def own_pid_at(line: str, start: int = 0) -> int:
    """Where the record's own `` pid=`` begins (at its space), -1 when it has none: the one
    rule of every parser here, the recorder's and the enricher's, line by line or by batch.

    The kernel writes the process's ``pid=`` at a fixed place: in a SECCOMP record
    (audit_log_task) after ``auid= uid= gid= ses=`` and the subject's label ``subj=``, in an
    AVC record (lsm_audit) right after ``{ permissions } for``. After it come ``comm=`` and
    ``exe=``, which the kernel escapes (quoted, or hex when they hold a space, a quote or a
    control byte), then only numbers and names of the kernel and the policy: no value after it
    holds a space. So the record's own field is the *last* `` pid=`` of the line before
    auditd's enrichment (the 0x1d byte). An earlier one is inside a value the kernel logs
    unescaped before it: the label in ``subj=`` (an LSM's text, which may hold spaces) is the
    one place where a ``pid=``, or a whole forged ``pid= comm= exe= ... syscall=``, can be.
    """
    cut = line.find(ENRICHED_SEPARATOR, start)
    return line.rfind(" pid=", start, len(line) if cut < 0 else cut)


def record_pid(line: str, start: int = 0) -> str | None:
    """The digits of the record's own ``pid=`` (:func:`own_pid_at`); None when there is none
    or it is not ASCII digits."""
    return _pid_digits(line, own_pid_at(line, start))


def _pid_digits(line: str, at: int) -> str | None:
    if at < 0:
        return None
    at += 5
    end = line.find(" ", at)
    text = line[at:] if end < 0 else line[at:end]
    return text if is_number(text) else None


def _value(line: str, key: str, start: int) -> str | None:
    """The value of `` key=`` (key given with its leading space and '='), searched from start."""
    at = line.find(key, start)
    if at < 0:
        return None
    at += len(key)
    end = line.find(" ", at)
    return line[at:] if end < 0 else line[at:end]


def _event(line: str, start: int) -> tuple[float, int, int] | None:
    """(timestamp, serial, where the fields begin) from ``audit(SECONDS.MILLIS:SERIAL):``."""
    at = line.find("audit(", start)
    if at < 0:
        return None
    colon = line.find(":", at)
    close = line.find(")", colon)
    if colon < 0 or close < 0:
        return None
    try:
        return float(line[at + 6 : colon]), int(line[colon + 1 : close]), close + 2
    except ValueError:
        return None


def event_time(line: str) -> float | None:
    """The time of the audit event on ``line`` (seconds since the epoch), None for no record."""
    found = _event(line, 0)
    return found[0] if found is not None else None


def last_event_time_of_text(text: str) -> float | None:
    """:func:`last_event_time` of the lines of ``text`` (joined by newlines), never split."""
    end = len(text)
    while end > 0:
        at = text.rfind("audit(", 0, end)
        if at < 0:
            return None
        start = text.rfind("\n", 0, at) + 1
        stop = text.find("\n", at)
        found = event_time(text[start : len(text) if stop < 0 else stop])
        if found is not None:
            return found
        end = start
    return None


def last_event_time(lines: Sequence[str]) -> float | None:
    """The time of the last audit event in ``lines`` (read in order), None when there is none."""
    for line in reversed(lines):
        found = event_time(line)
        if found is not None:
            return found
    return None


def parse(line: str) -> AuditRecord | None:
    """The SECCOMP or AVC record on ``line``; None for any other line or a malformed one."""
    at = line.find("type=")
    if at < 0:
        return None
    end = line.find(" ", at)
    if end < 0:
        return None
    name = line[at + 5 : end]
    if name in _SECCOMP_NAMES:
        return _seccomp(line, end)
    if name in _AVC_NAMES:
        return _avc(line, end)
    return None


# The fields of a SECCOMP record from its own pid=, in the order audit_seccomp()
# writes them (compat= since Linux 4.14). For the whole record, one match with this
# measured as fast as a str.find per field or a little faster (bench/bench_recorder.py
# times both); for the three fields of :func:`scan`, finds are faster.
_SECCOMP_TAIL: Final = re.compile(
    r" pid=(\d+) comm=(\S+) exe=(\S+) sig=-?\d+ arch=([0-9a-f]+) syscall=(\d+) "
    r"(?:compat=\d+ )?ip=\S+ code=0x([0-9a-f]+)",
    re.ASCII,
)


def _text(raw: str) -> str:
    return raw[1:-1] if raw[:1] == '"' else decode_value(raw)


def scan(line: str) -> tuple[str, str, str] | AvcRecord | None:
    """The recorder's lean parse: the pid, arch and syscall of a SECCOMP record as they
    are written (decimal, hex, decimal), an AVC record in full, None for any other line.

    Same records as :func:`parse`; the recorder converts a pid once per batch and a
    syscall once per container (the bulk of an audit log under recording is SECCOMP
    records of a few processes).
    """
    at = line.find("type=")
    if at < 0:
        return None
    if line.startswith("SECCOMP ", at + 5) or line.startswith("1326 ", at + 5):
        # three fields, in the kernel's order: a find each beats the regular expression here
        pid_at = own_pid_at(line, at)
        pid_text = _pid_digits(line, pid_at)
        if pid_text is None:
            return None
        pid_end = pid_at + 5 + len(pid_text)
        arch = line.find(" arch=", pid_end) + 6
        arch_end = line.find(" ", arch)
        number = line.find(" syscall=", arch_end) + 9
        number_end = line.find(" ", number)
        if arch > 6 and number > 9 and min(arch_end, number_end) > 0:
            number_text = line[number:number_end]
            if is_number(number_text):
                return pid_text, line[arch:arch_end], number_text
            return None
        record = _seccomp_any_order(line, line.find(" ", at))
        if record is None:
            return None
        return str(record.pid), f"{record.arch:x}", str(record.syscall)
    if line.startswith("AVC ", at + 5) or line.startswith("1400 ", at + 5):
        return _avc(line, line.find(" ", at))
    return None


Written = tuple[str, str, str, str, str]  # a SECCOMP record's event, pid, exe, arch, syscall
# The fields the log enricher tells, in the kernel's order, from `` pid=`` to before `` ip=``;
# the text of those fields -> (pid, exe, arch, syscall) texts, parsed once.
_TOLD_FIELDS: Final = re.compile(
    r" pid=(\d+) comm=\S+ exe=(\S+) sig=-?\d+ arch=([0-9a-f]+) syscall=(\d+)(?: |$)", re.ASCII
)
MEMO_SIZE: Final = 65536
_T = TypeVar("_T")


class _ToldFields(dict[str, tuple[str, str, str, str]]):
    """fields -> (pid, exe, arch, syscall): parsed on the first lookup, then a plain dict hit."""

    def __missing__(self, fields: str) -> tuple[str, str, str, str]:
        match = _TOLD_FIELDS.match(fields)
        if match is None:
            raise ValueError(f"not the fields of a SECCOMP record: {fields!r}")
        pid, exe, arch, number = match.groups()
        if len(self) >= MEMO_SIZE:
            self.clear()
        told = self[fields] = (pid, exe, arch, number)
        return told


TOLD_FIELDS: Final = _ToldFields()


class Memo(dict[str, _T]):
    """The fields of a SECCOMP record (as in a :class:`ToldBatch`) -> what ``derive`` makes of
    them: made on the first lookup, then a plain dict hit, so that ``map(memo.__getitem__,
    column)`` runs in C over a batch. "" (the fields of an AVC record's row) -> ``empty``. Holds
    at most MEMO_SIZE entries."""

    def __init__(self, derive: Callable[[str], _T], empty: _T) -> None:
        super().__init__()
        self._derive = derive
        self._empty = empty

    def __missing__(self, fields: str) -> _T:
        value = self._derive(fields) if fields else self._empty
        if len(self) >= MEMO_SIZE:
            self.clear()
        self[fields] = value
        return value


# the columns of a batch the recorder reads: a record's pid, and its (arch, syscall), as written
PIDS: Final[Memo[str]] = Memo(lambda fields: TOLD_FIELDS[fields][0], "")
CALLS: Final[Memo[tuple[str, str]]] = Memo(
    lambda fields: (TOLD_FIELDS[fields][2], TOLD_FIELDS[fields][3]), ("", "")
)


def scan_told(line: str) -> Written | AuditRecord | None:
    """The log enricher's lean parse of a SECCOMP record: its event (``SECONDS.MILLIS:SERIAL``),
    pid, exe (as written: quoted or hex), arch (hex) and syscall, as text; an AVC record, or a
    SECCOMP record whose fields are in an unusual order, in full; None for any other line."""
    at = line.find("type=")
    if at < 0:
        return None
    if line.startswith("SECCOMP ", at + 5) or line.startswith("1326 ", at + 5):
        event = line.find("audit(", at) + 6
        event_end = line.find(")", event)
        fields = own_pid_at(line, event_end)
        fields_end = line.find(" ip=", fields)
        if event > 5 and event_end > 0 and fields > 0 and fields_end > 0:
            # pid= to syscall= (compat=): the same few texts again and again in a recording
            key = line[fields:fields_end]
            try:
                pid, exe, arch, number = told_fields(key)
            except ValueError:
                pass
            else:
                return line[event:event_end], pid, exe, arch, number
        return _seccomp_any_order(line, line.find(" ", at))
    if line.startswith("AVC ", at + 5) or line.startswith("1400 ", at + 5):
        return _avc(line, line.find(" ", at))
    return None


# A whole batch at once, with the rules of the line-by-line parsers above: a line is the record
# its first "type=" names, and a SECCOMP record's pid is its own (:func:`own_pid_at`). Every
# SECCOMP record written in the kernel's order is (event, its fields from pid= to syscall=, ""),
# every AVC record ("", "", its text after "type="), a line of another type ("", "", "").
# Each match runs to the end of a line, and on over the lines that follow when each begins
# with "type=" and names another type: so the search, which looks for the next "type=", finds
# the first of a line, never one inside the text of another record (a userspace record's
# msg='...' holds any text). A SECCOMP record's fields are followed by the kernel's own end
# of the record (compat= ip= code=) and then the end of the line or auditd's enrichment: the
# pid= taken is the last of the line, as own_pid_at's, not one inside a label in subj= (the
# fields before pid= are searched token by token; the kernel's own "auid= uid= gid= ses=
# [subj=]" is tried first, as one piece: the same match, found in two thirds of the time).
# Every repetition is possessive (``++``, ``*+``: what it took is never given back, which spares
# the matcher a backtracking frame each: a tenth less time, bench/bench_recorder.py's log): each
# is followed by a character it cannot take (a space, ")", the end of a line or of the kernel's
# text), or by a test that one it took would fail, so giving back could never make a match.
_OTHER_LINES: Final = r"[^\n]*+(?:\ntype=(?!(?:SECCOMP|1326|AVC|1400) )[^\n]*+)*"
_VALUE: Final = r"[^ \n\x1d]++"  # a value the kernel escapes, or any text up to a space
_N: Final = r"[0-9]++"  # a number (as \d with re.ASCII, a little faster)
_SECCOMP_RECORD: Final = (
    r"type=(?:SECCOMP|1326) msg=audit\(([0-9.:]++)\):"
    rf"(?: auid={_N} uid={_N} gid={_N} ses={_N} subj={_VALUE}| auid={_N} uid={_N} gid={_N} ses={_N}"
    rf"|(?: {_VALUE})*?)"
    rf"( pid={_N} comm={_VALUE} exe={_VALUE} sig=-?{_N} arch=[0-9a-f]++ syscall={_N})"
    rf"(?: compat={_N})? ip=0x[0-9a-f]++ code=0x[0-9a-f]++(?![^\n\x1d])"
)
_TOLD_BATCH: Final = re.compile(
    _SECCOMP_RECORD
    + _OTHER_LINES
    # all begin with "type=": the search looks for that text; "SECCOMP " in the place of an
    # AVC record's text: a SECCOMP record written otherwise (the batch is read line by line)
    + r"|type=((?:AVC|1400) [^\n]*+|SECCOMP |1326 )"
    + _OTHER_LINES
    + "|type="
    + _OTHER_LINES,
    re.ASCII,  # ASCII digits only, as is_number (and a tenth faster)
)
_UNREAD: Final = ("SECCOMP ", "1326 ")
# what every line that reports lost records holds (nodesync.enricher.losses reads only such
# lines): the longer the text, the faster the search of a batch
_LOSS_TEXTS: Final = (" limit exceeded", "audit: audit_lost=", " callbacks suppressed")
# Such a line is a kernel message (nodesync.enricher.losses.loss_of_line), which never begins
# as auditd's lines do: a batch of auditd's lines only is not searched for those texts (one
# search for a line of another kind costs half the three).
_AUDITD_LINES: Final = ("type=", "node=")
_LINE_OF_ANOTHER_KIND: Final = re.compile(r"\n(?!type=|node=)")


def may_report_loss(text: str) -> bool:
    """Whether a line of ``text`` (lines joined by newlines) may report lost records."""
    if text.startswith(_AUDITD_LINES) and _LINE_OF_ANOTHER_KIND.search(text) is None:
        return False
    return any(marker in text for marker in _LOSS_TEXTS)


# (event, fields, "") of a SECCOMP record; ("", "", text) of an AVC; ("", "", "") other lines
Told = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class ToldBatch:
    records: list[Told]  # in the order they were written
    avc: list[str]  # the text of each AVC record after "type=", in order
    mentions_loss: bool  # some line may report lost records (see nodesync.enricher.recorder)


def scan_batch(lines: Sequence[str]) -> ToldBatch | None:
    """:func:`scan_text` of ``lines``."""
    return scan_text("\n".join(lines))


def scan_text(text: str) -> ToldBatch | None:
    """The SECCOMP and AVC records of the lines of ``text`` (joined by newlines), found by one
    regular expression over the whole batch; None when a SECCOMP record is written in a way it
    does not read (then read the lines one by one, :func:`scan_told`). The same records, with
    the same pids, as the lines read one by one: every line that begins a SECCOMP record is one
    the search reads or sends the batch there; a ``type=`` after the first of a line is not
    reached. A line of another type may add a row ("", "", "") to the records, told as
    nothing."""
    found: list[Told] = _TOLD_BATCH.findall(text)
    avc: list[str] = list(filter(None, map(_AVC_OF, found)))
    if _UNREAD[0] in avc or _UNREAD[1] in avc:
        return None
    return ToldBatch(found, avc, may_report_loss(text))


_AVC_OF: Final = itemgetter(2)


def told_fields(fields: str) -> tuple[str, str, str, str]:
    """(pid, exe as written, arch, syscall) of the fields of a SECCOMP record in a
    :class:`ToldBatch` (:data:`TOLD_FIELDS` is the same as a mapping, for hot loops)."""
    return TOLD_FIELDS[fields]


def exe_text(raw: str) -> str:
    """The executable of a record from its ``exe=`` value as written."""
    return _text(raw)


def _seccomp(line: str, start: int) -> SeccompRecord | None:
    pid_at = own_pid_at(line, start)
    match = _SECCOMP_TAIL.match(line, pid_at) if pid_at >= 0 else None
    if match is None:
        return _seccomp_any_order(line, start)
    at = line.find("audit(", start)
    colon = line.find(":", at)
    close = line.find(")", colon)
    if at < 0 or colon < 0 or close < 0:
        return None
    pid, comm, exe, arch, syscall, code = match.groups()
    try:
        return SeccompRecord(
            float(line[at + 6 : colon]),
            int(line[colon + 1 : close]),
            int(pid),
            _text(comm),
            _text(exe),
            int(arch, 16),
            int(syscall),
            int(code, 16),
        )
    except ValueError:
        return None


def _seccomp_any_order(line: str, start: int) -> SeccompRecord | None:
    event = _event(line, start)
    if event is None:
        return None
    timestamp, serial, fields = event
    cut = line.find(ENRICHED_SEPARATOR, fields)
    if cut >= 0:
        line = line[:cut]
    pid = record_pid(line, fields)
    arch = _value(line, " arch=", fields)
    syscall = _value(line, " syscall=", fields)
    if (
        pid is None
        or arch is None
        or syscall is None
        or not is_number(syscall)
        or not arch.isascii()
    ):
        return None
    comm = _value(line, " comm=", fields)
    exe = _value(line, " exe=", fields)
    code = _value(line, " code=", fields)
    try:
        return SeccompRecord(
            timestamp,
            serial,
            int(pid),
            "" if comm is None else decode_value(comm),
            "" if exe is None else decode_value(exe),
            int(arch, 16),
            int(syscall),
            0 if code is None else int(code, 16),
        )
    except ValueError:
        return None


def _avc(line: str, start: int) -> AvcRecord | None:
    event = _event(line, start)
    if event is None:
        return None
    timestamp, serial, fields = event
    cut = line.find(ENRICHED_SEPARATOR, fields)
    if cut >= 0:
        line = line[:cut]
    open_brace = line.find("{", fields)
    close_brace = line.find("}", open_brace)
    if open_brace < 0 or close_brace < 0:
        return None
    verdict = line[fields:open_brace]
    perms = tuple(line[open_brace + 1 : close_brace].split())
    rest = close_brace
    scontext = _value(line, " scontext=", rest)
    tcontext = _value(line, " tcontext=", rest)
    tclass = _value(line, " tclass=", rest)
    if scontext is None or tcontext is None or tclass is None or not perms:
        return None
    pid = record_pid(line, fields)
    if pid is None and " pid=" in line[fields:]:
        return None  # a pid that is not ASCII digits
    comm = _value(line, " comm=", rest)
    exe = _value(line, " exe=", rest)
    permissive = _value(line, " permissive=", rest)
    try:
        pid_number = 0 if pid is None else int(pid)
    except ValueError:
        return None
    return AvcRecord(
        timestamp,
        serial,
        pid_number,
        "" if comm is None else decode_value(comm),
        "" if exe is None else decode_value(exe),
        scontext,
        tcontext,
        tclass,
        perms,
        "granted" not in verdict,
        permissive == "1",
    )
