"""The Flask application factory: ``gunicorn 'hooks.cluster.app:create_app()'``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from hooks.cluster.metrics import HookMetrics
from hooks.cluster.web import (
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


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    Flask.json_provider_class = OrjsonProvider
    app = Flask(__name__)
    app.config.update(config or {})
    limits.install(app)
    app.extensions["spo_metrics"] = HookMetrics()
    app.register_blueprint(health.blueprint)
    app.register_blueprint(seccompprofile.blueprint)
    app.register_blueprint(binding.blueprint)
    app.register_blueprint(recording.blueprint)
    app.register_blueprint(selinuxprofile.blueprint)
    app.register_blueprint(spod.blueprint)
    app.register_blueprint(pod.blueprint)
    app.register_error_handler(HTTPException, edge.json_error)
    return app
