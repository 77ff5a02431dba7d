"""SecurityProfileNodeStatus: one per profile per node, written by nodesync.

As in the Go operator, ``nodeName`` and ``status`` sit at the top level of the
object (there is no spec/status split, and no status subresource: the object is created
in its final state in one request, and changed with one patch), the object is named
``<profile>-<node>`` in the profile's namespace and owned by the profile, and
it carries the labels of hooks/api/nodestatuslabels.py (with the object's name) so that an
administrator can select by profile, node, kind and state.
"""

from __future__ import annotations

from pydantic import Field

from hooks.api.base import Resource
from hooks.api.kinds import AGE_COLUMN, Kind, PrinterColumn, Version
from hooks.api.nodestatuslabels import KIND as KIND_NAME
from hooks.api.nodestatuslabels import PLURAL, STORAGE_VERSION
from hooks.api.profilestate import ProfileState


class SecurityProfileNodeStatus(Resource):
    """SecurityProfileNodeStatus is a per-node status of a security profile."""

    nodeName: str = Field(description="the node this status is about")
    status: ProfileState | None = Field(
        default=None, description="the state of the profile on that node"
    )
    message: str | None = Field(
        default=None, description="what went wrong on that node, when the state is Error"
    )


KIND = Kind(
    kind=KIND_NAME,
    plural=PLURAL,
    singular="securityprofilenodestatus",
    model=SecurityProfileNodeStatus,
    versions=(Version(STORAGE_VERSION, storage=True),),
    short_names=("spns",),
    columns=(
        PrinterColumn("Status", ".status"),
        AGE_COLUMN,
        PrinterColumn("Node", ".nodeName", priority=10),
    ),
    status_subresource=False,
)
