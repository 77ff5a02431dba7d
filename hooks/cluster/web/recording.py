"""Routes of the recording webhook and the ProfileRecording controller.

The recording table file is ``app.config["SPO_RECORDINGS_FILE"]``, else the
``SPO_RECORDINGS_FILE`` environment variable, else ``recordings.json`` next to
the binding table (``SPO_BINDINGS_FILE``, or where the Deployment mounts the
``spo-bindings`` ConfigMap, which carries both tables). Opened lazily, per process.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app
from flask.blueprints import BlueprintSetupState

from hooks.cluster.binding import loading as binding_loading
from hooks.cluster.binding.admission import AdmissionReviewRequest, AdmissionReviewResponse
from hooks.cluster.contract import CustomizeRequest, SyncRequest
from hooks.cluster.recording import admission, controller, loading
from hooks.cluster.web.edge import answer, decode, now

blueprint = Blueprint("recording", __name__)
TABLE_EXTENSION = "spo_recording_table"


@blueprint.record_once
def _open_table(state: BlueprintSetupState) -> None:
    app = state.app
    path = app.config.get(loading.ENV) or os.environ.get(loading.ENV)
    if not path:
        path = loading.default_path(
            app.config.get(binding_loading.ENV) or os.environ.get(binding_loading.ENV)
        )
    app.extensions[TABLE_EXTENSION] = loading.TableFile(path)


def _admit() -> AdmissionReviewResponse:
    review = decode(AdmissionReviewRequest)
    loaded = current_app.extensions[TABLE_EXTENSION].current()
    return admission.admit(review, loaded.table, table_loaded=loaded.loaded)


@blueprint.post("/mutate-v1-pod-recording")
def mutate_pod_recording() -> Response:
    return answer("recording-admission", _admit)


@blueprint.post("/profilerecording/customize")
def profilerecording_customize() -> Response:
    return answer(
        "profilerecording-customize", lambda: controller.customize(decode(CustomizeRequest))
    )


@blueprint.post("/profilerecording/sync")
def profilerecording_sync() -> Response:
    return answer("profilerecording-sync", lambda: controller.sync(decode(SyncRequest), now()))


@blueprint.post("/profilerecording/finalize")
def profilerecording_finalize() -> Response:
    return answer("profilerecording-finalize", lambda: controller.sync(decode(SyncRequest), now()))
