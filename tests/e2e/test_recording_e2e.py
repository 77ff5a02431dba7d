"""Recording a real container, end to end, with the real auditd, runc and kube-apiserver.

The whole path of a ProfileRecording, each step done by the real component:

1. the pod is created through the real API server, whose registered recording
   webhook (served over HTTPS) marks its container and points it at the
   logging profile (``SCMP_ACT_LOG``);
2. ``spo log-enricher`` runs as a process with a token of the install's
   ``spo-log-enricher`` ServiceAccount, watching the pods of its node and
   following auditd's log;
3. the container runs under runc with the logging profile as the runtime gets
   it (the file nodesync installs) and in a cgroup laid out as the kubelet's
   cgroupfs driver lays it out, the pod's status naming its container id (as
   the kubelet would report it); auditd rotates its log in the middle of the run;
4. the pod Succeeds, and the log enricher creates the SeccompProfile;
5. that profile, built on the runc base profile (``baseProfileName``), goes
   through the SeccompProfile hook to its ConfigMap, and the same workload runs
   under exactly those bytes with default action ERRNO: it succeeds, while a
   command it never ran (mkdir) is refused;
6. the ProfileRecording can then be deleted: its finalize sees the profile.

The workload is busybox's sh using builtins, then a ``sleep`` long enough for
the rotation: a process that exits before its records are read cannot be
mapped to its container any more (see the README's recording section).

Without auditd, the log enricher says so at start and refuses to create a
profile that would be incomplete.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane import ControlPlane
from metacontroller_step import CompositeStep
from nodesync_process import NODE, NodeSync, eventually
from webhooks import (
    CONFIGURATION,
    OPERATOR_NS,
    REPO,
    WebhookServer,
    create,
    decorator_step,
    pod,
    serving_webhooks,
    with_status,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "node"))  # the node tests' helpers
from auditing import AUDIT_LOG, auditd_running, auditd_stopped
from oci import Bundle, Run, find_busybox, find_runc, localhost_seccomp

from hooks.api import GROUP
from hooks.api.seccompprofile import SeccompProfileSpec
from hooks.seccomp.oci import encode, runtime_profile

pytestmark = [pytest.mark.e2e, pytest.mark.node]

NS = "record-e2e"
PROFILES = f"seccompprofiles.{GROUP}"
RECORDINGS = f"profilerecordings.{GROUP}"
CONTAINER = "work"
# sh's builtins only, then a sleep that outlives the rotation; the second half uses syscalls
# (chdir, umask, kill) that the first half never makes, so they can only come from the new log.
FIRST = 'echo recorded > /tmp/out; read line < /tmp/out; echo "$line"; sleep 3'
SECOND = "cd /tmp && umask 077 && kill -0 $$ && echo done"
WORKLOAD = ["/bin/sh", "-c", f"{FIRST}; {SECOND}"]
AFTER_ROTATION = {"chdir", "umask", "kill"}
DEADLINE = 60.0


class LogEnricher(NodeSync):
    """``spo log-enricher`` as a process; its JSON lines (enriched records and logs) in a file."""

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "hooks.cli",
            "log-enricher",
            "--kubeconfig",
            str(self.kubeconfig),
            "--node-name",
            self.node,
            "--metrics-bind",
            f"127.0.0.1:{self.port}",
            "--audit-log",
            str(AUDIT_LOG),
            "--finish-delay",
            "1",
            *self.extra,
        ]

    def audit_lines(self, pod_name: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("msg") == "audit" and r.get("pod") == pod_name]

    def ready(self) -> None:
        try:
            code, body = self.get("/readyz")
        except OSError as error:  # not listening yet
            raise AssertionError(f"/readyz: {error}") from None
        assert code == 200, f"/readyz: {code} {body}"


def recording(name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ProfileRecording",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"kind": "SeccompProfile", "recorder": "logs", "podSelector": {"matchLabels": {"app": app}}},
    }


def set_pod_status(plane: ControlPlane, name: str, status: dict[str, Any]) -> None:
    with_status(plane, "pods", NS, name, status)


def container_status(container_id: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": CONTAINER,
        "containerID": f"containerd://{container_id}",
        "image": "busybox:1.36",
        "imageID": "",
        "ready": "running" in state,
        "restartCount": 0,
        "state": state,
    }


def profile_of(plane: ControlPlane, name: str) -> dict[str, Any]:
    got = plane.kubectl("get", PROFILES, name, "-n", NS, "-o", "json", check=False)
    assert got.returncode == 0, f"no SeccompProfile {NS}/{name} yet: {got.stderr.strip()}"
    found: dict[str, Any] = json.loads(got.stdout)
    return found


@pytest.fixture(scope="module")
def webhook(installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookServer]:
    plane = installed
    plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"spo.x-k8s.io/enable-recording": ""}}})
    plane.kubectl("apply", "--server-side", "-f", str(REPO / "metacontroller" / "base" / "recording-profile.yaml"))
    localhost = f"operator/{OPERATOR_NS}/log-enricher-trace.json"
    with_status(plane, PROFILES, OPERATOR_NS, "log-enricher-trace", {"status": "Installed", "localhostProfile": localhost})
    plane.apply(recording("demo", "demo"))
    plane.apply(recording("quiet", "quiet"))
    try:
        with serving_webhooks(tmp_path_factory.mktemp("record-e2e-webhook")) as server:
            decorator_step(plane, server)  # registers the webhook configuration, publishes the tables
            yield server
    finally:
        plane.kubectl("delete", "mutatingwebhookconfiguration", CONFIGURATION, "--ignore-not-found", check=False)
        plane.kubectl("delete", "namespace", NS, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def enricher_kubeconfig(installed: ControlPlane) -> Path:
    return installed.service_account_kubeconfig(OPERATOR_NS, "spo-log-enricher", create=False)


def started(agent: LogEnricher) -> LogEnricher:
    agent.start()
    eventually("the log enricher is ready", agent.ready, agent)
    return agent


def logging_profile_file(kubelet: Path, localhost: str) -> None:
    """What nodesync installs for the logging profile: the bytes of its ConfigMap."""
    manifest = yaml.safe_load((REPO / "metacontroller" / "base" / "recording-profile.yaml").read_text())
    path = kubelet / "seccomp" / localhost
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(encode(runtime_profile(SeccompProfileSpec.model_validate(manifest["spec"]))))


def installed_bytes(plane: ControlPlane, server: WebhookServer, name: str) -> dict[str, Any]:
    """One sync of the SeccompProfile controller; the runtime profile of the ConfigMap it made."""
    manifest = yaml.safe_load((REPO / "metacontroller" / "base" / "seccompprofile-controller.yaml").read_text())
    step = CompositeStep(plane, server.base, manifest)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(server.ca))
        answer = step.sync(NS, name)
    assert answer["status"]["status"] != "Error", answer["status"]
    configmap = plane.kubectl_json("get", "configmap", f"seccomp-{name}", "-n", NS)
    loaded: dict[str, Any] = json.loads(configmap["data"]["profile.json"])
    return loaded


def test_a_recorded_container_runs_under_its_profile_and_nothing_else(
    installed: ControlPlane, webhook: WebhookServer, enricher_kubeconfig: Path, tmp_path: Path
) -> None:
    plane = installed
    bundle = Bundle(tmp_path / "bundle", find_runc(), find_busybox())
    kubelet = tmp_path / "kubelet"
    with auditd_running() as auditd:
        agent = started(LogEnricher(enricher_kubeconfig, kubelet, tmp_path / "enricher.log", ["--state-dir", str(tmp_path / "state")]))
        try:
            # 1. the pod, through the API server and its recording webhook
            manifest = pod("demo-1", [{"name": CONTAINER, "image": "busybox:1.36"}], labels={"app": "demo"}, nodeName=NODE, restartPolicy="Never")
            stored, _ = create(plane, NS, manifest)
            annotations = stored["metadata"].get("annotations") or {}
            assert annotations.get(f"io.containers.trace-logs/{CONTAINER}", "").startswith(f"demo_{CONTAINER}_"), annotations
            seccomp = stored["spec"]["containers"][0]["securityContext"]["seccompProfile"]
            assert seccomp["type"] == "Localhost"
            logging_profile_file(kubelet, seccomp["localhostProfile"])

            # 2. the container, where the kubelet would put it, and the status the kubelet would report
            container_id = uuid.uuid4().hex + uuid.uuid4().hex
            bundle.config["linux"]["cgroupsPath"] = f"/kubepods/besteffort/pod{stored['metadata']['uid']}/{container_id}"
            set_pod_status(plane, "demo-1", {"phase": "Running", "containerStatuses": [container_status(container_id, {"running": {}})]})
            runtime = localhost_seccomp(kubelet, seccomp["localhostProfile"])
            assert runtime["defaultAction"] == "SCMP_ACT_LOG"
            result: list[Run] = []
            runner = threading.Thread(target=lambda: result.append(bundle.run(WORKLOAD, runtime)))
            runner.start()
            try:
                # 3. once the first half is recorded (the sleep is running), auditd rotates its log
                def sleeping() -> None:
                    names = {line.get("syscallName") for line in agent.audit_lines("demo-1")}
                    assert names & {"nanosleep", "clock_nanosleep"}, f"enriched so far: {sorted(map(str, names))}"

                eventually("the first half is recorded", sleeping, agent, timeout=DEADLINE)
                before = AUDIT_LOG.stat().st_ino
                os.kill(auditd, signal.SIGUSR1)
                deadline = time.monotonic() + DEADLINE
                while AUDIT_LOG.stat().st_ino == before and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert AUDIT_LOG.stat().st_ino != before, "auditd did not rotate its log"
            finally:
                runner.join(DEADLINE)
            assert result and result[0].returncode == 0, result
            assert result[0].stdout == "recorded\ndone\n", result[0]

            # 4. the pod is done: the log enricher makes its profile
            set_pod_status(plane, "demo-1", {"phase": "Succeeded", "containerStatuses": [container_status(container_id, {"terminated": {"exitCode": 0}})]})
            profile = eventually("the recorded profile exists", lambda: profile_of(plane, f"demo-{CONTAINER}"), agent, timeout=DEADLINE)
        finally:
            agent.stop(30)

    labels = profile["metadata"]["labels"]
    assert labels == {"spo.x-k8s.io/recording-id": "demo", "spo.x-k8s.io/container-id": CONTAINER}
    spec = profile["spec"]
    assert spec["defaultAction"] == "SCMP_ACT_ERRNO"
    assert spec["architectures"] == ["SCMP_ARCH_X86_64"]
    [rule] = spec["syscalls"]
    assert rule["action"] == "SCMP_ACT_ALLOW"
    names = rule["names"]
    assert names == sorted(set(names))
    assert set(names) >= AFTER_ROTATION, f"records after the rotation are missing: {AFTER_ROTATION - set(names)}"
    assert {"read", "write", "execve", "exit_group"} <= set(names)
    assert "mkdir" not in names and "mkdirat" not in names

    # the enricher counted what it told
    lines = agent.audit_lines("demo-1")
    assert {line["namespace"] for line in lines} == {NS} and {line["container"] for line in lines} == {CONTAINER}
    assert {line["node"] for line in lines} == {NODE}

    # 5. built on the runc base profile, through the hook, to the bytes a node installs
    base = yaml.safe_load((REPO / "examples" / "base-profiles" / "runc-v1.1.5.yaml").read_text())
    base["metadata"]["namespace"] = NS
    plane.apply(base)
    plane.kubectl("patch", PROFILES, f"demo-{CONTAINER}", "-n", NS, "--type=merge", "-p", json.dumps({"spec": {"baseProfileName": base["metadata"]["name"]}}))
    recorded = installed_bytes(plane, webhook, f"demo-{CONTAINER}")
    assert recorded["defaultAction"] == "SCMP_ACT_ERRNO"

    again = bundle.run(WORKLOAD, recorded)
    assert (again.returncode, again.stdout) == (0, "recorded\ndone\n"), again
    refused = bundle.run(["/bin/sh", "-c", "mkdir /tmp/never-recorded"], recorded)
    assert refused.returncode != 0 and "Operation not permitted" in refused.stderr, refused
    control = bundle.run(["/bin/sh", "-c", "mkdir /tmp/never-recorded"], {"defaultAction": "SCMP_ACT_ALLOW"})
    assert control.returncode == 0, control

    # 6. the recording can go: its finalize sees the collected profile
    manifest = yaml.safe_load((REPO / "metacontroller" / "base" / "profilerecording-controller.yaml").read_text())
    step = CompositeStep(plane, webhook.base, manifest)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(webhook.ca))
        step.add_finalizer(NS, "demo")
        plane.kubectl("delete", RECORDINGS, "demo", "-n", NS, "--wait=false")
        assert step.sync(NS, "demo")["finalized"] is True


def test_without_auditd_no_profile_is_made_and_the_log_says_why(
    installed: ControlPlane, webhook: WebhookServer, enricher_kubeconfig: Path, tmp_path: Path
) -> None:
    plane = installed
    with auditd_stopped():
        agent = started(LogEnricher(enricher_kubeconfig, tmp_path / "kubelet", tmp_path / "enricher.log"))
        try:

            def said_at_start() -> None:
                errors = [r for r in agent.records() if r.get("level") == "error" and "auditd is not running" in str(r.get("msg"))]
                assert errors, "no ERROR line about auditd"

            eventually("the missing auditd is reported", said_at_start, agent)
            manifest = pod("quiet-1", [{"name": CONTAINER, "image": "busybox:1.36"}], labels={"app": "quiet"}, nodeName=NODE, restartPolicy="Never")
            create(plane, NS, manifest)
            container_id = uuid.uuid4().hex + uuid.uuid4().hex
            set_pod_status(plane, "quiet-1", {"phase": "Running", "containerStatuses": [container_status(container_id, {"running": {}})]})
            set_pod_status(plane, "quiet-1", {"phase": "Succeeded", "containerStatuses": [container_status(container_id, {"terminated": {"exitCode": 0}})]})

            def refused() -> None:
                lines = [r for r in agent.records() if r.get("level") == "error" and f"quiet-{CONTAINER}" in str(r.get("msg"))]
                assert lines, "no ERROR line naming the profile"
                assert "no-auditd" in str(lines[0]["msg"]), lines[0]

            eventually("the profile is refused", refused, agent, timeout=DEADLINE)
        finally:
            agent.stop(30)
    missing = plane.kubectl("get", PROFILES, f"quiet-{CONTAINER}", "-n", NS, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
