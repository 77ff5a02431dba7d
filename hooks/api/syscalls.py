"""Syscall names and numbers per architecture, from the table libseccomp generated.

The table is ``hooks/api/data/syscalls.json`` (see ``tools/syscalltable.py``
for what it holds and how to regenerate it). It is read once, on first use;
nothing here needs libseccomp.

Architectures are named as in seccomp profiles (``SCMP_ARCH_X86_64``);
``SCMP_ARCH_NATIVE`` is the architecture of the machine running this code.
A name is *known* on an architecture if the kernel has a number for it there or
libseccomp filters it through a multiplexer (x86's ``socketcall`` and ``ipc``).
"""

from __future__ import annotations

import functools
import json
import platform
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

NATIVE: Final = "SCMP_ARCH_NATIVE"
X32_SYSCALL_BIT: Final = 0x40000000

# platform.machine() -> SCMP_ARCH_*, for machines whose answer fixes the arch.
_MACHINES: Final[Mapping[str, str]] = {
    "x86_64": "SCMP_ARCH_X86_64",
    "amd64": "SCMP_ARCH_X86_64",
    "i386": "SCMP_ARCH_X86",
    "i486": "SCMP_ARCH_X86",
    "i586": "SCMP_ARCH_X86",
    "i686": "SCMP_ARCH_X86",
    "x86": "SCMP_ARCH_X86",
    "aarch64": "SCMP_ARCH_AARCH64",
    "arm64": "SCMP_ARCH_AARCH64",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
    "parisc": "SCMP_ARCH_PARISC",
    "parisc64": "SCMP_ARCH_PARISC64",
    "riscv64": "SCMP_ARCH_RISCV64",
}
# uname says "mips"/"mips64" for both byte orders.
_MIPS: Final[Mapping[tuple[str, str], str]] = {
    ("mips", "big"): "SCMP_ARCH_MIPS",
    ("mips", "little"): "SCMP_ARCH_MIPSEL",
    ("mips64", "big"): "SCMP_ARCH_MIPS64",
    ("mips64", "little"): "SCMP_ARCH_MIPSEL64",
}


@dataclass(frozen=True, slots=True)
class _ArchTable:
    scmp_arch: str
    audit_arch: int
    primary: bool  # libseccomp's token for this arch is the audit arch itself
    numbers: Mapping[str, int]  # the syscalls with a number of their own
    names: frozenset[str]  # those plus the multiplexed ones
    by_number: Mapping[int, str]


@dataclass(frozen=True, slots=True)
class _Table:
    libseccomp: str
    arches: Mapping[str, _ArchTable]
    by_audit_arch: Mapping[int, tuple[_ArchTable, ...]]


def _arch_table(scmp_arch: str, entry: Mapping[str, Any]) -> _ArchTable:
    numbers = {str(name): int(number) for name, number in entry["syscalls"].items()}
    multiplexed = {str(name) for name in entry["multiplexed"]}
    return _ArchTable(
        scmp_arch=scmp_arch,
        audit_arch=int(entry["audit_arch"]),
        primary=int(entry["scmp_token"]) == int(entry["audit_arch"]),
        numbers=numbers,
        names=frozenset(numbers) | multiplexed,
        by_number={number: name for name, number in numbers.items()},
    )


@functools.cache
def _table() -> _Table:
    text = resources.files("hooks.api").joinpath("data/syscalls.json").read_text(encoding="utf-8")
    document = json.loads(text)
    arches = {
        str(scmp_arch): _arch_table(str(scmp_arch), entry)
        for scmp_arch, entry in sorted(document["arches"].items())
    }
    by_audit_arch: dict[int, list[_ArchTable]] = {}
    for table in arches.values():
        by_audit_arch.setdefault(table.audit_arch, []).append(table)
    return _Table(
        libseccomp=str(document["libseccomp"]),
        arches=arches,
        by_audit_arch={
            audit: tuple(sorted(tables, key=lambda table: not table.primary))
            for audit, tables in by_audit_arch.items()
        },
    )


def native_arch(machine: str | None = None) -> str:
    """The SCMP_ARCH_* of ``machine`` (default: this one, per ``platform.machine()``)."""
    machine = (platform.machine() if machine is None else machine).lower()
    if machine in _MACHINES:
        return _MACHINES[machine]
    if (machine, sys.byteorder) in _MIPS:
        return _MIPS[machine, sys.byteorder]
    if machine.startswith("arm"):  # armv6l, armv7l, armv8l (32-bit userland)
        return "SCMP_ARCH_ARM"
    raise ValueError(f"no seccomp architecture is known for machine {machine!r}")


def _resolve(arch: str) -> _ArchTable:
    scmp_arch = native_arch() if arch == NATIVE else arch
    try:
        return _table().arches[scmp_arch]
    except KeyError:
        raise ValueError(f"unknown seccomp architecture {arch!r}") from None


def architectures() -> tuple[str, ...]:
    """Every SCMP_ARCH_* the table covers (not ``SCMP_ARCH_NATIVE``), sorted."""
    return tuple(_table().arches)


def libseccomp_version() -> str:
    """The libseccomp version the table was generated with."""
    return _table().libseccomp


def names(arch: str) -> frozenset[str]:
    """The syscall names known on ``arch``; ValueError for an unknown architecture."""
    return _resolve(arch).names


def number_of(arch: str, name: str) -> int | None:
    """The number of ``name`` on ``arch`` as audit records show it, None if it has none."""
    return _resolve(arch).numbers.get(name)


@functools.lru_cache(maxsize=64)
def _union(scmp_arches: frozenset[str]) -> frozenset[str]:
    return frozenset().union(*(names(arch) for arch in scmp_arches))


def _known_anywhere(arches: Iterable[str]) -> frozenset[str]:
    listed = frozenset(_resolve(arch).scmp_arch for arch in arches) or {_resolve(NATIVE).scmp_arch}
    if len(listed) == 1:
        return names(next(iter(listed)))
    return _union(frozenset(listed))


def is_known(name: str, arches: Iterable[str]) -> bool:
    """Whether ``name`` is known on at least one of ``arches`` (none listed: the native one)."""
    return name in _known_anywhere(arches)


def unknown(names: Iterable[str], arches: Iterable[str]) -> list[str]:
    """The names known on none of ``arches`` (none listed: the native one), first-seen order."""
    known = _known_anywhere(arches)
    return list(dict.fromkeys(name for name in names if name not in known))


def _tables_of(audit_arch: int) -> tuple[_ArchTable, ...]:
    return _table().by_audit_arch.get(audit_arch, ())


def name_of(audit_arch: int, number: int) -> str | None:
    """The name of syscall ``number`` in an audit record with ``arch=audit_arch``.

    x32 tasks are audited as x86_64 with the x32 bit in the number; that is
    resolved to the x32 name.
    """
    for table in _tables_of(audit_arch):
        name = table.by_number.get(number)
        if name is not None:
            return name
    return None


def scmp_arch_of(audit_arch: int, number: int | None = None) -> str | None:
    """The SCMP_ARCH_* of an audit record's ``arch=`` value, None if not a seccomp arch.

    x86_64 and x32 share an audit arch. Without ``number`` the answer is the arch
    libseccomp identifies by that value (x86_64); with the record's syscall
    number, the arch whose numbering has it (x32 for numbers with the x32 bit).
    """
    tables = _tables_of(audit_arch)
    if number is not None:
        for table in tables:
            if number in table.by_number:
                return table.scmp_arch
    return tables[0].scmp_arch if tables else None
