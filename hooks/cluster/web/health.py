"""Liveness, readiness and metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    return jsonify({"status": "ready"})


@blueprint.get("/metrics")
def metrics() -> Response:
    return Response(
        current_app.extensions["spo_metrics"].exposition(), content_type=CONTENT_TYPE_LATEST
    )
