"""The README's uninstall commands, run as written, and what an uninstall may leave.

The README keeps each command block between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``;
:func:`readme_commands` reads one, so the tests run the README's own text and it cannot drift.
Only the install's folder changes: the README says ``-k metacontroller/``, the node tests
installed ``-k tests/e2e/kubelet/overlay`` (the same objects, less cert-manager's).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.kubelet.busybox_pods import SECCOMP_ROOT
from tests.e2e.kubelet.operator_install import OPERATOR_NS, OVERLAY, REPO, eventually
from tests.helpers.controlplane import ControlPlane

README = REPO / "README.md"
INSTALL_FOLDER = "-k metacontroller/"
GROUP = "security-profiles-operator.x-k8s.io"
PROFILE_KINDS = ("seccompprofiles", "selinuxprofiles", "rawselinuxprofiles")
PROFILE_CONFIGMAPS = "spo.x-k8s.io/profile-kind"
WEBHOOK_CONFIGURATION = "spo-mutating-webhook-configuration"
# Everything on the node the install writes through a hostPath (hooks.cluster.spod.daemonset):
# the profiles' files (the folder itself is made by nodesync's init container), the log
# enricher's state, the node agents' socket folder; with enableSelinux also SELinux modules,
# which this node (no SELinux) cannot hold.
NODE_PATHS = (
    SECCOMP_ROOT / "operator",
    Path("/var/lib/security-profiles-operator"),
    Path("/var/run/security-profiles-operator"),
)
# What the README says the uninstall keeps on purpose, until its node command: the log
# enricher's state, so that a reinstalled or upgraded enricher resumes the audit log.
KEPT = Path("/var/lib/security-profiles-operator/log-enricher")


def readme_commands(name: str, folder: Path = OVERLAY) -> str:
    """The shell commands of the README between the markers ``name``, with the install's
    folder replaced by ``folder``."""
    text = README.read_text()
    found = re.search(
        rf"<!-- {re.escape(name)}:begin -->\n```sh\n(.*?)```\n<!-- {re.escape(name)}:end -->",
        text,
        re.S,
    )
    assert found, f"README.md has no block {name}"
    return found.group(1).replace(INSTALL_FOLDER, f"-k {folder}/")


def run_shell(
    plane: ControlPlane, script: str, *, timeout: float, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """``bash -e -c script`` in ``cwd`` with this cluster's kubectl and admin kubeconfig."""
    env = {
        **os.environ,
        "PATH": f"{plane.bin_dir}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(plane.kubeconfig),
    }
    proc = subprocess.run(
        ["bash", "-e", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{script}\nexited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc


def start_shell(plane: ControlPlane, script: str) -> subprocess.Popen[str]:
    """The same, in the background."""
    env = {
        **os.environ,
        "PATH": f"{plane.bin_dir}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(plane.kubeconfig),
    }
    return subprocess.Popen(
        ["bash", "-e", "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def split_operator_delete(script: str) -> tuple[str, str]:
    """The uninstall block as (what runs while the operator runs, the ``kubectl delete -k``
    line): Metacontroller stops the install's controllers as soon as that line deletes them."""
    lines = script.splitlines()
    last = [i for i, line in enumerate(lines) if " delete -k " in line]
    assert len(last) == 1 and last[0] == len(lines) - 1, script
    return "\n".join(lines[:-1]) + "\n", lines[-1] + "\n"


def _objects(built: str) -> list[tuple[str, str, str]]:
    found = []
    for doc in yaml.safe_load_all(built):
        if not doc:
            continue
        group = doc["apiVersion"].rpartition("/")[0]
        kind = f"{doc['kind'].lower()}.{group}" if group else doc["kind"].lower()
        meta = doc["metadata"]
        found.append((kind, meta.get("namespace", ""), meta["name"]))
    return found


def built_objects(plane: ControlPlane, folder: Path = OVERLAY) -> list[tuple[str, str, str]]:
    built = plane.kubectl("kustomize", str(folder)).stdout
    return _objects(built)


def cluster_leftovers(plane: ControlPlane, objects: list[tuple[str, str, str]]) -> list[str]:
    """What is left in the cluster of the install, and of what its controllers made."""
    left = []
    for kind, namespace, name in objects:
        args = ["get", kind, name, "-o", "name", "--ignore-not-found"]
        if namespace:
            args += ["-n", namespace]
        got = plane.kubectl(*args, check=False)
        if got.stdout.strip() or (got.returncode != 0 and "the server doesn't" not in got.stderr):
            left.append(f"{kind} {namespace}/{name}: {got.stdout.strip()}{got.stderr.strip()}")
    crds = plane.kubectl("get", "crd", "-o", "name").stdout.split()
    left += [crd for crd in crds if crd.endswith(f".{GROUP}")]
    made = plane.kubectl(
        "get", "configmaps", "-A", "-l", PROFILE_CONFIGMAPS, "-o", "name", check=False
    )
    left += made.stdout.split()
    webhook = plane.kubectl(
        "get",
        "mutatingwebhookconfiguration",
        WEBHOOK_CONFIGURATION,
        "-o",
        "name",
        "--ignore-not-found",
    )
    left += webhook.stdout.split()
    return left


def wait_namespace_gone(plane: ControlPlane, timeout: float = 180.0) -> None:
    eventually(
        lambda: (
            not plane.kubectl(
                "get", "namespace", OPERATOR_NS, "-o", "name", "--ignore-not-found"
            ).stdout.strip()
        ),
        timeout=timeout,
        what=f"namespace {OPERATOR_NS} gone",
    )


def node_files(*, kept: bool = False) -> list[str]:
    """Every file (not folder) under the install's node paths; with ``kept``, without what
    the README says stays on purpose (``KEPT``)."""
    return sorted(
        str(Path(root) / name)
        for top in NODE_PATHS
        if top.exists()
        for root, _, names in os.walk(top)
        if not (kept and Path(root).is_relative_to(KEPT))
        for name in names
    )


def finalizers(plane: ControlPlane, kind: str, namespace: str, name: str) -> Any:
    found = plane.kubectl_json("get", kind, name, "-n", namespace)
    return found["metadata"].get("finalizers")
