"""Fixtures of the end-to-end tests: a real control plane on loopback.

`control_plane` (session) builds etcd, kube-apiserver and kubectl when they are
not cached yet (tests/e2e/controlplane/build.sh), starts them, and stops them
at the end of the session whatever the tests did. When the control plane
cannot be had (no Go, no openssl, build failure) the tests skip with the
reason, or fail when the CI environment variable is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from controlplane import ControlPlane, ControlPlaneUnavailable, ensure_binaries
from unavailable import unavailable as any_test_unavailable


def unavailable(reason: str) -> NoReturn:
    any_test_unavailable(f"control plane unavailable: {reason}")


@pytest.fixture(scope="session")
def control_plane_binaries() -> Path:
    """The folder with etcd, kube-apiserver and kubectl of the pinned versions."""
    try:
        return ensure_binaries()
    except ControlPlaneUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def control_plane(control_plane_binaries: Path) -> Iterator[ControlPlane]:
    """A running etcd + kube-apiserver shared by the session; admin kubeconfig
    at `.kubeconfig`, URL at `.server`, `.kubectl(...)` runs the cached kubectl."""
    plane = ControlPlane(control_plane_binaries)
    try:
        plane.start()
    except ControlPlaneUnavailable as exc:
        unavailable(str(exc))
    try:
        yield plane
    finally:
        plane.stop()


REPO = Path(__file__).resolve().parent.parent.parent
# The project's shared folder beside the clone (or beside the folder of its work trees).
METACONTROLLER_CRDS = next(
    (
        candidate
        for folder in REPO.parents
        if (candidate := folder / "shared" / "data" / "metacontroller" / "metacontroller-crds-v1.yaml").exists()
    ),
    REPO.parent / "shared" / "data" / "metacontroller" / "metacontroller-crds-v1.yaml",
)


@pytest.fixture(scope="session")
def installed(control_plane: ControlPlane) -> ControlPlane:
    """Metacontroller's CRDs (as its install would add them), then our install as the README says."""
    if not METACONTROLLER_CRDS.exists():
        pytest.fail(f"Metacontroller's CRDs are missing: {METACONTROLLER_CRDS}")
    control_plane.kubectl("apply", "--server-side", "-f", str(METACONTROLLER_CRDS))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    # cert-manager is not installed here: stand-in CRDs let its Issuer and Certificate be stored.
    control_plane.kubectl("apply", "--server-side", "-f", str(Path(__file__).parent / "data" / "cert-manager-stand-in-crds.yaml"))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    # The README's install: the CRDs, then (once established) everything else, the spod included.
    control_plane.kubectl("apply", "--server-side", "-k", str(REPO / "crds"))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=security-profiles-operator"
    )
    control_plane.kubectl("apply", "--server-side", "-k", str(REPO / "metacontroller"), timeout=120)
    return control_plane
