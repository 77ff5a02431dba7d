"""The controller ownerReference Metacontroller puts on a profile's ConfigMap, for tests that
make such ConfigMaps by hand (nodesync accepts a ConfigMap only from its profile)."""

from __future__ import annotations

from typing import Any

from hooks.api import GROUP
from hooks.api.configmaps import PROFILE_NAME_ANNOTATION
from hooks.api.nodestatuslabels import PROFILE_KIND_LABEL

VERSIONS = {
    "SeccompProfile": "v1beta1",
    "SelinuxProfile": "v1alpha2",
    "RawSelinuxProfile": "v1alpha2",
}


def owner_reference(kind: str, name: str, uid: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSIONS[kind]}",
        "kind": kind,
        "name": name,
        "uid": uid or f"uid-{kind}-{name}",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned(configmap: dict[str, Any], uid: str | None = None) -> dict[str, Any]:
    """``configmap`` (labelled and annotated as the hooks make it) owned by its profile."""
    metadata = configmap["metadata"]
    kind = metadata["labels"][PROFILE_KIND_LABEL]
    name = metadata["annotations"][PROFILE_NAME_ANNOTATION]
    metadata["ownerReferences"] = [owner_reference(kind, name, uid)]
    return configmap
