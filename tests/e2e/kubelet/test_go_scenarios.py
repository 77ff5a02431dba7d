"""The Go operator's end-to-end scenarios (its ``test/`` folder), re-enacted with real pods on the
real node, the operator installed from its own image. docs/go-e2e-scenarios.md maps each Go case
to the test here and says what differs."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kubelet.busybox_pods import (
    BUSYBOX_IMAGE,
    SECCOMP_ROOT,
    busybox_pod,
    create,
    delete,
    exec_in,
    get,
    logs,
    wait_log,
    wait_running,
    wait_waiting_reason,
)
from tests.e2e.kubelet.operator_install import (
    OPERATOR_NS,
    Operator,
    eventually,
    pod_ready,
    pods,
)
from tests.e2e.kubelet.profiles import (
    localhost,
    profile_file,
    profile_status,
    seccomp_profile,
    unique,
    wait_installed,
)
from tests.helpers.controlplane import ControlPlane

pytestmark = [pytest.mark.e2e, pytest.mark.kubelet]

REPO = Path(__file__).resolve().parents[3]
EPERM = "Operation not permitted"


def profile_of(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return dict(plane.kubectl_json("get", "seccompprofile", name, "-n", namespace))


@pytest.fixture(scope="module")
def examples(operator: Operator) -> Operator:
    """The example profiles (examples/seccomp, examples/base-profiles) applied and Installed."""
    plane = operator.plane
    plane.kubectl("apply", "--server-side", "-f", str(REPO / "examples" / "base-profiles"))
    plane.kubectl("apply", "--server-side", "-f", str(REPO / "examples" / "seccomp"))
    wait_installed(plane, OPERATOR_NS, *example_names())
    return operator


def example_names() -> list[str]:
    import yaml

    names = []
    for folder in ("base-profiles", "seccomp"):
        for path in sorted((REPO / "examples" / folder).glob("*.yaml")):
            names += [d["metadata"]["name"] for d in yaml.safe_load_all(path.read_text()) if d]
    return names


def new_namespace(plane: ControlPlane, prefix: str = "node-e2e") -> str:
    """A namespace of the test's own, once kube-controller-manager gave it its default
    ServiceAccount."""
    namespace = unique(prefix)
    plane.kubectl("create", "namespace", namespace)
    eventually(
        lambda: (
            plane.kubectl(
                "get", "serviceaccount", "default", "-n", namespace, check=False
            ).returncode
            == 0
        ),
        timeout=60,
        what="the namespace's default ServiceAccount",
    )
    return namespace


@pytest.fixture(scope="module")
def workspace(operator: Operator) -> Iterator[str]:
    """A namespace shared by this module's tests."""
    namespace = new_namespace(operator.plane)
    yield namespace
    operator.plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


# ------------------------------------------------ Go: "Verify default and example profiles"


def test_example_profiles_are_written_to_the_kubelet_seccomp_dir(examples: Operator) -> None:
    plane = examples.plane
    operator_dir = SECCOMP_ROOT / "operator"
    info = operator_dir.stat()
    # nodesync's init container hands the folder to the user nodesync runs as (Go: 744, 2000:2000).
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o744, 65535, 65535)
    for name in example_names():
        configmap = plane.kubectl_json("get", "configmap", f"seccomp-{name}", "-n", OPERATOR_NS)
        written = profile_file(OPERATOR_NS, name)
        assert written.read_text() == configmap["data"]["profile.json"], name
        profile = plane.kubectl_json("get", "seccompprofile", name, "-n", OPERATOR_NS)
        assert profile["status"]["localhostProfile"] == localhost(OPERATOR_NS, name)


# ------------------------------------------------ Go: "Run a test pod" (example profiles)


def test_a_pod_under_block_all_cannot_start(examples: Operator, workspace: str) -> None:
    plane = examples.plane
    name = unique("block-all")
    manifest = busybox_pod(name, "echo should never print")
    manifest["spec"]["containers"][0]["securityContext"] = {
        "seccompProfile": {
            "type": "Localhost",
            "localhostProfile": localhost(OPERATOR_NS, "profile-block-all"),
        }
    }
    create(plane, workspace, manifest)
    try:
        reason, message = wait_waiting_reason(plane, workspace, name)
        assert reason in (
            "RunContainerError",
            "StartError",
            "CreateContainerError",
            "ContainerCannotRun",
        ), (
            reason,
            message,
        )
        assert "should never print" not in logs_or_empty(plane, workspace, name)
    finally:
        delete(plane, workspace, name)


