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

from tests.helpers.controlplane import ControlPlane, ControlPlaneUnavailable, ensure_binaries
from tests.helpers.readme_install import install
from tests.helpers.unavailable import unavailable as any_test_unavailable


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


@pytest.fixture(scope="session")
def installed(control_plane: ControlPlane) -> ControlPlane:
    """Metacontroller's CRDs (as its install would add them), then our install as the README
    says (tests/helpers/readme_install.py)."""
    install(control_plane)
    return control_plane
