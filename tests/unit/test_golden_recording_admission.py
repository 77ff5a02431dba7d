"""Golden tests of the recording webhook: an AdmissionReview and a recording table in, the
answer out.

Each folder under tests/golden/recording/admission/ holds ``request.json``
(the AdmissionReview), ``table.json`` (the recording table the webhook has
loaded; absent = no table yet), ``response.json`` (the exact answer) and, when
the pod is patched, ``patch.json`` (the decoded JSONPatch, for review).
``pytest --regen-golden`` rewrites the answers (tests/helpers/golden.py).
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import kubernetes_validate
import pytest

from hooks.api import podannotations
from hooks.cluster.binding.admission import MAX_WARNING_CHARS, AdmissionReviewRequest
from hooks.cluster.recording import admission
from hooks.cluster.recording.table import EMPTY, decode
from tests.helpers.golden import Golden, cases, golden_folder, request_of

GOLDEN = golden_folder("recording/admission")
CASES = cases(GOLDEN)
LOGGING = {
    "type": "Localhost",
    "localhostProfile": "operator/security-profiles-operator/log-enricher-trace.json",
}
RECORDED_TYPE = {"type": "selinuxrecording.process"}


def _raw(case: str) -> dict[str, Any]:
    return request_of(GOLDEN / case)


def _answer_of(raw: dict[str, Any], case: str) -> dict[str, Any]:
    review = AdmissionReviewRequest.model_validate(raw)
    table_file = GOLDEN / case / "table.json"
    if table_file.exists():
        return admission.admit(review, decode(table_file.read_text())).to_wire()
    return admission.admit(review, EMPTY, table_loaded=False).to_wire()


def _answer(case: str) -> dict[str, Any]:
    return _answer_of(_raw(case), case)


def _patch_of(answer: dict[str, Any]) -> list[dict[str, Any]] | None:
    patch = answer["response"].get("patch")
    return None if patch is None else list(json.loads(base64.b64decode(patch)))


def apply_patch(document: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 ``add`` (the only operation the webhook sends) with RFC 6901 unescaping; strict
    parents."""
    result = copy.deepcopy(document)
    for op in ops:
        assert op["op"] == "add", op
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")
        ]
        target: Any = result
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        assert isinstance(target, dict), f"{op['path']}: parent is not an object"
        target[last] = op["value"]
    return result


def _patched(case: str) -> dict[str, Any]:
    raw = _raw(case)
    return apply_patch(raw["request"]["object"], _patch_of(_answer(case)) or [])


def _warnings(case: str) -> list[str]:
    return list(_answer(case)["response"].get("warnings") or [])


@pytest.mark.parametrize("case", CASES)
def test_admission_matches_golden_answer(case: str, golden: Golden) -> None:
    folder = GOLDEN / case
    got = _answer(case)
    golden.check(folder, got)
    golden.check_optional(folder, _patch_of(got), "patch.json")


@pytest.mark.parametrize("case", CASES)
def test_every_answer_allows_and_echoes_the_uid(case: str) -> None:
    got = _answer(case)
    assert got["apiVersion"] == "admission.k8s.io/v1"
    assert got["kind"] == "AdmissionReview"
    assert got["response"]["uid"] == _raw(case)["request"]["uid"]
    assert got["response"]["allowed"] is True
    assert ("patch" in got["response"]) == ("patchType" in got["response"])
    for warning in got["response"].get("warnings") or []:
        assert warning.startswith("spo: ")
        assert len(warning) <= MAX_WARNING_CHARS


@pytest.mark.parametrize("case", [c for c in CASES if (GOLDEN / c / "patch.json").exists()])
def test_patched_pod_is_a_valid_pod_changed_only_where_recording_needs(case: str) -> None:
    raw = _raw(case)
    patched = _patched(case)
    kubernetes_validate.validate(patched, kubernetes_validate.latest_version(), strict=True)
    before = raw["request"]["object"]
    assert patched["spec"]["containers"][0]["image"] == before["spec"]["containers"][0]["image"]
    for op in _patch_of(_answer(case)) or []:
        assert op["path"].startswith("/metadata/annotations") or "/securityContext" in op["path"], (
            op
        )


def test_the_cases_cover_every_kind_of_answer() -> None:
    answers = {case: _answer(case)["response"] for case in CASES}
    patched = {case for case, r in answers.items() if "patch" in r}
    warned = {case for case, r in answers.items() if r.get("warnings")}
    assert patched & warned, "a patch with warnings"
    assert patched - warned, "a clean patch"
    assert warned - patched, "a warning without a patch"
    assert set(CASES) - patched - warned, "an untouched pod"
    paths = {op["path"] for case in patched for op in _patch_of({"response": answers[case]}) or []}
    assert "/metadata/annotations" in paths
    assert any(p.startswith("/metadata/annotations/") for p in paths)
    assert any(p.startswith("/spec/initContainers/0/") for p in paths)
    assert any(p.endswith("/seLinuxOptions/type") for p in paths)


