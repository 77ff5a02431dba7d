"""Structured logs: one JSON object a line, naming the object it is about.

Shared by every component of the ``spo`` command (the hooks, nodesync).
A log call names its object with ``extra=about(namespace=..., name=...)``; a
process that runs on one node (nodesync) adds the node to every line. On a
terminal (``spo render`` run by a person) the same fields come as one short
line of text instead.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_PREFIX = "spo_"
# Plain ``extra`` keys that are copied into the line as they are.
_PLAIN = ("reason", "path", "changed", "count")
# A line's parts are cut to these many characters: a name or a message can come from a request
# (a 20 MB name), and a log line must stay a line.
MAX_FIELD = 256
MAX_MESSAGE = 4096
MAX_TRACEBACK = 16384


def cut(text: str, limit: int) -> str:
    """``text``, or its first characters and how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...(+{len(text) - limit} characters)"


def _field(value: object) -> object:
    return cut(value, MAX_FIELD) if isinstance(value, str) else value


def about(**fields: object) -> dict[str, object]:
    """``extra=`` for a log call: the object it is about (namespace, name, node, kind, reason...).

    LogRecord reserves some of these names (``name``), so they travel prefixed
    and come out under their own name.
    """
    return {_PREFIX + key: value for key, value in fields.items() if value is not None}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {}
    for key, value in record.__dict__.items():
        if key.startswith(_PREFIX):
            fields[key[len(_PREFIX) :]] = _field(value)
        elif key in _PLAIN:
            fields[key] = _field(value)
    return fields


class TextFormatter(logging.Formatter):
    """``warning default/web: message (reason=...)``: for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        namespace, name = fields.pop("namespace", ""), fields.pop("name", "")
        subject = "/".join(str(part) for part in (namespace, name) if part)
        rest = " ".join(
            f"{key}={value}" for key, value in fields.items() if value not in ("", None)
        )
        line = (
            f"{record.levelname.lower()} {subject + ': ' if subject else ''}{record.getMessage()}"
        )
        line += f" ({rest})" if rest else ""
        if record.exc_info:
            line += "\n" + cut(self.formatException(record.exc_info), MAX_TRACEBACK)
        return line


class JSONFormatter(logging.Formatter):
    def __init__(self, always: dict[str, str] | None = None) -> None:
        super().__init__()
        self.always = always or {}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": cut(record.getMessage(), MAX_MESSAGE),
            **self.always,
            **_fields(record),
        }
        if record.exc_info:
            line["error"] = cut(self.formatException(record.exc_info), MAX_TRACEBACK)
        return json.dumps(line, default=str)


def configure(level: str | int = "INFO", **always: str) -> None:
    """Send every log line of the process to stderr: JSON (``always`` fields on every line),
    or text when stderr is a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if sys.stderr.isatty() else JSONFormatter(always))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
