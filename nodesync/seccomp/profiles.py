"""What a seccomp ConfigMap asks a node for: a file, or an error to report.

Pure: a ConfigMap (as the API server's JSON) goes in, a ``Profile`` or a
``Rejection`` comes out. The payload is written byte for byte; it is only
checked to be a JSON object of a size the API server could have stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from hooks.api.configmaps import MAX_CONFIGMAP_BYTES, SECCOMP_KEY, SECCOMP_KIND
from hooks.api.nodestatus import PROFILE_KIND_LABEL
from nodesync.nodeio import reasons
from nodesync.nodeio.sources import Profile, Rejection, Source, digest_of, source_of
from nodesync.seccomp.paths import PathError, relative_path


def is_seccomp_configmap(obj: Mapping[str, Any]) -> bool:
    if obj.get("kind", "ConfigMap") != "ConfigMap":
        return False
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(PROFILE_KIND_LABEL) == SECCOMP_KIND)


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
