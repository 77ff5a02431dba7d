"""The API mode against a small in-memory fake of the API server: watch, node statuses, retries.

The fake implements ``nodesync.nodeio.cluster.Cluster`` with the API server's rules that
matter here: a watch that can expire (410) or drop, create conflicts (409),
merge patches (the node statuses have no status subresource: ``.status`` is written with
the object).
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hooks.api.base import Object
from hooks.api.configmaps import MAX_WARNING_BYTES, PROFILE_WARNING_ANNOTATION, configmap_metadata
from hooks.api.nodestatuslabels import status_name
from nodesync.nodeio import reasons
from nodesync.nodeio.agent import NodeAgent
from nodesync.nodeio.cluster import ApiError
from nodesync.nodeio.metrics import Metrics
from nodesync.nodeio.reporting import NodeStatusReporter
from nodesync.nodeio.watching import SELECTOR, Backoff, Watcher
from nodesync.seccomp.materialising import Materialiser

NODE = "node-1"
OWNER = {
    "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
    "kind": "SeccompProfile",
    "name": "p",
    "uid": "0f0e-uid",
    "controller": True,
    "blockOwnerDeletion": True,
}


def cm(
    name: str,
    payload: str = '{"defaultAction": "SCMP_ACT_ALLOW"}',
    ns: str = "ns",
    warning: str | None = None,
) -> Object:
    metadata = configmap_metadata("SeccompProfile", ns, name, warning)
    metadata["ownerReferences"] = [{**OWNER, "name": name}]
    metadata["resourceVersion"] = "1"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {"profile.json": payload},
    }


def merge(target: Object, patch: Object) -> Object:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def matches(obj: Object, selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in (term.split("=", 1) for term in selector.split(",")))


class FakeCluster:
    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.configmaps: dict[tuple[str, str], Object] = {}
        self.statuses: dict[tuple[str, str], Object] = {}
        self.events: list[Object] = []
        self.watches: list[list[Object] | ApiError] = []  # scripted, one entry per watch call
        self.calls: list[tuple[str, ...]] = []
        self.failing: set[str] = set()
        self.lists = 0

    def _call(self, *call: str) -> None:
        self.calls.append(call)
        if call[0] in self.failing:
            raise ApiError(500, f"{call[0]} failed")

    def list_configmaps(self, selector: str) -> tuple[list[Object], str]:
        assert selector == SELECTOR
        self.lists += 1
        self._call("list_configmaps")
        return [copy.deepcopy(c) for c in self.configmaps.values() if matches(c, selector)], "10"

    def watch_configmaps(
        self, selector: str, resource_version: str, timeout: int
    ) -> Iterator[Object]:
        self._call("watch_configmaps", resource_version)
        if not self.watches:
            self.stop.set()
            return
        script = self.watches.pop(0)
        if isinstance(script, ApiError):
            raise script
        for event in script:
            obj, key = event["object"], None
            if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                if event["type"] == "DELETED":
                    self.configmaps.pop(key, None)
                else:
                    self.configmaps[key] = obj
            yield copy.deepcopy(event)

    def list_node_statuses(self, selector: str) -> list[Object]:
        self._call("list_node_statuses")
        return [copy.deepcopy(s) for s in self.statuses.values() if matches(s, selector)]

    def create_node_status(self, namespace: str, body: Object) -> Object:
        name = body["metadata"]["name"]
        self._call("create", namespace, name)
        if (namespace, name) in self.statuses:
            raise ApiError(409, "already exists")
        stored = copy.deepcopy(body)
        self.statuses[(namespace, name)] = stored
        return copy.deepcopy(stored)

    def patch_node_status(self, namespace: str, name: str, patch: Object) -> Object:
        self._call("patch", namespace, name)
        if (namespace, name) not in self.statuses:
            raise ApiError(404, "not found")
        current = self.statuses[(namespace, name)]
        merge(current, patch)
        return copy.deepcopy(current)

    def delete_node_status(self, namespace: str, name: str) -> None:
        self._call("delete", namespace, name)
        if self.statuses.pop((namespace, name), None) is None:
            raise ApiError(404, "not found")

    def create_event(self, namespace: str, body: Object) -> None:
        self.events.append(body)


class Rig:
    def __init__(self, tmp_path: Path, *, supported: bool = True) -> None:
        self.stop = threading.Event()
        self.cluster = FakeCluster(self.stop)
        self.metrics = Metrics()
        self.kubelet = tmp_path
        self.waits: list[float] = []
        self.agent = NodeAgent(
            Materialiser(tmp_path, metrics=self.metrics, supported=supported),
            NodeStatusReporter(self.cluster, NODE, self.metrics),
        )

    def run(self) -> Watcher:
        watcher = Watcher(
            self.cluster, self.agent, self.stop, backoff=Backoff(), wait=self.waits.append
        )
        watcher.run()
        return watcher

    def status(self, profile: str, ns: str = "ns") -> Object:
        return self.cluster.statuses[(ns, status_name(profile, NODE))]

    def file(self, profile: str, ns: str = "ns") -> Path:
        return self.kubelet / "seccomp/operator" / ns / f"{profile}.json"


def test_relist_installs_files_and_creates_owned_node_statuses(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.cluster.configmaps[("ns", "seccomp-p")] = cm("p")
    rig.run()
    assert rig.file("p").read_text() == '{"defaultAction": "SCMP_ACT_ALLOW"}'
    status = rig.status("p")
    assert status["apiVersion"] == "security-profiles-operator.x-k8s.io/v1alpha1"
    assert status["kind"] == "SecurityProfileNodeStatus"
    assert status["metadata"]["name"] == "p-node-1"
    assert status["metadata"]["labels"] == {
        "spo.x-k8s.io/profile-id": "SeccompProfile-p",
        "spo.x-k8s.io/node-name": NODE,
        "spo.x-k8s.io/profile-state": "Installed",
        "spo.x-k8s.io/profile-kind": "SeccompProfile",
    }
    expected = {k: v for k, v in OWNER.items() if k != "blockOwnerDeletion"}
    assert status["metadata"]["ownerReferences"] == [{**expected, "controller": False}]
    assert status["nodeName"] == NODE
    assert status["status"] == "Installed"  # created so: one request
    assert "message" not in status
    assert rig.agent.ready.is_set()
    assert [e["reason"] for e in rig.cluster.events] == [reasons.SAVED]


def test_nothing_changed_means_no_writes_to_the_api(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.cluster.configmaps[("ns", "seccomp-p")] = cm("p")
    rig.run()
    rig.cluster.calls.clear()
    rig.stop.clear()
    rig.cluster.watches = [[{"type": "MODIFIED", "object": cm("p")}]]  # same content again
    restarted = Rig(tmp_path)  # a restarted nodesync: nothing cached but what the API holds
    restarted.cluster = rig.cluster
    restarted.agent.sink = NodeStatusReporter(rig.cluster, NODE, restarted.metrics)
    restarted.stop = rig.stop
    restarted.run()
    writes = [c for c in rig.cluster.calls if c[0] in ("create", "patch", "delete")]
    assert writes == []
    assert restarted.metrics.value("seccomp_profile_total", operation="update") == 0


def test_watch_events_update_files_and_statuses(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.cluster.configmaps[("ns", "seccomp-p")] = cm("p")
    rig.cluster.watches = [
        [
            {"type": "ADDED", "object": cm("q")},
            {"type": "MODIFIED", "object": cm("p", "{oops")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "42"}}},
        ],
        [{"type": "DELETED", "object": cm("q")}],
    ]
    rig.run()
    assert rig.file("p").exists()  # the invalid update keeps what was installed
    broken = rig.status("p")
    assert broken["status"] == "Error"
    assert broken["metadata"]["labels"]["spo.x-k8s.io/profile-state"] == "Error"
    assert "not valid JSON" in broken["message"]
    assert not rig.file("q").exists()
    assert ("ns", status_name("q", NODE)) not in rig.cluster.statuses
    assert ("watch_configmaps", "42") in rig.cluster.calls  # resumed from the bookmark
    assert rig.metrics.value("seccomp_profile_total", operation="delete") == 1
    assert rig.metrics.value("seccomp_profile_error_total", reason=reasons.INVALID_PROFILE) == 1
    # back to valid: the message goes away
    rig.stop.clear()
    rig.cluster.watches = [[{"type": "MODIFIED", "object": cm("p")}]]
    rig.run()
    assert rig.status("p")["status"] == "Installed" and "message" not in rig.status("p")


WARNING = "spec.syscalls[0].names: no such syscalls on SCMP_ARCH_X86_64 (...): vm86"


def test_the_saved_event_carries_the_configmaps_warning_as_it_is(tmp_path: Path) -> None:
    """The hooks' warning annotation reaches the Event nodesync emits anyway: nothing else is
    created or watched for it, and the node status does not carry it."""
    rig = Rig(tmp_path)
    rig.cluster.configmaps[("ns", "seccomp-p")] = cm("p", warning=WARNING)
    rig.cluster.configmaps[("ns", "seccomp-q")] = cm("q")
    rig.cluster.watches = [
        [{"type": "MODIFIED", "object": cm("p", warning=WARNING)}],  # unchanged: no Event
        [{"type": "MODIFIED", "object": cm("p", warning="another")}],  # a new warning: one
        [{"type": "MODIFIED", "object": cm("p")}],  # the warning gone: none
        [{"type": "MODIFIED", "object": cm("q", "{oops")}],  # Error, no warning
        [{"type": "MODIFIED", "object": cm("q", warning=WARNING)}],  # Installed with one
    ]
    rig.run()
    said = [
        (e["involvedObject"]["name"], e["type"], e["reason"], e["message"])
        for e in rig.cluster.events
    ]
    saved = f"seccomp profile Installed on node {NODE}"
    assert said[:3] == [
        ("p", "Normal", reasons.SAVED, f"{saved}; warning: {WARNING}"),
        ("q", "Normal", reasons.SAVED, saved),
        ("p", "Normal", reasons.SAVED, f"{saved}; warning: another"),
    ]
    assert [(name, kind) for name, kind, _, _ in said[3:]] == [("q", "Warning"), ("q", "Normal")]
    assert said[4][3] == f"{saved}; warning: {WARNING}"
    assert "message" not in rig.status("p") and "message" not in rig.status("q")
    assert rig.file("p").read_text() == '{"defaultAction": "SCMP_ACT_ALLOW"}'


def test_a_restarted_nodesync_does_not_repeat_a_warning(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.cluster.configmaps[("ns", "seccomp-p")] = cm("p", warning=WARNING)
    rig.run()
    assert len(rig.cluster.events) == 1
    rig.stop.clear()
    restarted = Rig(tmp_path)
    restarted.cluster = rig.cluster
    restarted.agent.sink = NodeStatusReporter(rig.cluster, NODE, restarted.metrics)
    restarted.stop = rig.stop
    rig.cluster.watches = [[{"type": "MODIFIED", "object": cm("p", warning=WARNING)}]]
    restarted.run()
    assert len(rig.cluster.events) == 1


def test_a_warning_annotation_is_only_copied_and_cut_to_its_limit(tmp_path: Path) -> None:
    long = cm("p")
    long["metadata"]["annotations"][PROFILE_WARNING_ANNOTATION] = "x" * 5000
    not_text = cm("q")
    not_text["metadata"]["annotations"][PROFILE_WARNING_ANNOTATION] = ["not", "text"]
    rig = Rig(tmp_path)
    rig.cluster.configmaps[("ns", "seccomp-p")] = long
    rig.cluster.configmaps[("ns", "seccomp-q")] = not_text
    rig.run()
    messages = {e["involvedObject"]["name"]: e["message"] for e in rig.cluster.events}
    warning = messages["p"].partition("; warning: ")[2]
    assert len(warning.encode()) <= MAX_WARNING_BYTES and warning.endswith("...")
    assert messages["q"] == f"seccomp profile Installed on node {NODE}"
    assert rig.status("p")["status"] == rig.status("q")["status"] == "Installed"


def test_expiry_relists_at_once_and_disconnects_back_off(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.cluster.configmaps[("ns", "seccomp-p")] = cm("p")
    rig.cluster.watches = [
        [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}],
        ApiError(0, "connection reset"),
        ApiError(0, "connection refused"),
    ]
    # while the watch was down, p was deleted and r created: the re-list converges
    original = rig.cluster.list_configmaps

    def changed_after_first(selector: str) -> tuple[list[Object], str]:
        if rig.cluster.lists:
            rig.cluster.configmaps = {("ns", "seccomp-r"): cm("r")}
        return original(selector)

    rig.cluster.list_configmaps = changed_after_first  # type: ignore[method-assign]
    watcher = rig.run()
    assert watcher.relists == 4  # start, after 410, after each disconnect
    assert len(rig.waits) == 2  # no wait after the expiry
    assert rig.waits[1] >= rig.waits[0] / 2  # exponential ceiling, full jitter
    assert not rig.file("p").exists() and rig.file("r").exists()
    assert set(rig.cluster.statuses) == {("ns", status_name("r", NODE))}


def test_stale_statuses_of_this_node_are_deleted_on_relist(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    for node in (NODE, "node-2"):
        rig.cluster.statuses[("ns", status_name("gone", node))] = {
            "metadata": {
                "name": status_name("gone", node),
                "namespace": "ns",
                "labels": {
                    "spo.x-k8s.io/node-name": node,
                    "spo.x-k8s.io/profile-kind": "SeccompProfile",
                },
            },
            "nodeName": node,
            "status": "Installed",
        }
    rig.run()
    assert set(rig.cluster.statuses) == {("ns", status_name("gone", "node-2"))}


def test_failed_status_updates_are_counted_and_retried(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.cluster.configmaps[("ns", "seccomp-p")] = cm("p")
    rig.cluster.failing.add("create")
    rig.cluster.watches = [[]]  # one empty watch, then the retry tick
    original = rig.agent.tick

    def tick() -> None:
        rig.cluster.failing.clear()
        original()

    rig.agent.tick = tick  # type: ignore[method-assign]
    rig.run()
    assert (
        rig.metrics.value("seccomp_profile_error_total", reason=reasons.CANNOT_UPDATE_STATUS) == 1
    )
    assert rig.status("p")["status"] == "Installed"


def test_unsupported_node_reports_error_and_writes_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path, supported=False)
    rig.cluster.configmaps[("ns", "seccomp-p")] = cm("p")
    rig.cluster.watches = [[{"type": "ADDED", "object": cm("q")}]]
    rig.run()
    for profile in ("p", "q"):
        status = rig.status(profile)
        assert (status["status"], status["message"]) == (
            "Error",
            "seccomp is not supported on this node",
        )
    assert not (tmp_path / "seccomp").exists()
    assert rig.cluster.events[0]["type"] == "Warning"
    assert rig.cluster.events[0]["reason"] == reasons.SECCOMP_NOT_SUPPORTED


@pytest.mark.parametrize("bad_name", ["a..b", "../../x"])
def test_bad_names_are_reported_not_written(tmp_path: Path, bad_name: str) -> None:
    """A profile's own ConfigMap whose name makes no path: an Error on its node status."""
    rig = Rig(tmp_path)
    rig.cluster.configmaps[("ns", f"seccomp-{bad_name}")] = cm(bad_name)
    rig.cluster.configmaps[("ns", "seccomp-ok")] = cm("ok")
    rig.run()
    status = rig.status(bad_name)
    assert status["status"] == "Error" and "not a valid Kubernetes name" in status["message"]
    assert rig.status("ok")["status"] == "Installed"
    assert json.loads(rig.file("ok").read_text()) == {"defaultAction": "SCMP_ACT_ALLOW"}
    assert sorted(p.name for p in (tmp_path / "seccomp" / "operator").rglob("*")) == [
        "ns",
        "ok.json",
    ]