def test_seccomp_recording_annotates_and_sets_the_logging_profile() -> None:
    pod = _patched("seccomp-container-recorded")
    container = pod["spec"]["containers"][0]
    assert container["securityContext"] == {"seccompProfile": LOGGING}
    assert pod["metadata"]["annotations"] == {
        "io.containers.trace-logs/app": "web-recording_app_705ab_4f5639311e8b7cc42010a800002"
    }
    assert _warnings("seccomp-container-recorded") == []


def test_recording_id_has_the_four_parts_the_go_recorder_reads() -> None:
    value = _patched("generate-name-pod-recorded")["metadata"]["annotations"][
        "io.containers.trace-logs/app"
    ]
    recording, container, nonce, stamp = value.split("_")
    assert (recording, container) == ("web-recording", "app")
    assert nonce + stamp == "b0e6f5c20a4e4f1c9d5e2c9a7e1f3b44"  # the request uid, without dashes


def test_same_request_same_id_other_request_other_id() -> None:
    raw = _raw("seccomp-container-recorded")
    first = _answer_of(raw, "seccomp-container-recorded")
    assert _answer_of(copy.deepcopy(raw), "seccomp-container-recorded") == first
    raw["request"]["uid"] = "0c3e1d7a-9b8f-4e6d-a5c4-b3a2918f7e6d"
    other = _patch_of(_answer_of(raw, "seccomp-container-recorded"))
    assert other != _patch_of(first)
    assert podannotations.recording_id("r", "c", "x") != podannotations.recording_id("r", "c", "y")
    assert (
        len(podannotations.recording_id("r", "c", "-").split("_")) == 4
    )  # a uid without letters still gives an id


def test_selinux_recording_sets_the_permissive_type_and_keeps_the_level() -> None:
    pod = _patched("selinux-every-container-recorded")
    assert pod["spec"]["initContainers"][0]["securityContext"] == {"seLinuxOptions": RECORDED_TYPE}
    assert pod["spec"]["containers"][0]["securityContext"] == {"seLinuxOptions": RECORDED_TYPE}
    assert pod["spec"]["containers"][1]["securityContext"]["seLinuxOptions"] == {
        "level": "s0:c1,c2",
        "type": "selinuxrecording.process",
    }
    assert set(pod["metadata"]["annotations"]) == {
        "io.containers.trace-avcs/setup",
        "io.containers.trace-avcs/app",
        "io.containers.trace-avcs/sidecar",
    }
    assert "seccompProfile" not in json.dumps(pod["spec"]["containers"])


def test_containers_limit_which_are_recorded() -> None:
    pod = _patched("containers-limit-which-are-recorded")
    assert set(pod["metadata"]["annotations"]) == {"io.containers.trace-logs/app"}
    assert "securityContext" not in pod["spec"]["containers"][1]
    assert _answer("empty-containers-list-records-nothing")["response"] == {
        "allowed": True,
        "uid": _raw("empty-containers-list-records-nothing")["request"]["uid"],
    }


def test_override_of_users_security_context_is_warned() -> None:
    pod = _patched("user-seccomp-profile-replaced-with-warning")
    assert pod["spec"]["containers"][0]["securityContext"] == {
        "seccompProfile": LOGGING,
        "runAsNonRoot": True,
    }
    assert pod["spec"]["containers"][1]["securityContext"] == {"seccompProfile": LOGGING}
    assert pod["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert _warnings("user-seccomp-profile-replaced-with-warning") == [
        (
            "spo: recording 'web-recording' replaces the seccomp profile of container 'app' "
            "with the logging profile"
        ),
        (
            "spo: recording 'web-recording' overrides the pod's seccomp profile "
            "for container 'sidecar'"
        ),
    ]
    selinux = _patched("user-selinux-type-replaced-with-warning")
    assert selinux["spec"]["containers"][0]["securityContext"]["seLinuxOptions"] == {
        "type": "selinuxrecording.process",
        "level": "s0:c1,c2",
    }
    assert _warnings("user-selinux-type-replaced-with-warning") == [
        (
            "spo: recording 'web-selinux' replaces the SELinux type 'container_t' "
            "of container 'app' with 'selinuxrecording.process'"
        ),
        "spo: recording 'web-selinux' overrides the pod's SELinux type for container 'sidecar'",
    ]


