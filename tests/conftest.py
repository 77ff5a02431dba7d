"""Shared test options."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.hookserver import running_hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="rewrite the golden response files from the current code instead of comparing",
    )


@pytest.fixture(scope="session")
def hook_server() -> Iterator[str]:
    """The base URL of a real `spo hooks` (gunicorn, 2 workers) on loopback."""
    with running_hooks() as base:
        yield base
