"""ProfileBinding v1alpha1: give every container running an image a profile.

As in the Go operator: no short names and no printer columns (kubectl shows
Name and Age). ``image: "*"`` binds every container that has no profile of
its own. Binding only happens in namespaces labelled ``ENABLE_BINDING_LABEL``.

Where we chose: ``profileRef.kind`` accepts SeccompProfile and SelinuxProfile;
v0.8's CRD also listed AppArmorProfile, a kind this operator does not serve.
The status adds ``conditions`` and ``observedGeneration`` to Go's
``activeWorkloads``, so a binding to a missing profile can say so.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from hooks.api import seccompprofile, selinuxprofile
from hooks.api.base import Condition, Resource, Wire
from hooks.api.kinds import Kind, Version

SELECT_ALL_CONTAINERS_IMAGE = "*"
ENABLE_BINDING_LABEL = "spo.x-k8s.io/enable-binding"
"""A namespace label (any value) that turns the binding webhook on for that namespace."""
BINDING_FINALIZER = "active-workload-lock"
"""The finalizer the Go operator kept on a binding while pods used it."""


class ProfileBindingKind(StrEnum):
    SECCOMP_PROFILE = seccompprofile.KIND.kind
    SELINUX_PROFILE = selinuxprofile.KIND.kind


class ProfileRef(Wire):
    """The profile, in the binding's namespace, that matching containers get."""

    kind: ProfileBindingKind = Field(description="the kind of the bound profile")
    name: str = Field(
        min_length=1, description="the name of the profile in the binding's namespace"
    )


class ProfileBindingSpec(Wire):
    """Which containers get which profile."""

    profileRef: ProfileRef = Field(description="the profile to give to the matching containers")
    image: str = Field(
        min_length=1,
        description=(
            "the container image to match, as written in the pod; '*' matches every container that "
            "has no profile yet"
        ),
    )


class ProfileBindingStatus(Wire):
    """What was observed: the pods that got the profile."""

    activeWorkloads: list[str] | None = Field(
        default=None, description="pods that got their profile from this binding"
    )
    conditions: list[Condition] | None = Field(
        default=None, description="Conditions of the resource."
    )
    observedGeneration: int | None = Field(
        default=None, description="the generation Metacontroller last synced"
    )


class ProfileBinding(Resource):
    """ProfileBinding binds a profile to the containers of a namespace that run a given image."""

    spec: ProfileBindingSpec
    status: ProfileBindingStatus | None = None


KIND = Kind(
    kind="ProfileBinding",
    plural="profilebindings",
    singular="profilebinding",
    model=ProfileBinding,
    versions=(Version("v1alpha1", storage=True),),
    short_names=(),
    columns=(),
)
