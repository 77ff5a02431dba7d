"""The Flask application factories: the sync hooks (``create_app``, ``spo hooks``) and the
admission webhooks (``create_webhook_app``, ``spo webhook``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from hooks.cluster.metrics import HookMetrics
from hooks.cluster.web import (
    admission,
    binding,
    edge,
    health,
    limits,
    pod,
    recording,
    seccompprofile,
    selinuxprofile,
    spod,
)
from hooks.cluster.web.jsoncodec import OrjsonProvider


def _base_app(config: Mapping[str, Any] | None) -> Flask:
    Flask.json_provider_class = OrjsonProvider
    app = Flask(__name__)
    app.config.update(config or {})
    limits.install(app)
    app.extensions["spo_metrics"] = HookMetrics()
    app.register_blueprint(health.blueprint)
    app.register_error_handler(HTTPException, edge.json_error)
    return app


def create_webhook_app(tables: admission.Tables, config: Mapping[str, Any] | None = None) -> Flask:
    """The admission webhooks, reading ``tables``; ``/readyz`` is ready once they are loaded."""
    app = _base_app(config)
    app.extensions[admission.TABLES] = tables
    app.extensions[health.READY] = tables.ready
    app.register_blueprint(admission.blueprint)
    return app


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The sync hooks Metacontroller calls."""
    app = _base_app(config)
    app.register_blueprint(seccompprofile.blueprint)
    app.register_blueprint(binding.blueprint)
    app.register_blueprint(recording.blueprint)
    app.register_blueprint(selinuxprofile.blueprint)
    app.register_blueprint(spod.blueprint)
    app.register_blueprint(pod.blueprint)
    return app
