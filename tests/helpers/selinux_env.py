"""The SELinux node-test environment: a real policy store in a temporary root, udica's templates.

- ``semodule``: Debian's ``policycoreutils`` + ``semodule-utils``; the reference
  policy ``selinux-policy-default`` gives the store ``/var/lib/selinux/default``.
- A private policy root: the store and ``/etc/selinux`` are copied under a
  temporary directory and every ``semodule`` runs with ``-p <root>``, so the
  machine's own store is never changed (no SELinux kernel is needed for that:
  ``semodule`` compiles and links; it loads nothing when SELinux is disabled).
- udica's ``container`` templates come from udica's source distribution on PyPI
  (``pip download --no-binary :all: --no-deps udica``), cached in
  ``.cache/udica``. Debian's reference policy lacks container-selinux, so a
  shim module declares what the templates expect of it (``container_runtime_t``
  and the ``container_domain``, ``svirt_sandbox_domain``, ``sandbox_net_domain``
  attributes); and its ``node`` and ``tcp_socket`` classes no longer have the
  legacy network permissions (``tcp_recv`` ...), which are dropped from the
  templates when they are read.
- the compiled (kernel) policy is read back with libsepol itself
  (``sepol_kernel_policydb_to_cil``, through ctypes): ``libsepol2`` is what
  ``semodule`` links against, and setools (``seinfo``, ``sesearch``) is not
  among the packages the tests install.
- selinuxd: ``go install -tags policycoreutils github.com/containers/selinuxd@<v>``
  into ``.cache/selinuxd/<v>``. Here the Go module proxy refuses that module
  (HTTP 403, "This module version is not available"), so the tests run
  ``selinuxd_double.SelinuxdDouble`` (same HTTP API on a unix socket, same
  drop-directory behaviour, the real ``semodule``) and say why in the log.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import pytest

from nodesync.selinux.batch import SemoduleInstaller
from tests.helpers.unavailable import unavailable

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
SELINUXD_MODULE = "github.com/containers/selinuxd"
SELINUXD_VERSION = "v0.4.0"
STORE = Path("/var/lib/selinux/default")
POLICY_DIR = Path("/etc/selinux")
APT = "apt-get install selinux-policy-default policycoreutils semodule-utils"

SHIM_NAME = "spo_container_shim"
SHIM = """\
; What udica's container templates expect from container-selinux, which Debian lacks.
(type container_runtime_t)
(roletype system_r container_runtime_t)
(typeattributeset domain (container_runtime_t))
(typeattribute container_domain)
(typeattribute svirt_sandbox_domain)
(typeattribute sandbox_net_domain)
"""
# Legacy network permissions that the reference policy's classes no longer define.
LEGACY_PERMS = ("tcp_recv", "tcp_send", "udp_recv", "udp_send", "recv_msg", "send_msg")


def missing(what: str) -> NoReturn:
    """Fail under CI (where .ci/run installs it), skip with the reason elsewhere."""
    unavailable(f"{what} (Debian: {APT})")


def find_semodule() -> str:
    found = shutil.which("semodule") or (
        "/usr/sbin/semodule" if os.access("/usr/sbin/semodule", os.X_OK) else None
    )
    if found is None:
        missing("semodule not found")
    if not (STORE / "active").is_dir() or not POLICY_DIR.is_dir():
        missing(f"no SELinux policy store at {STORE}")
    if os.geteuid() != 0:
        missing("the policy store can only be copied by root")
    return found


def adapt_template(text: str) -> str:
    """Drop the permissions the reference policy lacks; drop rules left with none."""
    out: list[str] = []
    for line in text.splitlines():
        stripped = line
        for perm in LEGACY_PERMS:
            stripped = re.sub(rf"\b{perm}\b ?", "", stripped)
        if stripped != line and re.search(r"\(\s*\)", stripped):
            continue  # nothing left of that rule
        out.append(stripped)
    return "\n".join(out) + "\n"


def _pip() -> list[str]:
    return [sys.executable, "-m", "pip"]


@cache
def udica_templates() -> dict[str, str]:
    """udica's templates, module name -> CIL text (adapted), from its sdist on PyPI."""
    folder = CACHE / "udica"
    folder.mkdir(parents=True, exist_ok=True)
    archives = sorted(folder.glob("udica-*.tar.gz"))
    if not archives:
        done = subprocess.run(
            [*_pip(), "download", "--no-binary", ":all:", "--no-deps", "udica", "-d", str(folder)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        archives = sorted(folder.glob("udica-*.tar.gz"))
        if not archives:
            missing(f"cannot download udica's sdist from PyPI: {done.stderr.strip()[-500:]}")
    templates: dict[str, str] = {}
    with tarfile.open(archives[-1]) as archive:
        for member in archive.getmembers():
            parts = member.name.split("/")
            if len(parts) >= 3 and parts[-2] == "templates" and parts[-1].endswith(".cil"):
                handle = archive.extractfile(member)
                if handle is not None:
                    text = handle.read().decode()
                    templates[parts[-1].removesuffix(".cil")] = adapt_template(text)
    if "base_container" not in templates:
        missing(f"{archives[-1]} has no udica/templates/base_container.cil")
    return templates


def copy_store(root: Path) -> Path:
    """A private policy root under ``root``: the machine's store and /etc/selinux, copied."""
    (root / "var/lib/selinux").mkdir(parents=True, exist_ok=True)
    shutil.copytree(STORE, root / "var/lib/selinux" / STORE.name, symlinks=True)
    shutil.copytree(POLICY_DIR, root / "etc/selinux", symlinks=True)
    return root


def install_base(root: Path, semodule: str, folder: Path) -> None:
    """Install the shim and the udica templates into the private root (one transaction)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"{SHIM_NAME}.cil"]
    files[0].write_text(SHIM)
    for name, text in sorted(udica_templates().items()):
        path = folder / f"{name}.cil"
        path.write_text(text)
        files.append(path)
    installer = SemoduleInstaller(semodule=semodule, root=root, reload=False)
    ok, output = installer.transaction(files)
    if not ok:
        pytest.fail(f"the shim and udica templates do not install: {output}")


def compiled_policy(root: Path) -> Path:
    """The kernel policy ``semodule`` built in the private root (``policy.<version>``)."""
    found = sorted((root / "etc/selinux" / STORE.name / "policy").glob("policy.[0-9]*"))
    if not found:
        pytest.fail(f"semodule built no kernel policy under {root}")
    return found[-1]


def _c(library: ctypes.CDLL, name: str, *argtypes: object, restype: object = ctypes.c_int) -> Any:
    function = getattr(library, name)
    function.argtypes = list(argtypes)
    function.restype = restype
    return function


def kernel_policy_cil(policy: Path, out: Path) -> str:
    """A binary kernel policy written back as CIL by libsepol (one statement a line).

    Every type is a ``(type T)`` line and every permissive one a
    ``(typepermissive T)`` line, with the block's prefix (``selinuxrecording.process``).
    A ``sepol_policydb_t`` holds the ``policydb`` as its only member, so it is
    passed as the ``struct policydb *`` that ``sepol_kernel_policydb_to_cil`` takes.
    """
    try:
        sepol = ctypes.CDLL(ctypes.util.find_library("sepol") or "libsepol.so.2")
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError as error:
        missing(f"libsepol cannot be loaded: {error}")
    handle = ctypes.POINTER(ctypes.c_void_p)
    fopen = _c(libc, "fopen", ctypes.c_char_p, ctypes.c_char_p, restype=ctypes.c_void_p)
    fclose = _c(libc, "fclose", ctypes.c_void_p)
    with contextlib.ExitStack() as cleanup:  # undone in reverse: files closed, then freed
        db, source = ctypes.c_void_p(), ctypes.c_void_p()
        if _c(sepol, "sepol_policydb_create", handle)(ctypes.byref(db)) != 0:
            pytest.fail("sepol_policydb_create failed")
        cleanup.callback(_c(sepol, "sepol_policydb_free", ctypes.c_void_p, restype=None), db)
        if _c(sepol, "sepol_policy_file_create", handle)(ctypes.byref(source)) != 0:
            pytest.fail("sepol_policy_file_create failed")
        cleanup.callback(_c(sepol, "sepol_policy_file_free", ctypes.c_void_p, restype=None), source)
        files = []
        for path, mode in ((policy, b"rb"), (out, b"w")):
            opened = fopen(str(path).encode(), mode)
            if not opened:
                pytest.fail(f"cannot open {path}")
            cleanup.callback(fclose, opened)
            files.append(opened)
        reading, writing = files
        _c(sepol, "sepol_policy_file_set_fp", ctypes.c_void_p, ctypes.c_void_p, restype=None)(
            source, reading
        )
        if _c(sepol, "sepol_policydb_read", ctypes.c_void_p, ctypes.c_void_p)(db, source) != 0:
            pytest.fail(f"libsepol cannot read {policy}")
        to_cil = _c(sepol, "sepol_kernel_policydb_to_cil", ctypes.c_void_p, ctypes.c_void_p)
        if to_cil(writing, db) != 0:
            pytest.fail(f"libsepol cannot write {policy} as CIL")
    return out.read_text()


@cache
def selinuxd_unavailable() -> str | None:
    """None when selinuxd is built (or was), else exactly why it cannot be."""
    target = CACHE / "selinuxd" / SELINUXD_VERSION
    if (target / "selinuxd").is_file():
        return None
    go = shutil.which("go")
    if go is None:
        return "go is not installed"
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [go, "install", "-tags", "policycoreutils", f"{SELINUXD_MODULE}@{SELINUXD_VERSION}"],
        env={**os.environ, "GOBIN": str(target), "CGO_ENABLED": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        return f"go install {SELINUXD_MODULE}@{SELINUXD_VERSION} failed: {done.stderr.strip()}"
    return None
