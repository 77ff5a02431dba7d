"""Structured logs: one JSON object a line, naming the object it is about."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_PREFIX = "spo_"


def about(**fields: object) -> dict[str, object]:
    """``extra=`` for a log call: the object it is about (namespace, name, node, kind, reason...).

    LogRecord reserves some of these names (``name``), so they travel prefixed
    and come out under their own name.
    """
    return {_PREFIX + key: value for key, value in fields.items() if value is not None}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key.startswith(_PREFIX):
                line[key[len(_PREFIX) :]] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
