"""The names of SecurityProfileNodeStatus objects and their labels (hooks/api/nodestatus.py
has the model), apart from the model: nodesync's process reads only these, and loads no
pydantic."""

from __future__ import annotations

import hashlib

KIND = "SecurityProfileNodeStatus"
PLURAL = "securityprofilenodestatuses"
STORAGE_VERSION = "v1alpha1"

PROFILE_ID_LABEL = "spo.x-k8s.io/profile-id"
NODE_NAME_LABEL = "spo.x-k8s.io/node-name"
PROFILE_STATE_LABEL = "spo.x-k8s.io/profile-state"
PROFILE_KIND_LABEL = "spo.x-k8s.io/profile-kind"

_MAX_LABEL_VALUE = 63


def profile_id(kind: str, name: str) -> str:
    """The value of the profile-id label: ``<Kind>-<name>``, hashed when too long for a label."""
    value = f"{kind}-{name}"
    if len(value) <= _MAX_LABEL_VALUE:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    return f"{value[: _MAX_LABEL_VALUE - 17]}-{digest}"


def node_label(node: str) -> str:
    """The value of the node-name label (node names can be longer than a label value)."""
    if len(node) <= _MAX_LABEL_VALUE:
        return node
    return f"{node[: _MAX_LABEL_VALUE - 17]}-{hashlib.sha256(node.encode()).hexdigest()[:16]}"


def status_name(profile: str, node: str) -> str:
    """The object name of a node status: ``<profile>-<node>``, hashed past 253 characters."""
    value = f"{profile}-{node}"
    if len(value) <= 253:
        return value
    return f"{value[:236]}-{hashlib.sha256(value.encode()).hexdigest()[:16]}"
