"""What a test does when a system component it needs is missing.

Under CI (``CI`` set), where ``.ci/run`` installs every component, a missing
one is a failure; elsewhere the test skips, saying what is missing.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
