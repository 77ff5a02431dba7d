"""Fixtures of the node tests: real runc, a busybox bundle, a private SELinux policy store.

The helpers are plain modules next to the tests (``oci``, ``installing``, ``recording``);
pytest puts this folder on sys.path because it has no ``__init__.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from installing import Installer
from oci import Bundle, find_busybox, find_runc
from selinux_env import copy_store, find_semodule, install_base

from nodesync.selinux_batch import SemoduleInstaller


@pytest.fixture(scope="session")
def runc() -> str:
    return find_runc()


@pytest.fixture(scope="session")
def busybox() -> Path:
    return find_busybox()


@pytest.fixture
def bundle(tmp_path: Path, runc: str, busybox: Path) -> Bundle:
    return Bundle(tmp_path / "bundle", runc, busybox)


@pytest.fixture
def installer(tmp_path: Path) -> Installer:
    return Installer(tmp_path)


@pytest.fixture(scope="session")
def base_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private SELinux policy store with the shim and the udica templates installed (built once)."""
    semodule = find_semodule()
    root = copy_store(tmp_path_factory.mktemp("selinux-base") / "root")
    install_base(root, semodule, root.parent / "base-modules")
    return root


@pytest.fixture
def store(base_root: Path, tmp_path: Path) -> SemoduleInstaller:
    """A copy of ``base_root`` of the test's own, and a ``semodule`` installer into it."""
    root = tmp_path / "root"
    shutil.copytree(base_root, root, symlinks=True)
    return SemoduleInstaller(semodule=find_semodule(), root=root, reload=False)