def test_a_configmap_not_its_profiles_reports_nothing_and_leaves_the_real_status(
    tmp_path: Path,
) -> None:
    """A forged ConfigMap naming a real profile in its annotation: the real profile's file and
    node status stay as they are; the forged one is only logged and counted."""
    rig = Rig(tmp_path)
    rig.cluster.configmaps[("ns", "seccomp-real")] = cm("real")
    forged = cm("evil", '{"defaultAction": "SCMP_ACT_ALLOW", "forged": true}')
    forged["metadata"]["annotations"]["spo.x-k8s.io/profile-name"] = "real"
    rig.cluster.configmaps[("ns", "seccomp-evil")] = forged
    unowned = cm("ghost", '{"defaultAction": "SCMP_ACT_ALLOW", "forged": true}')
    del unowned["metadata"]["ownerReferences"]
    rig.cluster.configmaps[("ns", "seccomp-ghost")] = unowned
    rig.run()
    assert rig.status("real")["status"] == "Installed"
    assert "message" not in rig.status("real")
    assert set(rig.cluster.statuses) == {("ns", status_name("real", NODE))}
    assert json.loads(rig.file("real").read_text()) == {"defaultAction": "SCMP_ACT_ALLOW"}
    assert not rig.file("evil").exists() and not rig.file("ghost").exists()
    assert rig.metrics.value("seccomp_profile_error_total", reason=reasons.NOT_OWNED) == 2
    assert all(event["involvedObject"]["name"] == "real" for event in rig.cluster.events)


