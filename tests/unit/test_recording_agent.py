"""Recorded pods of this node -> SeccompProfile objects to create, and the executor around it."""

from __future__ import annotations

from typing import Any

from hooks.api.profilerecording import PROFILE_TO_CONTAINER_LABEL, PROFILE_TO_RECORDING_LABEL
from nodesync.containers import ContainerRef, Lookup, Unknown
from nodesync.recording import LossDetector, RecordedSyscalls, Recorder
from nodesync.recording_agent import (
    Decision,
    RecordingAgent,
    Target,
    decide,
    profile_name,
    recorded_targets,
    seccomp_profile,
)

ARCH = "SCMP_ARCH_X86_64"
X86_64 = 0xC000003E
WEB = "a" * 64
SIDE = "b" * 64
TRACE = "io.containers.trace-logs/"


def pod(
    name: str = "web",
    *,
    annotations: dict[str, str] | None = None,
    generate_name: str | None = None,
    phase: str = "Running",
    statuses: dict[str, str] | None = None,
    uid: str = "uid-1",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"namespace": "shop", "name": name, "uid": uid}
    if annotations is not None:
        metadata["annotations"] = annotations
    if generate_name is not None:
        metadata["generateName"] = generate_name
    return {
        "metadata": metadata,
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": c, "containerID": f"containerd://{i}"} for c, i in (statuses or {}).items()
            ],
        },
    }


def calls(*names: str) -> RecordedSyscalls:
    return RecordedSyscalls(tuple(names), (ARCH,), (), len(names))


def seccomp_line(pid: int, number: int, serial: int = 1) -> str:
    return (
        f"type=SECCOMP msg=audit(1700000000.100:{serial}): auid=4294967295 uid=0 gid=0 "
        f'ses=4294967295 pid={pid} comm="c" exe="/bin/c" sig=0 arch={X86_64:x} '
        f"syscall={number} compat=0 ip=0x1 code=0x7ffc0000"
    )


def test_profile_name_without_and_with_generate_name() -> None:
    assert profile_name("rec", "nginx", {"name": "web"}) == "rec-nginx"
    assert (
        profile_name("rec", "nginx", {"name": "web-7d9f-x2k4q", "generateName": "web-7d9f-"})
        == "rec-nginx-x2k4q"
    )


def test_targets_come_from_trace_logs_annotations_only() -> None:
    annotated = pod(
        annotations={
            TRACE + "nginx": "rec_nginx_abcde_123456",
            TRACE + "broken": "not-an-id",
            "io.containers.trace-avcs/side": "rec_side_abcde_123456",
            "unrelated": "x",
        }
    )
    assert recorded_targets(annotated) == [
        Target(ContainerRef("shop", "web", "nginx"), "rec", "rec-nginx")
    ]
    assert recorded_targets(pod()) == []


def test_profile_object_labels_arch_and_sorted_names() -> None:
    target = Target(ContainerRef("shop", "web", "nginx"), "rec", "rec-nginx")
    obj = seccomp_profile(target, ["write", "read", "close", "read"], ARCH, disabled=False)
    assert obj["apiVersion"] == "security-profiles-operator.x-k8s.io/v1beta1"
    assert obj["kind"] == "SeccompProfile"
    assert obj["metadata"] == {
        "name": "rec-nginx",
        "namespace": "shop",
        "labels": {PROFILE_TO_RECORDING_LABEL: "rec", PROFILE_TO_CONTAINER_LABEL: "nginx"},
    }
    assert obj["spec"] == {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": [ARCH],
        "syscalls": [{"action": "SCMP_ACT_ALLOW", "names": ["close", "read", "write"]}],
    }


def test_decide_one_profile_per_recorded_container_with_generate_name_suffix() -> None:
    replica = pod(
        "web-x2k4q",
        generate_name="web-",
        phase="Succeeded",
        annotations={
            TRACE + "nginx": "rec_nginx_abcde_1",
            TRACE + "side": "rec_side_abcde_1",
        },
    )
    recorded = {
        ContainerRef("shop", "web-x2k4q", "nginx"): calls("write", "openat"),
        ContainerRef("shop", "web-x2k4q", "side"): calls("nanosleep"),
        ContainerRef("shop", "web-x2k4q", "unmarked"): calls("ptrace"),
    }
    decisions = decide([replica], recorded, LossDetector(), arch=ARCH)
    assert [d.error for d in decisions] == [None, None]
    names = {d.profile["metadata"]["name"]: d.profile for d in decisions if d.profile}
    assert set(names) == {"rec-nginx-x2k4q", "rec-side-x2k4q"}
    assert names["rec-nginx-x2k4q"]["spec"]["syscalls"][0]["names"] == ["openat", "write"]
    assert "disabled" not in names["rec-side-x2k4q"]["spec"]


def test_decide_disabled_when_the_recording_says_so() -> None:
    annotated = pod(annotations={TRACE + "nginx": "rec_nginx_abcde_1"})
    recorded = {ContainerRef("shop", "web", "nginx"): calls("read")}
    on = {("shop", "rec"): {"spec": {"disableProfileAfterRecording": True}}}
    off = {("shop", "rec"): {"spec": {"disableProfileAfterRecording": False}}}
    (disabled,) = decide([annotated], recorded, LossDetector(), arch=ARCH, recordings=on)
    (enabled,) = decide([annotated], recorded, LossDetector(), arch=ARCH, recordings=off)
    assert disabled.profile is not None and disabled.profile["spec"]["disabled"] is True
    assert enabled.profile is not None and "disabled" not in enabled.profile["spec"]


