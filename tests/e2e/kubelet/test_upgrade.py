"""Upgrade on the real node: the previous release installed with its own manifests and image,
then the README's upgrade commands with this tree's: every profile stays Installed, a node file
whose content did not change is not written again, and a running pod is left alone.

The previous release is ``PREVIOUS_RELEASE`` (the project has no tags yet), taken from this
repository's history with ``git archive`` and built with its own ``tools/image/build.py`` (its
archive is cached by content, as the current one). Its image is retagged ``:previous`` on the
node, so that both images are there at once and every pod says which one it runs.

The test starts from an empty cluster: it uninstalls the shared install with the README's
commands first. The module's name sorts after every other node test's, so it runs last.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kubelet.busybox_pods import SECCOMP_ROOT, busybox_pod, create, get, wait_running
from tests.e2e.kubelet.operator_install import (
    HOOKS,
    NODESYNC,
    OPERATOR_IMAGE,
    OPERATOR_NS,
    REPO,
    Operator,
    apply_install,
    eventually,
    hooks_base,
    inject_ca,
    pods,
    ready_pods,
)
from tests.e2e.kubelet.uninstalling import (
    GROUP,
    readme_commands,
    run_shell,
    split_operator_delete,
    wait_namespace_gone,
)
from tests.e2e.kubenode import Cluster
from tests.helpers.controlplane import ControlPlane
from tests.helpers.metacontroller_common import api_for
from tests.helpers.metacontroller_loop import Metacontroller, installed_controllers, start
from tests.helpers.unavailable import unavailable

pytestmark = [pytest.mark.e2e, pytest.mark.kubelet]

# The last landed version when the upgrade was first tested: main's head, the merge of h-mc2.
# Replace it with the previous release's tag once the project tags releases.
PREVIOUS_RELEASE = "b777e5b"
PREVIOUS_IMAGE = "localhost/security-profiles-operator-py:previous"
PROFILES = f"seccompprofiles.{GROUP}"
OPERATOR_PROFILE = (OPERATOR_NS, "log-enricher-trace")


@dataclass(frozen=True)
class FileState:
    inode: int
    mtime_ns: int
    content: bytes


def node_file_states() -> dict[str, FileState]:
    found = {}
    for root, _, names in os.walk(SECCOMP_ROOT / "operator"):
        for name in names:
            path = Path(root) / name
            info = path.stat()
            found[str(path)] = FileState(info.st_ino, info.st_mtime_ns, path.read_bytes())
    return found


def previous_tree(into: Path) -> Path:
    """The previous release's files, from this repository's history."""
    known = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if known.returncode != 0:
        unavailable(
            f"commit {PREVIOUS_RELEASE} (the previous release) is not in this clone's history"
        )
    archive = into / "previous.tar"
    subprocess.run(
        ["git", "-C", str(REPO), "archive", "--output", str(archive), PREVIOUS_RELEASE],
        check=True,
    )
    tree = into / "previous"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def build_previous_image(tree: Path) -> Path:
    """The previous release's image, by its own build tool (cached by content)."""
    proc = subprocess.run(
        [sys.executable, str(tree / "tools" / "image" / "build.py"), "operator"],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip().splitlines()[-1])


def previous_overlay(tree: Path) -> Path:
    """The previous release's node-test overlay, pointing at the ``:previous`` image."""
    overlay = tree / "tests" / "e2e" / "kubelet" / "overlay"
    kustomization = overlay / "kustomization.yaml"
    text = kustomization.read_text()
    assert "newTag: e2e" in text and OPERATOR_IMAGE in text
    kustomization.write_text(
        text.replace("newTag: e2e", "newTag: previous").replace(OPERATOR_IMAGE, PREVIOUS_IMAGE)
    )
    return overlay


def start_metacontroller(plane: ControlPlane) -> Metacontroller:
    """Metacontroller's part for the controllers installed now, reached as the real one reaches
    them (the hooks Service's ClusterIP); the node's controller-manager collects garbage."""
    controllers = installed_controllers(api_for(plane))
    return start(plane, hooks_base(plane, controllers), *controllers, garbage_collector=None)


def install_previous(cluster: Cluster, tree: Path) -> Path:
    """The previous release's install, as ``operator_install`` makes the current one; returns
    the webhook's CA."""
    return apply_install(cluster, tree, previous_overlay(tree), issued_as="-previous")


def images_of(pod: dict[str, Any]) -> set[str]:
    return {c["image"] for c in pod["spec"]["containers"]}


def running_on(plane: ControlPlane, image: str, ca: Path) -> None:
    """Both hooks pods and the nodesync pod run ``image`` and are Ready; the webhook
    configuration carries the CA."""

    def hooks_ready() -> bool:
        ready = ready_pods(plane, OPERATOR_NS, HOOKS)
        every = pods(plane, OPERATOR_NS, HOOKS)
        return len(ready) == 2 == len(every) and all(images_of(p) == {image} for p in ready)

    def nodesync_ready() -> bool:
        ready = ready_pods(plane, OPERATOR_NS, NODESYNC)
        every = pods(plane, OPERATOR_NS, NODESYNC)
        return len(ready) == 1 == len(every) and all(image in images_of(p) for p in ready)

    eventually(hooks_ready, timeout=240, what=f"both hooks pods Ready on {image}")
    eventually(nodesync_ready, timeout=240, what=f"the nodesync pod Ready on {image}")
    eventually(lambda: inject_ca(plane, ca), timeout=120, what="the webhook configuration")


