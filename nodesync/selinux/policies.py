"""What an SELinux ConfigMap asks a node for: a CIL policy to install, or an error to report.

Pure. The hooks name the policy (and the CIL block in ``policy.cil``)
``<profile>_<namespace>``; nodesync installs it byte for byte as
``<policy>.cil`` and never interprets the CIL.

As for seccomp (``profiles``), only the owner's ConfigMap counts: a ConfigMap
whose controller is not the SelinuxProfile or RawSelinuxProfile its label and
name say is refused (``ConfigMapNotOwnedByProfile``), installs nothing and
keeps nothing. Profile and namespace names hold no ``_``, so two owners can
ask for one policy only when a SelinuxProfile and a RawSelinuxProfile of one
namespace share a name: the SelinuxProfile's is installed, the other refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hooks.api.configmaps import MAX_CONFIGMAP_BYTES, SELINUX_KEY
from hooks.api.nodekinds import SELINUX_KINDS as NODE_SELINUX_KINDS
from hooks.api.nodestatuslabels import PROFILE_KIND_LABEL
from nodesync.nodeio.sources import (
    Source,
    claim_of,
    digest_of,
    is_configmap,
    label_unreadable,
    mapping,
)

SELINUX_KINDS = tuple(kind.kind for kind in NODE_SELINUX_KINDS)
CIL_EXTENSION = ".cil"

# Reasons, in the Go operator's CamelCase style.
INVALID_POLICY = "InvalidSelinuxPolicy"
CANNOT_SAVE_POLICY = "CannotSaveSelinuxPolicy"
CANNOT_INSTALL_POLICY = "CannotInstallSelinuxPolicy"
INSTALLED_POLICY = "InstalledSelinuxPolicy"
PENDING_POLICY = "SelinuxPolicyPending"
SELINUXD_UNAVAILABLE = "SelinuxdUnavailable"

# A module name as libsemanage accepts it, and a safe file name.
_POLICY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
MAX_POLICY_NAME = 255 - len(CIL_EXTENSION)


@dataclass(frozen=True, slots=True)
class Policy:
    source: Source
    name: str  # <profile>_<namespace>: module name and CIL block name
    content: bytes
    digest: str

    @property
    def filename(self) -> str:
        return self.name + CIL_EXTENSION


@dataclass(frozen=True, slots=True)
class PolicyRejection:
    source: Source
    reason: str
    message: str
    name: str | None = None  # the policy name, when it could be computed


def policy_name(profile: str, namespace: str) -> str:
    return f"{profile}_{namespace}"


def is_selinux_configmap(obj: Mapping[str, Any]) -> bool:
    """A ConfigMap labelled for an SELinux profile (one whose label cannot be read is the
    seccomp reader's to report)."""
    if not is_configmap(obj) or label_unreadable(obj):
        return False
    labels = mapping(mapping(obj.get("metadata")).get("labels"))
    return labels.get(PROFILE_KIND_LABEL) in SELINUX_KINDS


def read_policy(obj: Mapping[str, Any]) -> Policy | PolicyRejection:
    """Turn one SELinux ConfigMap into the policy it asks for, or the reason it cannot be."""
    claim = claim_of(obj, invalid=INVALID_POLICY)
    source = claim.source
    if claim.reason is not None:
        return PolicyRejection(source, claim.reason, claim.message)
    name = policy_name(source.name, source.namespace)
    if len(name) > MAX_POLICY_NAME or not _POLICY_NAME.match(name):
        return PolicyRejection(
            source, INVALID_POLICY, f"{name!r} is not a valid SELinux module name"
        )
    data = obj.get("data")
    text = data.get(SELINUX_KEY) if isinstance(data, dict) else None
    if not isinstance(text, str) or not text.strip():
        message = f"the ConfigMap has no data key {SELINUX_KEY!r}"
        return PolicyRejection(source, INVALID_POLICY, message, name)
    content = text.encode("utf-8", "surrogatepass")
    if len(content) > MAX_CONFIGMAP_BYTES:
        message = (
            f"{SELINUX_KEY} is {len(content)} bytes, more than the limit of {MAX_CONFIGMAP_BYTES}"
        )
        return PolicyRejection(source, INVALID_POLICY, message, name)
    return Policy(source, name, content, digest_of(content))


def outranks(kind: str, other: str) -> bool:
    """Whether a policy of ``kind`` takes a policy name from one of ``other`` (a SelinuxProfile
    from a RawSelinuxProfile of the same name and namespace)."""
    return SELINUX_KINDS.index(kind) < SELINUX_KINDS.index(other)


def taken(policy: Policy, holder: Source) -> PolicyRejection:
    """``policy`` asks for the name of the policy of ``holder``, which outranks it."""
    message = (
        f"policy {policy.name} is {holder.kind} {holder.name}'s "
        f"(ConfigMap {holder.namespace}/{holder.configmap}): rename this {policy.source.kind}"
    )
    return PolicyRejection(policy.source, INVALID_POLICY, message)


def read_policies(objs: Iterable[Mapping[str, Any]]) -> list[Policy | PolicyRejection]:
    """Read every SELinux ConfigMap, sorted by (namespace, ConfigMap); of a SelinuxProfile
    and a RawSelinuxProfile asking for one policy name, the SelinuxProfile's is kept."""
    read = [read_policy(obj) for obj in objs if is_selinux_configmap(obj)]
    read.sort(key=lambda item: item.source.key)
    holders: dict[str, Source] = {}
    for item in read:
        if isinstance(item, Policy):
            holder = holders.get(item.name)
            if holder is None or outranks(item.source.kind, holder.kind):
                holders[item.name] = item.source
    return [
        taken(item, holders[item.name])
        if isinstance(item, Policy) and holders[item.name] is not item.source
        else item
        for item in read
    ]
