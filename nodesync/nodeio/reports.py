"""SecurityProfileNodeStatus objects built from outcomes, and the patches that bring one up to date.

Pure. The object is named ``status_name(profile, node)`` in the profile's
namespace, labelled with profile id, node name, state and kind, and owned by the
profile: a copy of the ConfigMap's controller ownerReference, with
``controller: false`` (Metacontroller owns it, nodesync only reports).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hooks.api import GROUP
from hooks.api.nodestatuslabels import (
    KIND,
    NODE_NAME_LABEL,
    PROFILE_ID_LABEL,
    PROFILE_KIND_LABEL,
    PROFILE_STATE_LABEL,
    STORAGE_VERSION,
    node_label,
    profile_id,
    status_name,
)
from nodesync.nodeio.outcomes import Outcome
from nodesync.nodeio.sources import Owner

API_VERSION = f"{GROUP}/{STORAGE_VERSION}"
_OWNED_LABELS = (PROFILE_ID_LABEL, NODE_NAME_LABEL, PROFILE_STATE_LABEL, PROFILE_KIND_LABEL)


@dataclass(frozen=True, slots=True)
class Report:
    """What a node status says: the part nodesync owns and compares."""

    labels: tuple[tuple[str, str], ...]
    node: str
    state: str | None
    message: str | None


def node_selector(node: str, kind: str) -> str:
    return f"{NODE_NAME_LABEL}={node_label(node)},{PROFILE_KIND_LABEL}={kind}"


def key_of(outcome: Outcome, node: str) -> tuple[str, str]:
    """(namespace, object name) of the node status about ``outcome``."""
    return (outcome.namespace, status_name(outcome.name, node))


def labels(outcome: Outcome, node: str) -> dict[str, str]:
    return {
        PROFILE_ID_LABEL: profile_id(outcome.kind, outcome.name),
        NODE_NAME_LABEL: node_label(node),
        PROFILE_STATE_LABEL: str(outcome.state),
        PROFILE_KIND_LABEL: outcome.kind,
    }


def owner_references(owner: Owner | None) -> list[dict[str, Any]] | None:
    """The ConfigMap's controller reference, copied with ``controller: false``."""
    if owner is None or not (owner.apiVersion and owner.kind and owner.name and owner.uid):
        return None
    return [owner.reference(controller=False)]


def desired(outcome: Outcome, node: str) -> dict[str, Any]:
    """The node status about ``outcome``, as the API server spells it (the shape of
    hooks.api.nodestatus.SecurityProfileNodeStatus, which tests/unit/test_node_wire.py
    checks; built without it, so that nodesync's process loads no pydantic)."""
    namespace, name = key_of(outcome, node)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": labels(outcome, node),
    }
    owners = owner_references(outcome.owner)
    if owners is not None:
        metadata["ownerReferences"] = owners
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "nodeName": node,
        "status": str(outcome.state),
    }
    if outcome.message is not None:
        body["message"] = outcome.message
    return body


def report_of(obj: Mapping[str, Any]) -> Report:
    """The owned part of a node status as the API server has it."""
    metadata = obj.get("metadata") or {}
    present = metadata.get("labels") or {}
    state = obj.get("status")
    message = obj.get("message")
    return Report(
        labels=tuple((key, str(present[key])) for key in _OWNED_LABELS if key in present),
        node=str(obj.get("nodeName") or ""),
        state=state if isinstance(state, str) else None,
        message=message if isinstance(message, str) and message else None,
    )


def report_for(outcome: Outcome, node: str) -> Report:
    return report_of(desired(outcome, node))


def patch(have: Report, want: Report) -> dict[str, Any] | None:
    """The merge patch that brings ``have`` to ``want`` (``status`` included: the kind has no
    status subresource); None when nothing differs."""
    main: dict[str, Any] = {}
    if have.labels != want.labels:
        main["metadata"] = {"labels": dict(want.labels)}
    if have.node != want.node:
        main["nodeName"] = want.node
    if have.message != want.message:
        main["message"] = want.message  # None removes it
    if have.state != want.state:
        main["status"] = want.state
    return main or None
