"""Route of the Pod DecoratorController ``spo-pod-usage``: the labels saying what a pod uses
(``hooks.cluster.podusage``)."""

from __future__ import annotations

from flask import Blueprint, Response

from hooks.cluster import podusage
from hooks.cluster.namespace.decorator import DecoratorSyncRequest
from hooks.cluster.web.edge import answer, decode

blueprint = Blueprint("pod", __name__, url_prefix="/pod")


@blueprint.post("/sync")
def sync() -> Response:
    return answer("podusage-sync", lambda: podusage.sync(decode(DecoratorSyncRequest).object))
