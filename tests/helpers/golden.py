"""The golden cases: one folder per case under ``tests/golden/<folder>/``.

A case holds the ``request.json`` a hook gets and the ``response.json`` it must answer (and,
for some folders, more files: the webhooks' ``table.json`` and ``patch.json``). The modules
that run the cases of a folder are ``tests/unit/test_golden_<folder>.py``; they list the
cases with :func:`cases`, read them with :func:`request_of` and :func:`response_of`, and
compare an answer with the ``golden`` fixture (tests/conftest.py), which rewrites the files
instead when pytest runs with ``--regen-golden``. Review the diff after a rewrite.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
REQUEST = "request.json"
RESPONSE = "response.json"


def golden_folder(name: str) -> Path:
    """The folder of a group of cases, e.g. ``binding/admission``."""
    folder = GOLDEN / name
    if not folder.is_dir():
        raise FileNotFoundError(f"no golden cases: {folder} is not a folder")
    return folder


def cases(folder: Path) -> list[str]:
    """The names of the cases in ``folder``, sorted: its subfolders with a ``request.json``."""
    return sorted(case.name for case in folder.iterdir() if (case / REQUEST).exists())


def request_of(case: Path) -> dict[str, Any]:
    """The request of the case in folder ``case``, a fresh copy each time."""
    return dict(json.loads((case / REQUEST).read_text()))


def response_of(case: Path) -> dict[str, Any]:
    """The golden response of the case in folder ``case``."""
    return dict(json.loads((case / RESPONSE).read_text()))


def _write(path: Path, document: Any, sort_keys: bool) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=sort_keys) + "\n")


@dataclass(frozen=True)
class Golden:
    """Compares answers with the golden files, or rewrites those files (``--regen-golden``)."""

    regen: bool

    def check(self, case: Path, got: Any, name: str = RESPONSE) -> None:
        """``got`` is what the file ``name`` of ``case`` holds (written first when regenerating)."""
        expected = case / name
        if self.regen:
            _write(expected, got, sort_keys=True)
        assert got == json.loads(expected.read_text())

    def check_optional(self, case: Path, got: Any | None, name: str) -> None:
        """Like :meth:`check` for a file that exists only when there is something (``got`` is
        not None): a JSONPatch, kept in the order it is sent."""
        expected = case / name
        if self.regen:
            expected.unlink(missing_ok=True)
            if got is not None:
                _write(expected, got, sort_keys=False)
        assert got == (json.loads(expected.read_text()) if expected.exists() else None)
