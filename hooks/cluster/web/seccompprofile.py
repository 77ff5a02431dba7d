"""Routes of the SeccompProfile CompositeController."""

from __future__ import annotations

from flask import Blueprint, Response

from hooks.cluster.contract import CustomizeRequest, SyncRequest
from hooks.cluster.seccomp import controller
from hooks.cluster.web.edge import answer, decode, now

blueprint = Blueprint("seccompprofile", __name__, url_prefix="/seccompprofile")


@blueprint.post("/customize")
def customize() -> Response:
    return answer(
        "seccompprofile-customize", lambda: controller.customize(decode(CustomizeRequest))
    )


@blueprint.post("/sync")
def sync() -> Response:
    return answer("seccompprofile-sync", lambda: controller.sync(decode(SyncRequest), now()))


@blueprint.post("/finalize")
def finalize() -> Response:
    return answer("seccompprofile-finalize", lambda: controller.sync(decode(SyncRequest), now()))
