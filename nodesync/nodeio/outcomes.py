"""What happened to one profile on this node: the input of node statuses, logs and ``spo
render``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hooks.api.profilestate import ProfileState
from nodesync.nodeio import reasons
from nodesync.nodeio.sources import Owner, Profile, Rejection, Source


@dataclass(frozen=True, slots=True)
class Outcome:
    namespace: str
    name: str  # the profile's name
    kind: str
    state: ProfileState
    message: str | None
    changed: bool  # whether the file on disk was written by this run
    reason: str  # SavedSeccompProfile, or the CamelCase reason of the error
    path: str | None = None  # <namespace>/<name>.json under the operator root, when known
    configmap: str = ""
    owner: Owner | None = None  # the ConfigMap's controller ownerReference
    # The ConfigMap's warning annotation (what the profile's controller warns of), copied into
    # the message of the Event about the saved profile; never into the node status.
    warning: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


def _base(source: Source) -> dict[str, Any]:
    return {
        "namespace": source.namespace,
        "name": source.name,
        "kind": source.kind,
        "configmap": source.configmap,
        "owner": source.owner,
    }


def installed(profile: Profile, *, changed: bool) -> Outcome:
    return Outcome(
        state=ProfileState.INSTALLED,
        message=None,
        changed=changed,
        reason=reasons.SAVED,
        path=profile.relpath,
        warning=profile.warning,
        **_base(profile.source),
    )


def failed(source: Source, reason: str, message: str, relpath: str | None = None) -> Outcome:
    return Outcome(
        state=ProfileState.ERROR,
        message=message,
        changed=False,
        reason=reason,
        path=relpath,
        **_base(source),
    )


def rejected(rejection: Rejection) -> Outcome:
    return failed(rejection.source, rejection.reason, rejection.message, rejection.relpath)


def unsupported(source: Source) -> Outcome:
    return failed(source, reasons.SECCOMP_NOT_SUPPORTED, reasons.SECCOMP_NOT_SUPPORTED_MESSAGE)
