"""SeccompProfiles on the real node, as the node tests make, name and wait for them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from tests.e2e.kubelet.busybox_pods import SECCOMP_ROOT
from tests.e2e.kubelet.operator_install import eventually
from tests.helpers.controlplane import ControlPlane

GROUP = "security-profiles-operator.x-k8s.io"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def seccomp_profile(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def profile_file(namespace: str, name: str) -> Path:
    """Where nodesync writes the profile on this node."""
    return SECCOMP_ROOT / "operator" / namespace / f"{name}.json"


def localhost(namespace: str, name: str) -> str:
    """The profile as a pod's ``localhostProfile`` names it."""
    return f"operator/{namespace}/{name}.json"


def profile_status(plane: ControlPlane, namespace: str, name: str) -> str:
    """The profile's ``status.status``, or ``<absent>`` when it does not exist."""
    found = plane.kubectl(
        "get", f"seccompprofiles.{GROUP}", name, "-n", namespace, "-o", "json", check=False
    )
    if found.returncode != 0:
        return "<absent>"
    return str((json.loads(found.stdout).get("status") or {}).get("status", ""))


def wait_installed(
    plane: ControlPlane, namespace: str, *names: str, timeout: float = 180.0
) -> None:
    for name in names:

        def installed(name: str = name) -> bool:
            return profile_status(plane, namespace, name) == "Installed"

        eventually(installed, timeout=timeout, what=f"SeccompProfile {namespace}/{name} Installed")
