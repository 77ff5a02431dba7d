"""Every child a hook returns is a valid Kubernetes object."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest

GOLDEN = Path(__file__).parent.parent / "golden"
RESPONSES = sorted(GOLDEN.rglob("response.json"))


@pytest.mark.parametrize("path", RESPONSES, ids=[str(p.parent.relative_to(GOLDEN)) for p in RESPONSES])
def test_children_validate_against_the_kubernetes_schema(path: Path) -> None:
    for child in json.loads(path.read_text()).get("children", []):
        kubernetes_validate.validate(child, kubernetes_validate.latest_version(), strict=True)
        assert len(child["metadata"]["name"]) <= 253


def test_some_responses_have_children() -> None:
    assert sum(len(json.loads(p.read_text()).get("children", [])) for p in RESPONSES) >= 10