def logs_or_empty(plane: ControlPlane, namespace: str, name: str) -> str:
    return plane.kubectl("logs", name, "-n", namespace, check=False).stdout


def test_under_deny_mkdir_mkdir_fails_with_eperm_in_logs_and_exec(
    examples: Operator, workspace: str
) -> None:
    plane = examples.plane
    name = unique("deny-mkdir")
    script = "mkdir /tmp/by-the-workload; echo mkdir exited $?; sleep 3600"
    create(
        plane,
        workspace,
        busybox_pod(name, script, profile=localhost(OPERATOR_NS, "profile-deny-mkdir")),
    )
    try:
        wait_running(plane, workspace, name)
        out = wait_log(plane, workspace, name, "mkdir exited 1")
        assert f"can't create directory '/tmp/by-the-workload': {EPERM}" in out
        code, out = exec_in(plane, workspace, name, "mkdir", "/tmp/by-exec")
        assert code != 0 and EPERM in out, out
        code, out = exec_in(plane, workspace, name, "touch", "/tmp/a-file")  # the rest is allowed
        assert code == 0, out
    finally:
        delete(plane, workspace, name)


# ------------------------------------------------ Go: "Verify base profile merge"


def test_a_pod_runs_under_a_profile_built_on_the_runc_base(
    examples: Operator, workspace: str
) -> None:
    plane = examples.plane
    name = unique("on-runc")
    # Shell builtins only: the example allows what a busybox shell writing a file needs.
    script = 'echo merged > /tmp/out && read line < /tmp/out && echo "read back: $line"'
    manifest = busybox_pod(name, script)
    manifest["spec"]["containers"][0]["securityContext"] = {
        "seccompProfile": {
            "type": "Localhost",
            "localhostProfile": localhost(OPERATOR_NS, "profile-busybox-on-runc"),
        },
        # The base was recorded with no_new_privileges, under which runc loads the filter just
        # before the workload's execve; without it runc loads it before dropping privileges.
        "allowPrivilegeEscalation": False,
    }
    create(plane, workspace, manifest)
    try:
        eventually(
            lambda: get(plane, workspace, name)["status"].get("phase") in ("Succeeded", "Failed"),
            timeout=90,
            what="the pod ending",
        )
        pod = get(plane, workspace, name)
        assert pod["status"]["phase"] == "Succeeded", json.dumps(pod["status"])
        assert logs(plane, workspace, name).strip() == "read back: merged"
    finally:
        delete(plane, workspace, name)


# ------------------------------------------------ Go: "Delete profiles"


def test_a_profile_in_use_is_deleted_only_when_its_pod_is_gone(
    operator: Operator, workspace: str
) -> None:
    plane = operator.plane
    profile = unique("delete-me")
    plane.apply(seccomp_profile(workspace, profile, {"defaultAction": "SCMP_ACT_ALLOW"}))
    wait_installed(plane, workspace, profile)
    written = profile_file(workspace, profile)
    assert written.exists()
    pod = unique("holder")
    create(plane, workspace, busybox_pod(pod, "sleep 3600", profile=localhost(workspace, profile)))
    try:
        wait_running(plane, workspace, pod)
        eventually(
            lambda: (
                pod
                in (profile_of(plane, workspace, profile).get("status") or {}).get(
                    "activeWorkloads", []
                )
            ),
            timeout=60,
            what="the profile listing its pod in activeWorkloads",
        )
        plane.kubectl("delete", "seccompprofile", profile, "-n", workspace, "--wait=false")
        time.sleep(5)  # a few passes of the controller: it must hold the profile
        held = plane.kubectl_json("get", "seccompprofile", profile, "-n", workspace)
        assert held["metadata"].get("deletionTimestamp")
        assert profile_status(plane, workspace, profile) == "Terminating"
        assert written.exists()
    finally:
        delete(plane, workspace, pod)
    eventually(
        lambda: profile_status(plane, workspace, profile) == "<absent>",
        timeout=120,
        what="the profile gone once its pod is",
    )
    eventually(lambda: not written.exists(), timeout=60, what=f"{written} removed from the node")