def test_watch_events_of_forgeries_touch_nothing_and_an_orphaned_configmap_goes(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.cluster.configmaps[("ns", "seccomp-p")] = cm("p")
    rig.cluster.configmaps[("ns", "seccomp-q")] = cm("q")
    forged = cm("evil", '{"defaultAction": "SCMP_ACT_ALLOW", "forged": true}')
    forged["metadata"]["annotations"]["spo.x-k8s.io/profile-name"] = "p"
    orphan = cm("q")
    del orphan["metadata"]["ownerReferences"]  # its profile deleted with --cascade=orphan
    rig.cluster.watches = [
        [
            {"type": "ADDED", "object": forged},
            {"type": "MODIFIED", "object": orphan},
            {"type": "DELETED", "object": forged},
        ]
    ]
    rig.run()
    assert rig.file("p").read_text() == '{"defaultAction": "SCMP_ACT_ALLOW"}'
    assert rig.status("p")["status"] == "Installed"
    assert not rig.file("q").exists()
    assert set(rig.cluster.statuses) == {("ns", status_name("p", NODE))}  # q's status went
    assert not rig.file("evil").exists()


def test_a_failed_report_ends_the_long_watch_and_is_retried_after_a_brief_one(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    timeouts: list[int] = []
    watch = rig.cluster.watch_configmaps

    def recording(selector: str, resource_version: str, timeout: int) -> Iterator[Object]:
        timeouts.append(timeout)
        if len(timeouts) == 2:
            rig.cluster.failing.clear()  # the API server answers again
        return watch(selector, resource_version, timeout)

    rig.cluster.watch_configmaps = recording  # type: ignore[method-assign]
    rig.cluster.failing.add("create")
    added = {"type": "ADDED", "object": cm("p")}
    later = {"type": "ADDED", "object": cm("q")}
    rig.cluster.watches = [[added, later], []]
    rig.run()
    # The first watch ended after p's report failed (q never came through it); the next
    # watch was brief, and after it the retry went through; then watches are long again.
    assert timeouts == [300, 10, 300]
    assert rig.status("p")["status"] == "Installed"
    assert ("create", "ns", status_name("q", NODE)) not in rig.cluster.calls
