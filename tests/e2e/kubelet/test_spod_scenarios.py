"""The Go operator's e2e cases about the operator's configuration and life, on the real node:
the spod's changes roll the DaemonSet, the allowed syscalls, the webhook options, redeploying the
operator; and two more about profiles: the same name in two namespaces, a long name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.kubelet.busybox_pods import (
    busybox_pod,
    create,
    delete,
    exec_in,
    wait_running,
    wait_waiting_reason,
)
from tests.e2e.kubelet.operator_install import (
    HOOKS,
    NODESYNC,
    OPERATOR_NS,
    WEBHOOK_CONFIGURATION,
    Operator,
    eventually,
    pods,
    ready_pods,
)
from tests.e2e.kubelet.profiles import (
    GROUP,
    profile_file,
    profile_status,
    seccomp_profile,
    unique,
    wait_installed,
)
from tests.helpers.controlplane import ControlPlane

pytestmark = [pytest.mark.e2e, pytest.mark.kubelet]

EPERM = "Operation not permitted"
DENY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"action": "SCMP_ACT_ERRNO", "errnoRet": 1, "names": ["mkdir", "mkdirat"]}],
}


def patch_spod(plane: ControlPlane, spec: dict[str, Any]) -> None:
    plane.kubectl(
        "patch", "spod", "spod", "-n", OPERATOR_NS, "--type=merge", "-p", json.dumps({"spec": spec})
    )


def nodesync_pod(plane: ControlPlane) -> dict[str, Any]:
    """The newest nodesync pod not being deleted (during a roll-out the old one lingers)."""
    live = [
        p for p in pods(plane, OPERATOR_NS, NODESYNC) if not p["metadata"].get("deletionTimestamp")
    ]
    assert live, "no nodesync pod"
    return max(live, key=lambda p: p["metadata"]["creationTimestamp"])


def rolled(plane: ControlPlane, old_uid: str, timeout: float = 180.0) -> dict[str, Any]:
    """The nodesync pod that replaced ``old_uid``, once Ready."""

    def replaced() -> dict[str, Any] | None:
        found = [
            p for p in ready_pods(plane, OPERATOR_NS, NODESYNC) if p["metadata"]["uid"] != old_uid
        ]
        others = [p for p in pods(plane, OPERATOR_NS, NODESYNC) if p["metadata"]["uid"] == old_uid]
        return found[0] if found and not others else None

    pod: dict[str, Any] = eventually(replaced, timeout=timeout, what="the DaemonSet rolled out")
    return pod


def env_of(pod: dict[str, Any], container: str) -> dict[str, str]:
    [spec] = [c for c in pod["spec"]["containers"] if c["name"] == container]
    return {e["name"]: e.get("value", "") for e in spec.get("env") or []}


@pytest.fixture(scope="module")
def namespace(operator: Operator) -> Iterator[str]:
    plane = operator.plane
    name = unique("spod-e2e")
    plane.kubectl("create", "namespace", name)
    eventually(
        lambda: plane.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        timeout=60,
        what="the default ServiceAccount",
    )
    yield name
    plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


# ------------------------------------------------ Go: "Same profile in multiple namespaces"


def test_the_same_profile_name_in_two_namespaces_gives_two_profiles(
    operator: Operator, namespace: str
) -> None:
    plane = operator.plane
    other = unique("spod-e2e-other")
    plane.kubectl("create", "namespace", other)
    eventually(
        lambda: plane.kubectl("get", "sa", "default", "-n", other, check=False).returncode == 0,
        timeout=60,
        what="the default ServiceAccount",
    )
    name = "same-name"
    plane.apply(seccomp_profile(namespace, name, DENY_MKDIR))
    plane.apply(seccomp_profile(other, name, {"defaultAction": "SCMP_ACT_ALLOW"}))
    wait_installed(plane, namespace, name)
    wait_installed(plane, other, name)
    assert (
        json.loads(profile_file(namespace, name).read_text())["defaultAction"] == "SCMP_ACT_ALLOW"
    )
    assert json.loads(profile_file(namespace, name).read_text()).get("syscalls")
    assert not json.loads(profile_file(other, name).read_text()).get("syscalls")
    script = "mkdir /tmp/made 2>/dev/null && echo made || echo refused; sleep 3600"
    first, second = unique("first"), unique("second")
    create(
        plane, namespace, busybox_pod(first, script, profile=f"operator/{namespace}/{name}.json")
    )
    create(plane, other, busybox_pod(second, script, profile=f"operator/{other}/{name}.json"))
    try:
        for ns, pod, expected in ((namespace, first, "refused"), (other, second, "made")):
            wait_running(plane, ns, pod)

            def logged(ns: str = ns, pod: str = pod) -> str:
                return plane.kubectl("logs", pod, "-n", ns, check=False).stdout.strip()

            eventually(
                logged,
                timeout=60,
                what=f"the log of {pod}",
            )
            assert plane.kubectl("logs", pod, "-n", ns).stdout.strip() == expected
    finally:
        delete(plane, namespace, first)
        delete(plane, other, second)
        plane.kubectl("delete", "namespace", other, "--wait=false", check=False)


# ------------------------------------------------ Go: "profiles with long names"


def test_a_profile_with_a_long_name_is_installed_and_its_node_status_listed(
    operator: Operator, namespace: str
) -> None:
    plane = operator.plane
    name = "long-" + "x" * 120  # far past a label value's 63 characters
    plane.apply(seccomp_profile(namespace, name, {"defaultAction": "SCMP_ACT_ALLOW"}))
    wait_installed(plane, namespace, name)
    assert profile_file(namespace, name).exists()
    statuses = plane.kubectl_json("get", f"securityprofilenodestatuses.{GROUP}", "-n", namespace)
    assert any(name in json.dumps(item) for item in statuses["items"]), statuses["items"]
    plane.kubectl("delete", f"seccompprofiles.{GROUP}", name, "-n", namespace, "--wait=false")
    eventually(
        lambda: not profile_file(namespace, name).exists(), timeout=120, what="the file removed"
    )


# ------------------------------------------------ Go: "Re-deploy the operator"


def test_redeploying_the_operator_keeps_the_profiles_and_their_files(
    operator: Operator, namespace: str
) -> None:
    plane = operator.plane
    name = unique("kept")
    plane.apply(seccomp_profile(namespace, name, DENY_MKDIR))
    wait_installed(plane, namespace, name)
    written = profile_file(namespace, name)
    before = written.stat()
    old_hooks = {p["metadata"]["uid"] for p in pods(plane, OPERATOR_NS, HOOKS)}
    old_nodesync = nodesync_pod(plane)["metadata"]["uid"]
    plane.kubectl("rollout", "restart", "deployment/spo-hooks", "-n", OPERATOR_NS)
    plane.kubectl("rollout", "restart", "daemonset/spod", "-n", OPERATOR_NS)
    plane.kubectl(
        "rollout",
        "status",
        "deployment/spo-hooks",
        "-n",
        OPERATOR_NS,
        "--timeout=180s",
        timeout=200,
    )
    rolled(plane, old_nodesync)
    eventually(
        lambda: not {p["metadata"]["uid"] for p in pods(plane, OPERATOR_NS, HOOKS)} & old_hooks,
        timeout=120,
        what="the old hooks pods gone",
    )
    assert len(ready_pods(plane, OPERATOR_NS, HOOKS)) == 2
    assert profile_status(plane, namespace, name) == "Installed"
    after = written.stat()
    # nodesync compares before it writes: the file was not written again.
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


# ------------------------------------------------ Go: verbosity, resources, priority class


def test_spod_changes_roll_the_daemonset(operator: Operator) -> None:
    plane = operator.plane
    old = nodesync_pod(plane)
    resources = {"requests": {"cpu": "60m", "memory": "100Mi"}, "limits": {"memory": "300Mi"}}
    patch_spod(
        plane,
        {
            "verbosity": 1,
            "daemonResourceRequirements": resources,
            "priorityClassName": "system-cluster-critical",
        },
    )
    try:
        new = rolled(plane, old["metadata"]["uid"])
        assert env_of(new, "nodesync").get("LOG_LEVEL") == "debug"
        [container] = [c for c in new["spec"]["containers"] if c["name"] == "nodesync"]
        assert container["resources"] == resources
        assert new["spec"]["priorityClassName"] == "system-cluster-critical"
    finally:
        current = nodesync_pod(plane)["metadata"]["uid"]
        patch_spod(
            plane,
            {
                "verbosity": 0,
                "daemonResourceRequirements": None,
                "priorityClassName": "system-node-critical",
            },
        )
        back = rolled(plane, current)
    assert "LOG_LEVEL" not in env_of(back, "nodesync")
    assert back["spec"]["priorityClassName"] == "system-node-critical"


# ------------------------------------------------ Go: "Allowed syscalls"


def test_a_profile_outside_the_allowed_syscalls_leaves_the_node(
    operator: Operator, namespace: str
) -> None:
    plane = operator.plane
    allowed, refused = unique("allowed"), unique("refused")
    plane.apply(
        seccomp_profile(
            namespace,
            refused,
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"action": "SCMP_ACT_ALLOW", "names": ["read", "mkdir"]}],
            },
        )
    )
    wait_installed(plane, namespace, refused)
    assert profile_file(namespace, refused).exists()
    patch_spod(plane, {"allowedSyscalls": ["read", "write", "exit_group"]})
    try:
        plane.apply(
            seccomp_profile(
                namespace,
                allowed,
                {
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [{"action": "SCMP_ACT_ALLOW", "names": ["read", "write"]}],
                },
            )
        )
        wait_installed(plane, namespace, allowed)
        eventually(
            lambda: profile_status(plane, namespace, refused) == "Error", what="refused: Error"
        )
        eventually(
            lambda: not profile_file(namespace, refused).exists(), what="refused file removed"
        )
        conditions = plane.kubectl_json(
            "get", f"seccompprofiles.{GROUP}", refused, "-n", namespace
        )["status"]["conditions"]
        assert any("mkdir" in c.get("message", "") for c in conditions), conditions
        pod = unique("refused-pod")
        create(
            plane,
            namespace,
            busybox_pod(pod, "echo never", profile=f"operator/{namespace}/{refused}.json"),
        )
        try:
            reason, message = wait_waiting_reason(plane, namespace, pod)
            assert reason in ("CreateContainerError", "CreateContainerConfigError"), (
                reason,
                message,
            )
            assert f"{refused}.json" in message, message
        finally:
            delete(plane, namespace, pod)
    finally:
        patch_spod(plane, {"allowedSyscalls": None})
    wait_installed(plane, namespace, refused)
    assert profile_file(namespace, refused).exists()


# ------------------------------------------------ Go: "Change webhook config"


def test_a_webhook_options_change_reaches_the_webhook_configuration(operator: Operator) -> None:
    plane = operator.plane

    def binding_webhook() -> dict[str, Any]:
        config = plane.kubectl_json("get", "mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION)
        [hook] = [h for h in config["webhooks"] if h["name"] == "binding.spo.io"]
        return dict(hook)

    assert binding_webhook()["failurePolicy"] == "Fail"
    options = [
        {
            "name": "binding.spo.io",
            "failurePolicy": "Ignore",
            "namespaceSelector": {"matchLabels": {"spo-e2e": "webhook-options"}},
        }
    ]
    patch_spod(plane, {"webhookOptions": options})
    try:
        eventually(
            lambda: binding_webhook()["failurePolicy"] == "Ignore", what="failurePolicy Ignore"
        )
        hook = binding_webhook()
        assert hook["namespaceSelector"] == {"matchLabels": {"spo-e2e": "webhook-options"}}
        assert hook["clientConfig"].get("caBundle"), "the injected CA survived the change"
    finally:
        patch_spod(plane, {"webhookOptions": None})
    eventually(lambda: binding_webhook()["failurePolicy"] == "Fail", what="failurePolicy back")


# ------------------------------------------------ Go: "SPOD: Update SELinux flag"


def test_enable_selinux_rolls_the_daemonset_with_selinuxd(operator: Operator) -> None:
    """This kernel does not run SELinux, and selinuxd's image is not made here (no registry):
    the roll-out is shown on the DaemonSet and its new pod, whose selinuxd container cannot
    start; turning it off rolls back to a Ready nodesync."""
    plane = operator.plane
    old = nodesync_pod(plane)["metadata"]["uid"]
    # An image reference that resolves to nothing outside this machine.
    plane.kubectl(
        "annotate",
        "spod",
        "spod",
        "-n",
        OPERATOR_NS,
        "--overwrite",
        "spo.x-k8s.io/selinuxd-image=localhost/spo-e2e/selinuxd:absent",
    )
    patch_spod(plane, {"enableSelinux": True})
    try:

        def selinuxd_pod() -> dict[str, Any] | None:
            for pod in pods(plane, OPERATOR_NS, NODESYNC):
                names = [c["name"] for c in pod["spec"]["containers"]]
                if pod["metadata"]["uid"] != old and "selinuxd" in names:
                    return pod
            return None

        pod = eventually(selinuxd_pod, timeout=180, what="a nodesync pod with selinuxd")
        daemonset = plane.kubectl_json("get", "daemonset", "spod", "-n", OPERATOR_NS)
        template = daemonset["spec"]["template"]["spec"]
        assert [c["name"] for c in template["containers"]] == ["nodesync", "selinuxd"]
        assert len(template["initContainers"]) == 2
        assert env_of(pod, "nodesync").get("SELINUXD_SOCKET")
    finally:
        current = nodesync_pod(plane)["metadata"]["uid"]
        patch_spod(plane, {"enableSelinux": False})
        plane.kubectl("annotate", "spod", "spod", "-n", OPERATOR_NS, "spo.x-k8s.io/selinuxd-image-")
        back = rolled(plane, current)
    assert [c["name"] for c in back["spec"]["containers"]] == ["nodesync"]
    code, out = exec_in(
        plane, OPERATOR_NS, back["metadata"]["name"], "id", "-u", container="nodesync"
    )
    assert code == 0, out