def test_lost_records_make_no_profile_but_a_loud_error() -> None:
    annotated = pod(annotations={TRACE + "nginx": "rec_nginx_abcde_1"})
    recorded = {ContainerRef("shop", "web", "nginx"): calls("read")}
    detector = LossDetector()
    assert detector.observe("audit: rate limit exceeded")
    (decision,) = decide([annotated], recorded, detector, arch=ARCH)
    assert decision.profile is None
    assert decision.error is not None
    assert "lost" in decision.error and "rate-limit" in decision.error
    assert "not created" in decision.error


def test_nothing_recorded_is_an_error_not_an_empty_profile() -> None:
    annotated = pod(annotations={TRACE + "nginx": "rec_nginx_abcde_1"})
    (decision,) = decide([annotated], {}, LossDetector(), arch=ARCH)
    assert decision.profile is None and decision.error


def make_agent(
    created: list[dict[str, Any]], recordings: dict[tuple[str, str], dict[str, Any]] | None = None
) -> RecordingAgent:
    pids = {10: WEB, 20: SIDE}
    recorder = Recorder(lambda pid: Lookup(pids.get(pid), "" if pid in pids else Unknown.HOST))
    return RecordingAgent(
        recorder,
        created.append,
        recording=lambda ns, name: (recordings or {}).get((ns, name)),
        arch=ARCH,
    )


def test_agent_creates_when_the_pod_succeeds_once_and_forgets_the_traces() -> None:
    created: list[dict[str, Any]] = []
    agent = make_agent(created, {("shop", "rec"): {"spec": {"disableProfileAfterRecording": True}}})
    running = pod(
        annotations={TRACE + "nginx": "rec_nginx_abcde_1"}, statuses={"nginx": WEB, "side": SIDE}
    )
    assert agent.observe(running) == []
    agent.consume([seccomp_line(10, 0, 1), seccomp_line(10, 1, 2), seccomp_line(20, 35, 3)])
    assert created == []
    done = {**running, "status": {**running["status"], "phase": "Succeeded"}}
    (decision,) = agent.observe(done)
    assert decision.error is None
    assert created == [decision.profile]
    assert created[0]["metadata"]["name"] == "rec-nginx"
    assert created[0]["spec"]["syscalls"][0]["names"] == ["read", "write"]
    assert created[0]["spec"]["disabled"] is True
    assert agent.recorder.seccomp_of(WEB) is None  # forgotten
    assert agent.observe(done) == [] and agent.deleted(done) == []  # never twice
    assert len(created) == 1


def test_agent_deleted_pod_uses_the_last_known_statuses_and_relist_notices_deletions() -> None:
    created: list[dict[str, Any]] = []
    agent = make_agent(created)
    running = pod(annotations={TRACE + "nginx": "rec_nginx_abcde_1"}, statuses={"nginx": WEB})
    agent.relist([running, pod("plain", statuses={"x": SIDE}, uid="uid-2")])
    agent.consume([seccomp_line(10, 0)])
    decisions = agent.relist([])  # the recorded pod is gone
    assert [d.target.profile for d in decisions] == ["rec-nginx"]
    assert [c["metadata"]["name"] for c in created] == ["rec-nginx"]
    assert created[0]["spec"]["syscalls"][0]["names"] == ["read"]
    assert "disabled" not in created[0]["spec"]


def test_agent_does_not_create_after_lost_records_and_reports_create_failures() -> None:
    created: list[dict[str, Any]] = []
    agent = make_agent(created)
    running = pod(annotations={TRACE + "nginx": "rec_nginx_abcde_1"}, statuses={"nginx": WEB})
    agent.observe(running)
    agent.consume([seccomp_line(10, 0), "audit: backlog limit exceeded"])
    (decision,) = agent.deleted(running)
    assert decision.profile is None and decision.error and "lost" in decision.error
    assert created == []

    def refuse(obj: dict[str, Any]) -> None:
        raise RuntimeError("409 already exists")

    failing = RecordingAgent(make_agent([]).recorder, refuse, arch=ARCH)
    failing.consume([seccomp_line(10, 0)])
    (failed,) = failing.deleted(running)
    assert isinstance(failed, Decision) and failed.error and "409" in failed.error


def test_record_flags_and_env(monkeypatch: Any) -> None:
    import argparse

    from nodesync.command import add_arguments

    def parse(*argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return parser.parse_args(list(argv))

    monkeypatch.delenv("ENABLE_RECORDING", raising=False)
    default = parse()
    assert default.record is False
    assert default.audit_log == "/var/log/audit/audit.log"
    assert default.recorder_state is None
    given = parse("--record", "--audit-log", "/x/audit.log", "--recorder-state", "/state")
    assert (given.record, given.audit_log, given.recorder_state) == (True, "/x/audit.log", "/state")
    monkeypatch.setenv("ENABLE_RECORDING", "true")
    assert parse().record is True
    assert parse("--no-record").record is False


def test_pods_loop_survives_a_failed_list_and_relists() -> None:
    import threading

    from nodesync.recording_agent import pods_loop

    created: list[dict[str, Any]] = []
    agent = make_agent(created)
    running = pod(annotations={TRACE + "nginx": "rec_nginx_abcde_1"}, statuses={"nginx": WEB})
    agent.consume([seccomp_line(10, 0)])
    stop = threading.Event()
    answers: list[Any] = [[running], RuntimeError("apiserver down"), []]

    def list_pods() -> list[dict[str, Any]]:
        answer = answers.pop(0)
        if not answers:
            stop.set()
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    pods_loop(list_pods, agent, stop, 0.0)
    assert [c["metadata"]["name"] for c in created] == ["rec-nginx"]
