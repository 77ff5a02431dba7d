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

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.auditd import AUDIT_LOG, auditd_running, auditd_stopped
from tests.helpers.controlplane import ControlPlane
from tests.helpers.nodesync_process import NODE, eventually
from tests.helpers.recording_env import (
    CONTAINER,
    DEADLINE,
    PROFILES,
    RECORDINGS,
    SLEEPS,
    LogEnricher,
    RecordedContainer,
    allowed,
    container_status,
    controller_step,
    enricher_kubeconfig,
    on_runc_base,
    profile_of,
    recorded_pod,
    recording,
    recording_webhook,
    set_pod_status,
    started,
    trusting,
)
from tests.helpers.runc_bundle import Bundle, find_busybox, find_runc
from tests.helpers.webhook_server import WebhookServer, create

pytestmark = [pytest.mark.e2e, pytest.mark.node]

NS = "record-e2e"
# sh's builtins only, then a sleep that outlives the rotation; the second half uses syscalls
# (chdir, umask, kill) that the first half never makes, so they can only come from the new log.
FIRST = 'echo recorded > /tmp/out; read line < /tmp/out; echo "$line"; sleep 3'
SECOND = "cd /tmp && umask 077 && kill -0 $$ && echo done"
WORKLOAD = ["/bin/sh", "-c", f"{FIRST}; {SECOND}"]
AFTER_ROTATION = {"chdir", "umask", "kill"}


@pytest.fixture(scope="module")
def webhook(
    installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookServer]:
    recordings = [recording(NS, "demo", "demo"), recording(NS, "quiet", "quiet")]
    with recording_webhook(
        installed, tmp_path_factory.mktemp("record-e2e-webhook"), NS, recordings
    ) as server:
        yield server


