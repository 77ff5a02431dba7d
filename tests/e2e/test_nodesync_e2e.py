"""nodesync against the real API server, as a real process with its ServiceAccount's token.

`python -m nodesync` runs with a kubeconfig holding a token of the installed
``spo-nodesync`` ServiceAccount bound to a pod on its node, as a DaemonSet pod's is
(so the ClusterRole of metacontroller/nodesync.yaml and the per-node admission
policy are proved to let it work), a temporary kubelet directory and a metrics port. The tests
make ConfigMaps shaped exactly like the SeccompProfile hook's children, owned by
real SeccompProfiles, and watch the files and SecurityProfileNodeStatuses
follow. Every wait polls against a deadline; no sleep decides an outcome.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hooks.api import GROUP
from hooks.api.configmaps import (
    PROFILE_WARNING_ANNOTATION,
    SECCOMP_KEY,
    SECCOMP_KIND,
    configmap_metadata,
    configmap_name,
)
from hooks.api.nodestatuslabels import PROFILE_STATE_LABEL
from hooks.api.seccompprofile import SeccompProfileSpec
from hooks.cluster.contract import SyncRequest
from hooks.cluster.seccomp import controller
from hooks.cluster.seccomp.oci import encode, runtime_profile
from nodesync.nodeio import reasons
from tests.helpers.controlplane import METACONTROLLER, ControlPlane
from tests.helpers.nodesync_process import NODE, NodeSync, eventually, node_status

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent.parent
NS_A = "nodesync-e2e-a"
NS_B = "nodesync-e2e-b"
OPERATOR_NS = "security-profiles-operator"

ALLOW = {"defaultAction": "SCMP_ACT_ALLOW"}
DENY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
}
LOG = {"defaultAction": "SCMP_ACT_LOG"}


# -- objects ---------------------------------------------------------------------------------------


def content(spec: dict[str, Any]) -> str:
    """The bytes the SeccompProfile hook puts in its ConfigMap for ``spec``."""
    return encode(runtime_profile(SeccompProfileSpec.model_validate(spec)))


def make_profile(plane: ControlPlane, namespace: str, name: str, spec: dict[str, Any]) -> str:
    """A real SeccompProfile (nothing reconciles it here); returns its uid."""
    plane.apply(
        {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "SeccompProfile",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    got = plane.kubectl_json("get", f"seccompprofiles.{GROUP}", name, "-n", namespace)
    return str(got["metadata"]["uid"])


def put_configmap(plane: ControlPlane, namespace: str, name: str, uid: str, data: str) -> None:
    """The hook's child ConfigMap of profile ``name``, owned by it and applied as Metacontroller
    applies it."""
    metadata = configmap_metadata(SECCOMP_KIND, namespace, name)
    metadata["ownerReferences"] = [
        {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "SeccompProfile",
            "name": name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {SECCOMP_KEY: data},
        },
        who=METACONTROLLER,
    )


def put_hooks_configmap(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    """The ConfigMap the SeccompProfile hook answers for the stored profile ``name``, applied
    as Metacontroller applies it (through the admission policy); returns it."""
    parent = plane.kubectl_json("get", f"seccompprofiles.{GROUP}", name, "-n", namespace)
    answer = controller.sync(SyncRequest.model_validate({"parent": parent}), "2026-01-01T00:00:00Z")
    (configmap,) = answer.children
    configmap["metadata"]["ownerReferences"] = [
        {
            "apiVersion": parent["apiVersion"],
            "kind": "SeccompProfile",
            "name": name,
            "uid": parent["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    plane.apply(configmap, who=METACONTROLLER)
    return dict(configmap)


def delete_configmap(plane: ControlPlane, namespace: str, name: str) -> None:
    name = configmap_name(SECCOMP_KIND, name)
    plane.kubectl("delete", "configmap", name, "-n", namespace, *METACONTROLLER)


# -- checks for eventually() -----------------------------------------------------------------------


def installed_as(
    plane: ControlPlane, agent: NodeSync, namespace: str, name: str, uid: str, text: str
) -> Callable[[], dict[str, Any]]:
    def check() -> dict[str, Any]:
        path = agent.file(namespace, name)
        assert path.exists(), f"{path} missing"
        assert path.read_text() == text, f"{path} holds {path.read_text()!r}"
        status = node_status(plane, namespace, name)
        assert status is not None, "no node status"
        assert status.get("status") == "Installed", f"node status is {status.get('status')!r}"
        assert status["metadata"]["labels"][PROFILE_STATE_LABEL] == "Installed"
        assert "message" not in status, status.get("message")
        assert status["nodeName"] == NODE
        owners = status["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o["uid"], o["controller"]) for o in owners] == [
            ("SeccompProfile", name, uid, False)
        ]
        assert (
            "blockOwnerDeletion" not in owners[0]
        )  # it would need rights on the profile's finalizers
        return status

    return check


def removed(plane: ControlPlane, agent: NodeSync, namespace: str, name: str) -> Callable[[], None]:
    def check() -> None:
        assert not agent.file(namespace, name).exists(), (
            f"{agent.file(namespace, name)} still there"
        )
        assert node_status(plane, namespace, name) is None, "node status still there"

    return check


def in_error(
    plane: ControlPlane, namespace: str, name: str, words: str
) -> Callable[[], dict[str, Any]]:
    def check() -> dict[str, Any]:
        status = node_status(plane, namespace, name)
        assert status is not None, "no node status"
        assert status.get("status") == "Error", f"node status is {status.get('status')!r}"
        assert status["metadata"]["labels"][PROFILE_STATE_LABEL] == "Error"
        assert words in str(status.get("message")), f"message: {status.get('message')!r}"
        return status

    return check


def metric(agent: NodeSync, name: str, **labels: str) -> float:
    code, body = agent.get("/metrics")
    assert code == 200, body
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plane(installed: ControlPlane) -> Iterator[ControlPlane]:
    for namespace in (NS_A, NS_B):
        installed.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    yield installed
    for namespace in (NS_A, NS_B):
        installed.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def nodesync(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeSync]:
    kubeconfig = plane.node_agent_kubeconfig(OPERATOR_NS, "spo-nodesync", NODE)
    work = tmp_path_factory.mktemp("nodesync")
    agent = NodeSync(kubeconfig, work / "kubelet", work / "nodesync.log")
    agent.start()
    try:

        def ready() -> None:
            code, body = agent.get("/readyz")
            assert code == 200, f"/readyz: {code} {body}"

        def answering() -> None:
            try:
                ready()
            except OSError as error:  # not listening yet
                raise AssertionError(str(error)) from None

        eventually("nodesync ready", answering, agent)
        yield agent
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.stop(timeout=30)


# -- tests -----------------------------------------------------------------------------------------


def test_configmaps_are_installed_updated_and_removed_cluster_wide(
    plane: ControlPlane, nodesync: NodeSync
) -> None:
    uid_a = make_profile(plane, NS_A, "deny-mkdir", DENY_MKDIR)
    uid_b = make_profile(plane, NS_B, "log-all", LOG)
    put_configmap(plane, NS_A, "deny-mkdir", uid_a, content(DENY_MKDIR))
    put_configmap(plane, NS_B, "log-all", uid_b, content(LOG))
    eventually(
        "deny-mkdir installed",
        installed_as(plane, nodesync, NS_A, "deny-mkdir", uid_a, content(DENY_MKDIR)),
        nodesync,
    )
    eventually(
        "log-all installed",
        installed_as(plane, nodesync, NS_B, "log-all", uid_b, content(LOG)),
        nodesync,
    )

    # An Event on the profile says so, from this node.
    def event() -> None:
        events = plane.kubectl_json(
            "get", "events", "-n", NS_A, "--field-selector", "involvedObject.name=deny-mkdir"
        )["items"]
        assert [
            (e["reason"], e["source"].get("component"), e["source"].get("host")) for e in events
        ] == [(reasons.SAVED, "spo-nodesync", NODE)]
        assert events[0]["involvedObject"]["kind"] == "SeccompProfile"
        assert events[0]["involvedObject"]["uid"] == uid_a

    eventually("an event on deny-mkdir", event, nodesync)

    # An update rewrites the file; the node status stays Installed.
    put_configmap(plane, NS_A, "deny-mkdir", uid_a, content(ALLOW))
    eventually(
        "deny-mkdir updated",
        installed_as(plane, nodesync, NS_A, "deny-mkdir", uid_a, content(ALLOW)),
        nodesync,
    )

    # A deletion removes the file and the node status; the other namespace is untouched.
    delete_configmap(plane, NS_B, "log-all")
    eventually("log-all removed", removed(plane, nodesync, NS_B, "log-all"), nodesync)
    installed_as(plane, nodesync, NS_A, "deny-mkdir", uid_a, content(ALLOW))()


def test_the_saved_event_carries_the_hooks_warning(plane: ControlPlane, nodesync: NodeSync) -> None:
    """A profile that names syscalls of other architectures than its own: the hook's
    ConfigMap carries the warning, and the Event nodesync emits on saving the profile says
    it, with no other object (the hooks make no Event)."""
    spec = {
        "defaultAction": "SCMP_ACT_LOG",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"action": "SCMP_ACT_ERRNO", "names": ["acct", "vm86"]}],
    }
    uid = make_profile(plane, NS_A, "high-risk", spec)
    configmap = put_hooks_configmap(plane, NS_A, "high-risk")
    warning = configmap["metadata"]["annotations"][PROFILE_WARNING_ANNOTATION]
    assert warning.startswith("spec.syscalls[0].names: no such syscalls on SCMP_ARCH_X86_64")
    text = configmap["data"][SECCOMP_KEY]
    eventually(
        "high-risk installed",
        installed_as(plane, nodesync, NS_A, "high-risk", uid, text),  # no message on the status
        nodesync,
    )
    saved = f"seccomp profile Installed on node {NODE}"

    def messages(count: int) -> Callable[[], list[str]]:
        def check() -> list[str]:
            events = plane.kubectl_json(
                "get", "events", "-n", NS_A, "--field-selector", "involvedObject.name=high-risk"
            )["items"]
            events.sort(key=lambda e: (e["firstTimestamp"], e["metadata"]["creationTimestamp"]))
            said = [(e["type"], e["reason"], e["source"].get("host")) for e in events]
            assert said == [("Normal", reasons.SAVED, NODE)] * count, said
            assert all(e["involvedObject"]["uid"] == uid for e in events)
            return [str(e["message"]) for e in events]

        return check

    first = eventually("the saved event", messages(1), nodesync)
    assert first == [f"{saved}; warning: {warning}"]

    # The profile gets another warning: the installed profile's Event says the new one.
    spec["syscalls"][0]["names"] = ["acct", "vm86", "stime"]
    make_profile(plane, NS_A, "high-risk", spec)
    newer = put_hooks_configmap(plane, NS_A, "high-risk")
    warning = newer["metadata"]["annotations"][PROFILE_WARNING_ANNOTATION]
    assert warning.endswith(": vm86, stime")
    both = eventually("a second saved event", messages(2), nodesync)
    assert f"{saved}; warning: {warning}" in both


def test_invalid_configmap_reports_an_error_and_others_keep_working(
    plane: ControlPlane, nodesync: NodeSync
) -> None:
    uid_bad = make_profile(plane, NS_A, "broken", LOG)
    put_configmap(plane, NS_A, "broken", uid_bad, '{"defaultAction": ')
    eventually(
        "broken in Error",
        in_error(plane, NS_A, "broken", "profile.json is not valid JSON"),
        nodesync,
    )
    assert not nodesync.file(NS_A, "broken").exists()

    uid_ok = make_profile(plane, NS_A, "steady", LOG)
    put_configmap(plane, NS_A, "steady", uid_ok, content(LOG))
    eventually(
        "steady installed",
        installed_as(plane, nodesync, NS_A, "steady", uid_ok, content(LOG)),
        nodesync,
    )

    # A typo in an installed profile is reported and the file stays as it was ...
    put_configmap(plane, NS_A, "steady", uid_ok, "[1, 2")
    eventually("steady in Error", in_error(plane, NS_A, "steady", "not valid JSON"), nodesync)
    assert nodesync.file(NS_A, "steady").read_text() == content(LOG)
    # ... and the fix clears the error and its message.
    put_configmap(plane, NS_A, "steady", uid_ok, content(DENY_MKDIR))
    eventually(
        "steady fixed",
        installed_as(plane, nodesync, NS_A, "steady", uid_ok, content(DENY_MKDIR)),
        nodesync,
    )
    in_error(plane, NS_A, "broken", "profile.json is not valid JSON")()


def test_health_and_metrics_are_served(plane: ControlPlane, nodesync: NodeSync) -> None:
    assert nodesync.get("/healthz") == (200, "ok\n")
    assert nodesync.get("/readyz") == (200, "ok\n")
    total = "security_profiles_operator_seccomp_profile_total"
    updates = metric(nodesync, total, operation="update")
    deletes = metric(nodesync, total, operation="delete")

    uid = make_profile(plane, NS_B, "counted", LOG)
    put_configmap(plane, NS_B, "counted", uid, content(LOG))
    eventually(
        "counted installed",
        installed_as(plane, nodesync, NS_B, "counted", uid, content(LOG)),
        nodesync,
    )

    def updated() -> None:
        assert metric(nodesync, total, operation="update") >= updates + 1

    eventually("the update counter to increase", updated, nodesync)
    delete_configmap(plane, NS_B, "counted")
    eventually("counted removed", removed(plane, nodesync, NS_B, "counted"), nodesync)

    def deleted() -> None:
        assert metric(nodesync, total, operation="delete") >= deletes + 1

    eventually("the delete counter to increase", deleted, nodesync)
    errors = "security_profiles_operator_seccomp_profile_error_total"
    invalid = metric(nodesync, errors, reason=reasons.INVALID_PROFILE)
    put_configmap(plane, NS_B, "counted", uid, "not json")

    def counted() -> None:
        assert metric(nodesync, errors, reason=reasons.INVALID_PROFILE) >= invalid + 1

    eventually("the error counter to increase", counted, nodesync)


def _etcd_delete(plane: ControlPlane, key: str) -> int:
    """Delete one key through etcd's JSON gateway; returns how many keys went."""
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    request = urllib.request.Request(
        f"{plane.etcd_url}/v3/kv/deleterange", data=body, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return int(json.loads(resp.read()).get("deleted") or 0)


def test_recovers_from_an_api_server_restart(plane: ControlPlane, nodesync: NodeSync) -> None:
    uids = {
        name: make_profile(plane, NS_B, name, LOG)
        for name in ("kept", "dropped", "late", "newcomer")
    }
    for name in ("kept", "dropped", "late"):
        put_configmap(plane, NS_B, name, uids[name], content(LOG))
    for name in ("kept", "dropped", "late"):
        eventually(
            f"{name} installed",
            installed_as(plane, nodesync, NS_B, name, uids[name], content(LOG)),
            nodesync,
        )
    lists = nodesync.count("converged ")
    outages = nodesync.count("API server: ")

    plane.stop_apiserver()
    try:
        # Nothing can be changed through the API meanwhile ...
        refused = plane.kubectl(
            "get", "configmaps", "-n", NS_B, "--request-timeout=5s", check=False
        )
        assert refused.returncode != 0
        assert "refused" in refused.stderr, refused.stderr

        def noticed() -> None:
            assert nodesync.count("API server: ") > outages, "no failed request logged yet"

        eventually("nodesync to notice the outage", noticed, nodesync)
        # ... but the store can be: a ConfigMap goes while nodesync is disconnected (as
        # through another API server of the cluster).
        key = f"/registry/configmaps/{NS_B}/{configmap_name(SECCOMP_KIND, 'dropped')}"
        assert _etcd_delete(plane, key) == 1
        assert nodesync.file(NS_B, "dropped").exists()  # nodesync cannot know yet
    finally:
        plane.start_apiserver()

    # Changes right after the restart: an update, a new profile, a deletion.
    put_configmap(plane, NS_B, "kept", uids["kept"], content(DENY_MKDIR))
    put_configmap(plane, NS_B, "newcomer", uids["newcomer"], content(ALLOW))
    delete_configmap(plane, NS_B, "late")

    eventually(
        "dropped removed after recovery", removed(plane, nodesync, NS_B, "dropped"), nodesync
    )
    eventually(
        "kept updated",
        installed_as(plane, nodesync, NS_B, "kept", uids["kept"], content(DENY_MKDIR)),
        nodesync,
    )
    eventually(
        "newcomer installed",
        installed_as(plane, nodesync, NS_B, "newcomer", uids["newcomer"], content(ALLOW)),
        nodesync,
    )
    eventually("late removed", removed(plane, nodesync, NS_B, "late"), nodesync)
    assert nodesync.count("converged ") > lists, "no re-list after the outage"
    assert nodesync.get("/healthz") == (200, "ok\n")

    # The watch works again too: a change after the recovery arrives.
    put_configmap(plane, NS_B, "newcomer", uids["newcomer"], content(LOG))
    eventually(
        "newcomer updated",
        installed_as(plane, nodesync, NS_B, "newcomer", uids["newcomer"], content(LOG)),
        nodesync,
    )


def test_sigterm_ends_an_idle_watch_and_exits_cleanly(
    plane: ControlPlane, nodesync: NodeSync
) -> None:
    # The watch asks for 300 s; SIGTERM must not wait for it to end.
    code = nodesync.stop(timeout=30)
    assert code == 0, f"nodesync exit code {code}\n{nodesync.tail()}"
    assert "Traceback" not in nodesync.log.read_text(), nodesync.tail(200)
