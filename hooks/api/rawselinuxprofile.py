"""RawSelinuxProfile v1alpha2: an SELinux policy given as CIL text, installed as written.

It shares its status (and so ``status.usage``, ``<name>_<namespace>.process``)
and its printer columns with SelinuxProfile, as in the Go operator, which had
no short names for it either.
"""

from __future__ import annotations

from pydantic import Field

from hooks.api import nodekinds
from hooks.api.base import Resource, Wire
from hooks.api.kinds import Kind, Version
from hooks.api.selinuxprofile import STATE_COLUMN, USAGE_COLUMN, SelinuxProfileStatus


class RawSelinuxProfileSpec(Wire):
    """The desired SELinux policy, in CIL."""

    disabled: bool | None = Field(
        default=None,
        description=(
            "whether the profile is disabled: a disabled profile is not installed on any node"
        ),
    )
    policy: str | None = Field(
        default=None,
        description="the policy in the Common Intermediate Language (CIL), installed as written",
    )


class RawSelinuxProfile(Resource):
    """RawSelinuxProfile is an SELinux policy written in CIL, installed on every node."""

    spec: RawSelinuxProfileSpec
    status: SelinuxProfileStatus | None = None


KIND = Kind(
    kind="RawSelinuxProfile",
    plural="rawselinuxprofiles",
    singular="rawselinuxprofile",
    model=RawSelinuxProfile,
    versions=(Version("v1alpha2", storage=True),),
    short_names=(),
    columns=(USAGE_COLUMN, STATE_COLUMN),
    configmap_prefix=nodekinds.RAW_SELINUX.configmap_prefix,
    configmap_key=nodekinds.RAW_SELINUX.configmap_key,
)
