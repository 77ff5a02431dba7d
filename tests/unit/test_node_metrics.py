"""The node's metrics, named and labelled as the Go operator v0.8.4's
(internal/pkg/daemon/metrics/metrics.go): the seccomp and SELinux counters of nodesync, and
its reconcile loops on ``/metrics`` (``controller_runtime_reconcile_*``)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from hooks.api.profilestate import ProfileState
from nodesync.nodeio.agent import NodeAgent
from nodesync.nodeio.cluster import ApiError
from nodesync.nodeio.metrics import SELINUX, Metrics
from nodesync.nodeio.outcomes import Outcome
from nodesync.selinux.dropdir import DropDir
from nodesync.selinux.reporter import SelinuxStatusReporter
from nodesync.selinux.selinuxd import PolicyStatus
from nodesync.selinux.sync import SelinuxSync
from tests.unit.test_nodesync_apimode import FakeCluster
from tests.unit.test_nodesync_selinux import Sink, configmap

GO = "security_profiles_operator"


def families(text: bytes) -> dict[str, set[str]]:
    """Each sample's name -> its label names."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def test_the_counters_have_the_go_operators_names_and_labels() -> None:
    metrics = Metrics()
    metrics.updated()
    metrics.deleted()
    metrics.error("CannotSaveSeccompProfile")
    metrics.updated(kind=SELINUX)
    metrics.deleted(kind=SELINUX)
    metrics.error("CannotInstallSelinuxPolicy", kind=SELINUX)
    found = families(metrics.spod_exposition())
    assert found == {
        f"{GO}_seccomp_profile_total": {"operation"},
        f"{GO}_seccomp_profile_error_total": {"reason"},
        f"{GO}_selinux_profile_total": {"operation"},
        f"{GO}_selinux_profile_error_total": {"reason"},
    }
    assert metrics.value("selinux_profile_total", operation="update") == 1
    assert metrics.value("selinux_profile_total", operation="delete") == 1
    assert metrics.value("seccomp_profile_total", operation="update") == 1


class Backend:
    """An installer that installs at once, and fails what says BROKEN."""

    def __init__(self) -> None:
        self.results: dict[str, PolicyStatus] = {}

    def apply(self, drop: DropDir, changed: set[str], removed: set[str]) -> None:
        for policy in changed:
            broken = b"BROKEN" in (drop.path / f"{policy}.cil").read_bytes()
            status = "Failed" if broken else "Installed"
            self.results[policy] = PolicyStatus(policy, status, "no" if broken else "")
        for policy in removed:
            self.results.pop(policy, None)

    def status(self, policy: str) -> PolicyStatus | None:
        return self.results.get(policy)


def test_selinux_policies_count_as_the_go_operators_selinux_profiles(tmp_path: Path) -> None:
    metrics = Metrics()
    sync = SelinuxSync(DropDir(tmp_path / "drop"), Backend(), own={}, metrics=metrics)
    bad = configmap("bad", cil="(block bad_default BROKEN)\n")
    sync.converge([configmap("good"), bad])
    assert metrics.value("selinux_profile_total", operation="update") == 2
    assert metrics.value("selinux_profile_error_total", reason="CannotInstallSelinuxPolicy") == 1
    sync.converge([configmap("good"), bad])  # nothing changed: nothing counted again
    assert metrics.value("selinux_profile_total", operation="update") == 2
    assert metrics.value("selinux_profile_error_total", reason="CannotInstallSelinuxPolicy") == 1
    sync.delete(configmap("good"))
    assert metrics.value("selinux_profile_total", operation="delete") == 1
    unowned = configmap("stray")
    unowned["metadata"]["ownerReferences"] = None
    sync.upsert(unowned)
    assert metrics.value("selinux_profile_error_total", reason="ConfigMapNotOwnedByProfile") == 1
    assert metrics.value("seccomp_profile_total", operation="update") == 0


def test_a_selinux_status_that_cannot_be_written_counts_as_a_selinux_error() -> None:
    metrics = Metrics()
    cluster = FakeCluster(threading.Event())
    cluster.failing.add("create")
    reporter = SelinuxStatusReporter(cluster, "node-1", metrics, events=False)
    sync = SelinuxSync(DropDir(Path("/nonexistent")), Backend(), own={}, metrics=Metrics())
    outcome = sync._rejected(sync_rejection())
    reporter.report(outcome)
    assert metrics.value("selinux_profile_error_total", reason="CannotUpdatePolicyStatus") == 1
    assert metrics.value("seccomp_profile_error_total", reason="CannotUpdateNodeStatus") == 0


def sync_rejection() -> Any:
    from nodesync.selinux.policies import PolicyRejection, read_policy

    cm = configmap("p")
    cm["data"] = {}
    item = read_policy(cm)
    assert isinstance(item, PolicyRejection)
    return item


class Installer:
    """One kind of profile: installs what it is given, an error for a name starting "bad"."""

    what = "things"

    def accepts(self, configmap: Mapping[str, Any]) -> bool:
        return True

    def _outcome(self, configmap: Mapping[str, Any]) -> Outcome:
        name = configmap["metadata"]["name"]
        state = ProfileState.ERROR if name.startswith("bad") else ProfileState.INSTALLED
        return Outcome(
            namespace="ns",
            name=name,
            kind="SeccompProfile",
            state=state,
            message=None,
            changed=False,
            reason="",
        )

    def converge(self, configmaps: Iterable[Mapping[str, Any]]) -> list[Outcome]:
        return [self._outcome(c) for c in configmaps]

    def upsert(self, configmap: Mapping[str, Any]) -> Outcome:
        if configmap["metadata"]["name"] == "explode":
            raise ApiError(0, "boom")
        return self._outcome(configmap)

    def last(self, configmap: Mapping[str, Any]) -> Outcome | None:
        return None

    def delete(self, configmap: Mapping[str, Any]) -> Outcome | None:
        return None

    def needs_poll(self) -> bool:
        return False

    def poll(self) -> list[Outcome]:
        return []


def test_each_list_and_event_is_one_reconcile_of_the_agents_controller() -> None:
    metrics = Metrics()
    agent = NodeAgent(Installer(), Sink(), metrics=metrics, controller="seccompprofile")
    agent.relist([{"metadata": {"name": "a"}}])
    agent.event("ADDED", {"metadata": {"name": "b"}})
    agent.event("MODIFIED", {"metadata": {"name": "bad"}})
    agent.event("DELETED", {"metadata": {"name": "b"}})
    with contextlib.suppress(ApiError):
        agent.event("ADDED", {"metadata": {"name": "explode"}})
    total = "controller_runtime_reconcile_total"
    assert metrics.value(total, controller="seccompprofile", result="success") == 3
    assert metrics.value(total, controller="seccompprofile", result="error") == 2
    assert (
        metrics.value("controller_runtime_reconcile_errors_total", controller="seccompprofile") == 2
    )
    count = "controller_runtime_reconcile_time_seconds_count"
    assert metrics.value(count, controller="seccompprofile") == 5
    found = families(metrics.controllers_exposition())
    assert found["controller_runtime_reconcile_total"] == {"controller", "result"}
    assert found["controller_runtime_reconcile_time_seconds_bucket"] == {"controller", "le"}
    assert not any(name.startswith(GO) for name in found)


def test_without_metrics_an_agent_counts_nothing() -> None:
    NodeAgent(Installer(), Sink()).relist([{"metadata": {"name": "a"}}])
