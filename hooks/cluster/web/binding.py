"""Routes of the ProfileBinding controller and the operator Namespace decorator (the binding
webhook is ``hooks.cluster.web.admission``, served by ``spo webhook``)."""

from __future__ import annotations

from flask import Blueprint, Response

from hooks.cluster.binding import controller
from hooks.cluster.contract import CustomizeRequest, SyncRequest
from hooks.cluster.namespace import decorator
from hooks.cluster.web.edge import answer, decode, now

blueprint = Blueprint("binding", __name__)


@blueprint.post("/profilebinding/customize")
def profilebinding_customize() -> Response:
    return answer(
        "profilebinding-customize", lambda: controller.customize(decode(CustomizeRequest))
    )


@blueprint.post("/profilebinding/sync")
def profilebinding_sync() -> Response:
    return answer("profilebinding-sync", lambda: controller.sync(decode(SyncRequest), now()))


@blueprint.post("/profilebinding/finalize")
def profilebinding_finalize() -> Response:
    return answer("profilebinding-finalize", lambda: controller.sync(decode(SyncRequest), now()))


@blueprint.post("/namespace/customize")
def namespace_customize() -> Response:
    return answer("namespace-customize", lambda: decorator.customize(decode(CustomizeRequest)))


@blueprint.post("/namespace/sync")
def namespace_sync() -> Response:
    return answer("namespace-sync", lambda: decorator.sync(decode(decorator.DecoratorSyncRequest)))
