"""The contract between the hooks and nodesync: how a profile travels to the nodes.

A profile controller's only child for the nodes is a ConfigMap in the profile's
namespace. nodesync watches ConfigMaps by the ``PROFILE_KIND_LABEL`` label and
writes ``data[PROFILE_KEY]`` byte for byte to the node; it never interprets it.

- name: ``<prefix>-<profile name>`` (``seccomp-`` or ``selinux-``), so that a
  SeccompProfile and a SelinuxProfile of the same name do not collide;
- labels: ``spo.x-k8s.io/profile-kind`` (SeccompProfile, SelinuxProfile,
  RawSelinuxProfile) and ``spo.x-k8s.io/profile-id``;
- annotations: ``spo.x-k8s.io/profile-name``, the profile's own name (label
  values are limited to 63 characters, names are not);
- owner: Metacontroller makes the profile the ConfigMap's controller
  ownerReference. nodesync accepts a ConfigMap only when that owner is a profile
  of the labelled kind whose name the ConfigMap's name and annotation spell
  (``nodesync.profiles.owner_problem``), and only Metacontroller may write these
  ConfigMaps at all (the ValidatingAdmissionPolicy ``spo-profile-configmaps``);
- data: ``profile.json`` for seccomp (the OCI ``linux.seccomp`` object),
  ``policy.cil`` for SELinux.
"""

from __future__ import annotations

from hooks.api.nodestatus import PROFILE_ID_LABEL, PROFILE_KIND_LABEL, profile_id

PROFILE_NAME_ANNOTATION = "spo.x-k8s.io/profile-name"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "security-profiles-operator"

SECCOMP_KIND = "SeccompProfile"
SECCOMP_KEY = "profile.json"
SELINUX_KEY = "policy.cil"

_PREFIX = {
    "SeccompProfile": "seccomp",
    "SelinuxProfile": "selinux",
    "RawSelinuxProfile": "rawselinux",
}
PROFILE_KINDS = tuple(_PREFIX)  # the values of the profile-kind label
MAX_CONFIGMAP_BYTES = 1024 * 1024 - 4096  # etcd's 1 MiB request limit, less room for metadata


def configmap_name(kind: str, profile: str) -> str:
    return f"{_PREFIX[kind]}-{profile}"


def configmap_metadata(kind: str, namespace: str, profile: str) -> dict[str, object]:
    return {
        "name": configmap_name(kind, profile),
        "namespace": namespace,
        "labels": {
            PROFILE_KIND_LABEL: kind,
            PROFILE_ID_LABEL: profile_id(kind, profile),
            MANAGED_BY_LABEL: MANAGED_BY,
        },
        "annotations": {PROFILE_NAME_ANNOTATION: profile},
    }
