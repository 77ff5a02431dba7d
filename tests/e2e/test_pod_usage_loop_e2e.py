"""Pods labelled with what they use (spo-pod-usage, hooks/cluster/podusage.py), against the real
API server with the emulated Metacontroller loop: a pod event syncs only the profiles the pod
uses, a profile's status names the pods that use it, and a profile being deleted still waits
for a pod the label missed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api import GROUP
from tests.helpers.controlplane import ControlPlane
from tests.helpers.metacontroller_common import api_for
from tests.helpers.metacontroller_loop import Metacontroller
from tests.helpers.recording_env import until as eventually

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent.parent
NS = "pod-usage-e2e"
PROFILES = f"seccompprofiles.{GROUP}"
BASE = REPO / "metacontroller" / "base"
SECCOMP = yaml.safe_load((BASE / "seccompprofile-controller.yaml").read_text())
POD_USAGE = yaml.safe_load((BASE / "pod-usage-decorator.yaml").read_text())
PROFILE_COUNT = 10
USES = "uses.spo.x-k8s.io/SeccompProfile-"
BYSTANDER = f"v1:Pod:{NS}:bystander"  # the loop's key of a decorator's parent


@pytest.fixture(scope="module")
def plane(installed: ControlPlane) -> Iterator[ControlPlane]:
    installed.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    yield installed
    installed.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def profile(plane: ControlPlane, name: str) -> None:
    plane.apply(
        {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "SeccompProfile",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"defaultAction": "SCMP_ACT_LOG"},
        }
    )


def pod(plane: ControlPlane, name: str, uses: str | None) -> None:
    """A pod (no node runs it: it stays Pending, which counts as running for a profile)."""
    context: dict[str, Any] = {}
    if uses is not None:
        context = {
            "seccompProfile": {
                "type": "Localhost",
                "localhostProfile": f"operator/{NS}/{uses}.json",
            }
        }
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": context}]},
        }
    )


def labels(plane: ControlPlane, name: str) -> dict[str, str]:
    return dict(plane.kubectl_json("get", "pod", name, "-n", NS)["metadata"].get("labels") or {})


def workloads(plane: ControlPlane, name: str) -> Any:
    found = plane.kubectl("get", PROFILES, name, "-n", NS, "-o", "json", check=False)
    if found.returncode != 0:
        return "gone"
    return ((yaml.safe_load(found.stdout).get("status") or {}).get("activeWorkloads")) or []


def check(condition: bool, what: str = "") -> None:
    assert condition, what


def profile_syncs(loop: Metacontroller) -> dict[str, int]:
    return {
        f"p{i}": loop.sync_count("seccompprofile-controller", f"{NS}/p{i}")
        for i in range(PROFILE_COUNT)
    }


def test_a_pod_event_syncs_only_the_profiles_the_pod_uses(
    plane: ControlPlane, hook_server: str
) -> None:
    with Metacontroller(api_for(plane), hook_server, [SECCOMP, POD_USAGE], workers=2) as loop:
        for i in range(PROFILE_COUNT):
            profile(plane, f"p{i}")
        pod(plane, "user", uses="p0")
        pod(plane, "bystander", uses=None)
        eventually(
            "the user pod labelled",
            lambda: check(
                labels(plane, "user") == {f"{USES}p0": "true"}, str(labels(plane, "user"))
            ),
        )
        eventually("p0 names its pod", lambda: check(workloads(plane, "p0") == ["user"]))
        assert all(workloads(plane, f"p{i}") == [] for i in range(1, PROFILE_COUNT))
        assert labels(plane, "bystander") == {}
        loop.wait_idle()

        before = profile_syncs(loop)
        decorated = loop.sync_count("spo-pod-usage", BYSTANDER)
        for n in range(5):  # events of a pod that uses nothing (the queue may merge some)
            plane.kubectl("annotate", "--overwrite", "pod", "bystander", "-n", NS, f"n={n}")
        eventually(
            "the decorator saw the events",
            lambda: check(loop.sync_count("spo-pod-usage", BYSTANDER) > decorated),
        )
        loop.wait_idle()
        assert profile_syncs(loop) == before  # no profile synced for it

        plane.kubectl("annotate", "--overwrite", "pod", "user", "-n", NS, "n=1")
        eventually(
            "p0 synced for its pod's event",
            lambda: check(profile_syncs(loop)["p0"] > before["p0"]),
        )
        loop.wait_idle()
        after = profile_syncs(loop)
        assert {k: v for k, v in after.items() if k != "p0"} == {
            k: v for k, v in before.items() if k != "p0"
        }

        # A label a user forges is taken back; what the pod uses is read from its spec anyway.
        plane.kubectl("label", "pod", "bystander", "-n", NS, f"{USES}p1=true")
        eventually("the forged label removed", lambda: check(labels(plane, "bystander") == {}))
        assert workloads(plane, "p1") == []
        loop.raise_errors(NS)


def test_a_profile_being_deleted_waits_for_a_pod_the_label_missed(
    plane: ControlPlane, hook_server: str
) -> None:
    # No pod-usage decorator: the pod is never labelled, as if created while it was down.
    with Metacontroller(api_for(plane), hook_server, [SECCOMP], workers=2) as loop:
        profile(plane, "kept")
        pod(plane, "unlabelled", uses="kept")

        def synced() -> None:
            meta = plane.kubectl_json("get", PROFILES, "kept", "-n", NS)
            check(bool(meta["metadata"].get("finalizers")), "no finalizer yet")
            check(bool((meta.get("status") or {}).get("status")), "no status yet")

        eventually("the profile synced, with Metacontroller's finalizer", synced)
        assert workloads(plane, "kept") == []  # the label is missing: the status cannot tell
        generation = plane.kubectl_json("get", PROFILES, "kept", "-n", NS)["metadata"]["generation"]
        plane.kubectl("delete", PROFILES, "kept", "-n", NS, "--wait=false")
        # Deletion bumps the generation, so Metacontroller asks the customize hook again and
        # the finalize hook gets every pod of the namespace.
        eventually(
            "the profile waits for the pod",
            lambda: check(
                workloads(plane, "kept") == ["unlabelled"], str(workloads(plane, "kept"))
            ),
        )
        deleting = plane.kubectl_json("get", PROFILES, "kept", "-n", NS)["metadata"]
        assert deleting["generation"] > generation
        time.sleep(2)
        assert workloads(plane, "kept") == ["unlabelled"]
        plane.kubectl("delete", "pod", "unlabelled", "-n", NS, "--grace-period=0", "--force")
        eventually("the profile goes", lambda: check(workloads(plane, "kept") == "gone"))
        loop.raise_errors(NS)
