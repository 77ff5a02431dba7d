"""The path builder: every profile lands at operator/<ns>/<name>.json, nothing escapes the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodesync.seccomp.paths import (
    PathError,
    localhost_profile,
    operator_root,
    profile_path,
    relative_path,
)

ROOT = Path("/var/lib/kubelet")


def test_profile_path_is_the_go_operators_layout() -> None:
    assert profile_path(ROOT, "default", "my-profile") == Path(
        "/var/lib/kubelet/seccomp/operator/default/my-profile.json"
    )
    assert localhost_profile("default", "my-profile") == "operator/default/my-profile.json"


def test_dotted_names_are_kept_verbatim() -> None:
    assert relative_path("ns", "runc-v1.1.5") == "ns/runc-v1.1.5.json"


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("..", "x"),
        (".", "x"),
        ("ns", ".."),
        ("ns", "."),
        ("ns", "../x"),
        ("ns", "../../etc/passwd"),
        ("ns", "a/../../b"),
        ("ns", "/etc/passwd"),
        ("../..", "etc"),
        ("ns/sub", "x"),
        ("ns", "a..b"),
        ("ns", ".hidden"),
        ("ns", "x\x00y"),
        ("ns", ""),
        ("", "x"),
        ("ns", "UPPER"),
        ("ns", "x" * 251),
        ("n" * 64, "x"),
        ("ns", "x\\..\\y"),
        ("ns", "é"),
    ],
)
def test_traversal_and_invalid_components_are_refused(namespace: str, name: str) -> None:
    with pytest.raises(PathError):
        profile_path(ROOT, namespace, name)


def test_the_longest_valid_name_still_fits_a_file_name() -> None:
    path = profile_path(ROOT, "ns", "x" * 250)
    assert len(path.name.encode()) == 255


@given(st.text(max_size=80), st.text(max_size=300))
def test_any_accepted_path_is_two_levels_below_the_root(namespace: str, name: str) -> None:
    root = operator_root(ROOT)
    try:
        path = profile_path(ROOT, namespace, name)
    except PathError:
        return
    assert path.parent.parent == root
    assert os.path.normpath(path) == str(path)
    assert os.path.commonpath([root, path]) == str(root)
    assert path.name == f"{name}.json"
    assert path.parent.name == namespace


@given(
    st.lists(
        st.sampled_from(["..", ".", "/", "a", "b-c", "x.y", "\x00", "//", "\\"]), max_size=8
    ).map("".join),
    st.lists(
        st.sampled_from(["..", ".", "/", "a", "b-c", "x.y", "\x00", "//", "\\"]), max_size=8
    ).map("".join),
)
def test_traversal_alphabet_never_escapes(namespace: str, name: str) -> None:
    try:
        path = profile_path(ROOT, namespace, name)
    except PathError:
        return
    assert ".." not in path.parts
    assert path.is_relative_to(operator_root(ROOT))
    assert "/" not in name and "/" not in namespace


def test_distinct_profiles_never_share_a_file() -> None:
    seen: dict[Path, tuple[str, str]] = {}
    for namespace in ["a", "a.b", "a-b", "ab"]:
        for name in ["x", "x.json", "x.y", "x-y"]:
            path = profile_path(ROOT, namespace, name)
            assert seen.setdefault(path, (namespace, name)) == (namespace, name)
