"""The binding table: what the binding webhook needs to know, resolved ahead of time.

The webhook Deployment watches every ProfileBinding and profile and resolves
them into this table, namespace by namespace, in memory
(``hooks.cluster.webhook.tables``); admission reads it and never calls the API.

``encode`` and ``decode`` write and read it as JSON (sorted keys, no spaces:
the same bindings always give the same bytes), the form of the test fixtures::

    {"namespaces": {"<namespace>": {"<image>": [
        {"binding": "<binding name>", "kind": "SeccompProfile", "profile": "<name>",
         "state": "Installed", "value": "operator/<namespace>/<name>.json"}, ...]}},
     "version": 1}

Entries of one image are ordered oldest binding first (creation time, then
name): of two bindings of the same kind for the same image, the oldest wins,
so a new binding cannot silently replace a profile an older one enforces.
``state`` is the profile's ``status.status``, ``Missing`` when the profile
does not exist, ``Pending`` when it has no status yet; ``value`` is what a pod
gets (``status.localhostProfile``, or a SelinuxProfile's ``status.usage``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from hooks.api import profilebinding as binding_api
from hooks.api import selinuxprofile as selinux_api
from hooks.api.profilestate import ProfileState
from hooks.api.seccompprofile import localhost_profile
from hooks.logs import about

log = logging.getLogger(__name__)

VERSION = 1
FILE_KEY = "bindings.json"
MISSING = "Missing"
WILDCARD = binding_api.SELECT_ALL_CONTAINERS_IMAGE
SECCOMP = binding_api.ProfileBindingKind.SECCOMP_PROFILE.value
SELINUX = binding_api.ProfileBindingKind.SELINUX_PROFILE.value


class TableError(ValueError):
    """The file is not a binding table this version can read."""


@dataclass(frozen=True)
class Entry:
    """One binding of one image, with the state of the profile it names."""

    binding: str
    kind: str
    profile: str
    state: str
    value: str | None = None

    @property
    def usable(self) -> bool:
        return self.state == ProfileState.INSTALLED.value and bool(self.value)

    def to_json(self) -> dict[str, str]:
        out = {
            "binding": self.binding,
            "kind": self.kind,
            "profile": self.profile,
            "state": self.state,
        }
        if self.value:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class BindingTable:
    """Per namespace, per image (``*`` included), the bindings in the order they apply."""

    namespaces: dict[str, dict[str, tuple[Entry, ...]]] = field(default_factory=dict)

    def of(self, namespace: str) -> dict[str, tuple[Entry, ...]]:
        return self.namespaces.get(namespace) or {}

    def count(self) -> int:
        return sum(
            len(entries) for images in self.namespaces.values() for entries in images.values()
        )


EMPTY = BindingTable()


def _meta(raw: dict[str, Any]) -> dict[str, Any]:
    meta = raw.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _profile_index(profiles: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in profiles:
        meta = _meta(raw)
        index.setdefault((str(meta.get("namespace", "")), str(meta.get("name", ""))), raw)
    return index


def _resolve_entry(
    binding: binding_api.ProfileBinding,
    seccomp: dict[tuple[str, str], dict[str, Any]],
    selinux: dict[tuple[str, str], dict[str, Any]],
) -> Entry:
    ref = binding.spec.profileRef
    namespace = binding.namespace
    found = (
        seccomp if ref.kind is binding_api.ProfileBindingKind.SECCOMP_PROFILE else selinux
    ).get((namespace, ref.name))
    if found is None:
        return Entry(binding.name, ref.kind.value, ref.name, MISSING)
    raw_status = found.get("status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    state = str(status.get("status") or ProfileState.PENDING.value)
    if _meta(found).get("deletionTimestamp"):
        state = ProfileState.TERMINATING.value
    if ref.kind is binding_api.ProfileBindingKind.SECCOMP_PROFILE:
        value = status.get("localhostProfile") or localhost_profile(namespace, ref.name)
    else:
        value = status.get("usage") or selinux_api.policy_usage(ref.name, namespace)
    return Entry(binding.name, ref.kind.value, ref.name, state, str(value))


def parse(raw: dict[str, Any]) -> binding_api.ProfileBinding | None:
    """The binding, or None when it is invalid (logged): what ``resolve_parsed`` takes."""
    try:
        return binding_api.ProfileBinding.model_validate(raw)
    except ValidationError as error:
        meta = _meta(raw)
        log.warning(
            "profile binding left out of the binding table: %s",
            error.errors()[0]["msg"],
            extra=about(
                namespace=meta.get("namespace"),
                name=meta.get("name"),
                reason="InvalidProfileBinding",
            ),
        )
        return None


def resolve(
    bindings: Iterable[dict[str, Any]],
    seccomp_profiles: Iterable[dict[str, Any]],
    selinux_profiles: Iterable[dict[str, Any]],
) -> BindingTable:
    """The table of every valid binding; an invalid or deleted binding is left out (and logged)."""
    parsed = (parse(raw) for raw in bindings)
    return resolve_parsed((b for b in parsed if b is not None), seccomp_profiles, selinux_profiles)


def resolve_parsed(
    bindings: Iterable[binding_api.ProfileBinding],
    seccomp_profiles: Iterable[dict[str, Any]],
    selinux_profiles: Iterable[dict[str, Any]],
) -> BindingTable:
    """``resolve`` of bindings parsed already (the webhook parses each once, when it arrives)."""
    seccomp = _profile_index(seccomp_profiles)
    selinux = _profile_index(selinux_profiles)
    ordered: list[tuple[str, str, binding_api.ProfileBinding]] = []
    for binding in bindings:
        if binding.metadata.deletionTimestamp or not binding.namespace or not binding.name:
            continue
        ordered.append((binding.metadata.creationTimestamp or "", binding.name, binding))
    ordered.sort(key=lambda item: (item[2].namespace, item[0], item[1]))
    namespaces: dict[str, dict[str, list[Entry]]] = {}
    for _, _, binding in ordered:
        images = namespaces.setdefault(binding.namespace, {})
        images.setdefault(binding.spec.image, []).append(_resolve_entry(binding, seccomp, selinux))
    return BindingTable(
        {
            ns: {image: tuple(entries) for image, entries in images.items()}
            for ns, images in namespaces.items()
        }
    )


def encode(table: BindingTable) -> str:
    """The file's text: deterministic (sorted keys, compact), so equal tables are equal bytes."""
    document = {
        "version": VERSION,
        "namespaces": {
            ns: {image: [entry.to_json() for entry in entries] for image, entries in images.items()}
            for ns, images in table.namespaces.items()
        },
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TableError(f"{what} is not a string")
    return value


def decode(text: str | bytes) -> BindingTable:
    """Read a table written by ``encode``; anything else is a ``TableError``."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise TableError(f"not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("version") != VERSION:
        raise TableError(f"not a version {VERSION} binding table")
    raw_namespaces = document.get("namespaces")
    if not isinstance(raw_namespaces, dict):
        raise TableError("namespaces is not an object")
    namespaces: dict[str, dict[str, tuple[Entry, ...]]] = {}
    for ns, images in raw_namespaces.items():
        if not isinstance(images, dict):
            raise TableError(f"namespace {ns!r} is not an object")
        resolved: dict[str, tuple[Entry, ...]] = {}
        for image, entries in images.items():
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise TableError(f"{ns}/{image}: not a list of entries")
            resolved[image] = tuple(
                Entry(
                    binding=_text(e.get("binding"), "binding"),
                    kind=_text(e.get("kind"), "kind"),
                    profile=_text(e.get("profile"), "profile"),
                    state=_text(e.get("state"), "state"),
                    value=_text(e["value"], "value") if e.get("value") is not None else None,
                )
                for e in entries
            )
        namespaces[ns] = resolved
    return BindingTable(namespaces)
