"""The planner: desired files + observed entries -> actions, and nothing when they agree."""

from __future__ import annotations

from nodesync.nodeio.atomicfiles import Perms
from nodesync.nodeio.sources import digest_of
from nodesync.seccomp.plan import (
    EntryType,
    FixDir,
    Observed,
    Remove,
    RemoveDir,
    Wanted,
    Write,
    plan,
)

PERMS = Perms(uid=65535, gid=65535)


def want(relpath: str, content: bytes = b"{}") -> Wanted:
    return Wanted(relpath, content, digest_of(content))


def file(relpath: str, content: bytes = b"{}", mode: int = 0o644, uid: int = 65535) -> Observed:
    return Observed(relpath, EntryType.FILE, mode, uid, 65535, digest_of(content))


def directory(relpath: str, mode: int = 0o744) -> Observed:
    return Observed(relpath, EntryType.DIR, mode, 65535, 65535)


def test_missing_file_is_written() -> None:
    assert plan({"ns/a.json": want("ns/a.json")}, [], PERMS) == [Write("ns/a.json", b"{}")]


def test_identical_file_is_left_alone() -> None:
    observed = [directory("ns"), file("ns/a.json")]
    assert plan({"ns/a.json": want("ns/a.json")}, observed, PERMS) == []


def test_different_bytes_are_rewritten() -> None:
    observed = [directory("ns"), file("ns/a.json", b"{ }")]
    assert plan({"ns/a.json": want("ns/a.json")}, observed, PERMS) == [Write("ns/a.json", b"{}")]


def test_wrong_mode_or_owner_is_rewritten() -> None:
    desired = {"ns/a.json": want("ns/a.json")}
    assert plan(desired, [directory("ns"), file("ns/a.json", mode=0o666)], PERMS) == [
        Write("ns/a.json", b"{}")
    ]
    assert plan(desired, [directory("ns"), file("ns/a.json", uid=0)], PERMS) == [
        Write("ns/a.json", b"{}")
    ]


def test_wrong_directory_mode_is_fixed() -> None:
    observed = [directory("ns", mode=0o777), file("ns/a.json")]
    assert plan({"ns/a.json": want("ns/a.json")}, observed, PERMS) == [FixDir("ns")]


def test_unwanted_files_and_emptied_namespaces_are_removed_last() -> None:
    observed = [directory("old"), file("old/x.json"), file("old/.x.json.1234.tmp"), directory("ns")]
    actions = plan({"ns/a.json": want("ns/a.json")}, observed, PERMS)
    assert actions == [
        Remove("old/.x.json.1234.tmp"),
        Remove("old/x.json"),
        Write("ns/a.json", b"{}"),
        RemoveDir("old"),
    ]


def test_directory_or_symlink_in_place_of_a_profile() -> None:
    observed = [
        directory("ns"),
        directory("ns/a.json"),
        Observed("ns/b.json", EntryType.OTHER, 0o777, 0, 0),
        Observed("stray", EntryType.OTHER, 0o777, 0, 0),
    ]
    desired = {"ns/a.json": want("ns/a.json"), "ns/b.json": want("ns/b.json")}
    assert plan(desired, observed, PERMS) == [
        Remove("ns/a.json", tree=True),
        Remove("stray"),
        Write("ns/a.json", b"{}"),
        Write("ns/b.json", b"{}"),
    ]


def test_observed_scope_limits_removals() -> None:
    # a single-profile plan sees only that file: the others are out of scope, untouched
    assert plan({}, [file("ns/a.json")], PERMS) == [Remove("ns/a.json")]
    assert plan({"ns/a.json": want("ns/a.json")}, [file("ns/a.json")], PERMS) == []
