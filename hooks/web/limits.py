"""What one request to the hook service may weigh, on every route.

The largest request the service gets in earnest is a Metacontroller sync of a
SeccompProfile in a busy namespace. It carries the profile (with its
``last-applied`` copy), its ConfigMap (the profile JSON, at most 1 MiB, twice
again with Metacontroller's annotation), one SecurityProfileNodeStatus per node,
every pod of the namespace and, with a base profile, the namespace's
profiles. ``bench/bench_hook_memory.py`` builds that request for 1,000 nodes
and 1,000 pods as the API server writes them (managed fields included), with a
1 MiB profile and its 1 MiB base: about 11 MiB. The limit is that and some more,
``MAX_BODY_BYTES`` = 16 MiB; a body past it is a 413 before it is read.

Parsing is what costs memory: JSON of many tiny values (``[{},{},...]``)
becomes twenty times its size in Python objects, real objects three to five
times. So a body also may hold at most ``MAX_JSON_VALUES`` values, counted
before parsing by the characters that can start one (``,``, ``[``, ``{``;
inside strings too, so the count is an upper bound). The 11 MiB request above
has about 700,000; a body with 2,000,000 is a 413. With both limits a worker
stays under 200 MiB with the largest accepted request of either kind (see the
README for the measurements).
"""

from __future__ import annotations

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_JSON_VALUES = 2_000_000


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
    """Limit the body of every request of ``app``: declared (Content-Length) or streamed (chunked)."""
    app.config.setdefault("MAX_CONTENT_LENGTH", MAX_BODY_BYTES)
    app.before_request(_refuse_declared_too_large)
