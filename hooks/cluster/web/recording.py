"""Routes of the ProfileRecording controller (the recording webhook is
``hooks.cluster.web.admission``, served by ``spo webhook``)."""

from __future__ import annotations

from flask import Blueprint, Response

from hooks.cluster.contract import CustomizeRequest, SyncRequest
from hooks.cluster.recording import controller
from hooks.cluster.web.edge import answer, decode, now

blueprint = Blueprint("recording", __name__)


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
