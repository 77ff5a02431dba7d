"""The shared reference data the tests read: ``shared/data/`` beside the repository.

``shared/`` is not part of the repository. It is found as ``shared/`` in the folder that
holds the repository, or in a folder above that one (so that a git worktree such as
``<root>/wt/<name>/`` finds ``<root>/shared/``); ``SPO_SHARED_DIR`` names it explicitly.
``shared/data/README.md`` says what each file is and where it comes from.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENT = "SPO_SHARED_DIR"

METACONTROLLER_CRDS = "metacontroller/metacontroller-crds-v1.yaml"


def shared_folders() -> list[Path]:
    """Where ``shared/`` is looked for, in order."""
    named = os.environ.get(ENVIRONMENT)
    if named:
        return [Path(named)]
    return [folder / "shared" for folder in REPO.parents]


def shared_data(name: str) -> Path:
    """The file ``shared/data/<name>``; the test fails, saying where it looked, when it is
    missing."""
    looked = [folder / "data" / name for folder in shared_folders()]
    for path in looked:
        if path.is_file():
            return path
    where = "\n".join(f"  {path}" for path in looked)
    pytest.fail(
        f"the shared reference file data/{name} is missing; looked for it at:\n{where}\n"
        f"(set {ENVIRONMENT} to the folder that holds data/)",
        pytrace=False,
    )
