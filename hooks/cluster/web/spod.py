"""Routes of the SecurityProfilesOperatorDaemon CompositeController (sync only: it needs no related
objects)."""

from __future__ import annotations

from flask import Blueprint, Response

from hooks.cluster.contract import SyncRequest
from hooks.cluster.spod import controller
from hooks.cluster.web.edge import answer, decode, now

blueprint = Blueprint("spod", __name__, url_prefix="/spod")


@blueprint.post("/sync")
def sync() -> Response:
    return answer("spod-sync", lambda: controller.sync(decode(SyncRequest), now()))
