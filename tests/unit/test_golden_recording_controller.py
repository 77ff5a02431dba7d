"""Golden tests of the ProfileRecording controller: status.activeWorkloads, the Ready condition,
finalize.

Each folder under tests/golden/recording/controller/ holds a sync (or
finalize) ``request.json`` and the ``response.json`` the hook must answer.
``pytest --regen-golden`` rewrites the answers (tests/helpers/golden.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from hooks.cluster.contract import CustomizeRequest, SyncRequest
from hooks.cluster.recording import controller
from tests.helpers.golden import Golden, cases, golden_folder, request_of

GOLDEN = golden_folder("recording/controller")
CASES = cases(GOLDEN)
NOW = "2026-01-02T00:00:00Z"


def _sync(raw: dict[str, Any], now: str = NOW) -> dict[str, Any]:
    return controller.sync(SyncRequest.model_validate(raw), now).to_wire()


def _load(case: str) -> dict[str, Any]:
    return request_of(GOLDEN / case)


def _status(case: str) -> dict[str, Any]:
    return dict(_sync(_load(case))["status"])


@pytest.mark.parametrize("case", CASES)
def test_sync_matches_golden_response(case: str, golden: Golden) -> None:
    golden.check(GOLDEN / case, _sync(_load(case)))


@pytest.mark.parametrize("case", CASES)
def test_sync_is_stable_once_status_is_written_back(case: str) -> None:
    raw = _load(case)
    first = _sync(raw)
    raw["parent"]["status"] = first["status"]
    assert _sync(raw, "2030-06-06T06:06:06Z") == first


@pytest.mark.parametrize("case", CASES)
def test_recording_has_no_children_and_finalizes_only_when_asked(case: str) -> None:
    raw = _load(case)
    got = _sync(raw)
    assert got.get("children", []) == []
    assert ("finalized" in got) == raw["finalizing"]


def test_active_workloads_are_the_running_pods_this_recording_annotated() -> None:
    status = _status("recording-lists-active-workloads")
    # Not: finished, terminating, unannotated, another recording's, the other kind's, a malformed
    # id, another namespace.
    assert status["activeWorkloads"] == ["recorded-pending", "recorded-running"]
    assert status["conditions"][0]["status"] == "True"
    assert status["conditions"][0]["reason"] == "Recording"
    assert status["conditions"][0]["message"] == "recording 2 pods"
    assert "activeWorkloads" not in _status("no-pods-recorded-yet")
    assert _status("selinux-recording-needs-no-logging-profile")["activeWorkloads"] == [
        "selinux-pod"
    ]


def test_recording_that_cannot_record_says_why() -> None:
    reasons = {
        "logging-profile-missing": "LoggingProfileNotInstalled",
        "logging-profile-not-installed": "LoggingProfileNotInstalled",
        "bpf-recorder-not-supported": "RecorderNotSupported",
        "invalid-selector": "InvalidProfileRecording",
        "invalid-spec-unknown-kind": "InvalidProfileRecording",
    }
    for case, reason in reasons.items():
        condition = _status(case)["conditions"][0]
        assert (condition["status"], condition["reason"]) == ("False", reason), case
    assert "unknown operator 'Within'" in _status("invalid-selector")["conditions"][0]["message"]
    assert "(status Missing)" in _status("logging-profile-missing")["conditions"][0]["message"]
    # A recording that cannot record still reports the pods it did annotate.
    assert _status("logging-profile-missing")["activeWorkloads"] == ["recorded-running"]


def test_transition_time_kept_while_the_condition_holds() -> None:
    condition = _status("condition-time-kept-when-unchanged")["conditions"][0]
    assert condition["lastTransitionTime"] == "2025-12-24T00:00:00Z"
    assert _status("no-pods-recorded-yet")["conditions"][0]["lastTransitionTime"] == NOW


def test_finalize_waits_for_running_pods_even_with_a_profile() -> None:
    got = _sync(_load("finalize-waits-for-running-pods"))
    assert got["finalized"] is False
    assert got["resyncAfterSeconds"] == controller.FINALIZE_RESYNC_SECONDS
    condition = got["status"]["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "Deleting")
    # running, pending and terminating wait; the finished one has its profile (web-recording-app).
    assert condition["message"].startswith("waiting for the profiles of 3 recorded containers")
    assert "recorded-terminating/app" in condition["message"]
    assert "recorded-finished/app" not in condition["message"]


def test_finalize_waits_for_a_finished_pod_until_its_container_is_collected() -> None:
    got = _sync(_load("finalize-waits-for-finished-pod-without-profile"))
    assert got["finalized"] is False
    assert "recorded-finished/app" in got["status"]["conditions"][0]["message"]
    done = _sync(_load("finalize-done-when-profiles-collected"))
    assert done["finalized"] is True
    assert "resyncAfterSeconds" not in done
    assert _sync(_load("finalize-done-without-pods"))["finalized"] is True
    assert _sync(_load("finalize-invalid-recording-done"))["finalized"] is True


def test_pending_list_in_the_message_is_capped() -> None:
    pods = [
        controller.RecordedPod(f"pod-{i}", ("app",), running=True, finished=False) for i in range(8)
    ]
    pending = controller.not_collected(pods, {"app"})
    assert len(pending) == 8
    raw = _load("finalize-done-without-pods")
    raw["related"]["Pod.v1"] = {
        f"team-a/{p.name}": {
            "metadata": {
                "name": p.name,
                "namespace": "team-a",
                "annotations": {"io.containers.trace-logs/app": f"web-recording_app_abcde_{i}"},
            },
            "status": {"phase": "Running"},
        }
        for i, p in enumerate(pods)
    }
    message = _sync(raw)["status"]["conditions"][0]["message"]
    assert message.endswith("pod-0/app, pod-1/app, pod-2/app, pod-3/app, pod-4/app and 3 more")


def _customize(parent: dict[str, Any]) -> list[dict[str, Any]]:
    return list(controller.customize(CustomizeRequest(parent=parent)).to_wire()["relatedResources"])


def test_customize_asks_for_pods_recorded_profiles_and_the_logging_profile() -> None:
    parent = _load("recording-lists-active-workloads")["parent"]
    assert _customize(parent) == [
        {
            "apiVersion": "v1",
            "resource": "pods",
            "namespace": "team-a",
            "labelSelector": {
                "matchLabels": {"uses.spo.x-k8s.io/ProfileRecording-web-recording": "true"}
            },
        },
        {
            "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
            "resource": "seccompprofiles",
            "namespace": "team-a",
            "labelSelector": {"matchLabels": {"spo.x-k8s.io/recording-id": "web-recording"}},
        },
        {
            "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
            "resource": "seccompprofiles",
            "namespace": "security-profiles-operator",
            "names": ["log-enricher-trace"],
        },
    ]
    selinux = _load("selinux-recording-needs-no-logging-profile")["parent"]
    rules = _customize(selinux)
    assert [r["resource"] for r in rules] == ["pods", "selinuxprofiles"]
    long_name = {**parent, "metadata": {**parent["metadata"], "name": "r" * 64}}
    assert "labelSelector" not in _customize(long_name)[1]
    unknown = {**parent, "spec": {**parent["spec"], "kind": "AppArmorProfile"}}
    assert [r["resource"] for r in _customize(unknown)] == ["pods"]
    # Being deleted: every pod of the namespace (the finalize hook must not trust a label).
    deleting = {**parent, "metadata": {**parent["metadata"], "deletionTimestamp": NOW}}
    assert _customize(deleting)[0] == {
        "apiVersion": "v1",
        "resource": "pods",
        "namespace": "team-a",
    }


def _condition(case: str) -> dict[str, Any]:
    return dict(_sync(_load(case))["status"]["conditions"][0])


def test_merge_waits_for_every_replica_before_signalling_the_merge() -> None:
    # Partial profiles prove the finished replica was collected, but a running one holds the merge
    # back.
    got = _sync(_load("finalize-merge-waits-for-running-replicas-before-the-merge"))
    assert got["finalized"] is False
    condition = got["status"]["conditions"][0]
    assert condition["reason"] == controller.DELETING
    assert "web-7d9f-p9m3z/app" in condition["message"]
    assert "web-7d9f-x2k4q/app" not in condition["message"]
    assert (
        _condition("finalize-merge-waits-for-a-finished-pod-without-any-profile")["reason"]
        == "Deleting"
    )


def test_partial_profiles_alone_do_not_finalize_a_merging_recording() -> None:
    got = _sync(_load("finalize-merge-waits-for-the-merge-of-partials"))
    assert got["finalized"] is False
    assert got["resyncAfterSeconds"] == controller.FINALIZE_RESYNC_SECONDS
    condition = got["status"]["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "WaitingForMerge")
    assert condition["message"].endswith(
        "waiting for the recorder to merge the partial profiles of 2 containers: app, side"
    )
    # The same profiles without the partial label are merged ones: the recording can go.
    raw = _load("finalize-merge-waits-for-the-merge-of-partials")
    for profile in raw["related"][
        "SeccompProfile.security-profiles-operator.x-k8s.io/v1beta1"
    ].values():
        profile["metadata"].get("labels", {}).pop("spo.x-k8s.io/partial", None)
    assert _sync(raw)["finalized"] is True
    # With mergeStrategy none, partial profiles count as collected as before.
    raw = _load("finalize-merge-waits-for-the-merge-of-partials")
    raw["parent"]["spec"]["mergeStrategy"] = "none"
    assert _sync(raw)["finalized"] is True


def test_merge_signal_comes_from_partial_profiles_when_the_pods_are_gone() -> None:
    got = _sync(_load("finalize-merge-selinux-partials-without-pods"))
    assert got["finalized"] is False
    condition = got["status"]["conditions"][0]
    assert condition["reason"] == "WaitingForMerge"
    assert condition["message"].endswith("of 1 container: app")  # side has its merged profile
    done = _sync(_load("finalize-merge-done-when-merged"))
    assert done["finalized"] is True
    assert done["status"]["conditions"][0]["reason"] == "Deleting"


def test_unmerged_counts_finished_pods_and_partials_but_not_running_pods() -> None:
    recording = controller.parse(_load("finalize-merge-waits-for-the-merge-of-partials")["parent"])[
        0
    ]
    assert recording is not None

    def labelled(
        container: str, partial: bool, namespace: str = "team-a", name: str = "web-recording"
    ) -> dict[str, Any]:
        labels = {"spo.x-k8s.io/recording-id": name, "spo.x-k8s.io/container-id": container}
        if partial:
            labels["spo.x-k8s.io/partial"] = "true"
        return {"metadata": {"namespace": namespace, "labels": labels}}

    pods = [
        controller.RecordedPod("done", ("app", "side"), running=False, finished=True),
        controller.RecordedPod("running", ("web",), running=True, finished=False),
    ]
    profiles = [
        labelled("app", True),
        labelled("late", True),  # a partial whose pod is gone
        labelled("side", False),
        labelled("side", True),  # a partial next to a merged profile does not hold the recording
        labelled("other", True, namespace="team-b"),
        labelled("another", True, name="another-recording"),
    ]
    assert controller.unmerged(pods, profiles, recording) == ["app", "late"]
    assert controller.merged_containers(profiles, recording) == {"side"}
    assert controller.collected_containers(profiles, recording) == {"app", "late", "side"}
