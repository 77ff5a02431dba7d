"""Every child a hook returns is a valid Kubernetes object."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from hooks.cluster.contract import SyncRequest
from hooks.cluster.seccomp import controller
from tests.helpers.golden import GOLDEN

RESPONSES = sorted(GOLDEN.rglob("response.json"))


@pytest.mark.parametrize(
    "path", RESPONSES, ids=[str(p.parent.relative_to(GOLDEN)) for p in RESPONSES]
)
def test_children_validate_against_the_kubernetes_schema(path: Path) -> None:
    for child in json.loads(path.read_text()).get("children", []):
        kubernetes_validate.validate(child, kubernetes_validate.latest_version(), strict=True)
        assert len(child["metadata"]["name"]) <= 253


def test_some_responses_have_children() -> None:
    assert sum(len(json.loads(p.read_text()).get("children", [])) for p in RESPONSES) >= 10


def _example_profiles() -> list[dict[str, object]]:
    root = Path(__file__).parent.parent.parent / "examples"
    return [
        doc
        for path in sorted(root.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == "SeccompProfile"
    ]


def test_children_of_every_example_validate() -> None:
    profiles = _example_profiles()
    siblings = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in profiles}  # type: ignore[index]
    produced = 0
    for profile in profiles:
        request = SyncRequest.model_validate(
            {"parent": profile, "related": {controller.SECCOMP_PROFILES: siblings}}
        )
        response = controller.sync(request, "2026-01-01T00:00:00Z")
        assert response.status is not None and response.status["status"] == "Pending", (
            response.status
        )
        for child in response.children:
            kubernetes_validate.validate(child, kubernetes_validate.latest_version(), strict=True)
            produced += 1
    assert produced == len(profiles)
