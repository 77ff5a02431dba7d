"""What the install ships for recording: the logging profile and the controller, wired to the
hook routes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml
from flask import Flask

from hooks.api import profilerecording as api
from hooks.api import seccompprofile as seccomp_api
from hooks.api.spod import OPERATOR_NAMESPACE
from hooks.cluster.recording.table import LOGGING_PROFILE_PATH
from hooks.cluster.web import recording

INSTALL = Path(__file__).resolve().parent.parent.parent / "metacontroller" / "base"


def test_logging_profile_is_shipped_where_the_webhook_points_pods() -> None:
    profile = seccomp_api.SeccompProfile.model_validate(
        yaml.safe_load((INSTALL / "recording-profile.yaml").read_text())
    )
    assert (profile.namespace, profile.name) == (OPERATOR_NAMESPACE, api.LOG_ENRICHER_PROFILE)
    assert profile.spec.defaultAction.value == "SCMP_ACT_LOG"
    assert not profile.spec.syscalls
    assert f"operator/{OPERATOR_NAMESPACE}/{api.LOG_ENRICHER_PROFILE}.json" == LOGGING_PROFILE_PATH


def test_controller_hooks_are_routes_of_the_recording_blueprint() -> None:
    manifest = yaml.safe_load((INSTALL / "profilerecording-controller.yaml").read_text())
    assert manifest["spec"]["parentResource"] == {
        "apiVersion": api.KIND.api_version,
        "resource": api.KIND.plural,
    }
    app = Flask(__name__)
    app.register_blueprint(recording.blueprint)
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    paths = {urlsplit(hook["webhook"]["url"]).path for hook in manifest["spec"]["hooks"].values()}
    assert paths == {
        "/profilerecording/customize",
        "/profilerecording/sync",
        "/profilerecording/finalize",
    }
    assert paths <= routes
    assert "/mutate-v1-pod-recording" not in routes  # the webhook's (hooks.cluster.web.admission)
