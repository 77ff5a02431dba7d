"""Metacontroller's client-side apply, as its source does it (no server-side apply).

Facts from Metacontroller's source (the v4.17 line, read with the search tool):

- ``pkg/dynamic/apply/apply.go``: the last applied object is kept as JSON in the
  annotation ``metacontroller.k8s.io/last-applied-configuration`` (``SetLastApplied``,
  ``GetLastApplied``). ``Merge(observed, lastApplied, desired)`` works on a copy of the
  observed object: for an object, keys that were in ``lastApplied`` and are no longer in
  ``desired`` are removed, every key of ``desired`` is merged recursively; a list is merged
  as a map (``mergeListMap``: the observed order kept, new items after it) only when every
  item of the three lists is an object and they all share one of the keys of
  ``knownMergeKeys``, the first of them in its order; otherwise the desired list replaces the
  observed one whole; a scalar takes the desired value. Merging an object into a
  non-object (or a list into a non-list) is an error.
- ``knownMergeKeys``: ``containerPort``, ``port``, ``mountPath``, ``name``, ``uid``, ``ip``,
  ``path`` on the main line (``path`` came with its PR #505, v3.0.1; ``mountPath`` with
  PR #663). A stored variant of the file without ``mountPath`` and ``name`` is the branch of
  PR #646, which was closed unmerged; :data:`KNOWN_MERGE_KEYS` follows the main line.
- ``pkg/controller/common/manage_children.go``, ``ApplyUpdate``: the desired object's
  last-applied annotation, if it has one, is emptied (``nullifyLastAppliedAnnotation``);
  the merge result gets back the observed ``metadata`` system fields (``selfLink``,
  ``uid``, ``resourceVersion``, ``generation``, ``creationTimestamp``,
  ``deletionTimestamp``, ``deletionGracePeriodSeconds``) and the observed ``status``, then
  the desired object is recorded as the new last applied configuration. On create
  (``updateChildren``), the desired object is recorded before anything else is added to it
  (``SetLastApplied(obj, obj)``), then the controller reference is appended.

The JSON of the annotation is written as Go's ``encoding/json`` writes a map: keys sorted,
no spaces, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, other characters as they are.
"""

from __future__ import annotations

import copy
import json
from typing import Any

LAST_APPLIED = "metacontroller.k8s.io/last-applied-configuration"
KNOWN_MERGE_KEYS = ("containerPort", "port", "mountPath", "name", "uid", "ip", "path")
SYSTEM_METADATA = (
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


class MergeError(ValueError):
    """The desired object cannot be merged into the observed one (a type mismatch)."""


def go_json(value: Any) -> str:
    """``value`` as Go's json.Marshal writes it (sorted keys, HTML characters escaped)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def last_applied(obj: dict[str, Any]) -> dict[str, Any] | None:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return None
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise MergeError(f"{LAST_APPLIED} is not a JSON object")
    return loaded


def set_last_applied(obj: dict[str, Any], applied: dict[str, Any]) -> None:
    text = go_json(applied)
    meta = obj.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    annotations[LAST_APPLIED] = text
    meta["annotations"] = annotations


def merge(
    observed: dict[str, Any], applied: dict[str, Any] | None, desired: dict[str, Any]
) -> dict[str, Any]:
    """The observed object with the change from ``applied`` to ``desired`` applied (a copy)."""
    destination = copy.deepcopy(observed)
    result = _merge("", destination, applied, desired)
    assert isinstance(result, dict)
    return result


def _merge(path: str, destination: Any, applied: Any, desired: Any) -> Any:
    if isinstance(destination, dict):
        if applied is not None and not isinstance(applied, dict):
            raise MergeError(
                f"lastApplied{path}: expecting an object, got {type(applied).__name__}"
            )
        if desired is not None and not isinstance(desired, dict):
            raise MergeError(f"desired{path}: expecting an object, got {type(desired).__name__}")
        return _merge_object(path, destination, applied or {}, desired or {})
    if isinstance(destination, list):
        if applied is not None and not isinstance(applied, list):
            raise MergeError(f"lastApplied{path}: expecting a list, got {type(applied).__name__}")
        if desired is not None and not isinstance(desired, list):
            raise MergeError(f"desired{path}: expecting a list, got {type(desired).__name__}")
        return _merge_list(path, destination, applied or [], desired)
    return copy.deepcopy(desired)


def _merge_object(
    path: str, destination: dict[str, Any], applied: dict[str, Any], desired: dict[str, Any]
) -> dict[str, Any]:
    for key in applied:
        if key not in desired:
            destination.pop(key, None)
    for key, value in desired.items():
        destination[key] = _merge(f"{path}[{key}]", destination.get(key), applied.get(key), value)
    return destination


def _merge_key(*lists: list[Any]) -> str:
    common: set[str] | None = None
    for items in lists:
        for item in items:
            if not isinstance(item, dict):
                return ""
            common = set(item) if common is None else common & set(item)
    for key in KNOWN_MERGE_KEYS:
        if common and key in common:
            return key
    return ""


def _key_string(value: Any) -> str:
    return (
        value
        if isinstance(value, str)
        else go_json(value)
        if isinstance(value, dict | list)
        else _scalar(value)
    )


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _merge_list(
    path: str, destination: list[Any], applied: list[Any], desired: list[Any] | None
) -> Any:
    key = _merge_key(destination, applied, desired or [])
    if not key:
        return copy.deepcopy(desired)  # a plain list: the desired one replaces it whole
    desired = desired or []
    as_map = {_key_string(item[key]): item for item in destination}
    _merge_object(
        path,
        as_map,
        {_key_string(item[key]): item for item in applied},
        {_key_string(item[key]): item for item in desired},
    )
    merged: list[Any] = []
    added: set[str] = set()
    for item in destination:
        name = _key_string(item[key])
        if name in as_map:
            merged.append(as_map[name])
            added.add(name)
    for item in desired:
        name = _key_string(item[key])
        if name not in added:
            merged.append(as_map[name])
            added.add(name)
    return merged


def apply_update(observed: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """What Metacontroller sends to update ``observed`` to ``desired`` (``ApplyUpdate``)."""
    desired = _nullified(desired)
    updated = merge(observed, last_applied(observed), desired)
    meta = updated.setdefault("metadata", {})
    old_meta = observed.get("metadata") or {}
    for field in SYSTEM_METADATA:
        if field in old_meta:
            meta[field] = copy.deepcopy(old_meta[field])
        else:
            meta.pop(field, None)
    if "status" in observed:
        updated["status"] = copy.deepcopy(observed["status"])
    else:
        updated.pop("status", None)
    set_last_applied(updated, desired)
    return updated


def for_create(desired: dict[str, Any]) -> dict[str, Any]:
    """The desired object with itself recorded as the last applied configuration."""
    created = copy.deepcopy(desired)
    set_last_applied(created, desired)
    return created


def _nullified(desired: dict[str, Any]) -> dict[str, Any]:
    """``desired`` with its own last-applied annotation, if any, emptied."""
    annotations = (desired.get("metadata") or {}).get("annotations") or {}
    if LAST_APPLIED not in annotations:
        return desired
    copied = copy.deepcopy(desired)
    copied["metadata"]["annotations"][LAST_APPLIED] = ""
    return copied
