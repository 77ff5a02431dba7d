"""The Flask application factory: ``gunicorn 'hooks.app:create_app()'``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from hooks.metrics import HookMetrics
from hooks.web import binding, edge, health, limits, recording, seccompprofile, selinuxprofile, spod
from hooks.web.jsoncodec import OrjsonProvider


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
    app.register_error_handler(HTTPException, edge.json_error)

    if app.config.get("ECHO_ROUTE") or os.environ.get("SPO_ECHO_ROUTE") == "1":

        @app.post("/echo")
        def echo() -> Response:
            """A trivial JSON route, the baseline the hook benchmark compares against."""
            return edge.answer("echo", edge.decode_object)

    return app
