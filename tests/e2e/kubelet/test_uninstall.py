"""Uninstall, as the README says it, on the real node: nothing stuck on a finalizer, nothing
left in the cluster, and the profiles' files gone from the node.

Metacontroller stops a CompositeController's loop as soon as the controller object is deleted
(``pkg/controller/composite/metacontroller.go``: NotFound stops it) and never removes its
finalizers then; ``kubectl delete -k`` deletes the controllers in the same breath as the rest.
So each test stops the emulated Metacontroller before that command: what must finish without
it, finishes.

These tests destroy the install: the shared one (``operator``) first, then installs of their
own. The module's name sorts after the other node tests' (and before ``test_upgrade``), so they
run once the others are done.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kubelet.busybox_pods import SECCOMP_ROOT, busybox_pod, create, wait_running
from tests.e2e.kubelet.operator_install import OPERATOR_NS, Operator, eventually, installed
from tests.e2e.kubelet.uninstalling import (
    GROUP,
    built_objects,
    cluster_leftovers,
    finalizers,
    node_files,
    readme_commands,
    run_shell,
    split_operator_delete,
    start_shell,
    wait_namespace_gone,
)
from tests.e2e.kubenode import Cluster
from tests.helpers.controlplane import ControlPlane

pytestmark = [pytest.mark.e2e, pytest.mark.kubelet]

LOGGING_PROFILE = SECCOMP_ROOT / "operator" / OPERATOR_NS / "log-enricher-trace.json"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def profile_file(namespace: str, name: str) -> Path:
    return SECCOMP_ROOT / "operator" / namespace / f"{name}.json"


def seccomp_profile(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"defaultAction": "SCMP_ACT_ALLOW"},
    }


def status_of(plane: ControlPlane, kind: str, namespace: str, name: str) -> str:
    found = plane.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return "<absent>"
    return str(
        (plane.kubectl_json("get", kind, name, "-n", namespace).get("status") or {}).get(
            "status", ""
        )
    )


def wait_installed(plane: ControlPlane, namespace: str, name: str) -> None:
    eventually(
        lambda: (
            status_of(plane, f"seccompprofiles.{GROUP}", namespace, name) == "Installed"
            and profile_file(namespace, name).exists()
        ),
        timeout=180,
        what=f"{namespace}/{name} Installed and on the node",
    )


def user_profile(plane: ControlPlane) -> tuple[str, str]:
    """A namespace of the user's with a SeccompProfile Installed on the node."""
    namespace, name = unique("uninstall"), unique("allow")
    plane.kubectl("create", "namespace", namespace)
    plane.apply(seccomp_profile(namespace, name))
    wait_installed(plane, namespace, name)
    return namespace, name


def assert_nothing_left(plane: ControlPlane, objects: list[tuple[str, str, str]]) -> None:
    wait_namespace_gone(plane)
    assert cluster_leftovers(plane, objects) == []


def test_readme_order_removes_everything_and_the_node_files(operator: Operator) -> None:
    """The README's order on the shared install, with a profile of the user's used by a
    running pod and bound by a ProfileBinding: the pod stops, the README's commands run, and
    nothing is left, in the cluster or on the node."""
    plane = operator.plane
    namespace, name = user_profile(plane)
    pod = unique("user")
    create(
        plane,
        namespace,
        busybox_pod(pod, "sleep 3600", profile=f"operator/{namespace}/{name}.json"),
    )
    wait_running(plane, namespace, pod)
    bound = unique("bind")
    binding: dict[str, Any] = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ProfileBinding",
        "metadata": {"name": bound, "namespace": namespace},
        "spec": {
            "profileRef": {"kind": "SeccompProfile", "name": name},
            "image": "localhost/spo-e2e/not-used:1",
        },
    }
    plane.apply(binding)
    eventually(
        lambda: finalizers(plane, f"profilebindings.{GROUP}", namespace, bound),
        timeout=60,
        what="Metacontroller's finalizer on the binding",
    )
    assert LOGGING_PROFILE.exists()
    plane.kubectl("delete", "pod", pod, "-n", namespace, "--timeout=60s")
    objects = built_objects(plane)
    while_running, operator_delete = split_operator_delete(readme_commands("uninstall"))

    began = time.monotonic()
    run_shell(plane, while_running, timeout=600)
    assert not profile_file(namespace, name).exists()
    operator.loop.stop()  # the controllers go with the next command; so does Metacontroller's loop
    run_shell(plane, operator_delete, timeout=360)
    print(f"README uninstall: {time.monotonic() - began:.1f}s")

    assert_nothing_left(plane, objects)
    assert node_files(kept=True) == []  # the log enricher's state stays, as the README says
    plane.kubectl("delete", "namespace", namespace, "--wait=false")


