"""The recording table: what the recording webhook needs to know, resolved ahead of time.

Kept like the binding table (``hooks.cluster.binding.table``): the webhook
Deployment watches every ProfileRecording and the logging SeccompProfile and
resolves them with ``resolve``, namespace by namespace, in memory
(``hooks.cluster.webhook.tables``); admission never calls the API.

``encode``'s JSON (sorted keys, no spaces: equal tables are equal bytes), the form of the
test fixtures::

    {"loggingProfile": {"state": "Installed",
                        "value": "operator/security-profiles-operator/log-enricher-trace.json"},
     "namespaces": {"<namespace>": [
        {"name": "<recording>", "kind": "SeccompProfile", "recorder": "logs",
         "podSelector": {...}, "containers": ["app"]}, ...]},
     "version": 1}

Recordings of a namespace are ordered oldest first (creation time, then name):
when two recordings of the same kind select the same container, the oldest
records it. A recording being deleted, or one the controller reports invalid
(an unusable selector), is left out. ``loggingProfile`` is the state of the
seccomp profile that containers recorded from the logs run under; the webhook
records with it only once it is Installed, because a pod that names a profile
file its node does not have cannot start.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from hooks.api import profilerecording as api
from hooks.api.names import name_problem
from hooks.api.profilestate import ProfileState
from hooks.api.seccompprofile import localhost_profile
from hooks.api.spod import OPERATOR_NAMESPACE
from hooks.cluster.recording import selectors
from hooks.logs import about

log = logging.getLogger(__name__)

VERSION = 1
FILE_KEY = "recordings.json"
MISSING = "Missing"
INVALID = "InvalidProfileRecording"
LOGGING_PROFILE_PATH = localhost_profile(OPERATOR_NAMESPACE, api.LOG_ENRICHER_PROFILE)


class TableError(ValueError):
    """The file is not a recording table this version can read."""


@dataclass(frozen=True)
class Recording:
    """One usable ProfileRecording, reduced to what the webhook reads."""

    name: str
    kind: api.RecordingKind
    recorder: api.Recorder
    podSelector: dict[str, Any]
    containers: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind.value,
            "recorder": self.recorder.value,
            "podSelector": self.podSelector,
        }
        if self.containers is not None:
            out["containers"] = list(self.containers)
        return out


@dataclass(frozen=True)
class LoggingProfile:
    """The state of the operator's logging seccomp profile and what a pod names it by."""

    state: str = MISSING
    value: str = LOGGING_PROFILE_PATH

    @property
    def usable(self) -> bool:
        return self.state == ProfileState.INSTALLED.value


@dataclass(frozen=True)
class RecordingTable:
    """Per namespace, the recordings in the order they apply."""

    namespaces: dict[str, tuple[Recording, ...]] = field(default_factory=dict)
    logging: LoggingProfile = field(default_factory=LoggingProfile)

    def of(self, namespace: str) -> tuple[Recording, ...]:
        return self.namespaces.get(namespace) or ()

    def count(self) -> int:
        return sum(len(recordings) for recordings in self.namespaces.values())


EMPTY = RecordingTable()


def _meta(raw: dict[str, Any]) -> dict[str, Any]:
    meta = raw.get("metadata")
    return meta if isinstance(meta, dict) else {}


def logging_profile(seccomp_profiles: Iterable[dict[str, Any]]) -> LoggingProfile:
    """The logging profile's state among ``seccomp_profiles`` (any namespaces)."""
    for raw in seccomp_profiles:
        meta = _meta(raw)
        if (
            meta.get("namespace") != OPERATOR_NAMESPACE
            or meta.get("name") != api.LOG_ENRICHER_PROFILE
        ):
            continue
        raw_status = raw.get("status")
        status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
        state = str(status.get("status") or ProfileState.PENDING.value)
        if meta.get("deletionTimestamp"):
            state = ProfileState.TERMINATING.value
        return LoggingProfile(state, str(status.get("localhostProfile") or LOGGING_PROFILE_PATH))
    return LoggingProfile()


def parse(raw: dict[str, Any]) -> tuple[api.ProfileRecording | None, str | None]:
    """The recording and None, or None and what makes it unusable (the controller's condition
    message)."""
    try:
        recording = api.ProfileRecording.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        return None, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    problem = name_problem(recording.name, recording.namespace) or selectors.problem(
        recording.spec.podSelector.to_wire()
    )
    return (None, problem) if problem else (recording, None)


