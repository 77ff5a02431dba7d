"""Fixtures of the node tests: real runc, a busybox bundle, a private SELinux policy store.

The helpers are in ``tests.helpers`` (``runc_bundle``, ``nodesync_once``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nodesync.selinux.batch import SemoduleInstaller
from tests.helpers.nodesync_once import Installer
from tests.helpers.runc_bundle import Bundle, find_busybox, find_runc
from tests.helpers.selinux_env import copy_store, find_semodule, install_base


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
    """A private SELinux policy store with the shim and the udica templates installed (built
    once)."""
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
