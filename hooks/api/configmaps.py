"""The contract between the hooks and nodesync: how a profile travels to the nodes.

A profile controller's only child for the nodes is a ConfigMap in the profile's
namespace. nodesync watches ConfigMaps by the ``PROFILE_KIND_LABEL`` label and
writes ``data[PROFILE_KEY]`` byte for byte to the node; it never interprets it.

- name: ``<prefix>-<profile name>`` (``seccomp-`` or ``selinux-``), so that a
  SeccompProfile and a SelinuxProfile of the same name do not collide;
- labels: ``spo.x-k8s.io/profile-kind`` (SeccompProfile, SelinuxProfile,
  RawSelinuxProfile) and ``spo.x-k8s.io/profile-id``;
- annotations: ``spo.x-k8s.io/profile-name``, the profile's own name (label
  values are limited to 63 characters, names are not); and, while the profile's
  controller warns of something it accepted (a SeccompProfile's syscall names that
  its architectures lack), ``spo.x-k8s.io/profile-warning``: the warning's text, at
  most ``MAX_WARNING_BYTES``, which nodesync copies as it is into the message of the
  Event it emits on saving the profile (so the warning reaches an Event with no
  object and no watch more);
- owner: Metacontroller makes the profile the ConfigMap's controller
  ownerReference. nodesync accepts a ConfigMap only when that owner is a profile
  of the labelled kind whose name the ConfigMap's name and annotation spell
  (``nodesync.nodeio.sources.owner_problem``), and only Metacontroller may write these
  ConfigMaps at all (the ValidatingAdmissionPolicy ``spo-profile-configmaps``);
- data: ``profile.json`` for seccomp (the OCI ``linux.seccomp`` object),
  ``policy.cil`` for SELinux.

No model is imported here (nodesync's process loads no pydantic): the kinds' names, prefixes
and keys come from hooks/api/nodekinds.py.
"""

from __future__ import annotations

import orjson

from hooks.api.nodekinds import NODE_KINDS, SECCOMP, SELINUX
from hooks.api.nodestatuslabels import PROFILE_ID_LABEL, PROFILE_KIND_LABEL, profile_id

PROFILE_NAME_ANNOTATION = "spo.x-k8s.io/profile-name"
PROFILE_WARNING_ANNOTATION = "spo.x-k8s.io/profile-warning"
# An events.k8s.io/v1 note holds no more (the core/v1 Events nodesync makes have no such limit).
MAX_WARNING_BYTES = 1024
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "security-profiles-operator"

SECCOMP_KIND = SECCOMP.kind
SECCOMP_KEY = SECCOMP.configmap_key
SELINUX_KEY = SELINUX.configmap_key
# The values of the profile-kind label: the kinds the nodes install.
PROFILE_KINDS = tuple(kind.kind for kind in NODE_KINDS)
_PREFIXES = {kind.kind: kind.configmap_prefix for kind in NODE_KINDS}
MAX_CONFIGMAP_BYTES = 1024 * 1024 - 4096  # etcd's 1 MiB request limit, less room for metadata
# A spec whose JSON is more than twice that cannot become a profile that fits (a profile keeps
# every rule of its spec, and of its bases); it is refused before it is parsed and merged, which
# would cost seconds and hundreds of MiB for nothing.
MAX_SPEC_BYTES = 2 * MAX_CONFIGMAP_BYTES


def spec_too_large(raw: object) -> str | None:
    """Why the ``spec`` of the raw object ``raw`` is too large to become a profile, or None."""
    spec = raw.get("spec") if isinstance(raw, dict) else None
    size = len(orjson.dumps(spec)) if spec is not None else 0
    if size <= MAX_SPEC_BYTES:
        return None
    return (
        f"spec: {size} bytes of JSON; a profile made of it cannot fit in a ConfigMap "
        f"({MAX_CONFIGMAP_BYTES} bytes)"
    )


def configmap_name(kind: str, profile: str) -> str:
    """The ConfigMap of a profile of ``kind`` (a kind the nodes install)."""
    if kind not in _PREFIXES:
        raise KeyError(f"no node installs a {kind}")
    return f"{_PREFIXES[kind]}-{profile}"


def shortened_warning(text: str) -> str:
    """``text`` cut to ``MAX_WARNING_BYTES`` of UTF-8 (ending with ``...`` when cut)."""
    if len(text.encode()) <= MAX_WARNING_BYTES:
        return text
    return text.encode()[: MAX_WARNING_BYTES - 3].decode(errors="ignore") + "..."


def configmap_metadata(
    kind: str, namespace: str, profile: str, warning: str | None = None
) -> dict[str, object]:
    """The metadata of the ConfigMap of ``profile``; ``warning``, when given, the text of the
    profile's warning annotation (shortened to ``MAX_WARNING_BYTES``)."""
    annotations = {PROFILE_NAME_ANNOTATION: profile}
    if warning:
        annotations[PROFILE_WARNING_ANNOTATION] = shortened_warning(warning)
    return {
        "name": configmap_name(kind, profile),
        "namespace": namespace,
        "labels": {
            PROFILE_KIND_LABEL: kind,
            PROFILE_ID_LABEL: profile_id(kind, profile),
            MANAGED_BY_LABEL: MANAGED_BY,
        },
        "annotations": annotations,
    }
