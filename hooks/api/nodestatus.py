"""SecurityProfileNodeStatus: one per profile per node, written by nodesync.

As in the Go operator, ``nodeName`` and ``status`` sit at the top level of the
object (there is no spec/status split, and no status subresource: the object is created
in its final state in one request, and changed with one patch), the object is named
``<profile>-<node>`` in the profile's namespace and owned by the profile, and
it carries the labels below so that an administrator can select by profile,
node, kind and state.
"""

from __future__ import annotations

import hashlib

from pydantic import Field

from hooks.api.base import Resource
from hooks.api.kinds import AGE_COLUMN, Kind, PrinterColumn, Version
from hooks.api.profilestate import ProfileState

PROFILE_ID_LABEL = "spo.x-k8s.io/profile-id"
NODE_NAME_LABEL = "spo.x-k8s.io/node-name"
PROFILE_STATE_LABEL = "spo.x-k8s.io/profile-state"
PROFILE_KIND_LABEL = "spo.x-k8s.io/profile-kind"

_MAX_LABEL_VALUE = 63


class SecurityProfileNodeStatus(Resource):
    """SecurityProfileNodeStatus is a per-node status of a security profile."""

    nodeName: str = Field(description="the node this status is about")
    status: ProfileState | None = Field(
        default=None, description="the state of the profile on that node"
    )
    message: str | None = Field(
        default=None, description="what went wrong on that node, when the state is Error"
    )


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


KIND = Kind(
    kind="SecurityProfileNodeStatus",
    plural="securityprofilenodestatuses",
    singular="securityprofilenodestatus",
    model=SecurityProfileNodeStatus,
    versions=(Version("v1alpha1", storage=True),),
    short_names=("spns",),
    columns=(
        PrinterColumn("Status", ".status"),
        AGE_COLUMN,
        PrinterColumn("Node", ".nodeName", priority=10),
    ),
    status_subresource=False,
)
