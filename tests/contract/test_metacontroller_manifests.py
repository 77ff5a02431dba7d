"""The install manifests: Metacontroller's objects validate against Metacontroller's own CRDs,
the rest against the Kubernetes schema, and the kustomization lists every file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from hooks.api.crdgen import all_kinds

KINDS = {kind.kind: kind for kind in all_kinds()}
ROOT = Path(__file__).parent.parent.parent
INSTALL = ROOT / "metacontroller" / "base"
# The shared reference data sits beside the checkout (SPO_SHARED moves it, for a worktree).
SHARED = Path(os.environ.get("SPO_SHARED") or ROOT.parent / "shared") / "data" / "metacontroller" / "metacontroller-crds-v1.yaml"


def _metacontroller_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    if not SHARED.exists():
        pytest.fail(f"Metacontroller's CRDs are missing: {SHARED}")
    schemas = {}
    for crd in yaml.safe_load_all(SHARED.read_text()):
        for version in crd["spec"]["versions"]:
            key = (crd["spec"]["names"]["kind"], f"{crd['spec']['group']}/{version['name']}")
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(INSTALL.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                docs.append((f"{path.relative_to(ROOT)}#{index}", doc))
    return docs


MANIFESTS = _manifests()


@pytest.mark.parametrize(("where", "doc"), MANIFESTS, ids=[where for where, _ in MANIFESTS])
def test_manifest_validates(where: str, doc: dict[str, Any]) -> None:
    if doc["apiVersion"].startswith("metacontroller.k8s.io/"):
        jsonschema.validate(doc, _metacontroller_schemas()[(doc["kind"], doc["apiVersion"])])
    elif doc["apiVersion"].startswith("cert-manager.io/"):  # kubernetes-validate has no schema for these
        assert doc["kind"] in {"Issuer", "Certificate"} and doc["spec"]
    elif doc["apiVersion"].startswith("security-profiles-operator.x-k8s.io/"):
        KINDS[doc["kind"]].model.model_validate(doc)
    else:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_metacontroller_schema_catches_a_bad_controller() -> None:
    controller = next(doc for _, doc in MANIFESTS if doc["kind"] == "CompositeController")
    bad = {**controller, "spec": {**controller["spec"], "hooks": {"sync": {"version": "v3"}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _metacontroller_schemas()[("CompositeController", controller["apiVersion"])])


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((INSTALL / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in INSTALL.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert on_disk <= listed
    assert "../../crds" in listed


def test_controllers_use_hook_v2_and_in_place_updates() -> None:
    controllers = [doc for _, doc in MANIFESTS if doc["kind"] == "CompositeController"]
    assert controllers
    for controller in controllers:
        for hook in controller["spec"]["hooks"].values():
            assert hook["version"] == "v2"
        for child in controller["spec"]["childResources"]:
            assert child["updateStrategy"]["method"] == "InPlace"
        assert controller["spec"]["generateSelector"] is True
