"""Routes of the admission webhooks (binding and recording), served by ``spo webhook``.

Both read their table from ``app.extensions[TABLES]`` (``hooks.cluster.webhook.tables``:
kept in memory from watches), so admission makes no API call. Before the tables are loaded
each answers with a warning and allows the pod, as it always does.
"""

from __future__ import annotations

from typing import Protocol

from flask import Blueprint, Response, current_app

from hooks.cluster.binding import admission as binding_admission
from hooks.cluster.binding.table import BindingTable
from hooks.cluster.recording import admission as recording_admission
from hooks.cluster.recording.table import RecordingTable
from hooks.cluster.web.edge import answer, decode
from hooks.cluster.webhook.tables import Loaded

blueprint = Blueprint("admission", __name__)
TABLES = "spo_webhook_tables"


class Tables(Protocol):
    def bindings(self) -> Loaded[BindingTable]: ...

    def recordings(self) -> Loaded[RecordingTable]: ...

    def ready(self) -> bool: ...


def _tables() -> Tables:
    tables: Tables = current_app.extensions[TABLES]
    return tables


def _admit_binding() -> binding_admission.AdmissionReviewResponse:
    review = decode(binding_admission.AdmissionReviewRequest)
    loaded = _tables().bindings()
    return binding_admission.admit(review, loaded.table, table_loaded=loaded.loaded)


def _admit_recording() -> binding_admission.AdmissionReviewResponse:
    review = decode(binding_admission.AdmissionReviewRequest)
    loaded = _tables().recordings()
    return recording_admission.admit(review, loaded.table, table_loaded=loaded.loaded)


@blueprint.post("/mutate-v1-pod-binding")
def mutate_pod_binding() -> Response:
    return answer("binding-admission", _admit_binding)


@blueprint.post("/mutate-v1-pod-recording")
def mutate_pod_recording() -> Response:
    return answer("recording-admission", _admit_recording)
