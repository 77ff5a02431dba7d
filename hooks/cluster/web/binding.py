"""Routes of the binding webhook, the ProfileBinding controller and the operator Namespace
decorator.

The binding table file is ``app.config["SPO_BINDINGS_FILE"]``, else the
``SPO_BINDINGS_FILE`` environment variable, else the path the Deployment
mounts the ``spo-bindings`` ConfigMap at. It is opened lazily, per process.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app
from flask.blueprints import BlueprintSetupState

from hooks.cluster.binding import admission, controller, loading
from hooks.cluster.contract import CustomizeRequest, SyncRequest
from hooks.cluster.namespace import decorator
from hooks.cluster.web.edge import answer, decode, now

blueprint = Blueprint("binding", __name__)
TABLE_EXTENSION = "spo_binding_table"


@blueprint.record_once
def _open_table(state: BlueprintSetupState) -> None:
    app = state.app
    path = app.config.get(loading.ENV) or os.environ.get(loading.ENV) or loading.DEFAULT_PATH
    app.extensions[TABLE_EXTENSION] = loading.TableFile(path)


def _admit() -> admission.AdmissionReviewResponse:
    review = decode(admission.AdmissionReviewRequest)
    loaded = current_app.extensions[TABLE_EXTENSION].current()
    return admission.admit(review, loaded.table, table_loaded=loaded.loaded)


@blueprint.post("/mutate-v1-pod-binding")
def mutate_pod_binding() -> Response:
    return answer("binding-admission", _admit)


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
