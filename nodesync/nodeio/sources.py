"""Where a profile comes from: its ConfigMap, and the profile that owns it; and what a node
makes of it, a ``Profile`` (bytes and where) or a ``Rejection`` (why nothing is written).

Pure. ConfigMaps come as the API server's JSON, or in any shape a file holds in
the local mode.

Only the owner's ConfigMap counts: a ConfigMap is accepted only when its
controller ownerReference is a profile of the labelled kind in this API group
and the ConfigMap's name and profile-name annotation spell that profile's name
(``owner_problem``). The profile name, and so the file, come from the owner.
Anything else (no owner, another kind, a name that points at another profile)
is refused as ``ConfigMapNotOwnedByProfile``: nothing is written for it,
nothing is kept for it, and no node status is reported for it (there is no
profile to report on), only a log line and a metric naming the ConfigMap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hooks.api import GROUP
from hooks.api.configmaps import (
    PROFILE_KINDS,
    PROFILE_NAME_ANNOTATION,
    PROFILE_WARNING_ANNOTATION,
    SECCOMP_KIND,
    configmap_name,
    shortened_warning,
)
from hooks.api.nodestatuslabels import PROFILE_KIND_LABEL
from nodesync.nodeio import reasons


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
    """Which ConfigMap a profile came from, and the profile that owns it (for the node status)."""

    namespace: str
    name: str  # the profile's name: the owner's; for a refused ConfigMap, what it claims
    kind: str
    configmap: str
    owner: Owner | None  # the owning profile; None when the ConfigMap is not its profile's

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
    warning: str | None = None  # the ConfigMap's warning annotation, for the Saved Event


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a ConfigMap cannot be written. ``relpath`` is set when its file is known (the
    ConfigMap is its profile's): a file installed before from a good version is then kept."""

    source: Source
    reason: str
    message: str
    relpath: str | None = None


def digest_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one (files may hold any shape; JSON
    and YAML objects are dicts, and a dict check costs a tenth of an ABC check)."""
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


_SHOWN = 253  # the longest Kubernetes name: what a refusal quotes of a claimed one


def _shown(value: str) -> str:
    return value if len(value) <= _SHOWN else value[:_SHOWN] + "..."


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping(mapping(obj.get("metadata")).get("labels"))


def is_configmap(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("kind", "ConfigMap") == "ConfigMap"


def malformed(obj: Mapping[str, Any]) -> str | None:
    """What makes a ConfigMap unreadable (metadata, labels or annotations that are not
    objects, a name or namespace that is not a string), or None. The API server never
    sends such a thing; a file of the local mode may hold one."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return "metadata is not an object"
    for field in ("labels", "annotations"):
        if metadata.get(field) is not None and not isinstance(metadata[field], dict):
            return f"metadata.{field} is not an object"
    for field in ("name", "namespace"):
        if not isinstance(metadata.get(field), str):
            return f"metadata.{field} is not a string"
    return None


def label_unreadable(obj: Mapping[str, Any]) -> bool:
    """Whether the profile-kind label cannot be read: metadata or labels that are not
    objects, or a label value that is not a string."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return True
    labels = metadata.get("labels")
    if labels is not None and not isinstance(labels, dict):
        return True
    value = (labels or {}).get(PROFILE_KIND_LABEL)
    return value is not None and not isinstance(value, str)


def _controller_owner(metadata: Mapping[str, Any]) -> Owner | None:
    references = metadata.get("ownerReferences")
    for ref in references if isinstance(references, list) else []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            block = ref.get("blockOwnerDeletion")
            return Owner(
                apiVersion=_shown(str(ref.get("apiVersion") or "")),
                kind=_shown(str(ref.get("kind") or "")),
                name=_shown(str(ref.get("name") or "")),
                uid=_shown(str(ref.get("uid") or "")),
                blockOwnerDeletion=block if isinstance(block, bool) else None,
            )
    return None


def owner_problem(
    kind: str, configmap: str, claimed: str | None, owner: Owner | None
) -> str | None:
    """Why a ConfigMap labelled ``kind``, named ``configmap``, whose annotation claims the
    profile ``claimed`` and whose controller is ``owner``, is not its profile's; None when
    it is. The same rule as the admission policy's (metacontroller/base/admission-policies.yaml)."""
    if kind not in PROFILE_KINDS:
        return f"the label {PROFILE_KIND_LABEL} says {kind!r}, not a profile kind"
    if owner is None:
        return f"it has no controller ownerReference (it must be owned by its {kind})"
    if owner.apiVersion.partition("/")[0] != GROUP or owner.kind != kind:
        return (
            f"its controller is {owner.kind} {owner.name!r} of {owner.apiVersion!r}, "
            f"not a {kind} of {GROUP}"
        )
    if not owner.name or not owner.uid:
        return "its controller ownerReference has no name or uid"
    if configmap != configmap_name(kind, owner.name):
        return (
            f"its name is not {configmap_name(kind, owner.name)!r}, "
            f"the name of the ConfigMap of its owner {kind} {owner.name!r}"
        )
    if claimed is not None and claimed != owner.name:
        return (
            f"its annotation {PROFILE_NAME_ANNOTATION} names {claimed!r}, "
            f"but it is owned by {kind} {owner.name!r}"
        )
    return None


@dataclass(frozen=True, slots=True)
class Claim:
    """Who a ConfigMap says it is: its source, and why it is refused (None: it is its profile's)."""

    source: Source
    reason: str | None = None
    message: str = ""


def claim_of(obj: Mapping[str, Any], *, invalid: str) -> Claim:
    """Read a ConfigMap's identity, of any shape: ``invalid`` is the reason of a malformed one."""
    metadata = mapping(obj.get("metadata"))
    configmap, namespace = _text(metadata.get("name")), _text(metadata.get("namespace"))
    label = labels_of(obj).get(PROFILE_KIND_LABEL)
    kind = label if isinstance(label, str) and label else SECCOMP_KIND  # as the reader chose
    annotation = mapping(metadata.get("annotations")).get(PROFILE_NAME_ANNOTATION)
    claimed = _shown(annotation) if isinstance(annotation, str) and annotation else None
    owner = _controller_owner(metadata)
    configmap, namespace = _shown(configmap), _shown(namespace)
    fallback = claimed or configmap.removeprefix(
        configmap_name(kind, "") if kind in PROFILE_KINDS else ""
    )
    refused = Source(namespace, fallback, kind, configmap, owner=None)
    shape = malformed(obj)
    if shape is not None:
        return Claim(refused, invalid, f"malformed ConfigMap: {shape}")
    problem = owner_problem(kind, configmap, claimed, owner)
    if problem is not None:
        message = f"ConfigMap {namespace}/{configmap} is not its profile's: {problem}"
        return Claim(refused, reasons.NOT_OWNED, message)
    assert owner is not None
    return Claim(Source(namespace, owner.name, kind, configmap, owner))


def warning_of(obj: Mapping[str, Any]) -> str | None:
    """The ConfigMap's warning annotation as it is (the hooks wrote it; nodesync only copies
    it into an Event's message), at most ``MAX_WARNING_BYTES``; None when there is none."""
    metadata = mapping(obj.get("metadata"))
    text = mapping(metadata.get("annotations")).get(PROFILE_WARNING_ANNOTATION)
    return shortened_warning(text) if isinstance(text, str) and text else None


def source_of(obj: Mapping[str, Any]) -> Source:
    return claim_of(obj, invalid=reasons.INVALID_PROFILE).source