def usable(raw: dict[str, Any]) -> api.ProfileRecording | None:
    """The recording, or None when it is unusable (logged): what ``resolve_parsed`` takes."""
    recording, problem = parse(raw)
    if recording is None:
        meta = _meta(raw)
        log.warning(
            "profile recording left out of the recording table: %s",
            problem,
            extra=about(namespace=meta.get("namespace"), name=meta.get("name"), reason=INVALID),
        )
    return recording


def resolve(
    recordings: Iterable[dict[str, Any]], seccomp_profiles: Iterable[dict[str, Any]]
) -> RecordingTable:
    """The table of every usable recording; an unusable or deleted one is left out (and logged)."""
    parsed = (usable(raw) for raw in recordings)
    return resolve_parsed((r for r in parsed if r is not None), seccomp_profiles)


def resolve_parsed(
    recordings: Iterable[api.ProfileRecording], seccomp_profiles: Iterable[dict[str, Any]]
) -> RecordingTable:
    """``resolve`` of recordings parsed already (the webhook parses each once, when it
    arrives)."""
    ordered: list[tuple[str, str, str, Recording]] = []
    for recording in recordings:
        if recording.metadata.deletionTimestamp or not recording.namespace or not recording.name:
            continue
        spec = recording.spec
        entry = Recording(
            recording.name,
            spec.kind,
            spec.recorder,
            spec.podSelector.to_wire(),
            None if spec.containers is None else tuple(spec.containers),
        )
        ordered.append(
            (recording.namespace, recording.metadata.creationTimestamp or "", recording.name, entry)
        )
    ordered.sort(key=lambda item: item[:3])
    namespaces: dict[str, list[Recording]] = {}
    for namespace, _, _, entry in ordered:
        namespaces.setdefault(namespace, []).append(entry)
    return RecordingTable(
        {ns: tuple(entries) for ns, entries in namespaces.items()},
        logging_profile(seccomp_profiles),
    )


def encode(table: RecordingTable) -> str:
    """The file's text: deterministic (sorted keys, compact), so equal tables are equal bytes."""
    document = {
        "version": VERSION,
        "loggingProfile": {"state": table.logging.state, "value": table.logging.value},
        "namespaces": {
            ns: [r.to_json() for r in recordings] for ns, recordings in table.namespaces.items()
        },
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _recording(ns: str, raw: Any) -> Recording:
    if not isinstance(raw, dict):
        raise TableError(f"{ns}: an entry is not an object")
    try:
        name, selector, containers = raw["name"], raw["podSelector"], raw.get("containers")
        kind, recorder = api.RecordingKind(raw["kind"]), api.Recorder(raw["recorder"])
    except (KeyError, ValueError) as error:
        raise TableError(f"{ns}: unreadable entry: {error}") from error
    if not isinstance(name, str) or not isinstance(selector, dict):
        raise TableError(f"{ns}: an entry has no name or podSelector")
    if containers is not None and not (
        isinstance(containers, list) and all(isinstance(c, str) for c in containers)
    ):
        raise TableError(f"{ns}/{name}: containers is not a list of names")
    return Recording(
        name, kind, recorder, selector, None if containers is None else tuple(containers)
    )


def decode(text: str | bytes) -> RecordingTable:
    """Read a table written by ``encode``; anything else is a ``TableError``."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise TableError(f"not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("version") != VERSION:
        raise TableError(f"not a version {VERSION} recording table")
    namespaces, logging_doc = document.get("namespaces"), document.get("loggingProfile")
    if not isinstance(namespaces, dict) or not isinstance(logging_doc, dict):
        raise TableError("namespaces or loggingProfile is not an object")
    state, value = logging_doc.get("state"), logging_doc.get("value")
    if not isinstance(state, str) or not isinstance(value, str):
        raise TableError("loggingProfile needs a state and a value")
    resolved: dict[str, tuple[Recording, ...]] = {}
    for ns, entries in namespaces.items():
        if not isinstance(entries, list):
            raise TableError(f"namespace {ns!r} is not a list")
        resolved[ns] = tuple(_recording(ns, raw) for raw in entries)
    return RecordingTable(resolved, LoggingProfile(state, value))