def test_fresh_install_deletes_with_nothing_left(cluster: Cluster) -> None:
    """``kubectl delete -k`` of an install with no profile of the user's finishes by itself:
    the install's own profile carries no finalizer. Nothing stays in the cluster; on the node
    the install's own profile file may stay (the README says why), and the README's node
    command removes it."""
    plane = cluster.plane
    with installed(cluster) as fresh:
        eventually(
            lambda: (
                status_of(plane, f"seccompprofiles.{GROUP}", OPERATOR_NS, "log-enricher-trace")
                == "Installed"
            ),
            timeout=180,
            what="the install's own profile Installed",
        )
        assert not finalizers(plane, f"seccompprofiles.{GROUP}", OPERATOR_NS, "log-enricher-trace")
        objects = built_objects(plane)
        fresh.loop.stop()
        _, operator_delete = split_operator_delete(readme_commands("uninstall"))
        began = time.monotonic()
        run_shell(plane, operator_delete, timeout=240)
        print(f"kubectl delete -k of a fresh install: {time.monotonic() - began:.1f}s")
    assert_nothing_left(plane, objects)
    left = node_files(kept=True)
    print(f"left on the node: {left}")
    assert set(left) <= {str(LOGGING_PROFILE)}, left
    run_shell(plane, readme_commands("node-cleanup"), timeout=60)
    assert node_files() == []


def test_operator_deleted_first_the_readme_frees_the_profiles(cluster: Cluster) -> None:
    """The operator deleted before a profile: the profile stays Terminating on Metacontroller's
    finalizer and ``kubectl delete -k`` waits for its CRD; the README's command frees it, the
    delete finishes, and the README's node command removes the file no agent was left to
    remove."""
    plane = cluster.plane
    with installed(cluster) as running:
        namespace, name = user_profile(plane)
        objects = built_objects(plane)
        running.loop.stop()
        _, operator_delete = split_operator_delete(readme_commands("uninstall"))
        deleting = start_shell(plane, operator_delete)
        try:
            eventually(
                lambda: plane.kubectl_json(
                    "get", f"seccompprofiles.{GROUP}", name, "-n", namespace
                )["metadata"].get("deletionTimestamp"),
                timeout=120,
                what="the profile Terminating",
            )
            time.sleep(10)
            assert deleting.poll() is None, "kubectl delete -k finished with a profile left"
            assert finalizers(plane, f"seccompprofiles.{GROUP}", namespace, name) == [
                "metacontroller.io/compositecontroller-seccompprofile-controller"
            ]
            run_shell(plane, readme_commands("free-finalizers"), timeout=120)
            out, _ = deleting.communicate(timeout=240)
            assert deleting.returncode == 0, out
        finally:
            if deleting.poll() is None:
                deleting.kill()
                deleting.communicate()
    assert_nothing_left(plane, objects)
    left = node_files()
    assert str(profile_file(namespace, name)) in left
    run_shell(plane, readme_commands("node-cleanup"), timeout=60)
    assert node_files() == []
    plane.kubectl("delete", "namespace", namespace, "--wait=false")
