"""Decoding and encoding at the HTTP edge, shared by every hook route.

A malformed request is the caller's fault and gets a 4xx JSON answer; a bug in
a hook is a 500, so that Metacontroller retries with backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Response, current_app, jsonify, request
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from werkzeug.exceptions import BadRequest, HTTPException, RequestTimeout, UnsupportedMediaType

from hooks.api.base import Wire
from hooks.api.objectshapes import ShapeError
from hooks.cluster.web import limits

M = TypeVar("M", bound=BaseModel)


class HookInputError(BadRequest):
    """The body parsed as JSON but is not the document the hook expects."""


def decode_object() -> dict[str, Any]:
    """The body as a JSON object, or a 4xx."""
    if not request.is_json:
        raise UnsupportedMediaType(
            f"expected Content-Type application/json, got {request.mimetype or 'none'!r}"
        )
    try:
        raw = request.get_data(cache=False)  # a 413 past MAX_CONTENT_LENGTH, declared or streamed
    except TimeoutError as error:  # the client stopped sending (serving.IO_TIMEOUT)
        raise RequestTimeout("the body stopped arriving") from error
    limits.check_values(raw)
    try:
        body = current_app.json.loads(raw)
    except ValueError:
        body = None
    del raw
    if not isinstance(body, dict):
        raise BadRequest("the body is not a JSON object")
    return body


def decode(model: type[M]) -> M:
    body = decode_object()
    try:
        return model.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(_problem(item) for item in error.errors()[:5])
        raise HookInputError(f"invalid {model.__name__}: {problems}") from error


def _problem(item: ErrorDetails) -> str:
    """One validation error as ``field: message``; a shape check's message names its own field."""
    if item["type"] == "value_error" and isinstance(
        (item.get("ctx") or {}).get("error"), ShapeError
    ):
        return str(item["ctx"]["error"])
    where = ".".join(shown_part(p) for p in item["loc"]) or "(body)"
    return f"{where}: {item['msg']}"


def shown_part(part: str | int) -> str:
    return str(part) if len(str(part)) <= 64 else f"{str(part)[:61]}..."


def now() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def answer(hook: str, handler: Callable[[], Wire | dict[str, Any]]) -> Response:
    """Run one hook call, count it and time it in the app's metrics."""
    metrics = current_app.extensions["spo_metrics"]
    started = time.perf_counter()
    code = 500
    try:
        result = handler()
        response = jsonify(result if isinstance(result, dict) else result.to_wire())
        code = 200
        return response
    except HTTPException as error:
        code = error.code or 500
        raise
    finally:
        metrics.observe(hook, code, time.perf_counter() - started)


def json_error(error: HTTPException) -> tuple[Response, int]:
    code = error.code or 500
    body: dict[str, Any] = {"code": code, "error": error.name, "message": error.description}
    return jsonify(body), code