def test_a_profile_not_in_use_is_deleted_with_its_file(operator: Operator, workspace: str) -> None:
    plane = operator.plane
    profile = unique("delete-me-now")
    plane.apply(seccomp_profile(workspace, profile, {"defaultAction": "SCMP_ACT_ALLOW"}))
    wait_installed(plane, workspace, profile)
    written = profile_file(workspace, profile)
    assert written.exists()
    plane.kubectl("delete", "seccompprofile", profile, "-n", workspace, "--wait=false")
    eventually(
        lambda: profile_status(plane, workspace, profile) == "<absent>",
        timeout=120,
        what="profile gone",
    )
    eventually(lambda: not written.exists(), timeout=60, what=f"{written} removed from the node")


# ------------------------------------------------ Go: "Verify profile binding"


def test_binding_by_image_gives_a_real_pod_its_profile(operator: Operator, workspace: str) -> None:
    bound_pod_cannot_mkdir(operator, workspace, BUSYBOX_IMAGE)


def test_binding_by_star_gives_every_container_of_the_namespace_its_profile(
    operator: Operator,
) -> None:
    """Go's binding by ``image: "*"``: every container of the namespace, whatever its image.
    A namespace of its own, so that the other tests' pods are not bound."""
    namespace = new_namespace(operator.plane, "node-e2e-star")
    try:
        bound_pod_cannot_mkdir(operator, namespace, "*")
    finally:
        operator.plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def bound_pod_cannot_mkdir(operator: Operator, namespace: str, image: str) -> None:
    """A profile denying mkdir, bound to ``image`` in ``namespace``: a busybox pod made after
    the binding reached the webhook has the profile on its container and mkdir fails."""
    plane = operator.plane
    profile = unique("bound-deny-mkdir")
    plane.apply(
        seccomp_profile(
            namespace,
            profile,
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"action": "SCMP_ACT_ERRNO", "errnoRet": 1, "names": ["mkdir", "mkdirat"]}
                ],
            },
        )
    )
    wait_installed(plane, namespace, profile)
    plane.kubectl("label", "namespace", namespace, "spo.x-k8s.io/enable-binding=", "--overwrite")
    binding = unique("busybox-binding")
    plane.apply(
        {
            "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha1",
            "kind": "ProfileBinding",
            "metadata": {"name": binding, "namespace": namespace},
            "spec": {
                "profileRef": {"kind": "SeccompProfile", "name": profile},
                "image": image,
            },
        }
    )
    # No wait: the webhook's watches have the binding by the time the pod is created.
    name = unique("bound")
    script = "mkdir /tmp/by-the-workload; echo mkdir exited $?; sleep 3600"
    stored, warnings = create(plane, namespace, busybox_pod(name, script))
    try:
        # By image: the container's own security context; by "*": the pod's, which the
        # container inherits.
        spec = stored["spec"] if image == "*" else stored["spec"]["containers"][0]
        assert spec["securityContext"]["seccompProfile"] == {
            "type": "Localhost",
            "localhostProfile": localhost(namespace, profile),
        }, warnings
        wait_running(plane, namespace, name)
        out = wait_log(plane, namespace, name, "mkdir exited 1")
        assert EPERM in out
    finally:
        delete(plane, namespace, name)
        plane.kubectl(
            "delete", "profilebinding", binding, "-n", namespace, "--wait=false", check=False
        )


# ---------------------------------------------------------------- the operator's own pods


def test_the_operator_runs_as_non_root_on_a_read_only_root(operator: Operator) -> None:
    plane = operator.plane
    operator_pods = [
        (pod, containers)
        for component, containers in (("hooks", ("hooks", "metrics")), ("webhook", ("webhook",)))
        for pod in pods(plane, OPERATOR_NS, f"app.kubernetes.io/component={component}")
    ]
    assert len(operator_pods) == 4
    for pod, containers in operator_pods:
        assert pod_ready(pod), pod.get("status")
        name = pod["metadata"]["name"]
        for container in containers:
            code, out = exec_in(plane, OPERATOR_NS, name, "id", "-u", container=container)
            assert (code, out.strip()) == (0, "65532")
            code, out = exec_in(plane, OPERATOR_NS, name, "touch", "/written", container=container)
            assert code != 0 and "Read-only file system" in out, out
    nodesync = pods(plane, OPERATOR_NS, "app.kubernetes.io/name=spo-nodesync")
    assert nodesync and all(pod_ready(p) for p in nodesync)
    code, out = exec_in(
        plane, OPERATOR_NS, nodesync[0]["metadata"]["name"], "id", "-u", container="nodesync"
    )
    assert (code, out.strip()) == (0, "65535")
    assert os.path.isdir(SECCOMP_ROOT / "operator")
