"""The committed syscall table against this machine's libseccomp and its scmp_sys_resolver."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

from hooks.api import syscalls
from hooks.api.seccompprofile import Arch
from tests.helpers.unavailable import unavailable
from tools.syscalltable import (
    DATA_FILE,
    Libseccomp,
    LibseccompMissingError,
    build_table,
    main,
    render,
)

pytestmark = pytest.mark.node

HEADER = Path("/usr/include/seccomp-syscalls.h")  # from libseccomp-dev


def _missing(what: str) -> NoReturn:
    unavailable(f"{what} is not installed (Debian: libseccomp2, libseccomp-dev, seccomp)")


@pytest.fixture(scope="module")
def lib() -> Libseccomp:
    try:
        return Libseccomp()
    except LibseccompMissingError as error:
        _missing(f"libseccomp ({error})")


@pytest.fixture(scope="module")
def resolver() -> str:
    path = shutil.which("scmp_sys_resolver")
    if path is None:
        _missing("scmp_sys_resolver")
    return path


def _resolve(resolver: str, arch: str, what: str, *, translate: bool = False) -> str:
    libseccomp_arch = arch.removeprefix("SCMP_ARCH_").lower()
    command = [resolver, "-a", libseccomp_arch, *(["-t"] if translate else []), what]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=10)
    return done.stdout.strip()


def _sample(names: frozenset[str]) -> list[str]:
    ordered = sorted(names)
    return ordered[::37] + ordered[-1:]


def test_committed_table_is_what_libseccomp_generates(lib: Libseccomp) -> None:
    generated = render(build_table(lib))
    committed = DATA_FILE.read_text(encoding="utf-8")
    assert generated == committed, "run: python -m tools.syscalltable --write"
    assert syscalls.libseccomp_version() == lib.version()


def test_check_mode_passes_on_the_committed_file_and_fails_on_a_changed_one(
    lib: Libseccomp, tmp_path: Path
) -> None:
    assert main(["--check"]) == 0
    stale = tmp_path / "syscalls.json"
    stale.write_text(DATA_FILE.read_text(encoding="utf-8").replace('"mkdir":83,', '"mkdir":84,'))
    assert main(["--check", "--output", str(stale)]) == 1
    assert main(["--write", "--output", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == DATA_FILE.read_text(encoding="utf-8")


@pytest.mark.parametrize("arch", sorted(syscalls.architectures()))
def test_numbers_agree_with_scmp_sys_resolver(resolver: str, arch: str) -> None:
    for name in _sample(syscalls.names(arch)):
        number = syscalls.number_of(arch, name)
        if number is None:  # multiplexed: libseccomp rewrites it onto socketcall/ipc
            assert int(_resolve(resolver, arch, name)) < 0, name
            multiplexer = int(_resolve(resolver, arch, name, translate=True))
            assert multiplexer >= 0, name
            continue
        assert _resolve(resolver, arch, str(number)) == name
        resolved = int(_resolve(resolver, arch, name))
        if resolved < 0:  # x86's socket calls: multiplexed by libseccomp, numbered by the kernel
            assert int(_resolve(resolver, arch, name, translate=True)) >= 0, name
        else:
            assert resolved == number, name


def test_known_and_unknown_names_agree_with_scmp_sys_resolver(resolver: str) -> None:
    assert _resolve(resolver, "SCMP_ARCH_X86_64", "mkdir") == "83"
    assert _resolve(resolver, "SCMP_ARCH_AARCH64", "mkdirat") == "34"
    assert int(_resolve(resolver, "SCMP_ARCH_AARCH64", "mkdir")) < 0
    assert not syscalls.is_known("mkdir", ["SCMP_ARCH_AARCH64"])
    x32_read = syscalls.number_of("SCMP_ARCH_X32", "read")
    assert _resolve(resolver, "SCMP_ARCH_X32", "read") == str(x32_read) == str(0x40000000)
    assert _resolve(resolver, "SCMP_ARCH_ARM", str(0x0F0005)) == "set_tls"
    assert _resolve(resolver, "SCMP_ARCH_X86_64", "definitely_not_a_syscall") == "-1"


def test_every_name_in_the_libseccomp_header_is_in_the_table(lib: Libseccomp) -> None:
    if not HEADER.exists():
        _missing(f"{HEADER} (libseccomp-dev)")
    header_names = set(re.findall(r"#define __SNR_(\w+)\s", HEADER.read_text(encoding="utf-8")))
    assert len(header_names) > 400
    for arch in syscalls.architectures():
        token = lib.arch_token(Arch(arch))
        for name in sorted(header_names):
            number = lib.number_of(token, name)
            if number >= 0:
                assert syscalls.number_of(arch, name) == number, (arch, name)
            elif lib.rewritten_number_of(token, name) >= 0:
                assert syscalls.is_known(name, [arch]), (arch, name)
            else:
                assert not syscalls.is_known(name, [arch]), (arch, name)
