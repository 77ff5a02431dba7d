"""What a seccomp ConfigMap asks a node for: a file, or an error to report.

Pure: a ConfigMap (as the API server's JSON, or any shape a file holds in the
local mode) goes in, a ``Profile`` or a ``Rejection`` comes out. The payload is
written byte for byte; it is only checked to be a JSON object of a size the API
server could have stored. Only the owner's ConfigMap counts (``claim_of``). Its
warning annotation, if any, is carried along as it is, for the Saved Event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from hooks.api.configmaps import MAX_CONFIGMAP_BYTES, SECCOMP_KEY, SECCOMP_KIND
from hooks.api.nodestatuslabels import PROFILE_KIND_LABEL
from nodesync.nodeio import reasons
from nodesync.nodeio.sources import (
    Profile,
    Rejection,
    claim_of,
    digest_of,
    is_configmap,
    label_unreadable,
    labels_of,
    warning_of,
)
from nodesync.seccomp.paths import PathError, relative_path


def is_seccomp_configmap(obj: Mapping[str, Any]) -> bool:
    """A ConfigMap labelled for a seccomp profile, or one whose label cannot be read (the
    seccomp reader reports those, so that each is an error exactly once)."""
    if not is_configmap(obj):
        return False
    return label_unreadable(obj) or labels_of(obj).get(PROFILE_KIND_LABEL) == SECCOMP_KIND


def read_configmap(obj: Mapping[str, Any]) -> Profile | Rejection:
    """Turn one seccomp ConfigMap into the file it asks for, or the reason it cannot be."""
    claim = claim_of(obj, invalid=reasons.INVALID_PROFILE)
    source = claim.source
    if claim.reason is not None:
        return Rejection(source, claim.reason, claim.message)
    try:
        relpath = relative_path(source.namespace, source.name)
    except PathError as error:
        return Rejection(source, reasons.CANNOT_GET_PATH, str(error))
    data = obj.get("data")
    text = data.get(SECCOMP_KEY) if isinstance(data, dict) else None
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
    return Profile(source, relpath, content, digest_of(content), warning_of(obj))


def read_configmaps(objs: Iterable[Mapping[str, Any]]) -> list[Profile | Rejection]:
    """Read every seccomp ConfigMap, sorted by (namespace, ConfigMap name).

    No two accepted ConfigMaps can ask for one file: the file is the owner's, and the
    owner's name fixes the ConfigMap's name, unique in its namespace."""
    read = [read_configmap(obj) for obj in objs if is_seccomp_configmap(obj)]
    read.sort(key=lambda item: item.source.key)
    return read
