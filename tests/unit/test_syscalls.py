"""The syscall table lookups, against the committed table (no libseccomp needed)."""

from __future__ import annotations

import json
import platform
from importlib import resources

import pytest

from hooks.api import syscalls
from hooks.api.seccompprofile import Arch
from tools.syscalltable import render

X86_64 = "SCMP_ARCH_X86_64"
X86 = "SCMP_ARCH_X86"
X32 = "SCMP_ARCH_X32"
AARCH64 = "SCMP_ARCH_AARCH64"
AUDIT_X86_64 = 0xC000003E
AUDIT_AARCH64 = 0xC00000B7
AUDIT_I386 = 0x40000003
AUDIT_ARM = 0x40000028


@pytest.mark.parametrize("name", ["read", "openat", "mkdir", "mkdirat", "clone3", "execve"])
def test_common_syscalls_are_known_on_x86_64(name: str) -> None:
    assert name in syscalls.names(X86_64)
    assert syscalls.is_known(name, [X86_64])


def test_mkdir_is_unknown_on_aarch64_but_mkdirat_is_known() -> None:
    assert not syscalls.is_known("mkdir", [AARCH64])
    assert syscalls.is_known("mkdirat", [AARCH64])
    assert syscalls.number_of(AARCH64, "mkdir") is None
    assert syscalls.number_of(AARCH64, "mkdirat") == 34


def test_a_name_known_on_one_listed_arch_is_known() -> None:
    assert syscalls.is_known("mkdir", [AARCH64, X86_64])
    assert syscalls.is_known("mkdir", iter([AARCH64, X86_64]))


def test_made_up_name_is_unknown_everywhere() -> None:
    for arch in syscalls.architectures():
        assert not syscalls.is_known("definitely_not_a_syscall", [arch])
    assert not syscalls.is_known("", [X86_64])


def test_unknown_lists_each_unknown_name_once_in_order() -> None:
    got = syscalls.unknown(["read", "frobnicate", "mkdir", "frobnicate", "openat"], [AARCH64])
    assert got == ["frobnicate", "mkdir"]
    assert syscalls.unknown(["read", "mkdir"], [AARCH64, X86_64]) == []
    assert syscalls.unknown([], [AARCH64]) == []


def test_no_arches_means_the_native_arch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert syscalls.native_arch() == AARCH64
    assert syscalls.unknown(["mkdir", "mkdirat"], []) == ["mkdir"]
    assert syscalls.names("SCMP_ARCH_NATIVE") == syscalls.names(AARCH64)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert syscalls.unknown(["mkdir", "mkdirat"], []) == []
    assert syscalls.is_known("mkdir", ["SCMP_ARCH_NATIVE"])


@pytest.mark.parametrize(
    ("machine", "arch"),
    [
        ("x86_64", X86_64),
        ("i686", X86),
        ("aarch64", AARCH64),
        ("arm64", AARCH64),
        ("armv7l", "SCMP_ARCH_ARM"),
        ("ppc64le", "SCMP_ARCH_PPC64LE"),
        ("s390x", "SCMP_ARCH_S390X"),
        ("riscv64", "SCMP_ARCH_RISCV64"),
    ],
)
def test_native_arch_of_machine(machine: str, arch: str) -> None:
    assert syscalls.native_arch(machine) == arch


def test_native_arch_of_unknown_machine_is_an_error() -> None:
    with pytest.raises(ValueError, match="vax"):
        syscalls.native_arch("vax")


def test_unknown_arch_is_an_error() -> None:
    with pytest.raises(ValueError, match="SCMP_ARCH_VAX"):
        syscalls.names("SCMP_ARCH_VAX")
    with pytest.raises(ValueError, match="SCMP_ARCH_VAX"):
        syscalls.is_known("read", ["SCMP_ARCH_VAX"])


def test_table_covers_every_profile_arch() -> None:
    expected = sorted(arch.value for arch in Arch if arch is not Arch.NATIVE)
    assert list(syscalls.architectures()) == expected
    for arch in expected:
        assert len(syscalls.names(arch)) > 250, arch
    assert syscalls.libseccomp_version().count(".") == 2


def test_name_of_audit_records() -> None:
    assert syscalls.name_of(AUDIT_X86_64, 83) == "mkdir"
    assert syscalls.name_of(AUDIT_X86_64, 0) == "read"
    assert syscalls.name_of(AUDIT_AARCH64, 34) == "mkdirat"
    assert syscalls.name_of(AUDIT_I386, 5) == "open"
    assert syscalls.name_of(AUDIT_X86_64, 100_000) is None
    assert syscalls.name_of(0x12345678, 0) is None


def test_x32_numbers_are_resolved_under_the_x86_64_audit_arch() -> None:
    x32_bit = 0x40000000
    assert syscalls.name_of(AUDIT_X86_64, x32_bit | 83) == "mkdir"
    assert syscalls.number_of(X32, "read") == x32_bit
    assert syscalls.scmp_arch_of(AUDIT_X86_64) == X86_64
    assert syscalls.scmp_arch_of(AUDIT_X86_64, 83) == X86_64
    assert syscalls.scmp_arch_of(AUDIT_X86_64, x32_bit | 83) == X32


def test_scmp_arch_of_audit_arch() -> None:
    assert syscalls.scmp_arch_of(AUDIT_AARCH64) == AARCH64
    assert syscalls.scmp_arch_of(AUDIT_I386) == X86
    assert syscalls.scmp_arch_of(0x8) == "SCMP_ARCH_MIPS"
    assert syscalls.scmp_arch_of(0xA0000008) == "SCMP_ARCH_MIPS64N32"
    assert syscalls.scmp_arch_of(0x12345678) is None


def test_numbers_carry_the_abi_base_audit_records_show() -> None:
    assert syscalls.number_of("SCMP_ARCH_MIPS", "read") == 4003
    assert syscalls.number_of("SCMP_ARCH_MIPS64", "read") == 5000
    assert syscalls.number_of("SCMP_ARCH_MIPS64N32", "read") == 6000
    assert syscalls.number_of("SCMP_ARCH_ARM", "set_tls") == 0x0F0005
    assert syscalls.name_of(AUDIT_ARM, 0x0F0002) == "cacheflush"


def test_x86_socket_and_ipc_calls() -> None:
    # Direct numbers since Linux 4.3 / 5.1, and what audit records show for them.
    assert syscalls.name_of(AUDIT_I386, 359) == "socket"
    assert syscalls.name_of(AUDIT_I386, 393) == "semget"
    # semop only goes through ipc(2); libseccomp filters it there, so it is known.
    assert syscalls.is_known("semop", [X86])
    assert syscalls.number_of(X86, "semop") is None
    assert syscalls.name_of(AUDIT_I386, 117) == "ipc"
    assert syscalls.name_of(AUDIT_I386, 102) == "socketcall"


def test_every_x86_64_name_round_trips_through_its_number() -> None:
    known = syscalls.names(X86_64)
    assert len(known) > 300
    numbers = set()
    for name in known:
        number = syscalls.number_of(X86_64, name)
        assert number is not None, name
        assert syscalls.name_of(AUDIT_X86_64, number) == name
        numbers.add(number)
    assert len(numbers) == len(known)


def test_committed_table_is_in_canonical_form() -> None:
    text = resources.files("hooks.api").joinpath("data/syscalls.json").read_text(encoding="utf-8")
    assert render(json.loads(text)) == text
