"""Golden tests of the binding webhook: an AdmissionReview and a binding table in, the answer out.

Each folder under tests/golden/binding/admission/ holds ``request.json`` (the
AdmissionReview the API server sends), ``table.json`` (the binding table the
webhook has loaded; absent = no table yet), ``response.json`` (the exact
answer) and, when the answer patches the pod, ``patch.json`` (the decoded
JSONPatch, for review). ``pytest --regen-golden`` rewrites the answers (tests/helpers/golden.py).
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from hooks.cluster.binding import admission
from hooks.cluster.binding.table import EMPTY, decode
from tests.helpers.golden import Golden, cases, golden_folder, request_of

GOLDEN = golden_folder("binding/admission")
CASES = cases(GOLDEN)


def _answer(folder: Path) -> dict[str, Any]:
    review = admission.AdmissionReviewRequest.model_validate(request_of(folder))
    table_file = folder / "table.json"
    if table_file.exists():
        return admission.admit(review, decode(table_file.read_text())).to_wire()
    return admission.admit(review, EMPTY, table_loaded=False).to_wire()


def _patch_of(answer: dict[str, Any]) -> list[dict[str, Any]] | None:
    patch = answer["response"].get("patch")
    return None if patch is None else list(json.loads(base64.b64decode(patch)))


def apply_patch(document: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 ``add`` (the only operation the webhook sends), strict about missing parents."""
    result = copy.deepcopy(document)
    for op in ops:
        assert op["op"] == "add", op
        *parents, last = op["path"].lstrip("/").split("/")
        target: Any = result
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        assert isinstance(target, dict), f"{op['path']}: parent is not an object"
        target[last] = op["value"]
    return result


@pytest.mark.parametrize("case", CASES)
def test_admission_matches_golden_answer(case: str, golden: Golden) -> None:
    folder = GOLDEN / case
    got = _answer(folder)
    golden.check(folder, got)
    golden.check_optional(folder, _patch_of(got), "patch.json")


@pytest.mark.parametrize("case", CASES)
def test_every_answer_allows_and_echoes_the_uid(case: str) -> None:
    raw = request_of(GOLDEN / case)
    got = _answer(GOLDEN / case)
    assert got["apiVersion"] == "admission.k8s.io/v1"
    assert got["kind"] == "AdmissionReview"
    assert got["response"]["uid"] == raw["request"]["uid"]
    assert got["response"]["allowed"] is True
    assert ("patch" in got["response"]) == ("patchType" in got["response"])
    for warning in got["response"].get("warnings") or []:
        assert warning.startswith("spo: ")
        assert len(warning) <= admission.MAX_WARNING_CHARS


@pytest.mark.parametrize("case", [c for c in CASES if (GOLDEN / c / "patch.json").exists()])
def test_patched_pod_is_a_valid_pod(case: str) -> None:
    """The API server validates the patched pod; a patch that breaks it would fail the creation."""
    raw = request_of(GOLDEN / case)
    patch = _patch_of(_answer(GOLDEN / case))
    assert patch
    patched = apply_patch(raw["request"]["object"], patch)
    kubernetes_validate.validate(patched, kubernetes_validate.latest_version(), strict=True)
    # Only security contexts change.
    assert all(
        op["path"].split("/")[-1] in ("securityContext", "seccompProfile", "seLinuxOptions", "type")
        for op in patch
    )


def test_the_cases_cover_every_kind_of_answer() -> None:
    answers = {case: _answer(GOLDEN / case)["response"] for case in CASES}
    patched = {case for case, r in answers.items() if "patch" in r}
    warned = {case for case, r in answers.items() if r.get("warnings")}
    assert patched & warned, "a patch with warnings"
    assert patched - warned, "a clean patch"
    assert warned - patched, "a warning without a patch"
    assert set(CASES) - patched - warned, "an untouched pod"
    paths = {op["path"] for case in patched for op in _patch_of({"response": answers[case]}) or []}
    assert "/spec/securityContext" in paths
    assert "/spec/securityContext/seccompProfile" in paths
    assert any(p.startswith("/spec/initContainers/0/") for p in paths)
    assert any(p.endswith("/seLinuxOptions/type") for p in paths)


def test_uncapped_warnings_say_how_many_were_left_out() -> None:
    got = _answer(GOLDEN / "many-warnings-are-capped")["response"]["warnings"]
    assert len(got) == admission.MAX_WARNINGS
    assert got[-1] == "spo: 5 more binding warnings"


def test_update_of_a_pod_is_never_patched_even_when_bindings_match() -> None:
    raw = request_of(GOLDEN / "seccomp-container-without-security-context-bound")
    table = decode(
        (GOLDEN / "seccomp-container-without-security-context-bound" / "table.json").read_text()
    )
    for operation in ("UPDATE", "DELETE", "CONNECT"):
        raw["request"]["operation"] = operation
        got = admission.admit(admission.AdmissionReviewRequest.model_validate(raw), table).to_wire()
        assert got["response"] == {"uid": raw["request"]["uid"], "allowed": True}