def test_a_recorded_container_runs_under_its_profile_and_nothing_else(
    installed: ControlPlane, webhook: WebhookServer, tmp_path: Path
) -> None:
    plane = installed
    bundle = Bundle(tmp_path / "bundle", find_runc(), find_busybox())
    kubelet = tmp_path / "kubelet"
    with auditd_running() as auditd:
        agent = started(
            LogEnricher(
                enricher_kubeconfig(plane),
                kubelet,
                tmp_path / "enricher.log",
                ["--state-dir", str(tmp_path / "state")],
            )
        )
        try:
            # 1. the pod, through the API server and its recording webhook
            demo = RecordedContainer(plane, NS, recorded_pod("demo-1", "demo"), bundle, kubelet)
            assert demo.annotations.get(f"io.containers.trace-logs/{CONTAINER}", "").startswith(
                f"demo_{CONTAINER}_"
            ), demo.annotations

            # 2. the container, where the kubelet would put it, and the status the kubelet would
            # report
            demo.start(WORKLOAD)
            try:
                # 3. once the first half is recorded (the sleep is running), auditd rotates its log
                def sleeping() -> None:
                    names = agent.syscalls("demo-1")
                    assert names & SLEEPS, f"enriched so far: {sorted(names)}"

                eventually("the first half is recorded", sleeping, agent, timeout=DEADLINE)
                before = AUDIT_LOG.stat().st_ino
                os.kill(auditd, signal.SIGUSR1)
                deadline = time.monotonic() + DEADLINE
                while AUDIT_LOG.stat().st_ino == before and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert AUDIT_LOG.stat().st_ino != before, "auditd did not rotate its log"
            finally:
                run = demo.wait()
            assert (run.returncode, run.stdout) == (0, "recorded\ndone\n"), run

            # 4. the pod is done: the log enricher makes its profile
            demo.succeeded()
            profile = eventually(
                "the recorded profile exists",
                lambda: profile_of(plane, NS, f"demo-{CONTAINER}"),
                agent,
                timeout=DEADLINE,
            )
            code, exposition = agent.get("/metrics")
            assert code == 200
        finally:
            agent.stop(30)

    labels = profile["metadata"]["labels"]
    assert labels == {"spo.x-k8s.io/recording-id": "demo", "spo.x-k8s.io/container-id": CONTAINER}
    spec = profile["spec"]
    assert spec["defaultAction"] == "SCMP_ACT_ERRNO"
    assert spec["architectures"] == ["SCMP_ARCH_X86_64"]
    names = allowed(profile)
    assert names == sorted(set(names))
    assert set(names) >= AFTER_ROTATION, (
        f"records after the rotation are missing: {AFTER_ROTATION - set(names)}"
    )
    assert {"read", "write", "execve", "exit_group"} <= set(names)
    assert "mkdir" not in names and "mkdirat" not in names

    # the enricher counted what it told
    samples = {
        (
            sample.labels.get("pod"),
            sample.labels.get("container"),
            sample.labels.get("syscall"),
        ): sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == "security_profiles_operator_seccomp_profile_audit"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert samples.get(("demo-1", CONTAINER, "chdir"), 0) >= 1, sorted(samples)[:20]
    lines = agent.audit_lines("demo-1")
    assert {line["namespace"] for line in lines} == {NS} and {
        line["container"] for line in lines
    } == {CONTAINER}
    assert {line["node"] for line in lines} == {NODE}

    # 5. built on the runc base profile, through the hook, to the bytes a node installs
    recorded = on_runc_base(plane, webhook, NS, f"demo-{CONTAINER}")
    assert recorded["defaultAction"] == "SCMP_ACT_ERRNO"

    again = bundle.run(WORKLOAD, recorded)
    assert (again.returncode, again.stdout) == (0, "recorded\ndone\n"), again
    refused = bundle.run(["/bin/sh", "-c", "mkdir /tmp/never-recorded"], recorded)
    assert refused.returncode != 0 and "Operation not permitted" in refused.stderr, refused
    control = bundle.run(
        ["/bin/sh", "-c", "mkdir /tmp/never-recorded"], {"defaultAction": "SCMP_ACT_ALLOW"}
    )
    assert control.returncode == 0, control

    # 6. the recording can go: its finalize sees the collected profile
    step = controller_step(plane, webhook, "profilerecording-controller")
    with trusting(webhook):
        step.add_finalizer(NS, "demo")
        plane.kubectl("delete", RECORDINGS, "demo", "-n", NS, "--wait=false")
        assert step.sync(NS, "demo")["finalized"] is True


def test_without_auditd_no_profile_is_made_and_the_log_says_why(
    installed: ControlPlane, webhook: WebhookServer, tmp_path: Path
) -> None:
    plane = installed
    with auditd_stopped():
        agent = started(
            LogEnricher(enricher_kubeconfig(plane), tmp_path / "kubelet", tmp_path / "enricher.log")
        )
        try:

            def said_at_start() -> None:
                errors = [
                    r
                    for r in agent.records()
                    if r.get("level") == "error" and "auditd is not running" in str(r.get("msg"))
                ]
                assert errors, "no ERROR line about auditd"

            eventually("the missing auditd is reported", said_at_start, agent)
            create(plane, NS, recorded_pod("quiet-1", "quiet"))
            container_id = uuid.uuid4().hex + uuid.uuid4().hex
            set_pod_status(
                plane,
                NS,
                "quiet-1",
                {
                    "phase": "Running",
                    "containerStatuses": [container_status(container_id, {"running": {}})],
                },
            )
            set_pod_status(
                plane,
                NS,
                "quiet-1",
                {
                    "phase": "Succeeded",
                    "containerStatuses": [
                        container_status(container_id, {"terminated": {"exitCode": 0}})
                    ],
                },
            )

            def refused() -> None:
                lines = [
                    r
                    for r in agent.records()
                    if r.get("level") == "error" and f"quiet-{CONTAINER}" in str(r.get("msg"))
                ]
                assert lines, "no ERROR line naming the profile"
                assert "no-auditd" in str(lines[0]["msg"]), lines[0]

            eventually("the profile is refused", refused, agent, timeout=DEADLINE)
        finally:
            agent.stop(30)
    missing = plane.kubectl("get", PROFILES, f"quiet-{CONTAINER}", "-n", NS, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
