"""Fixtures of the node tests: real runc, a busybox bundle, nodesync run as a command.

The helpers are plain modules next to the tests (``oci``, ``installing``, ``recording``);
pytest puts this folder on sys.path because it has no ``__init__.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from installing import Installer
from oci import Bundle, find_busybox, find_runc


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
