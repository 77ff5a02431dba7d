"""Syscall names of other architectures than a profile's: accepted, written as given, warned of.

A profile that lists ``SCMP_ARCH_X86_64`` and refuses ``vm86`` (a 32-bit x86 syscall) is what
the Go operator's own example does. libseccomp resolves such a name to a pseudo number on
x86_64 and leaves it out of that architecture's filter, so runc runs the container without
it (tests/node/test_runc_seccomp.py proves it with runc). A name no architecture has is a
typo, and stays an error.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api import syscalls
from hooks.api.configmaps import MAX_WARNING_BYTES, PROFILE_WARNING_ANNOTATION, shortened_warning
from hooks.api.problems import ProfileProblem
from hooks.api.seccompprofile import SeccompProfileSpec
from hooks.cluster.contract import SyncRequest
from hooks.cluster.seccomp import controller, validation
from hooks.command import cli, record
from nodesync.tracing import filters
from nodesync.tracing.kernel import Unsupported
from tests.helpers.unavailable import unavailable

NOW = "2026-01-01T00:00:00Z"
X86_ONLY = ["stime", "umount", "vm86old", "vm86"]  # none is a syscall of x86_64


def spec(
    arches: list[str] | None, *names: str, action: str = "SCMP_ACT_ERRNO"
) -> SeccompProfileSpec:
    body: dict[str, Any] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"action": action, "names": list(names)}],
    }
    if arches:
        body["architectures"] = arches
    return SeccompProfileSpec.model_validate(body)


def test_the_table_knows_these_names_on_x86_but_not_on_x86_64() -> None:
    for name in X86_ONLY:
        assert not syscalls.is_known(name, ["SCMP_ARCH_X86_64"]), name
        assert syscalls.is_known(name, ["SCMP_ARCH_X86"]), name


def test_names_of_another_architecture_are_a_warning_not_an_error() -> None:
    warnings = validation.check_spec(spec(["SCMP_ARCH_X86_64"], "acct", *X86_ONLY))
    assert warnings == [
        "spec.syscalls[0].names: no such syscalls on SCMP_ARCH_X86_64 (other architectures have "
        "them; the runtime leaves them out of the filter there): stime, umount, vm86old, vm86"
    ]


def test_each_rule_is_warned_of_with_its_own_field() -> None:
    body = SeccompProfileSpec.model_validate(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_AARCH64"],
            "syscalls": [
                {"action": "SCMP_ACT_ALLOW", "names": ["read", "open"]},
                {"action": "SCMP_ACT_LOG", "names": ["mkdir"]},
            ],
        }
    )
    said = "(other architectures have them; the runtime leaves them out of the filter there)"
    assert validation.check_spec(body) == [
        f"spec.syscalls[0].names: no such syscalls on SCMP_ARCH_AARCH64 {said}: open",
        f"spec.syscalls[1].names: no such syscalls on SCMP_ARCH_AARCH64 {said}: mkdir",
    ]


def test_a_name_no_architecture_has_is_still_an_error_naming_only_it() -> None:
    with pytest.raises(ProfileProblem) as raised:
        validation.check_spec(spec(["SCMP_ARCH_X86_64"], "vm86", "mkdirr", "stime"))
    assert raised.value.reason == "InvalidSeccompProfile"
    assert raised.value.message == (
        "spec.syscalls[0].names: unknown syscalls for any architecture: mkdirr"
    )


def test_without_architectures_nothing_is_warned_of() -> None:
    assert validation.check_spec(spec(None, *X86_ONLY)) == []
    assert validation.check_spec(spec(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], *X86_ONLY)) == []


def _sync(spec_body: dict[str, Any], children: dict[str, Any] | None = None) -> dict[str, Any]:
    parent = {
        "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
        "kind": "SeccompProfile",
        "metadata": {"name": "high-risk", "namespace": "team-a", "uid": "uid-hr"},
        "spec": spec_body,
    }
    request = SyncRequest.model_validate({"parent": parent, "children": children or {}})
    return controller.sync(request, NOW).to_wire()


HIGH_RISK = {
    "defaultAction": "SCMP_ACT_LOG",
    "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [{"action": "SCMP_ACT_ERRNO", "names": ["acct", *X86_ONLY]}],
}


def test_the_hook_writes_the_names_as_given_and_warns_in_the_condition_and_the_configmap() -> None:
    answer = _sync(HIGH_RISK)
    status = answer["status"]
    assert status["status"] == "Pending"
    message = status["conditions"][0]["message"]
    assert message.startswith("waiting for nodes to report; warning: ")
    (configmap,) = answer["children"]  # the only child: no Event (Metacontroller would watch all)
    assert configmap["kind"] == "ConfigMap" and '"vm86old"' in configmap["data"]["profile.json"]
    # The warning travels to the nodes, which put it in their SavedSeccompProfile Event.
    warning = configmap["metadata"]["annotations"][PROFILE_WARNING_ANNOTATION]
    assert warning.endswith(": stime, umount, vm86old, vm86")
    assert message == f"waiting for nodes to report; warning: {warning}"


def test_every_rule_warned_of_is_in_the_one_annotation() -> None:
    two = {
        **HIGH_RISK,
        "syscalls": [
            {"action": "SCMP_ACT_ERRNO", "names": ["vm86"]},
            {"action": "SCMP_ACT_LOG", "names": ["acct", "stime"]},
        ],
    }
    (configmap,) = _sync(two)["children"]
    warning = configmap["metadata"]["annotations"][PROFILE_WARNING_ANNOTATION]
    first, second = validation.check_spec(SeccompProfileSpec.model_validate(two))
    assert first.startswith("spec.syscalls[0].names: ") and first.endswith(": vm86")
    assert second.startswith("spec.syscalls[1].names: ") and second.endswith(": stime")
    assert warning == f"{first}; {second}"


def test_a_profile_without_such_names_has_no_warning_annotation() -> None:
    clean = {**HIGH_RISK, "syscalls": [{"action": "SCMP_ACT_ERRNO", "names": ["acct"]}]}
    answer = _sync(clean)
    (configmap,) = answer["children"]
    assert PROFILE_WARNING_ANNOTATION not in configmap["metadata"]["annotations"]
    assert "warning" not in answer["status"]["conditions"][0]["message"]


def test_a_typo_keeps_the_installed_configmap_with_its_warning() -> None:
    (installed,) = _sync(HIGH_RISK)["children"]
    installed["metadata"]["ownerReferences"] = [{"kind": "SeccompProfile", "name": "high-risk"}]
    typo = {**HIGH_RISK, "syscalls": [{"action": "SCMP_ACT_ERRNO", "names": ["acctt"]}]}
    observed = {"ConfigMap.v1": {"team-a/seccomp-high-risk": installed}}
    answer = _sync(typo, observed)
    assert answer["status"]["status"] == "Error"
    (kept,) = answer["children"]
    assert kept["data"] == installed["data"]
    assert kept["metadata"]["annotations"] == installed["metadata"]["annotations"]


def test_an_invalid_profile_gets_no_configmap_only_its_error() -> None:
    typo = {**HIGH_RISK, "syscalls": [{"action": "SCMP_ACT_ERRNO", "names": ["vm86", "acctt"]}]}
    answer = _sync(typo)
    assert answer["children"] == []
    assert answer["status"]["status"] == "Error"


def test_the_annotation_is_cut_to_what_an_event_message_shows() -> None:
    assert shortened_warning("short") == "short"
    cut = shortened_warning("é" * 2000)
    assert len(cut.encode()) <= MAX_WARNING_BYTES and cut.endswith("...")
    assert cut.removesuffix("...") == "é" * len(cut.removesuffix("..."))  # no half character
    elsewhere = sorted(syscalls.names("SCMP_ARCH_X86") - syscalls.names("SCMP_ARCH_X86_64"))
    assert len(elsewhere) >= 40
    many = {  # one rule a name: forty warnings, longer together than an Event shows
        **HIGH_RISK,
        "syscalls": [{"action": "SCMP_ACT_ERRNO", "names": [name]} for name in elsewhere[:40]],
    }
    (configmap,) = _sync(many)["children"]
    warning = configmap["metadata"]["annotations"][PROFILE_WARNING_ANNOTATION]
    assert len(warning.encode()) <= MAX_WARNING_BYTES and warning.endswith("...")


def test_spo_run_says_the_warning_and_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "high-risk.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
                "kind": "SeccompProfile",
                "metadata": {"name": "high-risk"},
                "spec": {**HIGH_RISK, "defaultAction": "SCMP_ACT_ALLOW"},
            }
        )
    )
    merged, _, described = record.runnable(path, None)
    said = capsys.readouterr().err
    assert said == (
        f"spo run: warning: {path}: spec.syscalls[0].names: no such syscalls on SCMP_ARCH_X86_64 "
        "(other architectures have them; the runtime leaves them out of the filter there): "
        "stime, umount, vm86old, vm86\n"
    )
    assert described == "SeccompProfile high-risk"
    assert merged.syscalls and merged.syscalls[0].names == ["acct", *X86_ONLY]


def test_spo_render_and_the_hook_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "p.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
                "kind": "SeccompProfile",
                "metadata": {"name": "high-risk", "namespace": "team-a"},
                "spec": HIGH_RISK,
            }
        )
    )
    assert cli.main(["render", str(source), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    (warning,) = validation.check_spec(SeccompProfileSpec.model_validate(HIGH_RISK))
    assert (
        "Installed  operator/team-a/high-risk.json  installed on every node that reported; "
        f"warning: {warning}" in printed
    )


def _compiled(arches: list[str], *names: str) -> bytes:
    try:
        return filters.compile_profile(spec(arches, "acct", *names)).program
    except Unsupported as missing:
        unavailable(str(missing))


def test_libseccomp_leaves_them_out_of_the_x86_64_filter() -> None:
    """What runc does with them (it resolves names and adds rules through libseccomp, as
    ``spo run`` does): the x86_64 filter is the same with or without them; an architecture that
    has them gets them."""
    if platform.machine() != "x86_64":
        unavailable("the filter compared is this machine's: x86_64 only")
    assert _compiled(["SCMP_ARCH_X86_64"], *X86_ONLY) == _compiled(["SCMP_ARCH_X86_64"])
    both = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert _compiled(both, *X86_ONLY) != _compiled(both)
