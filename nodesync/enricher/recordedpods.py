"""Which containers of a pod are recorded, for which recording, and whether the pod is done."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hooks.api.base import Object
from hooks.api.profilerecording import (
    SECCOMP_RECORD_LOGS_ANNOTATION,
    SELINUX_RECORD_LOGS_ANNOTATION,
)
from nodesync.enricher.containers import ContainerRef, pod_key
from nodesync.enricher.recordedprofiles import (
    KIND,
    SELINUX_KIND,
)
from nodesync.nodeio.logs import about

_ID_PARTS: Final = 4


_PREFIXES: Final = (
    (SECCOMP_RECORD_LOGS_ANNOTATION, KIND),
    (SELINUX_RECORD_LOGS_ANNOTATION, SELINUX_KIND),
)

log = logging.getLogger(__name__)


_RECORDING_PREFIXES: Final = tuple(prefix for prefix, _ in _PREFIXES)


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """A recorded container of a pod, and the profile its recording makes.

    ``profile`` is the name of the profile; ``replica`` the ``generateName``
    suffix of the pod ("" for a pod named in full).
    """

    ref: ContainerRef
    recording: str
    profile: str
    kind: str = KIND
    replica: str = ""

    @property
    def partial_profile(self) -> str:
        """The name of the target's partial profile: always with a suffix (the pod's name by
        default)."""
        return f"{self.recording}-{self.ref.container}-{self.replica or self.ref.pod}"


def _metadata(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("metadata") or {}


def replica_of(metadata: Mapping[str, Any]) -> str:
    """The part of the pod's name after its ``generateName``, "" for a pod named in full."""
    prefix = str(metadata.get("generateName") or "")
    if not prefix:
        return ""
    pod = str(metadata.get("name") or "")
    return pod[len(prefix) :] if pod.startswith(prefix) else pod


def profile_name(recording: str, container: str, metadata: Mapping[str, Any]) -> str:
    """``<recording>-<container>``, with ``-<suffix>`` for a pod named from ``generateName``."""
    name = f"{recording}-{container}"
    suffix = replica_of(metadata)
    return f"{name}-{suffix}" if suffix else name


def recording_of(value: object) -> str | None:
    """The recording's name in an annotation value ``<recording>_<container>_<nonce>_<stamp>``."""
    if not isinstance(value, str):
        return None
    parts = value.split("_")
    if len(parts) != _ID_PARTS or not parts[0]:
        return None
    return parts[0]


def _kind_of(key: str) -> tuple[str, str] | None:
    """(profile kind, container) of a recording annotation key, None for any other key."""
    for prefix, kind in _PREFIXES:
        if key.startswith(prefix):
            return kind, key[len(prefix) :]
    return None


def recorded_targets(pod: Mapping[str, Any]) -> list[Target]:
    """The containers of ``pod`` recorded from the audit log (seccomp and SELinux), sorted."""
    metadata = _metadata(pod)
    namespace, name = pod_key(pod)
    annotations = metadata.get("annotations") or {}
    replica = replica_of(metadata)
    targets: list[Target] = []
    for key, value in annotations.items():
        found = _kind_of(key)
        if found is None:
            continue
        kind, container = found
        recording = recording_of(value)
        if not container or recording is None:
            log.warning(
                "ignoring the malformed recording annotation %s=%r",
                key,
                value,
                extra=about(namespace, name),
            )
            continue
        targets.append(
            Target(
                ContainerRef(namespace, name, container),
                recording,
                profile_name(recording, container, metadata),
                kind,
                replica,
            )
        )
    return sorted(targets)


def finished(pod: Mapping[str, Any]) -> bool:
    """Whether the pod's recording is over while the pod still exists (phase Succeeded)."""
    return (pod.get("status") or {}).get("phase") == "Succeeded"


CLOCK_SKEW: Final = 30.0  # seconds between the API server's clock and this node's, at most


def started(pod: Mapping[str, Any]) -> float:
    """When the pod's recording may have begun (epoch seconds, less ``CLOCK_SKEW``); 0 unknown."""
    stamp = str(_metadata(pod).get("creationTimestamp") or "")
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return max(0.0, moment.timestamp() - CLOCK_SKEW)


_STATUS_LISTS: Final = ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses")


def essential(pod: Mapping[str, Any]) -> Object:
    """What finishing ``pod`` reads: its names, recording annotations, phase and container ids."""
    metadata = _metadata(pod)
    status = pod.get("status") or {}
    kept: Object = {
        "metadata": {
            key: metadata[key]
            for key in ("namespace", "name", "uid", "generateName", "creationTimestamp")
            if metadata.get(key)
        },
        "status": {"phase": status.get("phase")} if status.get("phase") else {},
    }
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if str(key).startswith(_RECORDING_PREFIXES)
    }
    if annotations:
        kept["metadata"]["annotations"] = annotations
    for key in _STATUS_LISTS:
        entries = [
            {"name": entry.get("name"), "containerID": entry.get("containerID")}
            for entry in status.get(key) or ()
            if entry.get("containerID")
        ]
        if entries:
            kept["status"][key] = entries
    return kept
