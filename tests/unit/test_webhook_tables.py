"""The webhook's tables kept from watches (``hooks.cluster.webhook.tables``): the same tables as
the pure ``resolve`` of everything, built namespace by namespace, coalesced, ready only once every
kind was listed; and the list-and-watch loop that feeds them (410 Gone, reconnect)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hooks.api import profilerecording as recording_api
from hooks.cluster.binding import table
from hooks.cluster.recording import table as recording_table
from hooks.cluster.webhook.tables import (
    BINDINGS,
    RECORDINGS,
    SECCOMP_PROFILES,
    SELINUX_PROFILES,
    WATCHED,
    KindFeed,
    WatchedTables,
)
from hooks.command import webhook
from nodesync.nodeio.cluster import ApiError
from nodesync.nodeio.requesting import ResourceSource
from nodesync.nodeio.watching import Backoff

MIXED = Path(__file__).parent.parent / "data" / "webhook" / "bindings-across-namespaces.json"
GROUPS = {
    BINDINGS: "ProfileBinding.security-profiles-operator.x-k8s.io/v1alpha1",
    SECCOMP_PROFILES: "SeccompProfile.security-profiles-operator.x-k8s.io/v1beta1",
    SELINUX_PROFILES: "SelinuxProfile.security-profiles-operator.x-k8s.io/v1alpha2",
}


def _mixed() -> dict[Any, list[dict[str, Any]]]:
    raw = json.loads(MIXED.read_text())
    found = {kind: list((raw.get(key) or {}).values()) for kind, key in GROUPS.items()}
    found[RECORDINGS] = []
    return found


def _listed(objects: dict[Any, list[dict[str, Any]]]) -> WatchedTables:
    tables = WatchedTables()
    for kind in WATCHED:
        tables.relist(kind, objects.get(kind, []))
    tables.rebuild()
    return tables


def _binding(namespace: str, name: str, image: str, profile: str, created: str = "") -> Any:
    return {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha1",
        "kind": "ProfileBinding",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": created or "2026-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"profileRef": {"kind": "SeccompProfile", "name": profile}, "image": image},
    }


def _profile(namespace: str, name: str, state: str | None = "Installed") -> Any:
    out: dict[str, Any] = {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"] * 50}]},
    }
    if state:
        out["status"] = {
            "status": state,
            "localhostProfile": f"operator/{namespace}/{name}.json",
        }
    return out


def test_the_mixed_case_resolves_as_the_decorator_resolved_it() -> None:
    resolved = _listed(_mixed()).bindings().table
    team_a = resolved.of("team-a")
    assert [(e.binding, e.state) for e in team_a["nginx:1.27"]] == [
        ("nginx-older", "Installed"),
        ("nginx-seccomp", "Installed"),
        ("nginx-selinux", "Installed"),
    ]
    assert team_a["nginx:1.27"][2].value == "web-policy_team-a.process"
    assert team_a["*"][0].value == "operator/team-a/base.json"
    assert team_a["redis:7"][0].state == "Missing"
    team_b = resolved.of("team-b")
    assert team_b["redis:7"][0].state == "Pending"
    assert [e.binding for e in team_b["busybox:1.36"]] == ["busy-terminating"]
    assert team_b["busybox:1.36"][0].state == "Terminating"
    assert "nginx:1.27" not in team_b  # the invalid bindings are left out
    assert resolved.of("team-c")["nginx:1.27"][0].state == "Pending"


def test_events_in_any_order_give_the_table_of_resolving_everything() -> None:
    objects = _mixed()
    whole = table.resolve(objects[BINDINGS], objects[SECCOMP_PROFILES], objects[SELINUX_PROFILES])
    tables = _listed({})
    events = [(kind, obj) for kind in GROUPS for obj in objects[kind]]
    random.Random(3).shuffle(events)
    for kind, obj in events:
        tables.event(kind, "ADDED", obj)
    tables.rebuild()
    assert table.encode(tables.bindings().table) == table.encode(whole)


def test_not_ready_until_every_kind_was_listed() -> None:
    tables = WatchedTables()
    for kind in WATCHED[:-1]:
        tables.relist(kind, [])
        assert tables.rebuild() == 0
        assert not tables.ready()
        assert not tables.bindings().loaded and not tables.recordings().loaded
    tables.relist(WATCHED[-1], [])
    tables.rebuild()
    assert tables.ready() and tables.bindings().loaded and tables.recordings().loaded


def test_the_publisher_makes_an_empty_cluster_ready() -> None:
    tables = WatchedTables()
    stop = threading.Event()
    thread = threading.Thread(target=tables.publish_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        for kind in WATCHED:
            tables.relist(kind, [])
        deadline = time.monotonic() + 2.0
        while not tables.ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tables.ready()
        assert tables.bindings().table.count() == 0
    finally:
        stop.set()
        thread.join(2.0)


def test_a_failed_rebuild_keeps_its_namespaces_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    tables = _listed({})
    tables.event(BINDINGS, "ADDED", _binding("a", "b", "nginx", "p"))
    real = table.resolve_parsed

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(table, "resolve_parsed", broken)
    with pytest.raises(RuntimeError):
        tables.rebuild()
    monkeypatch.setattr(table, "resolve_parsed", real)
    assert tables.rebuild() == 1
    assert tables.bindings().table.of("a")["nginx"][0].binding == "b"


def test_an_event_resolves_its_namespace_alone() -> None:
    objects: dict[Any, list[dict[str, Any]]] = {
        BINDINGS: [_binding(f"ns-{i}", "b", "nginx", "p") for i in range(50)],
        SECCOMP_PROFILES: [_profile(f"ns-{i}", "p") for i in range(50)],
    }
    tables = _listed(objects)
    assert tables.rebuilt_namespaces == 50
    before = tables.bindings().table
    tables.event(SECCOMP_PROFILES, "MODIFIED", _profile("ns-7", "p", "Pending"))
    assert tables.rebuild() == 1
    after = tables.bindings().table
    assert after.of("ns-7")["nginx"][0].state == "Pending"
    assert before.of("ns-7")["nginx"][0].state == "Installed"  # a published table never changes
    assert after.of("ns-8") is before.of("ns-8")
    tables.event(BINDINGS, "DELETED", _binding("ns-7", "b", "nginx", "p"))
    tables.rebuild()
    assert tables.bindings().table.of("ns-7") == {}
    assert tables.bindings().table.count() == 49


def test_an_event_that_changes_nothing_the_tables_read_marks_nothing() -> None:
    tables = _listed(
        {SECCOMP_PROFILES: [_profile("a", "p")], BINDINGS: [_binding("a", "b", "n", "p")]}
    )
    rebuilt = tables.rebuilt_namespaces
    changed = _profile("a", "p")
    changed["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    changed["metadata"]["resourceVersion"] = "99"
    tables.event(SECCOMP_PROFILES, "MODIFIED", changed)
    tables.event(BINDINGS, "MODIFIED", _binding("a", "b", "n", "p"))
    assert tables.rebuild() == 0
    assert tables.rebuilt_namespaces == rebuilt
    tables.event(SECCOMP_PROFILES, "MODIFIED", _profile("a", "p", "Pending"))
    assert tables.rebuild() == 1


def test_a_relist_forgets_what_is_gone() -> None:
    tables = _listed({BINDINGS: [_binding("a", "b1", "nginx", "p"), _binding("b", "b2", "x", "p")]})
    assert tables.bindings().table.count() == 2
    tables.relist(BINDINGS, [_binding("b", "b2", "x", "p")])
    tables.rebuild()
    assert tables.bindings().table.of("a") == {}
    assert tables.bindings().table.count() == 1


def test_profiles_are_kept_without_their_spec_and_bindings_parsed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tables = _listed(
        {SECCOMP_PROFILES: [_profile("a", "p")], BINDINGS: [_binding("a", "b", "n", "p")]}
    )
    kept = tables._objects[SECCOMP_PROFILES.kind]["a"]["p"]
    assert kept == {
        "metadata": {"name": "p", "namespace": "a"},
        "status": {"status": "Installed", "localhostProfile": "operator/a/p.json"},
    }
    parsed = []
    real = table.parse
    monkeypatch.setattr(table, "parse", lambda raw: parsed.append(1) or real(raw))
    tables.event(BINDINGS, "ADDED", _binding("a", "c", "m", "p"))
    for _ in range(3):
        tables.event(SECCOMP_PROFILES, "MODIFIED", _profile("a", "p", "Pending"))
        tables.rebuild()
    assert len(parsed) == 1  # the new binding, once; the rebuilds parse nothing again
    assert [e.state for e in tables.bindings().table.of("a")["m"]] == ["Pending"]


def test_an_invalid_binding_replaces_its_valid_self_and_is_left_out() -> None:
    tables = _listed(
        {BINDINGS: [_binding("a", "b", "nginx", "p")], SECCOMP_PROFILES: [_profile("a", "p")]}
    )
    broken = _binding("a", "b", "nginx", "p")
    broken["spec"]["profileRef"]["kind"] = "AppArmorProfile"
    tables.event(BINDINGS, "MODIFIED", broken)
    tables.rebuild()
    assert tables.bindings().table.of("a") == {}


def test_recordings_and_the_logging_profile() -> None:
    recording = {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha1",
        "kind": "ProfileRecording",
        "metadata": {"name": "rec", "namespace": "team-a"},
        "spec": {
            "kind": "SeccompProfile",
            "recorder": "logs",
            "podSelector": {"matchLabels": {"app": "web"}},
        },
    }
    tables = _listed({RECORDINGS: [recording]})
    assert [r.name for r in tables.recordings().table.of("team-a")] == ["rec"]
    assert tables.recordings().table.logging.state == recording_table.MISSING
    logging = _profile("security-profiles-operator", recording_api.LOG_ENRICHER_PROFILE)
    tables.event(SECCOMP_PROFILES, "ADDED", logging)
    tables.rebuild()
    assert tables.recordings().table.logging.usable
    tables.event(RECORDINGS, "DELETED", recording)
    tables.rebuild()
    assert tables.recordings().table.of("team-a") == ()


def test_the_publisher_coalesces_a_burst_and_publishes_a_lone_event_at_once() -> None:
    tables = _listed({})
    stop = threading.Event()
    thread = threading.Thread(target=tables.publish_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        rebuilds = tables.rebuilds
        for i in range(2000):
            tables.event(BINDINGS, "ADDED", _binding("burst", f"b{i:04}", "nginx", "p"))
        deadline = time.monotonic() + 2.0
        while tables.bindings().table.count() < 2000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tables.bindings().table.count() == 2000
        assert tables.rebuilds - rebuilds < 20  # not one rebuild per event
        time.sleep(0.2)
        started = time.monotonic()
        tables.event(BINDINGS, "ADDED", _binding("alone", "b", "redis", "p"))
        while not tables.bindings().table.of("alone") and time.monotonic() - started < 1.0:
            time.sleep(0.002)
        assert tables.bindings().table.of("alone")
        assert time.monotonic() - started < 0.1
    finally:
        stop.set()
        thread.join(2.0)
    assert not thread.is_alive()


# -- the list-and-watch loop that feeds the tables ----------------------------------------------


class FakeSource:
    """Scripted lists and watches: each list answers the next list; each watch the next script,
    whose items are events, or exceptions to raise."""

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[list[Any]]) -> None:
        self.lists = lists
        self.watches = watches
        self.calls: list[tuple[str, str]] = []

    def list_configmaps(self, selector: str) -> tuple[list[dict[str, Any]], str]:
        self.calls.append(("list", ""))
        if not self.lists:
            raise ApiError(0, "connection refused")
        return self.lists.pop(0), f"rv{len(self.calls)}"

    def watch_configmaps(
        self, selector: str, resource_version: str, timeout: int
    ) -> Iterator[dict[str, Any]]:
        self.calls.append(("watch", resource_version))
        script = self.watches.pop(0) if self.watches else [ApiError(0, "connection refused")]
        for item in script:
            if isinstance(item, Exception):
                raise item
            yield item


def _run(source: FakeSource, tables: WatchedTables, stops_after: int) -> list[float]:
    stop = threading.Event()
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) >= stops_after:
            stop.set()

    watcher = webhook.watcher(tables, BINDINGS, source, stop)  # type: ignore[arg-type]
    watcher.backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    watcher.wait = wait
    watcher.run()
    return waits


def _listed_but(kind: Any) -> WatchedTables:
    tables = WatchedTables()
    for other in WATCHED:
        if other is not kind:
            tables.relist(other, [])
    return tables


def test_gone_lists_again_at_once_and_a_bookmark_moves_the_resource_version() -> None:
    first = _binding("a", "b1", "nginx", "p")
    second = _binding("a", "b2", "redis", "p")
    source = FakeSource(
        lists=[[first], [second]],
        watches=[
            [
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "rv-bookmark"}}},
            ],
            [{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}],
        ],
    )
    tables = _listed_but(BINDINGS)
    waits = _run(source, tables, stops_after=1)
    assert source.calls[:4] == [
        ("list", ""),
        ("watch", "rv1"),
        ("watch", "rv-bookmark"),
        ("list", ""),  # 410: at once, no backoff
    ]
    tables.rebuild()
    assert [e.binding for e in tables.bindings().table.of("a")["redis"]] == ["b2"]
    assert "nginx" not in tables.bindings().table.of("a")  # what the relist no longer has
    assert len(waits) == 1  # the one wait: the failed watch after the second list


def test_a_failed_connection_backs_off_longer_each_time_then_lists_again() -> None:
    binding = _binding("a", "b", "nginx", "p")
    source = FakeSource(lists=[[binding]], watches=[[ApiError(0, "reset")]])
    tables = _listed_but(BINDINGS)
    waits = _run(source, tables, stops_after=4)
    assert [c[0] for c in source.calls[:4]] == ["list", "watch", "list", "list"]
    # the watch failed, then every list: up to 1, 2, 4, 8 s (with jitter: at least half)
    assert waits[0] <= 1.0 and waits[1] >= 1.0 and waits[2] >= 2.0 and waits[3] >= 4.0
    tables.rebuild()
    assert tables.bindings().table.of("a")["nginx"][0].binding == "b"


def test_watch_events_reach_the_tables() -> None:
    binding = _binding("a", "b", "nginx", "p")
    source = FakeSource(
        lists=[[]],
        watches=[
            [
                {"type": "ADDED", "object": binding},
                {"type": "ADDED", "object": _binding("a", "c", "redis", "p")},
                {"type": "DELETED", "object": binding},
            ]
        ],
    )
    tables = _listed_but(BINDINGS)
    _run(source, tables, stops_after=1)
    tables.rebuild()
    assert set(tables.bindings().table.of("a")) == {"redis"}


def test_feed_is_never_pending() -> None:
    feed = KindFeed(WatchedTables(), BINDINGS)
    feed.tick()
    assert feed.pending() is False


class _Cluster:
    def __init__(self, namespace: str | None) -> None:
        self.namespace = namespace


@pytest.mark.parametrize(
    ("namespace", "path"),
    [
        (None, "/apis/security-profiles-operator.x-k8s.io/v1alpha1/profilebindings"),
        (
            "team-a",
            "/apis/security-profiles-operator.x-k8s.io/v1alpha1/namespaces/team-a/profilebindings",
        ),
    ],
)
def test_resource_source_paths_stay_in_the_watched_namespace(
    namespace: str | None, path: str
) -> None:
    source = ResourceSource(_Cluster(namespace), BINDINGS.api_version, BINDINGS.plural)  # type: ignore[arg-type]
    assert source.path == path


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"version": 2, "namespaces": {}}',
        '{"version": 1}',
        '{"version": 1, "namespaces": []}',
        '{"version": 1, "namespaces": {"a": []}}',
        '{"version": 1, "namespaces": {"a": {"img": {}}}}',
        '{"version": 1, "namespaces": {"a": {"img": [1]}}}',
        (
            '{"version": 1, "namespaces": {"a": {"img": [{"binding": "b", '
            '"kind": "SeccompProfile", "state": "Installed"}]}}}'
        ),
        (
            '{"version": 1, "namespaces": {"a": {"img": [{"binding": "b", '
            '"kind": "SeccompProfile", "profile": "p", "state": "Installed", "value": 3}]}}}'
        ),
    ],
)
def test_a_broken_table_file_is_a_table_error(text: str) -> None:
    with pytest.raises(table.TableError):
        table.decode(text)
