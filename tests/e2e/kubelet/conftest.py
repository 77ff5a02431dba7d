"""Fixtures of the node tests: a one-node cluster on this machine, and the operator installed on it.

- ``node_bin_dir`` (session): every Kubernetes binary, built by controlplane/build.sh if missing.
- ``node_images`` (session): the archives of the pause image, the operator's image (built from
  the project's Dockerfile) and the busybox workload image (``tools/image/build.py``, cached).
- ``cluster`` (package: it stops when the last node test is done, not at the end of the whole
  session): ``kubenode.node_cluster`` with those images imported; one per machine (a file
  lock). Its teardown fails (``MachineChanged``) when the machine is not as it was.
- ``operator`` (package): ``operator_install.installed``: the operator installed with
  ``kubectl apply -k``, Metacontroller's part played by the emulated loop
  (``tests/helpers/metacontroller_loop``) in the background.

When a component is missing (Go, containerd, buildah, ...), the tests skip with the reason, or
fail when the CI environment variable is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from tests.e2e.kubelet.operator_install import REPO, Operator, installed
from tests.e2e.kubenode import Cluster, node_binaries, node_cluster
from tests.helpers.controlplane import ControlPlaneStartError, ControlPlaneUnavailable
from tests.helpers.unavailable import unavailable as any_test_unavailable

IMAGE_TOOL = REPO / "tools" / "image" / "build.py"


def unavailable(reason: str) -> NoReturn:
    any_test_unavailable(f"node unavailable: {reason}")


@dataclass(frozen=True)
class NodeImages:
    pause: Path
    operator: Path
    busybox: Path


def _build_image(*args: str) -> Path:
    cache = Path(os.environ.get("CONTROLPLANE_CACHE") or REPO / ".cache" / "controlplane")
    log = cache / "image-build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as err:
        proc = subprocess.run(
            [sys.executable, str(IMAGE_TOOL), *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=3600,
            check=False,
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        unavailable(f"{IMAGE_TOOL} {' '.join(args)} failed ({proc.returncode}); {log}:\n{tail}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def node_bin_dir() -> Path:
    try:
        return node_binaries()
    except ControlPlaneUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def node_images(node_bin_dir: Path) -> NodeImages:
    return NodeImages(
        pause=_build_image("pause", str(node_bin_dir / "pause")),
        operator=_build_image("operator"),
        busybox=_build_image("busybox"),
    )


@pytest.fixture(scope="package")
def cluster(node_bin_dir: Path, node_images: NodeImages) -> Iterator[Cluster]:
    """The one-node cluster. Its teardown fails (MachineChanged) when the machine is not as
    found."""
    images = (node_images.pause, node_images.operator, node_images.busybox)
    try:
        with node_cluster(node_bin_dir, images) as running:
            yield running
    except (ControlPlaneUnavailable, ControlPlaneStartError) as exc:
        unavailable(str(exc))


@pytest.fixture(scope="package")
def operator(cluster: Cluster) -> Iterator[Operator]:
    with installed(cluster) as running:
        yield running