def profile_states(plane: ControlPlane) -> dict[tuple[str, str], str]:
    found = plane.kubectl_json("get", PROFILES, "-A")["items"]
    return {
        (p["metadata"]["namespace"], p["metadata"]["name"]): (p.get("status") or {}).get(
            "status", ""
        )
        for p in found
    }


@contextmanager
def watching_profiles(plane: ControlPlane) -> Iterator[list[tuple[float, dict[Any, str]]]]:
    """Every state of the profiles seen twice a second meanwhile, with its time."""
    seen: list[tuple[float, dict[Any, str]]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append((time.monotonic(), profile_states(plane)))
            stop.wait(0.5)

    thread = threading.Thread(target=watch, name="profile-states", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(30)


def uninstall_shared(operator: Operator) -> None:
    """The shared install goes, by the README's commands (the tests' start from nothing)."""
    plane = operator.plane
    while_running, operator_delete = split_operator_delete(readme_commands("uninstall"))
    run_shell(plane, while_running, timeout=600)
    operator.loop.stop()
    run_shell(plane, operator_delete, timeout=360)
    wait_namespace_gone(plane)


def test_upgrade_from_the_previous_release_keeps_profiles_files_and_pods(
    cluster: Cluster, node_images: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    plane = cluster.plane
    timings: dict[str, float] = {}
    began = time.monotonic()
    tree = previous_tree(tmp_path)
    previous_archive = build_previous_image(tree)
    timings["previous image"] = time.monotonic() - began
    assert previous_archive != node_images.operator, "the previous image is the current one"

    if plane.kubectl("get", "namespace", OPERATOR_NS, "--ignore-not-found", "-o", "name").stdout:
        uninstall_shared(request.getfixturevalue("operator"))
    # Both images on the node: the previous one retagged, the current one imported again over
    # the tag the previous archive took.
    cluster.node.import_image(previous_archive)
    cluster.node.ctr("images", "tag", "--force", OPERATOR_IMAGE, PREVIOUS_IMAGE)
    cluster.node.import_image(node_images.operator)

    began = time.monotonic()
    ca = install_previous(cluster, tree)
    loop = start_metacontroller(plane)
    try:
        running_on(plane, PREVIOUS_IMAGE, ca)
        timings["previous install"] = time.monotonic() - began

        namespace = f"upgrade-{uuid.uuid4().hex[:6]}"
        plane.kubectl("create", "namespace", namespace)
        names = ("used", "unused")
        for name in names:
            plane.apply(
                {
                    "apiVersion": f"{GROUP}/v1beta1",
                    "kind": "SeccompProfile",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {
                        "defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [
                            {"action": "SCMP_ACT_ERRNO", "errnoRet": 1, "names": ["mkdir"]}
                        ],
                    },
                }
            )
        expected = {(namespace, name) for name in names} | {OPERATOR_PROFILE}
        eventually(
            lambda: all(profile_states(plane).get(key) == "Installed" for key in expected),
            timeout=180,
            what=f"{sorted(expected)} Installed",
        )
        pod = "workload"
        create(
            plane,
            namespace,
            busybox_pod(pod, "sleep 3600", profile=f"operator/{namespace}/used.json"),
        )
        before_pod = wait_running(plane, namespace, pod)["status"]["containerStatuses"][0]
        before = node_file_states()
        assert len(before) == 3, sorted(before)

        began = time.monotonic()
        with watching_profiles(plane) as seen:
            loop.stop()  # Metacontroller takes the new controllers when they are applied
            run_shell(plane, readme_commands("upgrade"), timeout=300)
            loop = start_metacontroller(plane)
            running_on(plane, OPERATOR_IMAGE, ca)
            timings["upgrade"] = time.monotonic() - began
            loop.wait_idle(timeout=120)
            time.sleep(10)  # the new agents and controllers at rest: nothing more may change
        print(f"timings (s): { {k: round(v, 1) for k, v in timings.items()} }")

        not_installed = [
            (round(at - began, 1), key, state)
            for at, states in seen
            for key, state in states.items()
            if key in expected and state != "Installed"
        ]
        assert seen and not_installed == []
        assert all(key in states for _, states in seen for key in expected)
        final = profile_states(plane)
        assert {key: final.get(key) for key in expected} == dict.fromkeys(expected, "Installed")

        after = node_file_states()
        assert sorted(after) == sorted(before)
        rewritten = [
            path
            for path, state in before.items()
            if after[path].content == state.content
            and (after[path].inode, after[path].mtime_ns) != (state.inode, state.mtime_ns)
        ]
        assert rewritten == []
        changed = [path for path, state in before.items() if after[path].content != state.content]
        print(f"node files whose content changed: {changed}")

        after_pod = get(plane, namespace, pod)["status"]
        status = after_pod["containerStatuses"][0]
        assert after_pod["phase"] == "Running"
        assert status["containerID"] == before_pod["containerID"]
        assert status["restartCount"] == 0
        assert "running" in status["state"]
        plane.kubectl("delete", "namespace", namespace, "--wait=false")
    finally:
        loop.stop()
