"""What a profile ConfigMap asks a node for: a file, or an error to report.

Pure: a ConfigMap (as the API server's JSON) goes in, a ``Profile`` (the bytes
to write and where) or a ``Rejection`` (why nothing can be written) comes out.
The payload is written byte for byte; it is only checked to be a JSON object of
a size the API server could have stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hooks.api.configmaps import (
    MAX_CONFIGMAP_BYTES,
    PROFILE_NAME_ANNOTATION,
    SECCOMP_KEY,
    SECCOMP_KIND,
    configmap_name,
)
from hooks.api.nodestatus import PROFILE_KIND_LABEL
from nodesync.nodeio import reasons
from nodesync.seccomp.paths import PathError, relative_path

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


def is_seccomp_configmap(obj: Mapping[str, Any]) -> bool:
    if obj.get("kind", "ConfigMap") != "ConfigMap":
        return False
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(PROFILE_KIND_LABEL) == SECCOMP_KIND)


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


def read_configmap(obj: Mapping[str, Any]) -> Profile | Rejection:
    """Turn one seccomp ConfigMap into the file it asks for, or the reason it cannot be."""
    source = source_of(obj)
    try:
        relpath = relative_path(source.namespace, source.name)
    except PathError as error:
        return Rejection(source, reasons.CANNOT_GET_PATH, str(error))
    data = obj.get("data") or {}
    text = data.get(SECCOMP_KEY) if isinstance(data, Mapping) else None
    if not isinstance(text, str):
        return Rejection(
            source,
            reasons.INVALID_PROFILE,
            f"the ConfigMap has no data key {SECCOMP_KEY!r}",
            relpath,
        )
    content = text.encode("utf-8", "surrogatepass")
    if len(content) > MAX_CONFIGMAP_BYTES:
        return Rejection(
            source,
            reasons.INVALID_PROFILE,
            f"{SECCOMP_KEY} is {len(content)} bytes, more than the limit of {MAX_CONFIGMAP_BYTES}",
            relpath,
        )
    try:
        parsed = json.loads(content)
    except ValueError as error:
        message = f"{SECCOMP_KEY} is not valid JSON: {error}"
        return Rejection(source, reasons.INVALID_PROFILE, message, relpath)
    if not isinstance(parsed, dict):
        return Rejection(
            source, reasons.INVALID_PROFILE, f"{SECCOMP_KEY} is not a JSON object", relpath
        )
    return Profile(source, relpath, content, digest_of(content))


def read_configmaps(objs: Iterable[Mapping[str, Any]]) -> list[Profile | Rejection]:
    """Read every seccomp ConfigMap; of two that ask for the same file, the first by name wins."""
    read = [read_configmap(obj) for obj in objs if is_seccomp_configmap(obj)]
    read.sort(key=lambda item: item.source.key)
    claimed: dict[str, Source] = {}
    result: list[Profile | Rejection] = []
    for item in read:
        relpath = item.relpath
        holder = claimed.setdefault(relpath, item.source) if relpath is not None else item.source
        if holder is not item.source and isinstance(item, Profile):
            result.append(conflict(item, holder.key))
        else:
            result.append(item)
    return result


def conflict(profile: Profile, holder: tuple[str, str]) -> Rejection:
    """``profile`` asks for a file that the ConfigMap ``holder`` (namespace, name) already has."""
    return Rejection(
        profile.source,
        reasons.FILE_CONFLICT,
        f"{profile.relpath} is already written for ConfigMap {holder[0]}/{holder[1]}",
    )