def test_pod_not_selected_or_not_created_is_untouched() -> None:
    for case in (
        "pod-not-selected-untouched",
        "namespace-without-recordings-untouched",
        "update-is-not-mutated",
        "ephemeral-containers-subresource-not-mutated",
    ):
        response = _answer(case)["response"]
        assert response == {"allowed": True, "uid": _raw(case)["request"]["uid"]}, case


def test_update_of_a_selected_pod_is_never_patched() -> None:
    raw = _raw("seccomp-container-recorded")
    for operation in ("UPDATE", "DELETE", "CONNECT"):
        raw["request"]["operation"] = operation
        assert "patch" not in _answer_of(raw, "seccomp-container-recorded")["response"], operation


def test_seccomp_waits_for_the_logging_profile_selinux_does_not() -> None:
    assert "patch" not in _answer("logging-profile-not-installed-skipped-with-warning")["response"]
    assert _warnings("logging-profile-not-installed-skipped-with-warning") == [
        "spo: recording 'web-recording' skipped: the logging seccomp profile 'log-enricher-trace' "
        "is not installed yet (status Pending)"
    ]
    pod = _patched("logging-profile-missing-selinux-still-recorded")
    assert pod["spec"]["containers"][0]["securityContext"] == {"seLinuxOptions": RECORDED_TYPE}
    assert set(pod["metadata"]["annotations"]) == {"io.containers.trace-avcs/app"}


def test_seccomp_and_selinux_recordings_of_one_container_both_apply() -> None:
    pod = _patched("seccomp-and-selinux-recordings-both-apply")
    assert pod["spec"]["containers"][0]["securityContext"] == {
        "seccompProfile": LOGGING,
        "seLinuxOptions": RECORDED_TYPE,
    }
    assert set(pod["metadata"]["annotations"]) == {
        "io.containers.trace-logs/app",
        "io.containers.trace-avcs/app",
    }


def test_oldest_recording_wins_a_container() -> None:
    pod = _patched("two-seccomp-recordings-oldest-wins-with-warning")
    annotations = pod["metadata"]["annotations"]
    assert annotations["io.containers.trace-logs/app"].startswith("old-recording_app_")
    assert annotations["io.containers.trace-logs/sidecar"].startswith("new-recording_sidecar_")
    assert _warnings("two-seccomp-recordings-oldest-wins-with-warning") == [
        "spo: recording 'new-recording' ignored for container 'app': "
        "the older recording 'old-recording' records it"
    ]


def test_selectors_expressions_and_empty() -> None:
    pod = _patched("match-expressions-select-pod")
    assert set(pod["metadata"]["annotations"]) == {"io.containers.trace-logs/app"}
    assert (
        "io.containers.trace-logs/app"
        in _patched("empty-selector-selects-every-pod")["metadata"]["annotations"]
    )


def test_annotations_the_pod_has_are_kept_and_keys_are_escaped() -> None:
    patch = _patch_of(_answer("existing-annotations-kept")) or []
    assert {
        "op": "add",
        "path": "/metadata/annotations/io.containers.trace-logs~1app",
        "value": "web-recording_app_705ab_4f5639311e8b7cc42010a800002",
    } in patch
    annotations = _patched("existing-annotations-kept")["metadata"]["annotations"]
    assert annotations["team.example.com/owner"] == "alice"
    assert annotations["with~tilde/x"] == "y"
    copied = _patched("annotation-the-pod-came-with-replaced-with-warning")["metadata"][
        "annotations"
    ]
    assert copied["io.containers.trace-logs/app"].startswith("web-recording_app_")
    assert _warnings("annotation-the-pod-came-with-replaced-with-warning") == [
        "spo: recording 'web-recording' replaces the annotation io.containers.trace-logs/app "
        "the pod came with"
    ]


def test_skips_are_warned() -> None:
    assert _warnings("bpf-recorder-skipped-with-warning") == [
        "spo: recording 'web-bpf' skipped: the bpf recorder is not available in this operator"
    ]
    assert _warnings("windows-pod-untouched-with-warning") == [
        "spo: profile recording is not available for Windows pods"
    ]
    assert _warnings("table-not-loaded-warns") == [
        "spo: the recording table is not available yet; the pod is not recorded"
    ]
    assert _warnings("privileged-container-warns") == [
        "spo: container 'app' is privileged: recording 'web-recording' will not see what it does"
    ]
    for case in (
        "bpf-recorder-skipped-with-warning",
        "windows-pod-untouched-with-warning",
        "table-not-loaded-warns",
    ):
        assert "patch" not in _answer(case)["response"], case
