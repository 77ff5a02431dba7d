"""nodesync's logging: the shared JSON lines of ``hooks.logs``, with the node on every line.

Log calls pass the profile with ``extra=about(namespace, name)``; lines that are
about no particular profile carry empty strings, so every line has the keys.
"""

from __future__ import annotations

import logging

from hooks import logs


def about(namespace: str, name: str, **more: object) -> dict[str, object]:
    """The ``extra`` of a log call about one profile (``more``: its ConfigMap, say)."""
    return logs.about(namespace=namespace, name=name, **more)


def configure(node: str, level: int = logging.INFO) -> None:
    """Send every log line of the process to stderr as JSON (command-line layer only)."""
    logs.configure(level, node=node, namespace="", name="")
