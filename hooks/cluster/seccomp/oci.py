"""The profile as the container runtime reads it: the OCI ``linux.seccomp`` object."""

from __future__ import annotations

import json
from typing import Any

from hooks.api.seccompprofile import SeccompProfileSpec

# Fields of the spec that the runtime reads; everything else is ours.
RUNTIME_FIELDS = (
    "defaultAction",
    "architectures",
    "listenerPath",
    "listenerMetadata",
    "syscalls",
    "flags",
)


def runtime_profile(spec: SeccompProfileSpec) -> dict[str, Any]:
    """The spec reduced to what runc reads, without empty fields."""
    wire = spec.to_wire()
    return {key: wire[key] for key in RUNTIME_FIELDS if wire.get(key) not in (None, [], "")}


def encode(profile: dict[str, Any]) -> str:
    """Deterministic bytes for a profile: the same profile always gives the same file."""
    return json.dumps(profile, indent=2, sort_keys=True) + "\n"
