"""Liveness, readiness and metrics.

``/metrics`` is open unless the app carries a guard (``app.extensions[GUARD]``, set by
``spo hooks --metrics-auth``): a callable of the request's ``Authorization`` header and
path that answers ``(code, message)``; only 200 lets the request through. The hooks'
own routes never pass through it: Metacontroller and the API server call them as
before.

``/readyz`` answers 503 while ``app.extensions[READY]`` (a callable, set by the webhook's app:
its tables are loaded) says no.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

blueprint = Blueprint("health", __name__)

GUARD = "spo_metrics_guard"
EXTRA_DIRS = "spo_metrics_dirs"  # other servers' multiprocess folders to include
READY = "spo_ready"
MetricsGuard = Callable[[str | None, str], tuple[int, str]]


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    ready: Callable[[], bool] | None = current_app.extensions.get(READY)
    if ready is not None and not ready():
        response = jsonify({"status": "not ready"})
        response.status_code = 503
        return response
    return jsonify({"status": "ready"})


@blueprint.get("/metrics")
def metrics() -> Response:
    guard: MetricsGuard | None = current_app.extensions.get(GUARD)
    if guard is not None:
        code, message = guard(request.headers.get("Authorization"), request.path)
        if code != 200:
            headers = {"WWW-Authenticate": "Bearer"} if code == 401 else {}
            return Response(message + "\n", status=code, mimetype="text/plain", headers=headers)
    extra_dirs = current_app.extensions.get(EXTRA_DIRS, ())
    return Response(
        current_app.extensions["spo_metrics"].exposition(extra_dirs),
        content_type=CONTENT_TYPE_LATEST,
    )
