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


@blueprint.post("/finalize-handover")
def finalize_handover() -> Response:
    """The same finalize, on a path the releases before the hand-over did not serve: while an
    upgrade rolls the hooks, an old pod would answer a profile that left the controller's
    selection with no child (its ConfigMap and node file would go); it answers 404 instead,
    and Metacontroller retries until a new pod answers."""
    return answer("seccompprofile-finalize", lambda: controller.sync(decode(SyncRequest), now()))
