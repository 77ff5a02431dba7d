"""Which pods use a profile, read from the pods a hook receives as related objects."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_FINISHED = ("Succeeded", "Failed")
_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


def _security_contexts(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod.get("spec") or {}
    yield spec.get("securityContext") or {}
    for field in _CONTAINER_LISTS:
        for container in spec.get(field) or []:
            yield container.get("securityContext") or {}


def uses_seccomp_profile(pod: dict[str, Any], localhost_profile: str) -> bool:
    """Whether the pod or one of its containers runs under ``localhost_profile``."""
    for context in _security_contexts(pod):
        profile = context.get("seccompProfile") or {}
        if (
            profile.get("type") == "Localhost"
            and profile.get("localhostProfile") == localhost_profile
        ):
            return True
    legacy = f"localhost/{localhost_profile}"
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return any(
        value == legacy and (key == _POD_ANNOTATION or key.startswith(_CONTAINER_ANNOTATION))
        for key, value in annotations.items()
    )


def uses_selinux_type(pod: dict[str, Any], selinux_type: str) -> bool:
    """Whether the pod or one of its containers runs as SELinux type ``selinux_type``."""
    return any(
        (context.get("seLinuxOptions") or {}).get("type") == selinux_type
        for context in _security_contexts(pod)
    )


def active(pods: Iterable[dict[str, Any]], uses: Any) -> list[str]:
    """Sorted names of the pods, not yet finished, for which ``uses(pod)`` is true."""
    names = {
        (pod.get("metadata") or {}).get("name", "")
        for pod in pods
        if (pod.get("status") or {}).get("phase") not in _FINISHED and uses(pod)
    }
    return sorted(names)
