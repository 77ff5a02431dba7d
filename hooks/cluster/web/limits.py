"""What one request to the hook service may weigh, on every route.

The largest request the service gets in earnest is a Metacontroller sync of a
SeccompProfile in a busy namespace. It carries the profile (with its
``last-applied`` copy), its ConfigMap (the profile JSON, up to 1 MiB, and again
in Metacontroller's annotation), one SecurityProfileNodeStatus per node, every
pod of the namespace and, with a base profile, the namespace's profiles.
``bench/bench_hook_memory.py`` builds it for 1,000 nodes and 1,000 pods as the
API server writes them (managed fields included) with a profile of 1 MiB: 8.2
MiB and 643,000 JSON values. Real pods are often larger than that bench's
(4.6 KiB); the body limit, ``MAX_BODY_BYTES``, is 16 MiB, and a body past it is
a 413 before it is read.

Parsing is what costs memory: JSON of tiny values (``[{},{},...]``) becomes
twenty times its size in Python objects, real objects three to five times. So a
body may also hold at most ``MAX_JSON_VALUES`` = 1,000,000 values, counted
before parsing by the characters that can start one (``,``, ``[``, ``{``,
inside strings too: an upper bound). Measured with that bench, a worker's peak
is then at most 165 MiB, whatever the accepted request (README).
"""

from __future__ import annotations

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_JSON_VALUES = 1_000_000


def count_values(body: bytes) -> int:
    """An upper bound of the JSON values in ``body``, without parsing it."""
    return body.count(b",") + body.count(b"[") + body.count(b"{") + 1


def check_values(body: bytes) -> None:
    if count_values(body) > MAX_JSON_VALUES:
        raise RequestEntityTooLarge(
            f"the body holds more than {MAX_JSON_VALUES} JSON values (counted by ',', '[' and '{{')"
        )


def _refuse_declared_too_large() -> None:
    """A 413 for every route, also those that never read the body, before anything is read."""
    length, limit = request.content_length, current_app.config["MAX_CONTENT_LENGTH"]
    if length is not None and limit is not None and length > limit:
        raise RequestEntityTooLarge(f"the body is {length} bytes, more than {limit}")


def install(app: Flask) -> None:
    """Limit the body of every request of ``app``: declared (Content-Length) or streamed
    (chunked)."""
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default is None: no limit
        app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.before_request(_refuse_declared_too_large)
