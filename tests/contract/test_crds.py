"""The CRDs: up to date with the models, structural, and accepted by the Kubernetes schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hooks.command import crdfiles

ROOT = Path(__file__).parent.parent.parent
CRDS = ROOT / "crds"
_FORBIDDEN = ("$ref", "anyOf", "oneOf", "allOf", "not", "nullable")


def _crds() -> list[dict[str, Any]]:
    return [yaml.safe_load((CRDS / name).read_text()) for name in crdfiles.files()]


def test_crds_folder_is_up_to_date() -> None:
    expected = crdfiles.folder()
    on_disk = {path.name: path.read_text() for path in CRDS.iterdir() if path.suffix == ".yaml"}
    assert on_disk == expected, "crds/ is out of date: run `spo crds --out crds`"


def _walk(node: dict[str, Any], path: str) -> list[str]:
    problems = []
    for key in _FORBIDDEN:
        if key in node:
            problems.append(f"{path}: {key}")
    if (
        "type" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and not node.get("x-kubernetes-int-or-string")
    ):
        problems.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties beside additionalProperties")
    if "default" in node and node["default"] is None:
        problems.append(f"{path}: null default")
    for name, sub in (node.get("properties") or {}).items():
        problems += _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        problems += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _walk(node["additionalProperties"], f"{path}{{}}")
    return problems


@pytest.mark.parametrize("name", sorted(crdfiles.files()))
def test_crd_schema_is_structural(name: str) -> None:
    crd = yaml.safe_load((CRDS / name).read_text())
    for version in crd["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        assert schema["type"] == "object"
        assert _walk(schema, version["name"]) == []
        # Every kind has the status subresource but the node statuses, whose ``status`` is a
        # string written with the object, as in the Go operator.
        node_status = crd["spec"]["names"]["kind"] == "SecurityProfileNodeStatus"
        assert version["subresources"] == ({} if node_status else {"status": {}})


@pytest.mark.parametrize("name", sorted(crdfiles.files()))
def test_crd_is_a_valid_kubernetes_object(name: str) -> None:
    crd = yaml.safe_load((CRDS / name).read_text())
    kubernetes_validate.validate(crd, kubernetes_validate.latest_version(), strict=True)


def test_seccompprofile_crd_matches_the_go_operator() -> None:
    crd = yaml.safe_load(
        (CRDS / "security-profiles-operator.x-k8s.io_seccompprofiles.yaml").read_text()
    )
    assert crd["spec"]["names"]["shortNames"] == ["sp"]
    assert crd["spec"]["scope"] == "Namespaced"
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    assert versions["v1beta1"]["storage"] is True
    assert versions["v1alpha1"]["served"] is True and versions["v1alpha1"]["storage"] is False
    assert versions["v1alpha1"]["schema"] == versions["v1beta1"]["schema"]
    columns = {c["name"]: c for c in versions["v1beta1"]["additionalPrinterColumns"]}
    assert columns["Status"]["jsonPath"] == ".status.status"
    assert columns["Age"]["type"] == "date"
    assert columns["LocalhostProfile"] == {
        "name": "LocalhostProfile",
        "type": "string",
        "jsonPath": ".status.localhostProfile",
        "priority": 10,
    }
    spec = versions["v1beta1"]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["defaultAction"]
    assert "SCMP_ACT_LOG" in spec["properties"]["defaultAction"]["enum"]
    syscall = spec["properties"]["syscalls"]["items"]
    assert syscall["required"] == ["names", "action"]
    assert syscall["properties"]["args"]["maxItems"] == 6
    assert set(spec["properties"]) >= {
        "baseProfileName",
        "defaultAction",
        "architectures",
        "listenerPath",
        "listenerMetadata",
        "syscalls",
        "flags",
        "disabled",
    }
