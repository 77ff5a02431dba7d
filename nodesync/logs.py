"""JSON-lines logging; every line names the object it is about: namespace, name, node.

Log calls pass the object with ``extra=about(namespace, name)``; lines that are
about no particular profile carry empty strings, so every line has the keys.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_NAMESPACE = "obj_namespace"
_NAME = "obj_name"


def about(namespace: str, name: str) -> dict[str, str]:
    """The ``extra`` of a log call about one profile."""
    return {_NAMESPACE: namespace, _NAME: name}


class JsonFormatter(logging.Formatter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "namespace": getattr(record, _NAMESPACE, ""),
            "name": getattr(record, _NAME, ""),
            "node": self.node,
        }
        for key in ("reason", "path", "changed", "count"):
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(node: str, level: int = logging.INFO) -> None:
    """Send every log line of the process to stderr as JSON (command-line layer only)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
