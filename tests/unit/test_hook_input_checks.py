"""What the hooks refuse of a request that parses: names and namespaces that are not DNS-1123,
errnoRet past what the kernel keeps, a listenerPath that is not absolute and clean; and the
examples of wrong shapes that used to be answered with a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from hooks.api import names
from hooks.cluster.app import create_app, create_webhook_app
from hooks.cluster.contract import CustomizeRequest, SyncRequest
from hooks.cluster.recording import controller as recording_controller
from hooks.cluster.seccomp import controller as seccomp
from hooks.cluster.seccomp.validation import MAX_ERRNO_RET
from hooks.cluster.selinux import controller as selinux
from hooks.cluster.spod import controller as spod_controller
from tests.helpers.fixed_tables import FixedTables

NOW = "2026-01-01T00:00:00Z"
HOSTILE_NAMES = [
    "../../etc/x",
    "a/b",
    "x\x00y",
    "..",
    ".",
    "A",
    "a_b",
    "-a",
    "a-",
    "é",
    "a" * 254,
    "a\n",
    "",
]
HOSTILE_NAMESPACES = ["../x", "a/b", "x\x00y", "a.b", "a" * 64, "A", ""]


def _seccomp(name: Any = "p", namespace: Any = "ns", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"defaultAction": "SCMP_ACT_ERRNO", **spec},
    }


def _sync(parent: dict[str, Any], **more: Any) -> dict[str, Any]:
    response = seccomp.sync(SyncRequest.model_validate({"parent": parent, **more}), NOW)
    return response.to_wire()


@pytest.fixture
def client() -> FlaskClient:
    return create_app({"TESTING": True}).test_client()


# -- names and namespaces -----------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_seccomp_profile_with_a_bad_name_is_an_error_without_child_or_path(name: str) -> None:
    installed = {
        "metadata": {"name": f"seccomp-{name}", "namespace": "ns"},
        "data": {"profile.json": "{}"},
    }
    answer = _sync(_seccomp(name=name), children={"ConfigMap.v1": {"x": installed}})
    assert answer["children"] == []
    status = answer["status"]
    assert status["status"] == "Error"
    assert "path" not in status and "localhostProfile" not in status
    message = status["conditions"][0]["message"]
    assert message.startswith("metadata.name:") and "DNS-1123 subdomain" in message
    assert len(message) < 400  # the name is quoted cut short


@pytest.mark.parametrize("namespace", HOSTILE_NAMESPACES)
def test_a_seccomp_profile_in_a_bad_namespace_is_an_error_naming_the_field(namespace: str) -> None:
    answer = _sync(_seccomp(namespace=namespace))
    assert answer["children"] == []
    assert answer["status"]["status"] == "Error"
    assert answer["status"]["conditions"][0]["message"].startswith("metadata.namespace:")


def test_dns_names_are_accepted() -> None:
    assert names.name_problem("a.b-c.0", "team-a") is None
    assert names.name_problem("a" * 253, "n" * 63) is None
    answer = _sync(_seccomp(name="web.v2", namespace="team-a"))
    assert answer["children"][0]["metadata"]["name"] == "seccomp-web.v2"


@pytest.mark.parametrize("kind", [selinux.SELINUX_KIND, selinux.RAW_KIND])
@pytest.mark.parametrize("name", ["../../etc/x", "a/b", "x\x00y"])
def test_a_selinux_profile_with_a_bad_name_is_an_error_without_usage(kind: str, name: str) -> None:
    spec = (
        {"inherit": [{"name": "container"}]}
        if kind == selinux.SELINUX_KIND
        else {"policy": "(allow process self (file (read)))"}
    )
    parent = {"kind": kind, "metadata": {"name": name, "namespace": "ns"}, "spec": spec}
    answer = selinux.sync(SyncRequest.model_validate({"parent": parent}), NOW, kind).to_wire()
    assert answer["children"] == []
    assert answer["status"]["status"] == "Error"
    assert "usage" not in answer["status"]
    assert answer["status"]["conditions"][0]["message"].startswith("metadata.name:")


@pytest.mark.parametrize(
    "route",
    ["seccompprofile", "selinuxprofile", "rawselinuxprofile", "profilebinding", "profilerecording"],
)
def test_customize_of_a_bad_name_asks_for_nothing(client: FlaskClient, route: str) -> None:
    parent = {"metadata": {"name": "a/b", "namespace": "ns"}, "spec": {"kind": "SeccompProfile"}}
    response = client.post(f"/{route}/customize", json={"parent": parent})
    assert response.status_code == 200
    assert response.get_json()["relatedResources"] == []


def test_a_recording_with_a_bad_name_is_invalid() -> None:
    parent = {
        "metadata": {"name": "../x", "namespace": "ns"},
        "spec": {
            "kind": "SeccompProfile",
            "recorder": "logs",
            "podSelector": {"matchLabels": {"a": "b"}},
        },
    }
    answer = recording_controller.sync(
        SyncRequest.model_validate({"parent": parent}), NOW
    ).to_wire()
    assert answer["status"]["conditions"][0]["message"].startswith("metadata.name:")


def test_a_binding_to_a_profile_with_a_bad_name_is_invalid(client: FlaskClient) -> None:
    parent = {
        "metadata": {"name": "b", "namespace": "ns"},
        "spec": {"profileRef": {"kind": "SeccompProfile", "name": "../../x"}, "image": "nginx"},
    }
    body = client.post("/profilebinding/sync", json={"parent": parent}).get_json()
    assert body["status"]["conditions"][0]["message"].startswith("spec.profileRef.name:")


def test_a_spod_with_a_bad_name_has_no_daemonset() -> None:
    parent = {"metadata": {"name": "a/b", "namespace": "security-profiles-operator"}, "spec": {}}
    answer = spod_controller.sync(SyncRequest.model_validate({"parent": parent}), NOW).to_wire()
    assert answer["children"] == []
    assert answer["status"]["state"] == "ERROR"


def test_a_huge_name_is_neither_logged_nor_answered_whole(caplog: pytest.LogCaptureFixture) -> None:
    from hooks.logs import JSONFormatter

    name = "a" * 20_000_000
    answer = _sync(_seccomp(name=name))
    assert answer["status"]["status"] == "Error"
    assert len(json.dumps(answer)) < 2_000
    [record] = [r for r in caplog.records if r.name == "hooks.cluster.seccomp.controller"]
    assert len(JSONFormatter().format(record)) < 5_000


# -- errnoRet and listenerPath ------------------------------------------------------------------


def _rule(action: str, errno: int) -> dict[str, Any]:
    return {"names": ["mkdir"], "action": action, "errnoRet": errno}


@pytest.mark.parametrize(
    ("action", "errno", "ok"),
    [
        ("SCMP_ACT_ERRNO", 0, True),
        ("SCMP_ACT_ERRNO", 1, True),
        ("SCMP_ACT_ERRNO", 4095, True),  # MAX_ERRNO: the most the kernel returns
        ("SCMP_ACT_ERRNO", 4096, False),  # capped to 4095 by the kernel
        (
            "SCMP_ACT_ERRNO",
            65536,
            False,
        ),  # past SECCOMP_RET_DATA: would become errno 0, a fake success
        ("SCMP_ACT_ERRNO", 2**40, False),
        ("SCMP_ACT_TRACE", 32767, True),
        ("SCMP_ACT_TRACE", 32768, False),  # runc's signed 16 bits
        ("SCMP_ACT_TRACE", 2**40, False),
    ],
)
def test_errno_ret_within_what_the_kernel_keeps(action: str, errno: int, ok: bool) -> None:
    answer = _sync(_seccomp(syscalls=[_rule(action, errno)]))
    if ok:
        assert answer["children"], answer["status"]
    else:
        assert answer["children"] == []
        message = answer["status"]["conditions"][0]["message"]
        assert message == (
            f"spec.syscalls[0].errnoRet: at most {MAX_ERRNO_RET[seccomp.api.Action(action)]} "
            f"with {action}, got {errno}"
        )


def test_errno_ret_of_a_base_profile_is_checked_too() -> None:
    base = _seccomp(name="base", syscalls=[_rule("SCMP_ACT_ERRNO", 70000)])
    parent = _seccomp(baseProfileName="base")
    answer = _sync(
        parent,
        related={"SeccompProfile.security-profiles-operator.x-k8s.io/v1beta1": {"ns/base": base}},
    )
    assert answer["status"]["conditions"][0]["reason"] == "InvalidBaseProfile"


@pytest.mark.parametrize(
    "path",
    [
        "/../../etc/passwd",
        "relative/agent.sock",
        "/run/../etc/x",
        "/run/./agent.sock",
        "/run//agent.sock",
        "/run/agent/",
        "/run/a\x00b",
        "/",
        "",
        "/" + "a" * 107,
    ],
)
def test_listener_path_must_be_absolute_and_clean(path: str) -> None:
    answer = _sync(_seccomp(defaultAction="SCMP_ACT_NOTIFY", listenerPath=path))
    assert answer["children"] == []
    message = answer["status"]["conditions"][0]["message"]
    assert message.startswith("spec.listenerPath:"), message


def test_a_clean_listener_path_is_installed() -> None:
    answer = _sync(
        _seccomp(defaultAction="SCMP_ACT_NOTIFY", listenerPath="/run/seccomp-agent/agent.sock")
    )
    assert answer["children"]
    assert "/run/seccomp-agent/agent.sock" in answer["children"][0]["data"]["profile.json"]


# -- the wrong shapes the issue found answered with a 500 ----------------------------------------


@pytest.mark.parametrize(
    ("route", "body", "says"),
    [
        (
            "/seccompprofile/sync",
            {"parent": {"metadata": "x"}},
            "parent.metadata: Input should be a valid dictionary",
        ),
        (
            "/seccompprofile/sync",
            {"parent": _seccomp(), "children": {"ConfigMap.v1": {"x": "y"}}},
            "children['ConfigMap.v1']['x']: Input should be a valid dictionary",
        ),
        (
            "/seccompprofile/customize",
            {"parent": {"metadata": {"name": 5}}},
            "parent.metadata.name: Input should be a valid string",
        ),
        (
            "/seccompprofile/sync",
            {
                "parent": _seccomp(),
                "related": {
                    "Pod.v1": {"ns/p": {"spec": {"containers": [{"securityContext": "x"}]}}}
                },
            },
            "related['Pod.v1']['ns/p'].spec.containers[0].securityContext: Input should be a "
            "valid dictionary",
        ),
        (
            "/mutate-v1-pod-binding",
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "u",
                    "operation": "CREATE",
                    "namespace": "ns",
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "object": {"metadata": {"name": "p"}, "spec": {"containers": 5}},
                },
            },
            "request.object.spec.containers: Input should be a valid list",
        ),
    ],
)
def test_wrong_shapes_are_a_400_naming_the_field(
    client: FlaskClient, route: str, body: dict[str, Any], says: str
) -> None:
    if route.startswith("/mutate-"):
        client = create_webhook_app(FixedTables(), {"TESTING": True}).test_client()
    response = client.post(route, json=body)
    assert response.status_code == 400
    assert says in response.get_json()["message"]


def test_a_huge_key_is_quoted_cut_short(client: FlaskClient) -> None:
    body = {"parent": _seccomp(), "children": {"ConfigMap.v1": {"k" * 1_000_000: 1}}}
    response = client.post("/seccompprofile/sync", json=body)
    assert response.status_code == 400
    assert len(response.get_data()) < 1_000


def test_customize_request_model_checks_the_parent() -> None:
    with pytest.raises(ValueError, match=r"parent\.metadata\.namespace"):
        CustomizeRequest.model_validate({"parent": {"metadata": {"namespace": ["a"]}}})
