"""Where a profile comes from (its ConfigMap and owner), and what a node makes of it: a
``Profile`` (the bytes to write and where) or a ``Rejection`` (why nothing can be). Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hooks.api.configmaps import (
    PROFILE_NAME_ANNOTATION,
    SECCOMP_KIND,
    configmap_name,
)
from hooks.api.nodestatus import PROFILE_KIND_LABEL

_PREFIX = configmap_name(SECCOMP_KIND, "")


@dataclass(frozen=True, slots=True)
class Owner:
    """The ConfigMap's controller ownerReference (Metacontroller sets it to the profile)."""

    apiVersion: str
    kind: str
    name: str
    uid: str
    blockOwnerDeletion: bool | None = None

    def reference(self, *, controller: bool) -> dict[str, Any]:
        reference: dict[str, Any] = {
            "apiVersion": self.apiVersion,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": controller,
        }
        # Never blockOwnerDeletion: a node status must not hold its profile back, and
        # setting it needs rights on the profile's finalizers, which nodesync lacks.
        return reference


@dataclass(frozen=True, slots=True)
class Source:
    """Which ConfigMap a profile came from, and who owns it (for the node status)."""

    namespace: str
    name: str  # the profile's name (the annotation), not the ConfigMap's
    kind: str
    configmap: str
    owner: Owner | None  # the ConfigMap's controller ownerReference

    @property
    def key(self) -> tuple[str, str]:
        """Identifies the ConfigMap: (namespace, ConfigMap name)."""
        return (self.namespace, self.configmap)


@dataclass(frozen=True, slots=True)
class Profile:
    source: Source
    relpath: str  # <namespace>/<name>.json under the operator root
    content: bytes
    digest: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a ConfigMap cannot be written. ``relpath`` is set when its file is known: a
    file installed before from a good version of the ConfigMap is then kept."""

    source: Source
    reason: str
    message: str
    relpath: str | None = None


def digest_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _controller_owner(metadata: Mapping[str, Any]) -> Owner | None:
    for ref in metadata.get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller"):
            block = ref.get("blockOwnerDeletion")
            return Owner(
                apiVersion=str(ref.get("apiVersion") or ""),
                kind=str(ref.get("kind") or ""),
                name=str(ref.get("name") or ""),
                uid=str(ref.get("uid") or ""),
                blockOwnerDeletion=block if isinstance(block, bool) else None,
            )
    return None


def source_of(obj: Mapping[str, Any]) -> Source:
    metadata = obj.get("metadata") or {}
    configmap = str(metadata.get("name") or "")
    annotations = metadata.get("annotations") or {}
    name = annotations.get(PROFILE_NAME_ANNOTATION)
    if not isinstance(name, str) or not name:
        name = configmap.removeprefix(_PREFIX)
    labels = metadata.get("labels") or {}
    return Source(
        namespace=str(metadata.get("namespace") or ""),
        name=name,
        kind=str(labels.get(PROFILE_KIND_LABEL) or SECCOMP_KIND),
        configmap=configmap,
        owner=_controller_owner(metadata),
    )
