"""Recorded pods of this node -> SeccompProfile objects to create, and the executor around it."""

from __future__ import annotations

import threading
from typing import Any

from hooks.api import selinuxrules as validation
from hooks.api.profilerecording import (
    PROFILE_PARTIAL_LABEL,
    PROFILE_TO_CONTAINER_LABEL,
    PROFILE_TO_RECORDING_LABEL,
)
from hooks.api.selinuxprofile import SelinuxProfile
from hooks.cluster.selinux.translation import translate
from nodesync.enricher.containers import ContainerRef, Lookup, Unknown
from nodesync.enricher.losses import Loss, LossDetector, RecordsLost
from nodesync.enricher.recordedpods import Target, profile_name, recorded_targets
from nodesync.enricher.recordedprofiles import selinux_allow
from nodesync.enricher.recorder import RecordedAvcs, RecordedSyscalls, Recorder
from nodesync.enricher.recordingagent import Decision, RecordingAgent, decide, seccomp_profile

ARCH = "SCMP_ARCH_X86_64"
X86_64 = 0xC000003E
WEB = "a" * 64
SIDE = "b" * 64
TRACE = "io.containers.trace-logs/"
AVCS = "io.containers.trace-avcs/"


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


def test_targets_come_from_trace_logs_and_trace_avcs_annotations() -> None:
    annotated = pod(
        annotations={
            TRACE + "nginx": "rec_nginx_abcde_123456",
            TRACE + "broken": "not-an-id",
            AVCS + "side": "srec_side_abcde_123456",
            "io.containers.trace-bpf/bpf": "rec_bpf_abcde_123456",
            "unrelated": "x",
        }
    )
    assert recorded_targets(annotated) == [
        Target(ContainerRef("shop", "web", "nginx"), "rec", "rec-nginx"),
        Target(ContainerRef("shop", "web", "side"), "srec", "srec-side", "SelinuxProfile"),
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


def avcs(allow: dict[str, dict[str, tuple[str, ...]]], *sources: str) -> RecordedAvcs:
    return RecordedAvcs(allow, tuple(sources) or ("selinuxrecording.process",), 1)


def avc_line(pid: int, perms: str, ttype: str, tclass: str, serial: int = 1) -> str:
    return (
        f"type=AVC msg=audit(1700000000.200:{serial}): avc:  denied  {{ {perms} }} for  pid={pid} "
        'comm="c" scontext=system_u:system_r:selinuxrecording.process:s0:c1,c2 '
        f"tcontext=system_u:object_r:{ttype}:s0 tclass={tclass} permissive=1"
    )


def test_selinux_allow_makes_own_types_self_and_sorts() -> None:
    recorded = avcs(
        {
            "selinuxrecording.process": {"process": ("signal",)},
            "container_t": {"process": ("sigchld",)},  # a source type of the container's records
            "http_port_t": {"tcp_socket": ("name_bind",)},
            "var_lib_t": {"file": ("write", "open", "read"), "dir": ("search",)},
        },
        "selinuxrecording.process",
        "container_t",
    )
    allow, left_out = selinux_allow(recorded)
    assert left_out == ()
    assert allow == {
        "@self": {"process": ["sigchld", "signal"]},
        "http_port_t": {"tcp_socket": ["name_bind"]},
        "var_lib_t": {"dir": ["search"], "file": ["open", "read", "write"]},
    }
    assert selinux_allow(None) == ({}, ())


def test_selinux_allow_drops_what_the_selinuxprofile_checks_refuse_with_a_reason() -> None:
    recorded = avcs(
        {
            "kernel_t": {"system": ("module_request",)},
            "security_t": {"security": ("compute_av",)},
            "proc_t": {"security": ("check_context",), "file": ("read",)},
            "var_lib_t": {"file": ("read", "relabelto", "relabelfrom")},
            "bad type!": {"file": ("read",)},
            "tmp_t": {"Bad-Class": ("read",)},
        }
    )
    allow, left_out = selinux_allow(recorded)
    assert allow == {"proc_t": {"file": ["read"]}, "var_lib_t": {"file": ["read", "relabelfrom"]}}
    joined = "\n".join(left_out)
    for dropped in ("'kernel_t'", "'security_t'", "class 'security'", "'relabelto'", "'bad type!'"):
        assert dropped in joined, dropped
    assert "'Bad-Class'" in joined
    assert len(left_out) == len(set(left_out)) == 6  # one reason each, not one per permission
    validation.check_allow(allow)  # what is kept passes the controller's own check


def test_decide_selinux_profile_object_passes_the_translator() -> None:
    annotated = pod(
        "web-x2k4q",
        generate_name="web-",
        annotations={AVCS + "app": "rec_app_abcde_1", TRACE + "app": "rec_app_abcde_1"},
    )
    ref = ContainerRef("shop", "web-x2k4q", "app")
    recorded_avcs = {
        ref: avcs({"http_port_t": {"tcp_socket": ("name_bind",)}, "kernel_t": {"file": ("read",)}})
    }
    on = {("shop", "rec"): {"spec": {"disableProfileAfterRecording": True}}}
    decisions = decide(
        [annotated],
        {ref: calls("read")},
        LossDetector(),
        arch=ARCH,
        recordings=on,
        avcs=recorded_avcs,
    )
    by_kind = {d.target.kind: d for d in decisions}
    assert set(by_kind) == {"SeccompProfile", "SelinuxProfile"}
    selinux = by_kind["SelinuxProfile"]
    assert selinux.error is None and selinux.profile is not None
    assert selinux.profile == {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha2",
        "kind": "SelinuxProfile",
        "metadata": {
            "name": "rec-app-x2k4q",
            "namespace": "shop",
            "labels": {PROFILE_TO_RECORDING_LABEL: "rec", PROFILE_TO_CONTAINER_LABEL: "app"},
        },
        "spec": {
            "inherit": [{"kind": "System", "name": "container"}],
            "allow": {"http_port_t": {"tcp_socket": ["name_bind"]}},
            "disabled": True,
        },
    }
    assert len(selinux.warnings) == 1 and "kernel_t" in selinux.warnings[0]
    cil = translate(SelinuxProfile.model_validate(selinux.profile))
    assert "(allow process http_port_t ( tcp_socket ( name_bind )))" in cil
    assert "kernel_t" not in cil


def test_decide_selinux_without_avcs_is_the_container_policy_but_lost_records_are_an_error() -> (
    None
):
    annotated = pod(annotations={AVCS + "app": "rec_app_abcde_1"})
    (decision,) = decide([annotated], {}, LossDetector(), arch=ARCH)
    assert decision.error is None and decision.profile is not None
    assert decision.profile["spec"] == {"inherit": [{"kind": "System", "name": "container"}]}
    detector = LossDetector()
    detector.observe("audit: backlog limit exceeded")
    (lost,) = decide([annotated], {}, detector, arch=ARCH, avcs={})
    assert lost.profile is None and lost.error and "not created" in lost.error


def test_selinux_profile_name_the_controller_would_reject_is_warned_about() -> None:
    annotated = pod(annotations={AVCS + "app": "my.rec_app_abcde_1"})
    (decision,) = decide([annotated], {}, LossDetector(), arch=ARCH)
    assert decision.profile is not None and decision.profile["metadata"]["name"] == "my.rec-app"
    assert any("will reject" in w and "'my.rec-app'" in w for w in decision.warnings)


# -- mergeStrategy containers -------------------------------------------------------------------


def test_merging_recording_makes_partial_profiles_that_never_take_the_merged_name() -> None:
    merging = {
        ("shop", "rec"): {
            "spec": {"mergeStrategy": "containers", "disableProfileAfterRecording": True}
        }
    }
    bare = pod(annotations={TRACE + "app": "rec_app_abcde_1", AVCS + "app": "rec_app_abcde_1"})
    replica = pod("web-x2k4q", generate_name="web-", annotations={TRACE + "app": "rec_app_abcde_1"})
    recorded = {
        ContainerRef("shop", "web", "app"): calls("read"),
        ContainerRef("shop", "web-x2k4q", "app"): calls("write"),
    }
    decisions = decide([bare, replica], recorded, LossDetector(), arch=ARCH, recordings=merging)
    names = sorted((d.target.kind, d.name) for d in decisions)
    assert names == [
        ("SeccompProfile", "rec-app-web"),  # the pod's own name: "rec-app" is the merged one
        ("SeccompProfile", "rec-app-x2k4q"),
        ("SelinuxProfile", "rec-app-web"),
    ]
    for decision in decisions:
        assert decision.profile is not None
        assert decision.profile["metadata"]["labels"] == {
            PROFILE_TO_RECORDING_LABEL: "rec",
            PROFILE_TO_CONTAINER_LABEL: "app",
            PROFILE_PARTIAL_LABEL: "true",
        }
        assert "disabled" not in decision.profile["spec"]  # the merged profile is the disabled one
    unmerged = decide(
        [bare], recorded, LossDetector(), arch=ARCH, recordings={("shop", "rec"): {"spec": {}}}
    )
    assert {d.name for d in unmerged} == {"rec-app"}
    assert all(
        PROFILE_PARTIAL_LABEL not in (d.profile or {})["metadata"]["labels"] for d in unmerged
    )


def test_agent_creates_both_kinds_from_the_audit_log_and_reads_each_recording_once() -> None:
    created: list[dict[str, Any]] = []
    asked: list[tuple[str, str]] = []
    lock = threading.Lock()
    pids = {10: WEB}
    recorder = Recorder(lambda pid: Lookup(pids.get(pid), "" if pid in pids else Unknown.HOST))

    def recording(namespace: str, name: str) -> dict[str, Any]:
        asked.append((namespace, name))
        return {"spec": {"mergeStrategy": "containers"}}

    agent = RecordingAgent(recorder, created.append, recording=recording, arch=ARCH, lock=lock)
    running = pod(
        annotations={TRACE + "nginx": "rec_nginx_abcde_1", AVCS + "nginx": "rec_nginx_abcde_1"},
        statuses={"nginx": WEB},
    )
    agent.observe(running)
    agent.consume(
        [
            seccomp_line(10, 0, 1),
            avc_line(10, "name_bind", "http_port_t", "tcp_socket", 2),
            avc_line(10, "signal", "selinuxrecording.process", "process", 3),
            avc_line(10, "load_policy", "security_t", "security", 4),
        ]
    )
    decisions = agent.deleted(running)
    assert [d.error for d in decisions] == [None, None]
    assert asked == [("shop", "rec")]
    by_kind = {c["kind"]: c for c in created}
    assert by_kind["SeccompProfile"]["spec"]["syscalls"][0]["names"] == ["read"]
    assert by_kind["SelinuxProfile"]["spec"]["allow"] == {
        "@self": {"process": ["signal"]},
        "http_port_t": {"tcp_socket": ["name_bind"]},
    }
    assert all(c["metadata"]["name"] == "rec-nginx-web" for c in created)
    assert all(c["metadata"]["labels"][PROFILE_PARTIAL_LABEL] == "true" for c in created)
    assert agent.recorder.selinux_of(WEB) is None  # forgotten


def test_agent_blocks_on_the_shared_lock_while_the_recorder_is_fed() -> None:
    lock = threading.Lock()
    created: list[dict[str, Any]] = []
    pids = {10: WEB}
    recorder = Recorder(lambda pid: Lookup(pids.get(pid), "" if pid in pids else Unknown.HOST))
    agent = RecordingAgent(recorder, created.append, arch=ARCH, lock=lock)
    running = pod(annotations={TRACE + "nginx": "rec_nginx_abcde_1"}, statuses={"nginx": WEB})
    agent.consume([seccomp_line(10, 0)])
    done = threading.Event()

    def finish() -> None:
        agent.deleted(running)
        done.set()

    with lock:
        worker = threading.Thread(target=finish)
        worker.start()
        assert not done.wait(0.2)  # waits for the lock the follower holds
        assert created == []
    worker.join(5)
    assert done.is_set() and [c["metadata"]["name"] for c in created] == ["rec-nginx"]


def created_at(stamp: str, **kwargs: Any) -> dict[str, Any]:
    made = pod(**kwargs)
    made["metadata"]["creationTimestamp"] = stamp
    return made


def test_a_loss_before_a_pod_was_created_does_not_spoil_its_profile() -> None:
    clock = [1_700_000_000.0]  # 2023-11-14T22:13:20Z
    detector = LossDetector(clock=lambda: clock[0])
    assert detector.observe("audit: rate limit exceeded")
    recorded = {ContainerRef("shop", "web", "nginx"): calls("read")}
    annotations = {TRACE + "nginx": "rec_nginx_abcde_1"}
    # created an hour after the loss (beyond the allowed clock skew): complete
    later = created_at("2023-11-14T23:13:20Z", annotations=annotations)
    (decision,) = decide([later], recorded, detector, arch=ARCH)
    assert decision.profile is not None, decision.error
    # created before the loss, or a moment after it (clock skew): incomplete
    for stamp in ("2023-11-14T22:00:00Z", "2023-11-14T22:13:40Z"):
        earlier = created_at(stamp, annotations=annotations)
        (refused,) = decide([earlier], recorded, detector, arch=ARCH)
        assert refused.profile is None and refused.error and "rate-limit" in refused.error
    # no creation time: any loss counts
    (unknown,) = decide([pod(annotations=annotations)], recorded, detector, arch=ARCH)
    assert unknown.profile is None


def test_an_ongoing_loss_spoils_every_recording_until_it_ends() -> None:
    clock = [1_700_000_000.0]
    detector = LossDetector(clock=lambda: clock[0])
    detector.add(Loss("no-auditd", "auditd is not running", ongoing=True))
    recorded = {ContainerRef("shop", "web", "nginx"): calls("read")}
    annotations = {TRACE + "nginx": "rec_nginx_abcde_1"}
    far_later = created_at("2030-01-01T00:00:00Z", annotations=annotations)
    (refused,) = decide([far_later], recorded, detector, arch=ARCH)
    assert refused.error and "no-auditd" in refused.error
    clock[0] += 3600
    detector.end("no-auditd")
    assert not detector.ongoing("no-auditd")
    (made,) = decide([far_later], recorded, detector, arch=ARCH)
    assert made.profile is not None
    during = created_at("2023-11-14T22:30:00Z", annotations=annotations)  # before it ended
    (still,) = decide([during], recorded, detector, arch=ARCH)
    assert still.profile is None


def test_the_detector_keeps_the_newest_losses_and_every_ongoing_one() -> None:
    clock = [0.0]

    def tick() -> float:
        clock[0] += 1.0
        return clock[0]

    detector = LossDetector(clock=tick)
    detector.add(Loss("no-auditd", "x", ongoing=True))
    for _ in range(LossDetector.KEEP + 50):
        detector.observe("audit: backlog limit exceeded")
    assert len(detector.losses) == LossDetector.KEEP + 1
    assert detector.ongoing("no-auditd")
    newest = max(loss.at for loss in detector.losses)
    try:
        detector.ensure_complete(since=newest)
    except RecordsLost:
        pass
    else:
        raise AssertionError("the newest loss was dropped")


def test_agent_snapshot_finishes_a_pod_deleted_while_the_agent_was_down() -> None:
    created: list[dict[str, Any]] = []
    agent = make_agent(created)
    running = pod(
        annotations={TRACE + "nginx": "rec_nginx_abcde_1", "unrelated": "x" * 1000},
        statuses={"nginx": WEB},
    )
    running["metadata"]["labels"] = {"app": "web"}
    running["spec"] = {"containers": [{"name": "nginx", "image": "nginx"}]}
    agent.observe(running)
    agent.consume([seccomp_line(10, 0), seccomp_line(10, 1, 2)])
    saved_pods = agent.snapshot()
    saved_traces = agent.recorder.snapshot()
    assert saved_pods == [
        {
            "metadata": {
                "namespace": "shop",
                "name": "web",
                "uid": "uid-1",
                "annotations": {TRACE + "nginx": "rec_nginx_abcde_1"},
            },
            "status": {
                "phase": "Running",
                "containerStatuses": [{"name": "nginx", "containerID": f"containerd://{WEB}"}],
            },
        }
    ]

    # a new process: the pod was deleted meanwhile, so the first list does not have it
    again = make_agent(created)
    again.recorder.restore(saved_traces)
    assert again.restore(saved_pods) == 1
    assert again.restore([{"metadata": {"name": "not-recorded"}}, "junk"]) == 0  # type: ignore[list-item]
    (decision,) = again.relist([])
    assert decision.error is None
    assert created[0]["metadata"]["name"] == "rec-nginx"
    assert created[0]["spec"]["syscalls"][0]["names"] == ["read", "write"]


def test_agent_reports_every_decision_and_survives_a_failing_report() -> None:
    created: list[dict[str, Any]] = []
    reported: list[Decision] = []

    def report(decision: Decision) -> None:
        reported.append(decision)
        raise RuntimeError("events are forbidden")

    agent = RecordingAgent(make_agent(created).recorder, created.append, arch=ARCH, report=report)
    running = pod(annotations={TRACE + "nginx": "rec_nginx_abcde_1"}, statuses={"nginx": WEB})
    agent.consume([seccomp_line(10, 0)])
    (decision,) = agent.deleted(running)
    assert decision.profile is not None and reported == [decision]


def test_a_recording_that_cannot_be_read_makes_the_pod_wait_not_guess() -> None:
    created: list[dict[str, Any]] = []
    retries: list[Any] = []
    answers: list[Any] = [
        RuntimeError("503: etcd is down"),
        {"spec": {"mergeStrategy": "containers"}},
    ]

    def recording(namespace: str, name: str) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    agent = RecordingAgent(
        make_agent([]).recorder,
        created.append,
        recording=recording,
        arch=ARCH,
        retry=retries.append,
    )
    running = pod(annotations={TRACE + "nginx": "rec_nginx_abcde_1"}, statuses={"nginx": WEB})
    agent.consume([seccomp_line(10, 0)])
    assert agent.deleted(running) == []
    assert created == [] and len(retries) == 1
    assert [saved["metadata"]["name"] for saved in agent.snapshot()] == [
        "web"
    ]  # still known, still saved
    (decision,) = retries[0]()
    assert decision.error is None
    # the merge strategy was read this time: a partial profile, suffixed with the pod's name
    assert created[0]["metadata"]["name"] == "rec-nginx-web"
    assert created[0]["metadata"]["labels"]["spo.x-k8s.io/partial"] == "true"
    assert agent.snapshot() == [] and retries[0]() == []  # finished once


def test_remember_keeps_a_recorded_pod_before_it_is_finished() -> None:
    agent = make_agent([])
    assert agent.remember(
        pod(annotations={TRACE + "nginx": "rec_nginx_abcde_1"}, statuses={"nginx": WEB})
    )
    assert not agent.remember(pod("plain", statuses={"x": SIDE}, uid="uid-2"))
    assert [saved["metadata"]["name"] for saved in agent.snapshot()] == ["web"]
