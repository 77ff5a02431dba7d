"""Go's "Log Enricher" and "Verify profile recording logs" cases on the real node: the log
enricher pod follows the host's auditd log, a real pod is recorded, and the same workload runs
under the recorded profile (built on the runc base) while what it never did is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kubelet.busybox_pods import busybox_pod, create, delete, get, logs
from tests.e2e.kubelet.operator_install import (
    OPERATOR_NS,
    Operator,
    eventually,
    pod_ready,
    pods,
)
from tests.e2e.kubelet.profiles import unique, wait_installed
from tests.helpers.auditd import auditd_running
from tests.helpers.controlplane import ControlPlane

pytestmark = [pytest.mark.e2e, pytest.mark.kubelet]

REPO = Path(__file__).resolve().parents[3]
GROUP = "security-profiles-operator.x-k8s.io"
RECORDING_LABEL = "spo.x-k8s.io/recording-id"
ENRICHER = "app.kubernetes.io/name=spo-log-enricher"
EPERM = "Operation not permitted"
# busybox's sh with builtins, and sleep (a process of its own) long enough for the log enricher
# to map every record to the container while the process still lives.
WORKLOAD = "i=0; while [ $i -lt 3 ]; do echo tick $i; i=$((i+1)); sleep 2; done"


def phase(plane: ControlPlane, namespace: str, name: str) -> str:
    return str(get(plane, namespace, name).get("status", {}).get("phase", ""))


@pytest.fixture(scope="module")
def enricher(operator: Operator) -> Iterator[Operator]:
    """auditd on the host, and the spod with the log enricher on (Go: enableLogEnricher)."""
    plane = operator.plane
    with auditd_running():
        patch = json.dumps({"spec": {"enableLogEnricher": True}})
        plane.kubectl("patch", "spod", "spod", "-n", OPERATOR_NS, "--type=merge", "-p", patch)
        eventually(
            lambda: [p for p in pods(plane, OPERATOR_NS, ENRICHER) if pod_ready(p)],
            timeout=180,
            what="the log enricher's pod Ready",
        )
        try:
            yield operator
        finally:
            patch = json.dumps({"spec": {"enableLogEnricher": False}})
            plane.kubectl("patch", "spod", "spod", "-n", OPERATOR_NS, "--type=merge", "-p", patch)


def recorded_profiles(plane: ControlPlane, namespace: str, recording: str) -> list[dict[str, Any]]:
    found = plane.kubectl_json(
        "get", f"seccompprofiles.{GROUP}", "-n", namespace, "-l", f"{RECORDING_LABEL}={recording}"
    )
    return list(found["items"])


def recording_namespace(plane: ControlPlane) -> str:
    """A namespace of the test's own, labelled for recording, with its default
    ServiceAccount."""
    namespace = unique("record")
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"spo.x-k8s.io/enable-recording": ""}},
        }
    )
    eventually(
        lambda: plane.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0,
        timeout=60,
        what="the default ServiceAccount",
    )
    return namespace


def start_recording(operator: Operator, namespace: str, app: str, **spec: Any) -> str:
    """A ProfileRecording (seccomp, logs) of the pods labelled ``app`` (the webhook's watches have
    it at once)."""
    recording = unique("rec")
    operator.plane.apply(
        {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "ProfileRecording",
            "metadata": {"name": recording, "namespace": namespace},
            "spec": {
                "kind": "SeccompProfile",
                "recorder": "logs",
                "podSelector": {"matchLabels": {"app": app}},
                **spec,
            },
        }
    )
    return recording


def test_a_recorded_pod_gives_a_profile_its_workload_runs_under(enricher: Operator) -> None:
    plane = enricher.plane
    namespace = recording_namespace(plane)
    app = unique("app")
    recording = start_recording(enricher, namespace, app)
    name = unique("recorded")
    stored, _ = create(plane, namespace, busybox_pod(name, WORKLOAD, labels={"app": app}))
    seccomp = stored["spec"]["containers"][0]["securityContext"]["seccompProfile"]
    assert seccomp["localhostProfile"] == f"operator/{OPERATOR_NS}/log-enricher-trace.json"
    eventually(
        lambda: phase(plane, namespace, name) == "Succeeded", timeout=120, what="recorded pod done"
    )
    # Go's log enricher case: the enricher pod's log names the pod and its syscalls.
    enricher_pod = pods(plane, OPERATOR_NS, ENRICHER)[0]["metadata"]["name"]
    eventually(
        lambda: name in logs(plane, OPERATOR_NS, enricher_pod),
        timeout=60,
        what="the recorded pod in the log enricher's log",
    )
    lines = [
        json.loads(line)
        for line in logs(plane, OPERATOR_NS, enricher_pod).splitlines()
        if line.startswith("{") and name in line
    ]
    assert any(line.get("syscallName") == "execve" for line in lines), lines[:5]
    [profile] = eventually(
        lambda: recorded_profiles(plane, namespace, recording), timeout=120, what="recorded profile"
    )
    [rule] = profile["spec"]["syscalls"]
    recorded = set(rule["names"])
    assert {"execve", "write"} <= recorded, recorded
    assert "mkdir" not in recorded and "mkdirat" not in recorded
    # The same workload under the recorded syscalls, on the runc base (what runc does before
    # the workload's execve is not the container's): it runs; mkdir, never recorded, is refused.
    base = yaml.safe_load((REPO / "examples" / "base-profiles" / "runc-v1.1.5.yaml").read_text())
    base["metadata"]["namespace"] = namespace
    plane.apply(base)
    replay = unique("replay")
    plane.apply(
        {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "SeccompProfile",
            "metadata": {"name": replay, "namespace": namespace},
            "spec": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "baseProfileName": base["metadata"]["name"],
                "syscalls": [{"action": "SCMP_ACT_ALLOW", "names": sorted(recorded)}],
            },
        }
    )
    wait_installed(plane, namespace, replay, timeout=120)
    localhost = f"operator/{namespace}/{replay}.json"
    again, refused = unique("again"), unique("refused")
    for pod, script in (
        (again, WORKLOAD),
        (refused, WORKLOAD + "; mkdir /tmp/never; echo mkdir exited $?"),
    ):
        manifest = busybox_pod(pod, script)
        manifest["spec"]["containers"][0]["securityContext"] = {
            "seccompProfile": {"type": "Localhost", "localhostProfile": localhost},
            "allowPrivilegeEscalation": False,  # as the runc base was recorded
        }
        create(plane, namespace, manifest)
    try:
        for pod in (again, refused):

            def done(pod: str = pod) -> bool:
                return phase(plane, namespace, pod) in ("Succeeded", "Failed")

            eventually(
                done,
                timeout=120,
                what=f"{pod} done",
            )
        assert phase(plane, namespace, again) == "Succeeded"
        assert "tick 2" in logs(plane, namespace, again)
        out = logs(plane, namespace, refused)
        assert "tick 2" in out and "mkdir exited 1" in out and EPERM in out, out
    finally:
        delete(plane, namespace, again, refused, name)
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_only_the_containers_named_by_the_recording_are_recorded(enricher: Operator) -> None:
    """Go's multi-container recording with ``containers``: a pod of two containers, the
    recording names the second; one profile, ``<recording>-work1``."""
    plane = enricher.plane
    namespace = recording_namespace(plane)
    app = unique("app")
    try:
        recording = start_recording(enricher, namespace, app, containers=["work1"])
        name = unique("two")
        stored, _ = create(
            plane, namespace, busybox_pod(name, WORKLOAD, labels={"app": app}, containers=2)
        )
        first, second = stored["spec"]["containers"]
        assert "seccompProfile" not in (first.get("securityContext") or {}), first
        assert second["securityContext"]["seccompProfile"]["localhostProfile"] == (
            f"operator/{OPERATOR_NS}/log-enricher-trace.json"
        )
        eventually(
            lambda: phase(plane, namespace, name) == "Succeeded", timeout=120, what="pod done"
        )
        [profile] = eventually(
            lambda: recorded_profiles(plane, namespace, recording),
            timeout=120,
            what="the recorded profile",
        )
        assert profile["metadata"]["name"] == f"{recording}-work1"
        [rule] = profile["spec"]["syscalls"]
        assert {"execve", "write"} <= set(rule["names"]), rule
        time.sleep(5)  # the log enricher has had the time to make a profile for `work` too
        assert len(recorded_profiles(plane, namespace, recording)) == 1
    finally:
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_deployment_of_two_replicas_is_merged_into_one_profile(enricher: Operator) -> None:
    """Go's recording of a Deployment with ``mergeStrategy: containers``: each replica gives a
    partial profile; deleting the recording merges them into ``<recording>-work`` and removes
    the partials, then the recording goes."""
    plane = enricher.plane
    namespace = recording_namespace(plane)
    app = unique("app")
    try:
        recording = start_recording(enricher, namespace, app, mergeStrategy="containers")
        deployment = busybox_pod(app, WORKLOAD + "; sleep 3600", labels={"app": app})
        template = {"metadata": deployment["metadata"], "spec": deployment["spec"]}
        template["spec"]["restartPolicy"] = "Always"
        plane.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": app, "namespace": namespace},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": app}},
                    "template": template,
                },
            }
        )
        eventually(
            lambda: (
                len(
                    [
                        p
                        for p in pods(plane, namespace, f"app={app}")
                        if "tick 2"
                        in plane.kubectl(
                            "logs", p["metadata"]["name"], "-n", namespace, check=False
                        ).stdout
                    ]
                )
                == 2
            ),
            timeout=180,
            what="both replicas through their workload",
        )
        plane.kubectl("scale", "deployment", app, "-n", namespace, "--replicas=0")
        partials = eventually(
            lambda: (
                [
                    p
                    for p in recorded_profiles(plane, namespace, recording)
                    if p["metadata"].get("labels", {}).get("spo.x-k8s.io/partial") == "true"
                ]
                if len(recorded_profiles(plane, namespace, recording)) == 2
                else []
            ),
            timeout=180,
            what="one partial profile per replica",
        )
        assert len(partials) == 2, partials
        plane.kubectl("delete", "profilerecording", recording, "-n", namespace, "--wait=false")
        merged = eventually(
            lambda: [
                p
                for p in recorded_profiles(plane, namespace, recording)
                if p["metadata"]["name"] == f"{recording}-work"
                and "spo.x-k8s.io/partial" not in p["metadata"].get("labels", {})
            ],
            timeout=180,
            what="the merged profile",
        )
        [rule] = merged[0]["spec"]["syscalls"]
        assert {"execve", "write"} <= set(rule["names"]), rule
        eventually(
            lambda: len(recorded_profiles(plane, namespace, recording)) == 1,
            timeout=120,
            what="the partial profiles gone",
        )
        eventually(
            lambda: (
                plane.kubectl(
                    "get", "profilerecording", recording, "-n", namespace, check=False
                ).returncode
                != 0
            ),
            timeout=120,
            what="the recording gone",
        )
    finally:
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def enricher_pods_with(plane: ControlPlane, env: dict[str, str | None]) -> list[dict[str, Any]]:
    """The log enricher's pods, when every one is Ready and has ``env`` (the roll-out is
    over)."""
    found = pods(plane, OPERATOR_NS, ENRICHER)
    for pod in found:
        [container] = pod["spec"]["containers"]
        has = {e["name"]: e.get("value") for e in container.get("env") or []}
        if not pod_ready(pod) or any(has.get(k) != v for k, v in env.items()):
            return []
        if pod["metadata"].get("deletionTimestamp"):
            return []
    return found


def test_with_memory_optimisation_only_pods_labelled_for_recording_are_recorded(
    enricher: Operator,
) -> None:
    """Go's memory optimisation case: with ``enableMemoryOptimization`` the log enricher
    knows only the pods labelled ``spo.x-k8s.io/enable-recording``; a recorded pod with the
    label gets its profile, one without it (in the same labelled namespace) gets none."""
    plane = enricher.plane
    spod = ("patch", "spod", "spod", "-n", OPERATOR_NS, "--type=merge", "-p")
    plane.kubectl(*spod, json.dumps({"spec": {"enableMemoryOptimization": True}}))
    namespace = recording_namespace(plane)
    try:
        eventually(
            lambda: enricher_pods_with(plane, {"ENABLE_MEMORY_OPTIMIZATION": "true"}),
            timeout=180,
            what="the log enricher rolled out with memory optimisation",
        )
        labelled_app, plain_app = unique("labelled"), unique("plain")
        labelled_rec = start_recording(enricher, namespace, labelled_app)
        plain_rec = start_recording(enricher, namespace, plain_app)
        labelled, plain = unique("labelled"), unique("plain")
        create(
            plane,
            namespace,
            busybox_pod(
                labelled,
                WORKLOAD,
                labels={"app": labelled_app, "spo.x-k8s.io/enable-recording": ""},
            ),
        )
        create(plane, namespace, busybox_pod(plain, WORKLOAD, labels={"app": plain_app}))
        for pod in (labelled, plain):

            def done(pod: str = pod) -> bool:
                return phase(plane, namespace, pod) == "Succeeded"

            eventually(done, timeout=120, what=f"{pod} done")
        [profile] = eventually(
            lambda: recorded_profiles(plane, namespace, labelled_rec),
            timeout=120,
            what="the labelled pod's profile",
        )
        [rule] = profile["spec"]["syscalls"]
        assert {"execve", "write"} <= set(rule["names"]), rule
        time.sleep(5)  # as long again as the labelled pod's profile took, at least
        assert recorded_profiles(plane, namespace, plain_rec) == []
    finally:
        plane.kubectl(*spod, json.dumps({"spec": {"enableMemoryOptimization": False}}))
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        eventually(
            lambda: enricher_pods_with(plane, {"ENABLE_MEMORY_OPTIMIZATION": None}),
            timeout=180,
            what="the log enricher rolled back",
        )
