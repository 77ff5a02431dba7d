"""The log enricher's own parts: the pod index, the deferred finishing, the saved recording."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hooks.command.cli import parser
from nodesync.enricher.auditloop import event, follow
from nodesync.enricher.containers import ContainerRef, Lookup
from nodesync.enricher.deferring import Deferred, DeferredRecording
from nodesync.enricher.enriching import LogEnricher
from nodesync.enricher.following import Follower
from nodesync.enricher.losses import AuditdWatch, KernelLogWatch, Loss, auditd_running
from nodesync.enricher.nodepods import NodePods, selector
from nodesync.enricher.recordedpods import Target
from nodesync.enricher.recorder import Recorder
from nodesync.enricher.recordingagent import Decision, RecordingAgent
from nodesync.enricher.state import Position, RecorderState, StateFile

CID_A = "a" * 64
CID_B = "b" * 64
X86_64 = 0xC000003E


def pod(name: str, *ids: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": name,
            "uid": f"uid-{name}",
            "annotations": annotations or {},
        },
        "status": {
            "containerStatuses": [
                {"name": f"c{i}", "containerID": f"containerd://{cid}"} for i, cid in enumerate(ids)
            ]
        },
    }


class Calls:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def observe(self, pod: Any) -> None:
        self.calls.append(("observe", pod["metadata"]["name"]))

    def remember(self, pod: Any) -> None:
        self.calls.append(("remember", pod["metadata"]["name"]))

    def settle(self, pod: Any) -> None:
        self.calls.append(("settle", pod["metadata"]["name"]))

    def gone(self, listed: Any) -> list[Any]:
        return []

    def deleted(self, pod: Any) -> None:
        self.calls.append(("deleted", pod["metadata"]["name"]))

    def relist(self, pods: Any) -> None:
        self.calls.append(("relist", ",".join(p["metadata"]["name"] for p in pods)))


def test_node_pods_index_follows_list_and_events() -> None:
    calls = Calls()
    pods = NodePods(calls)
    assert not pods.ready.is_set()
    pods.relist([pod("web", CID_A)])
    assert pods.ready.is_set()
    assert pods.lookup(CID_A) == ContainerRef("ns", "web", "c0")
    pods.event("ADDED", pod("db", CID_B))
    assert pods.lookup(CID_B) == ContainerRef("ns", "db", "c0")
    pods.event("MODIFIED", pod("web"))  # the container is gone from the status
    assert pods.lookup(CID_A) is None
    pods.event("DELETED", pod("db", CID_B))
    assert pods.lookup(CID_B) is None and len(pods) == 1
    assert calls.calls == [
        ("relist", "web"),
        ("observe", "db"),
        ("observe", "web"),
        ("deleted", "db"),
    ]
    assert not pods.pending()


def test_memory_optimisation_selects_the_labelled_pods_only() -> None:
    assert selector(True) == "spo.x-k8s.io/enable-recording"
    assert selector(False) == ""


def test_deferred_calls_run_in_order_once_due() -> None:
    now = [100.0]
    deferred = Deferred(2.0, clock=lambda: now[0])
    calls = Calls()
    recording = DeferredRecording(calls, deferred)
    recording.observe(pod("a"))
    assert calls.calls == [("remember", "a")]  # known at once (and so saved), finished later
    calls.calls.clear()
    now[0] += 1.0
    recording.deleted(pod("b"))
    assert deferred.run_due() == 0 and calls.calls == []
    now[0] += 1.0
    assert deferred.run_due() == 1 and calls.calls == [("settle", "a")]
    now[0] += 5.0
    recording.relist([pod("c")])
    assert calls.calls[-1] == ("remember", "c")
    assert deferred.run_due() == 1
    now[0] += 2.0
    assert deferred.run_due() == 1
    assert calls.calls == [("settle", "a"), ("remember", "c"), ("deleted", "b"), ("settle", "c")]


def test_a_list_taken_before_a_pod_was_added_does_not_finish_it() -> None:
    """The watch lists (the pod is not there yet), then the pod is ADDED; the list's turn
    comes later in the queue, but it must not read as the pod being gone."""
    now = [0.0]
    deferred = Deferred(1.0, clock=lambda: now[0])
    created: list[Any] = []
    recorder = _recorder()
    agent = RecordingAgent(recorder, created.append, arch="SCMP_ARCH_X86_64")
    pods = NodePods(DeferredRecording(agent, deferred))
    pods.relist([])
    recorded = pod("web", CID_A, annotations={"io.containers.trace-logs/c0": "rec_c0_abcde_1"})
    pods.event("ADDED", recorded)
    recorder.consume([SECCOMP.format(serial=1, nr=0)])
    now[0] += 5.0
    deferred.run_due()
    assert created == [] and [p["metadata"]["name"] for p in agent.snapshot()] == ["web"]
    pods.relist([])  # now it is gone
    now[0] += 5.0
    deferred.run_due()
    assert [c["metadata"]["name"] for c in created] == ["rec-c0"]


def test_a_state_seen_earlier_never_replaces_a_newer_one_in_what_is_saved() -> None:
    """Pending (no container yet), then Running naming its container: the deferred half of
    the first event must not bring the Pending state back, or a crash then would save a pod
    whose container is unknown and its profile could not be made."""
    now = [0.0]
    deferred = Deferred(2.0, clock=lambda: now[0])
    agent = RecordingAgent(_recorder(), [].append, arch="SCMP_ARCH_X86_64")
    pods = NodePods(DeferredRecording(agent, deferred))
    annotations = {"io.containers.trace-logs/c0": "rec_c0_abcde_1"}
    pods.event("ADDED", pod("web", annotations=annotations))
    now[0] += 1.0
    pods.event("MODIFIED", pod("web", CID_A, annotations=annotations))
    now[0] += 1.5
    assert deferred.run_due() == 1  # the first event's turn
    [saved] = agent.snapshot()
    ids = [status["containerID"] for status in saved["status"]["containerStatuses"]]
    assert ids == [f"containerd://{CID_A}"]


def _recorder() -> Recorder:
    return Recorder(lambda pid: Lookup(CID_A if pid == 7 else None, "" if pid == 7 else "host"))


SECCOMP = (
    "type=SECCOMP msg=audit(1700000000.123:{serial}): auid=4294967295 uid=0 gid=0 ses=4294967295 "
    'subj=unconfined pid=7 comm="sh" exe="/bin/busybox" sig=0 arch=c000003e syscall={nr} compat=0 '
    "ip=0x4a1c3b code=0x7ffc0000"
)
AVC = (
    "type=AVC msg=audit(1700000000.200:{serial}): avc:  denied  {{ read write }} for  "
    'pid=7 comm="sh" '
    'name="x" scontext=system_u:system_r:selinuxrecording.process:s0 '
    "tcontext=system_u:object_r:var_t:s0 tclass=file permissive=1"
)


def test_recorder_snapshot_restores_what_was_recorded(tmp_path: Path) -> None:
    recorder = _recorder()
    recorder.consume(
        [SECCOMP.format(serial=1, nr=83), SECCOMP.format(serial=2, nr=0), AVC.format(serial=3)]
    )
    recorder.detector.add(Loss("rate-limit", "audit: rate limit exceeded"))
    state = RecorderState(tmp_path / "audit-log.json", recorder)
    state.save([Position(1, 2, 300, "0a")])

    fresh = _recorder()
    assert RecorderState(tmp_path / "audit-log.json", fresh).restore() == 1
    assert RecorderState(tmp_path / "audit-log.json", fresh).load() == (Position(1, 2, 300, "0a"),)
    index = {CID_A: ContainerRef("ns", "web", "c0")}
    assert fresh.seccomp(index)[index[CID_A]].names == ("mkdir", "read")
    assert fresh.selinux(index)[index[CID_A]].allow == {"var_t": {"file": ("read", "write")}}
    assert [loss.reason for loss in fresh.detector.losses] == ["rate-limit"]


def test_a_damaged_saved_recording_is_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "audit-log.json"
    path.write_text(
        '{"files": [], "recorded": {"seccomp": {"x": [["not", "numbers"]], "y": [[1, 2]]}, '
        '"avc": {"z": {}}}}'
    )
    recorder = _recorder()
    assert RecorderState(path, recorder).restore() == 1
    assert recorder.container_ids() == {"y"}


def test_auditd_is_found_by_its_process_name(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "comm").write_text("systemd\n")
    (tmp_path / "self").mkdir()
    assert not auditd_running(tmp_path)
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "comm").write_text("auditd\n")
    assert auditd_running(tmp_path)


def test_the_command_line_reads_the_daemonsets_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_NAME", "n1")
    monkeypatch.setenv("ENABLE_MEMORY_OPTIMIZATION", "true")
    monkeypatch.setenv("WATCH_NAMESPACE", "team")
    monkeypatch.setenv("METRICS_BIND", "127.0.0.1:9999")
    args = parser().parse_args(["log-enricher", "--state-dir", "/state"])
    assert (args.node_name, args.memory_optimization, args.namespace) == ("n1", True, "team")
    assert (args.metrics_bind, args.state_dir, args.audit_log) == (
        "127.0.0.1:9999",
        "/state",
        "/var/log/audit/audit.log",
    )
    monkeypatch.setenv("ENABLE_MEMORY_OPTIMIZATION", "false")
    assert parser().parse_args(["log-enricher"]).memory_optimization is False


def test_a_call_can_be_deferred_longer_than_the_queue_says() -> None:
    now = [0.0]
    deferred = Deferred(2.0, clock=lambda: now[0])
    ran: list[str] = []
    deferred.later(lambda: ran.append("retry"), 10.0)
    deferred.later(lambda: ran.append("finish"))
    now[0] = 2.0
    assert deferred.run_due() == 1 and ran == ["finish"]
    now[0] = 10.0
    assert deferred.run_due() == 1 and ran == ["finish", "retry"]


def test_the_deferred_queue_is_safe_across_threads() -> None:
    deferred = Deferred(0.0)
    seen: list[int] = []
    lock = threading.Lock()

    def add(i: int) -> None:
        with lock:
            seen.append(i)

    threads = [
        threading.Thread(target=lambda i=i: deferred.later(lambda: add(i))) for i in range(50)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert deferred.run_due() == 50 and sorted(seen) == list(range(50))


def test_auditd_watch_makes_its_absence_an_ongoing_loss_and_ends_it() -> None:
    running = [False]
    now = [0.0]
    recorder = _recorder()
    watch = AuditdWatch(
        recorder.detector, interval=5.0, running=lambda proc: running[0], clock=lambda: now[0]
    )
    watch.check()
    assert recorder.detector.ongoing("no-auditd")
    running[0] = True
    now[0] += 1.0
    watch.check()  # not yet: once per interval
    assert recorder.detector.ongoing("no-auditd")
    now[0] += 5.0
    watch.check()
    assert not recorder.detector.ongoing("no-auditd")
    assert [loss.reason for loss in recorder.detector.losses] == ["no-auditd"]  # still a past loss
    running[0] = False
    now[0] += 5.0
    watch.check()
    assert recorder.detector.ongoing("no-auditd")


def test_the_recording_gets_an_event_for_each_profile_made_or_refused() -> None:
    target = Target(ContainerRef("ns", "web-1", "app"), "rec", "rec-app")
    made = event(
        "n1", Decision(target, profile={"kind": "SeccompProfile", "metadata": {"name": "rec-app"}})
    )
    assert made["involvedObject"] == {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha1",
        "kind": "ProfileRecording",
        "name": "rec",
        "namespace": "ns",
    }
    assert (made["type"], made["reason"]) == ("Normal", "ProfileRecorded")
    assert "rec-app" in made["message"] and "web-1" in made["message"]
    refused = event("n1", Decision(target, error="audit records were lost (no-auditd)"))
    assert (refused["type"], refused["reason"]) == ("Warning", "ProfileNotRecorded")
    assert "no-auditd" in refused["message"]
    assert refused["metadata"] == {"generateName": "rec.", "namespace": "ns"}
    assert refused["source"] == {"component": "spo-log-enricher", "host": "n1"}


def test_kernel_log_watch_reads_only_what_comes_after_it_started(tmp_path: Path) -> None:
    kmsg = tmp_path / "kmsg"
    kmsg.write_text("4,100,5,-;audit: backlog limit exceeded\n")  # before: not this run's
    counter = iter([7, 7, 9])
    recorder = _recorder()
    now = [0.0]
    watch = KernelLogWatch(
        recorder.detector, kmsg, counter=lambda: next(counter), clock=lambda: now[0]
    )
    watch.check()
    assert recorder.detector.losses == []
    with kmsg.open("a") as log:
        log.write("6,101,6,-;eth0: link up\n4,102,7,-;audit: rate limit exceeded\n")
    now[0] += 5.0
    watch.check()
    assert [loss.reason for loss in recorder.detector.losses] == ["rate-limit", "lost-counter"]
    watch.close()


def test_kernel_log_watch_without_the_kernel_log_or_auditctl_watches_nothing(
    tmp_path: Path,
) -> None:
    recorder = _recorder()
    watch = KernelLogWatch(recorder.detector, tmp_path / "missing", counter=lambda: None)
    watch.check()
    watch.check()
    assert recorder.detector.losses == []
    watch.close()


def test_the_pod_watch_asks_the_api_for_this_node_and_with_the_optimisation_the_label() -> None:
    from nodesync.nodeio.requesting import KubernetesCluster, PodSource

    asked: list[tuple[str, dict[str, Any]]] = []

    class Recorded(KubernetesCluster):
        def __init__(self, namespace: str | None) -> None:  # no kubeconfig needed
            self.namespace = namespace

        def _list(self, path: str, query: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
            asked.append((path, query))
            return [], "1"

    PodSource(Recorded(None), "n1", selector(True)).list_configmaps("")
    PodSource(Recorded("team"), "n1", selector(False)).list_configmaps("")
    assert asked == [
        (
            "/api/v1/pods",
            {"fieldSelector": "spec.nodeName=n1", "labelSelector": "spo.x-k8s.io/enable-recording"},
        ),
        ("/api/v1/namespaces/team/pods", {"fieldSelector": "spec.nodeName=n1"}),
    ]


def test_the_audit_loop_tells_and_records_each_batch_once(tmp_path: Path) -> None:
    """follow(): every line of the log, read a batch at a time as text, told and recorded once;
    the position saved at the end covers them."""
    log = tmp_path / "audit.log"
    log.write_text("")
    seccomp = (
        "type=SECCOMP msg=audit(1700000000.{n:03d}:{n}): auid=0 uid=0 gid=0 ses=1 "
        'subj=unconfined pid={pid} comm="x" exe="/bin/x" sig=0 arch=c000003e syscall={nr} '
        "compat=0 ip=0x1 code=0x7ffc0000"
    )
    lines = [seccomp.format(n=n, pid=7 if n % 3 else 8, nr=n % 5) for n in range(1, 400)] + [
        "type=EOE msg=audit(1700000001.000:999): ",
        "not a record",
    ]
    state = StateFile(tmp_path / "offset.json")
    follower = Follower(log, state, chunk_size=4096, poll_interval=0.01)
    recorder = Recorder(lambda pid: Lookup(CID_A if pid == 7 else None, "host"))
    agent = RecordingAgent(recorder, [].append, arch="SCMP_ARCH_X86_64")
    told: list[str] = []
    index = {CID_A: ContainerRef("ns", "web", "app")}
    enricher = LogEnricher("n1", CollectorRegistry(), index.get, told.append)
    stop = threading.Event()
    loop = threading.Thread(target=follow, args=(follower, agent, enricher, Deferred(60), stop))
    loop.start()
    try:
        with log.open("a") as file:
            file.write("\n".join(lines) + "\n")
        for _ in range(500):
            if recorder.counts.lines >= len(lines):
                break
            time.sleep(0.01)
    finally:
        stop.set()
        loop.join(10)
    assert recorder.counts.lines == len(lines)
    assert len(told) == recorder.counts.attributed == sum(n % 3 != 0 for n in range(1, 400))
    recorded = recorder.seccomp_of(CID_A)
    assert recorded is not None and recorded.names == ("close", "open", "read", "stat", "write")
    (saved,) = state.load()
    assert saved.offset == log.stat().st_size
