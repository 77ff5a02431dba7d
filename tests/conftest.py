"""Shared test options and fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.golden import Golden
from tests.helpers.hookserver import running_hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="rewrite the golden response files from the current code instead of comparing",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    """Compares an answer with its golden file (tests/helpers/golden.py), or rewrites the file
    when pytest runs with ``--regen-golden``."""
    return Golden(regen=bool(request.config.getoption("--regen-golden")))


@pytest.fixture(scope="session")
def hook_server() -> Iterator[str]:
    """The base URL of a real `spo hooks` (gunicorn, 2 workers) on loopback."""
    with running_hooks() as base:
        yield base
