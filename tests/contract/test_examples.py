"""Every example validates against its CRD and parses with the API models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from hooks.api.crdgen import all_kinds
from hooks.command import crdfiles

ROOT = Path(__file__).parent.parent.parent
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))
KINDS = {kind.kind: kind for kind in all_kinds()}


def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for name in crdfiles.files():
        crd = yaml.safe_load((ROOT / "crds" / name).read_text())
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            found[(crd["spec"]["names"]["kind"], api_version)] = version["schema"][
                "openAPIV3Schema"
            ]
    return found


SCHEMAS = _schemas()


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in EXAMPLES:
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                docs.append((f"{path.relative_to(ROOT)}#{index}", doc))
    return docs


DOCUMENTS = _documents()


def test_there_are_examples_of_the_seed_profiles() -> None:
    names = {doc["metadata"]["name"] for _, doc in DOCUMENTS}
    assert {
        "profile-block-all",
        "profile-complain-unsafe",
        "profile-allow-unsafe",
        "profile-complain-block-high-risk",
    } <= names
    assert any(
        doc["spec"].get("baseProfileName")
        for _, doc in DOCUMENTS
        if doc["kind"] == "SeccompProfile"
    )


@pytest.mark.parametrize(("where", "doc"), DOCUMENTS, ids=[where for where, _ in DOCUMENTS])
def test_example_validates_against_its_crd(where: str, doc: dict[str, Any]) -> None:
    schema = SCHEMAS[(doc["kind"], doc["apiVersion"])]
    jsonschema.validate(doc, schema)
    KINDS[doc["kind"]].model.model_validate(doc)


def test_crd_schema_rejects_what_the_api_server_would() -> None:
    schema = SCHEMAS[("SeccompProfile", "security-profiles-operator.x-k8s.io/v1beta1")]
    good = {
        "apiVersion": "x",
        "kind": "SeccompProfile",
        "metadata": {},
        "spec": {"defaultAction": "SCMP_ACT_LOG"},
    }
    jsonschema.validate(good, schema)
    for bad_spec in (
        {},
        {"defaultAction": "SCMP_ACT_MAYBE"},
        {"defaultAction": "SCMP_ACT_LOG", "architectures": ["SCMP_ARCH_Z80"]},
        {"defaultAction": "SCMP_ACT_LOG", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]},
        {"defaultAction": "SCMP_ACT_LOG", "syscalls": [{"names": ["read"]}]},
        {
            "defaultAction": "SCMP_ACT_LOG",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": -1}],
        },
        {"defaultAction": "SCMP_ACT_LOG", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**good, "spec": bad_spec}, schema)
