"""The per-container recording annotations on a pod, and the recording ids in them.

A recorded container ``<c>`` carries ``<prefix><c>: <id>``; the prefix says
what records it (``io.containers.trace-logs/`` seccomp from the audit log,
``io.containers.trace-bpf/`` seccomp with BPF, ``io.containers.trace-avcs/``
SELinux from the audit log), the id which recording, as the Go operator writes
it: ``<recording>_<container>_<nonce>_<stamp>``, four parts split by ``_``
(neither a recording's nor a container's name can contain one). The Go
recorder reads the first two parts and names the profile
``<recording>-<container>``.

Go fills nonce and stamp from a random string and the clock; a hook must be a
pure function of its request, so both come from the AdmissionReview's
``request.uid``, unique per request: the same request always gets the same
ids, two pods never share one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping

from hooks.api import profilerecording as api

SELINUX_RECORDING_TYPE = "selinuxrecording.process"
"""The permissive SELinux type a container recorded for an SelinuxProfile runs as (the Go
operator's)."""

_NONCE = 5
_PARTS = 4
_PREFIXES = {
    (api.RecordingKind.SECCOMP_PROFILE, api.Recorder.LOGS): api.SECCOMP_RECORD_LOGS_ANNOTATION,
    (api.RecordingKind.SECCOMP_PROFILE, api.Recorder.BPF): api.SECCOMP_RECORD_BPF_ANNOTATION,
    (api.RecordingKind.SELINUX_PROFILE, api.Recorder.LOGS): api.SELINUX_RECORD_LOGS_ANNOTATION,
}


def prefix(kind: api.RecordingKind, recorder: api.Recorder) -> str | None:
    """The annotation prefix of a recording, None for a combination nothing records (SELinux with
    bpf)."""
    return _PREFIXES.get((kind, recorder))


def _token(uid: str) -> str:
    """The uid's letters and digits, or a digest of it when it has too few to be unique."""
    token = re.sub(r"[^a-z0-9]", "", uid.lower())
    return token if len(token) > _NONCE else hashlib.sha256(uid.encode()).hexdigest()[:32]


def recording_id(recording: str, container: str, uid: str) -> str:
    """The annotation value for one container of the pod admitted by the request ``uid``."""
    token = _token(uid)
    return f"{recording}_{container}_{token[:_NONCE]}_{token[_NONCE:]}"


def recordings_named(annotations: Mapping[str, str]) -> set[str]:
    """The recordings that ``annotations`` (a pod's) name in a recording annotation."""
    found = set()
    for key, value in annotations.items():
        if isinstance(value, str) and any(key.startswith(p) for p in _PREFIXES.values()):
            parts = value.split("_")
            if len(parts) == _PARTS and parts[0]:
                found.add(parts[0])
    return found


def recorded_containers(
    annotations: Mapping[str, str], kind: api.RecordingKind, recording: str
) -> Iterator[str]:
    """The names of the containers that ``annotations`` (a pod's) mark as recorded by
    ``recording``."""
    prefixes = [p for (k, _), p in _PREFIXES.items() if k == kind]
    for key in sorted(annotations):
        value = annotations[key]
        for found in prefixes:
            if not key.startswith(found) or not isinstance(value, str):
                continue
            parts = value.split("_")
            if len(parts) == _PARTS and parts[0] == recording:
                yield key[len(found) :]
