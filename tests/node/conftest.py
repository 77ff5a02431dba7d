"""Fixtures of the node tests: real runc, a busybox bundle, nodesync run as a command.

The helpers are in ``tests.helpers`` (``runc_bundle``, ``nodesync_once``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.nodesync_once import Installer
from tests.helpers.runc_bundle import Bundle, find_busybox, find_runc


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
