"""The install and the API, against the real kube-apiserver."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api import GROUP
from hooks.api.crdgen import all_kinds
from hooks.cluster.contract import SyncRequest
from hooks.cluster.seccomp import controller
from tests.helpers.controlplane import METACONTROLLER, ControlPlane

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent.parent
NAMESPACE = "security-profiles-operator"


def _docs(folder: Path) -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(folder.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and path.name != "kustomization.yaml"
    ]


def test_apply_k_installs_everything_server_side(installed: ControlPlane) -> None:
    crds = installed.kubectl_json("get", "crd")["items"]
    ours = {c["spec"]["names"]["kind"]: c for c in crds if c["spec"]["group"] == GROUP}
    assert set(ours) == {kind.kind for kind in all_kinds()}
    for crd in ours.values():
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True"
        assert conditions["NamesAccepted"] == "True"
        assert conditions.get("NonStructuralSchema", "False") == "False"
    for doc in _docs(REPO / "metacontroller" / "base"):
        namespace = ["-n", doc["metadata"]["namespace"]] if doc["metadata"].get("namespace") else []
        resource = doc["kind"].lower() + (
            "." + doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
        )
        got = installed.kubectl_json("get", resource, doc["metadata"]["name"], *namespace)
        assert got["metadata"]["name"] == doc["metadata"]["name"]
    controllers = installed.kubectl_json("get", "compositecontrollers.metacontroller.k8s.io")[
        "items"
    ]
    assert "seccompprofile-controller" in {c["metadata"]["name"] for c in controllers}


def test_every_example_is_accepted(installed: ControlPlane) -> None:
    examples = _docs(REPO / "examples")
    assert examples
    out = installed.kubectl("apply", "--server-side", "-R", "-f", str(REPO / "examples")).stdout
    for doc in examples:
        assert f"{doc['metadata']['name']} serverside-applied" in out
        kind = f"{doc['kind'].lower()}s.{GROUP}"
        stored = installed.kubectl_json(
            "get", kind, doc["metadata"]["name"], "-n", doc["metadata"]["namespace"]
        )
        assert stored["spec"] == doc["spec"]


INVALID = [
    (
        {"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]},
        "spec.defaultAction: Required value",
    ),
    (
        {"defaultAction": "SCMP_ACT_MAYBE"},
        'spec.defaultAction: Unsupported value: "SCMP_ACT_MAYBE"',
    ),
    (
        {"defaultAction": "SCMP_ACT_LOG", "architectures": ["SCMP_ARCH_Z80"]},
        "spec.architectures[0]: Unsupported value",
    ),
    (
        {"defaultAction": "SCMP_ACT_LOG", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]},
        "spec.syscalls[0].names",
    ),
    (
        {"defaultAction": "SCMP_ACT_LOG", "syscalls": [{"names": ["read"]}]},
        "spec.syscalls[0].action: Required value",
    ),
    (
        {
            "defaultAction": "SCMP_ACT_LOG",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": -1}],
        },
        "spec.syscalls[0].errnoRet",
    ),
    (
        {
            "defaultAction": "SCMP_ACT_LOG",
            "syscalls": [
                {
                    "names": ["read"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "op": "SCMP_CMP_EQ"}] * 7,
                }
            ],
        },
        "spec.syscalls[0].args: Too many",
    ),
    (
        {"defaultAction": "SCMP_ACT_LOG", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]},
        "spec.flags[0]: Unsupported value",
    ),
    (
        {"defaultAction": "SCMP_ACT_LOG", "defaultAcion": "SCMP_ACT_LOG"},
        "spec.defaultAcion: field not declared in schema",
    ),
]


@pytest.mark.parametrize(("spec", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_profile_is_rejected_naming_the_field(
    installed: ControlPlane, spec: dict[str, Any], message: str
) -> None:
    profile = {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": "invalid", "namespace": NAMESPACE},
        "spec": spec,
    }
    result = installed.kubectl(
        "apply", "--server-side", "-f", "-", input=json.dumps(profile), check=False
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_children_of_every_example_pass_a_server_side_dry_run(installed: ControlPlane) -> None:
    profiles = [d for d in _docs(REPO / "examples") if d["kind"] == "SeccompProfile"]
    siblings = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in profiles}
    children = []
    for profile in profiles:
        request = SyncRequest.model_validate(
            {"parent": profile, "related": {controller.SECCOMP_PROFILES: siblings}}
        )
        for child in controller.sync(request, "2026-01-01T00:00:00Z").children:
            # owned by its profile and applied by Metacontroller, as the admission policy wants
            owner = {
                "apiVersion": profile["apiVersion"],
                "kind": profile["kind"],
                "name": profile["metadata"]["name"],
                "uid": "dry-run",
                "controller": True,
            }
            children.append(
                {**child, "metadata": {**child["metadata"], "ownerReferences": [owner]}}
            )
    assert len(children) == len(profiles)
    out = installed.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        *METACONTROLLER,
        "-f",
        "-",
        input=yaml.safe_dump_all(children),
    ).stdout
    assert out.count("serverside-applied (server dry run)") == len(children)
