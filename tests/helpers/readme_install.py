"""The operator installed on a bare control plane as the README says, with what a cluster
would already have: Metacontroller's CRDs and identity (as its own install adds them), and
stand-in CRDs for cert-manager's Issuer and Certificate (cert-manager is not run here)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.controlplane import ControlPlane
from tests.helpers.shared import METACONTROLLER_CRDS, shared_data

REPO = Path(__file__).resolve().parents[2]
E2E_DATA = REPO / "tests" / "e2e" / "data"


def install(plane: ControlPlane) -> None:
    plane.kubectl("apply", "--server-side", "-f", str(shared_data(METACONTROLLER_CRDS)))
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    # Metacontroller's identity: the tests write Metacontroller's children as it.
    plane.kubectl("apply", "--server-side", "-f", str(E2E_DATA / "metacontroller-identity.yaml"))
    plane.kubectl("apply", "--server-side", "-f", str(E2E_DATA / "cert-manager-stand-in-crds.yaml"))
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    # The README's install: the CRDs, then (once established) everything else, the spod included.
    plane.kubectl("apply", "--server-side", "-k", str(REPO / "crds"))
    plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=security-profiles-operator",
    )
    plane.kubectl("apply", "--server-side", "-k", str(REPO / "metacontroller"), timeout=120)
