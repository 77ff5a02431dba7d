"""SelinuxProfile v1alpha2: an SELinux policy written as allow rules, installed through selinuxd.

As in the Go operator's namespaced era (v0.4 to v0.8): no short names, the
printer columns are ``Usage`` and ``State`` only (kubectl then shows no Age
column), and the installed module is called ``<name>_<namespace>`` so that a
pod refers to it as ``<name>_<namespace>.process`` (the value of
``status.usage``).

Where we chose:
- ``inherit[].kind`` accepts ``System`` and ``SelinuxProfile``, the enum of
  v0.5 to v0.8 (v0.4's CRD also listed ``RawSelinuxProfile``).
- Go's CRD defaults ``inherit`` to ``[{kind: System, name: container}]`` and
  ``permissive``/``disabled`` to false. Only the ``kind`` default of a policy
  reference is in the schema here; the others are applied by the translator
  (``DEFAULT_INHERIT``) so that what a user wrote round-trips unchanged.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from hooks.api import nodekinds
from hooks.api.base import Condition, Resource, Wire
from hooks.api.kinds import Kind, PrinterColumn, Version
from hooks.api.profilestate import ProfileState

ALLOW_SELF = "@self"
"""An ``allow`` key that stands for the profile's own process type."""

USAGE_SUFFIX = ".process"


class PolicyKind(StrEnum):
    SYSTEM = "System"
    SELINUX_PROFILE = "SelinuxProfile"  # KIND.kind (defined below, with the model)


class PolicyRef(Wire):
    """A policy this profile inherits from: a system one, or a SelinuxProfile of its namespace."""

    kind: PolicyKind = Field(
        default=PolicyKind.SYSTEM,
        description=(
            "what the name refers to: System (a policy already installed on the nodes, one of the "
            "SecurityProfilesOperatorDaemon's allowed system profiles) or SelinuxProfile (in the "
            "same namespace)"
        ),
    )
    name: str = Field(min_length=1, description="the name of the inherited policy")


class SelinuxProfileSpec(Wire):
    """The desired SELinux policy: what it inherits and what it allows on top."""

    disabled: bool | None = Field(
        default=None,
        description=(
            "whether the profile is disabled: a disabled profile is not installed on any node"
        ),
    )
    inherit: list[PolicyRef] | None = Field(
        default=None,
        description=(
            "the policies this profile inherits from (profiles must be in the same namespace); "
            "when unset, the system policy 'container'"
        ),
    )
    permissive: bool | None = Field(
        default=None,
        description="when true, the policy only logs violations instead of denying them",
    )
    allow: dict[str, dict[str, list[str]]] | None = Field(
        default=None,
        description=(
            "the allow rules: target type (or '@self') to object class to the permissions granted "
            "on it"
        ),
    )


DEFAULT_INHERIT = (PolicyRef(kind=PolicyKind.SYSTEM, name="container"),)


class SelinuxProfileStatus(Wire):
    """What was observed: the state across nodes and how a pod refers to the policy."""

    conditions: list[Condition] | None = Field(
        default=None, description="Conditions of the resource."
    )
    status: ProfileState | None = Field(
        default=None, description="the state of the profile across nodes"
    )
    usage: str | None = Field(
        default=None,
        description=(
            "the type a pod puts in securityContext.seLinuxOptions.type to run under this policy"
        ),
    )
    activeWorkloads: list[str] | None = Field(
        default=None, description="pods that use this profile"
    )
    observedGeneration: int | None = Field(
        default=None, description="the generation Metacontroller last synced"
    )


class SelinuxProfile(Resource):
    """SelinuxProfile is an SELinux policy built from allow rules, installed on every node."""

    spec: SelinuxProfileSpec
    status: SelinuxProfileStatus | None = None


def policy_name(name: str, namespace: str) -> str:
    """The SELinux module name of a namespaced profile: ``<name>_<namespace>``."""
    return f"{name}_{namespace}"


def policy_usage(name: str, namespace: str) -> str:
    """What ``status.usage`` says: the process type a pod uses, ``<name>_<namespace>.process``."""
    return policy_name(name, namespace) + USAGE_SUFFIX


def profile_of_usage(selinux_type: str, namespace: str) -> str | None:
    """The name of the profile of ``namespace`` whose ``policy_usage`` is ``selinux_type``, if
    any."""
    suffix = policy_usage("", namespace)
    if selinux_type.endswith(suffix) and len(selinux_type) > len(suffix):
        return selinux_type[: -len(suffix)]
    return None


USAGE_COLUMN = PrinterColumn("Usage", ".status.usage")
STATE_COLUMN = PrinterColumn("State", ".status.status")

KIND = Kind(
    kind="SelinuxProfile",
    plural="selinuxprofiles",
    singular="selinuxprofile",
    model=SelinuxProfile,
    versions=(Version("v1alpha2", storage=True),),
    short_names=(),
    columns=(USAGE_COLUMN, STATE_COLUMN),
    configmap_prefix=nodekinds.SELINUX.configmap_prefix,
    configmap_key=nodekinds.SELINUX.configmap_key,
)
