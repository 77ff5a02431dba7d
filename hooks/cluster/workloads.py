"""Which pods use a profile, read from the pods a hook receives as related objects."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_FINISHED = ("Succeeded", "Failed")
_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"
_LEGACY_LOCALHOST = "localhost/"


def _security_contexts(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod.get("spec") or {}
    yield spec.get("securityContext") or {}
    for field in _CONTAINER_LISTS:
        for container in spec.get(field) or []:
            yield container.get("securityContext") or {}


def seccomp_profiles_used(pod: dict[str, Any]) -> set[str]:
    """The Localhost seccomp profiles the pod or its containers run under (their
    ``localhostProfile``, also from the legacy ``localhost/<path>`` annotations)."""
    found = set()
    for context in _security_contexts(pod):
        profile = context.get("seccompProfile") or {}
        if profile.get("type") == "Localhost" and isinstance(profile.get("localhostProfile"), str):
            found.add(profile["localhostProfile"])
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    for key, value in annotations.items():
        legacy = key == _POD_ANNOTATION or key.startswith(_CONTAINER_ANNOTATION)
        if legacy and isinstance(value, str) and value.startswith(_LEGACY_LOCALHOST):
            found.add(value[len(_LEGACY_LOCALHOST) :])
    return found


def uses_seccomp_profile(pod: dict[str, Any], localhost_profile: str) -> bool:
    """Whether the pod or one of its containers runs under ``localhost_profile``."""
    return localhost_profile in seccomp_profiles_used(pod)


def selinux_types_used(pod: dict[str, Any]) -> set[str]:
    """The SELinux types the pod or its containers run as."""
    found = set()
    for context in _security_contexts(pod):
        selinux_type = (context.get("seLinuxOptions") or {}).get("type")
        if isinstance(selinux_type, str) and selinux_type:
            found.add(selinux_type)
    return found


def uses_selinux_type(pod: dict[str, Any], selinux_type: str) -> bool:
    """Whether the pod or one of its containers runs as SELinux type ``selinux_type``."""
    return selinux_type in selinux_types_used(pod)


def active(pods: Iterable[dict[str, Any]], uses: Any) -> list[str]:
    """Sorted names of the pods, not yet finished, for which ``uses(pod)`` is true."""
    names = {
        (pod.get("metadata") or {}).get("name", "")
        for pod in pods
        if (pod.get("status") or {}).get("phase") not in _FINISHED and uses(pod)
    }
    return sorted(names)
