"""The recording table (what the webhook keeps from its watches), label selectors and recording
ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hooks.api import podannotations
from hooks.api import profilerecording as api
from hooks.cluster.recording import selectors
from hooks.cluster.recording.table import (
    EMPTY,
    LOGGING_PROFILE_PATH,
    LoggingProfile,
    Recording,
    RecordingTable,
    TableError,
    decode,
    encode,
    resolve,
)

GROUP = "security-profiles-operator.x-k8s.io"


def _recording(
    name: str, namespace: str = "team-a", created: str = "2026-01-01T00:00:00Z", **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "SeccompProfile",
        "recorder": "logs",
        "podSelector": {"matchLabels": {"app": "web"}},
    }
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ProfileRecording",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": body,
    }


def _logging(
    state: str | None, *, namespace: str = "security-profiles-operator", deleting: bool = False
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": "log-enricher-trace", "namespace": namespace},
        "spec": {"defaultAction": "SCMP_ACT_LOG"},
    }
    if state is not None:
        raw["status"] = {"status": state}
    if deleting:
        raw["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return raw


def test_recordings_are_ordered_oldest_first_per_namespace() -> None:
    table = resolve(
        [
            _recording("newer", created="2026-01-02T00:00:00Z"),
            _recording("b-same-time"),
            _recording("a-same-time"),
            _recording("elsewhere", namespace="team-b"),
        ],
        [],
    )
    assert [r.name for r in table.of("team-a")] == ["a-same-time", "b-same-time", "newer"]
    assert [r.name for r in table.of("team-b")] == ["elsewhere"]
    assert table.of("team-c") == ()
    assert table.count() == 4


def test_deleted_and_unusable_recordings_are_left_out() -> None:
    deleted = _recording("deleted")
    deleted["metadata"]["deletionTimestamp"] = "2026-01-03T00:00:00Z"
    table = resolve(
        [
            deleted,
            _recording(
                "bad-operator",
                podSelector={"matchExpressions": [{"key": "app", "operator": "Near"}]},
            ),
            _recording("bad-kind", kind="AppArmorProfile"),
            _recording("no-selector", podSelector=None),
            _recording("good", containers=["app"]),
        ],
        [],
    )
    assert table.of("team-a") == (
        Recording(
            "good",
            api.RecordingKind.SECCOMP_PROFILE,
            api.Recorder.LOGS,
            {"matchLabels": {"app": "web"}},
            ("app",),
        ),
    )


@pytest.mark.parametrize(
    ("profiles", "state"),
    [
        ([], "Missing"),
        ([_logging(None)], "Pending"),
        ([_logging("Installed")], "Installed"),
        ([_logging("Installed", deleting=True)], "Terminating"),
        ([_logging("Installed", namespace="team-a")], "Missing"),
    ],
)
def test_logging_profile_state(profiles: list[dict[str, Any]], state: str) -> None:
    logging = resolve([], profiles).logging
    assert logging.state == state
    assert (
        logging.value
        == LOGGING_PROFILE_PATH
        == "operator/security-profiles-operator/log-enricher-trace.json"
    )
    assert logging.usable == (state == "Installed")


def test_encode_is_deterministic_and_decodes_back() -> None:
    recordings = [
        _recording("one", containers=["app"]),
        _recording("two", kind="SelinuxProfile", podSelector={}),
    ]
    table = resolve(recordings, [_logging("Installed")])
    text = encode(table)
    assert text == encode(resolve(list(reversed(recordings)), [_logging("Installed")]))
    assert " " not in text
    assert decode(text) == table
    assert decode(encode(EMPTY)) == EMPTY
    document = json.loads(text)
    assert document["version"] == 1
    assert "containers" not in document["namespaces"]["team-a"][1]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"version": 2, "namespaces": {}, "loggingProfile": {"state": "Installed", "value": "x"}}',
        '{"version": 1, "namespaces": [], "loggingProfile": {"state": "Installed", "value": "x"}}',
        '{"version": 1, "namespaces": {}}',
        '{"version": 1, "namespaces": {}, "loggingProfile": {"state": 1, "value": "x"}}',
        (
            '{"version": 1, "namespaces": {"a": {}}, '
            '"loggingProfile": {"state": "Installed", "value": "x"}}'
        ),
        (
            '{"version": 1, "namespaces": {"a": [1]}, '
            '"loggingProfile": {"state": "Installed", "value": "x"}}'
        ),
        '{"version": 1, "namespaces": {"a": [{"name": "r", "kind": "AppArmorProfile", '
        '"recorder": "logs", "podSelector": {}}]},'
        ' "loggingProfile": {"state": "Installed", "value": "x"}}',
        '{"version": 1, "namespaces": {"a": [{"name": "r", "kind": "SeccompProfile", '
        '"recorder": "logs", "podSelector": {},'
        ' "containers": "app"}]}, "loggingProfile": {"state": "Installed", "value": "x"}}',
    ],
)
def test_decode_rejects_what_encode_cannot_write(text: str) -> None:
    with pytest.raises(TableError):
        decode(text)


_names = st.from_regex(r"[a-z]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)


@given(
    st.dictionaries(
        _names,
        st.lists(
            st.builds(
                Recording,
                _names,
                st.sampled_from(list(api.RecordingKind)),
                st.sampled_from(list(api.Recorder)),
                st.fixed_dictionaries({"matchLabels": st.dictionaries(_names, _names, max_size=2)}),
                st.none() | st.lists(_names, max_size=3).map(tuple),
            ),
            max_size=3,
        ).map(tuple),
        max_size=3,
    ),
    st.sampled_from(["Installed", "Pending", "Missing"]),
)
def test_any_table_survives_the_configmap(
    namespaces: dict[str, tuple[Recording, ...]], state: str
) -> None:
    table = RecordingTable(namespaces, LoggingProfile(state))
    assert decode(encode(table)) == table


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({}, {}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
        ({"matchLabels": {"app": "web"}}, {}, False),
        (
            {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]},
            {"app": "b"},
            True,
        ),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]},
            {"app": "a"},
            False,
        ),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {"app": ""}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {"app": ""}, False),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "Exists"}],
            },
            {"app": "web"},
            False,
        ),
        ({"matchExpressions": [{"key": "app", "operator": "In"}]}, {"app": "a"}, False),
        (
            {"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["a"]}]},
            {"app": "a"},
            False,
        ),
        (
            {"matchExpressions": [{"key": "app", "operator": "Like", "values": ["a"]}]},
            {"app": "a"},
            False,
        ),
    ],
)
def test_label_selector_semantics(
    selector: dict[str, Any], labels: dict[str, str], selected: bool
) -> None:
    assert selectors.matches(selector, labels) is selected


def test_selector_problems_name_the_requirement() -> None:
    assert selectors.problem({"matchExpressions": [{"key": "a", "operator": "Exists"}]}) is None
    assert selectors.problem(
        {"matchExpressions": [{"key": "a", "operator": "Exists"}, {"operator": "In"}]}
    ) == ("podSelector.matchExpressions[1]: a requirement needs a key")
    assert (
        selectors.problem({"matchLabels": {"a": 1}})
        == "podSelector.matchLabels: values must be strings"
    )


def test_recorded_containers_read_only_this_recordings_ids_of_the_kind() -> None:
    pod_annotations = {
        "io.containers.trace-logs/app": podannotations.recording_id("rec", "app", "uid-1"),
        "io.containers.trace-bpf/sidecar": podannotations.recording_id("rec", "sidecar", "uid-1"),
        "io.containers.trace-avcs/db": podannotations.recording_id("rec", "db", "uid-1"),
        "io.containers.trace-logs/other": podannotations.recording_id("other", "other", "uid-1"),
        "io.containers.trace-logs/short": "rec_short",
        "unrelated/thing": "rec_a_b_c",
    }
    seccomp = list(
        podannotations.recorded_containers(
            pod_annotations, api.RecordingKind.SECCOMP_PROFILE, "rec"
        )
    )
    assert seccomp == ["sidecar", "app"]
    selinux = list(
        podannotations.recorded_containers(
            pod_annotations, api.RecordingKind.SELINUX_PROFILE, "rec"
        )
    )
    assert selinux == ["db"]
    assert podannotations.prefix(api.RecordingKind.SELINUX_PROFILE, api.Recorder.BPF) is None
