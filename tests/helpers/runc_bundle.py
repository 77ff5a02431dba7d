"""OCI bundles for the node tests: a busybox rootfs, a config.json, and ``runc run``.

The seccomp profile goes into ``linux.seccomp`` the way a container runtime
does for a ``Localhost`` profile: the file under the kubelet's seccomp root is
read, parsed as JSON and used as the seccomp object of the container's spec.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from tests.helpers.unavailable import unavailable

BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
APPLETS = ("sh", "echo", "mkdir", "ls", "cat", "true", "sleep")
RUN_TIMEOUT = 60  # a hang is a failure, not a measurement


def missing(what: str) -> NoReturn:
    """Fail under CI (where .ci/run installs it), skip with the reason elsewhere."""
    unavailable(f"{what} (Debian: apt-get install runc busybox-static auditd)")


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a PT_INTERP (dynamic loader) program header."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        if candidate.is_file() and is_static_elf(candidate):
            return candidate
    missing("a static busybox (busybox-static) is not installed")


def find_runc() -> str:
    runc = shutil.which("runc")
    if runc is None:
        missing("runc is not installed")
    if os.geteuid() != 0:
        missing("runc needs root for these tests")
    return runc


def exit_only_elf() -> bytes:
    """A 132-byte static x86-64 program that only calls exit_group(0): every syscall a
    container makes with it as its workload comes from the runtime, except that one."""
    base = 0x400000
    code = bytes.fromhex("31ffb8e70000000f05")  # xor edi,edi; mov eax,231; syscall
    size = 64 + 56 + len(code)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, base + 120, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return header + program + code


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


class Bundle:
    def __init__(self, path: Path, runc: str, busybox: Path) -> None:
        self.path = path
        self.runc = runc
        rootfs = path / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        for name in ("tmp", "proc", "dev", "sys"):
            (rootfs / name).mkdir()
        shutil.copy2(busybox, rootfs / "bin" / "busybox")
        for applet in APPLETS:
            (rootfs / "bin" / applet).symlink_to("busybox")
        exit_only = rootfs / "bin" / "exit0"
        exit_only.write_bytes(exit_only_elf())
        exit_only.chmod(0o755)
        subprocess.run([runc, "spec", "--bundle", str(path)], check=True)
        self.config: dict[str, Any] = json.loads((path / "config.json").read_text())
        self.config["process"]["terminal"] = False
        self.config["root"]["readonly"] = False
        self.config["hostname"] = "spo-test"

    def run(self, args: list[str], seccomp: Mapping[str, Any] | None) -> Run:
        config = json.loads(json.dumps(self.config))
        config["process"]["args"] = args
        if seccomp is not None:
            config["linux"]["seccomp"] = dict(seccomp)
        (self.path / "config.json").write_text(json.dumps(config))
        name = f"spo-{uuid.uuid4().hex[:12]}"
        try:
            done = subprocess.run(
                [self.runc, "run", "--bundle", str(self.path), name],
                check=False,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            subprocess.run([self.runc, "delete", "--force", name], capture_output=True, check=False)
        return Run(done.returncode, done.stdout, done.stderr)


def localhost_seccomp(kubelet_dir: Path, localhost_profile: str) -> dict[str, Any]:
    """What a runtime puts in ``linux.seccomp`` for ``type: Localhost``: the parsed file."""
    path = kubelet_dir / "seccomp" / localhost_profile
    loaded: dict[str, Any] = json.loads(path.read_bytes())
    return loaded
