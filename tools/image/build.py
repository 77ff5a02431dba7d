#!/usr/bin/env python3
"""Build the images the node tests run, without a registry or a Docker daemon.

    tools/image/build.py base                 the Dockerfile's base: a minimal Debian with python3
    tools/image/build.py operator             the operator's image, from the project's Dockerfile
    tools/image/build.py pause PAUSE_BINARY   the pod sandbox image, from a static ``pause``
    tools/image/build.py busybox              the workload image, from Debian's busybox-static

Each prints, as its last line on stdout, the path of an archive that
``ctr images import`` takes (``operator`` and ``pause``: docker archives
naming the image; ``base``: an OCI archive, what ``buildah`` takes as
``FROM oci-archive:<path>``). Progress goes to stderr.

How:

- ``base``: ``mmdebstrap`` makes a minimal Debian root (the "essential" set
  plus ``python3-venv``, ``ca-certificates`` and ``libstdc++6``) of this machine's release from
  the Debian mirror this machine's apt uses (``DEBIAN_MIRROR`` and
  ``DEBIAN_SECURITY_MIRROR`` override it); ``buildah`` turns it into a
  one-layer image. It is the Debian counterpart of ``python:3.11-slim``.
- ``operator``: ``buildah bud`` runs the project's own ``Dockerfile`` (the
  same file that builds the published image) with ``--build-arg
  BASE=oci-archive:<base>``; its ``RUN`` step installs the project with pip
  from PyPI, trusting the certificate authorities this machine trusts (its
  ``/etc/ssl/certs/ca-certificates.crt``, or ``$BUILD_CA_BUNDLE``, is mounted
  over the base's during the build, not copied into the image: Debian's pip
  reads that file), so a TLS-inspecting proxy works as it does for the host's
  pip. ``buildah push`` writes the docker archive.
- ``pause``: ``buildah`` puts the binary at ``/pause`` of an empty image,
  as Kubernetes' own pause image is made.
- ``busybox``: ``/bin/busybox`` of Debian's ``busybox-static`` and a link per
  applet in ``/bin``, in an empty image: the workload of the node tests.

buildah runs with chroot isolation on a throw-away vfs store: nothing is
left in ``/var/lib/containers``. Archives are cached under
``$IMAGE_CACHE`` (default ``$CONTROLPLANE_CACHE/images``, else
``<repo>/.cache/controlplane/images``), keyed by what went into them: the base by
release, mirror and packages; the operator by the bytes of the Dockerfile, the
files it copies and the base; the pause image by the binary. A cached archive
is not built again.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPERATOR_IMAGE = "localhost/security-profiles-operator-py:e2e"
PAUSE_IMAGE = "localhost/spo-e2e/pause:3.10"
BUSYBOX_IMAGE = "localhost/spo-e2e/busybox:e2e"
BUSYBOX = Path("/bin/busybox")
# libstdc++6: greenlet (under gevent, the hooks' server) links it; python:3.11-slim has it.
BASE_PACKAGES = ("python3-venv", "ca-certificates", "libstdc++6")
# Each source change makes a new operator archive (about 340 MB): keep the newest few.
KEEP_OPERATOR_ARCHIVES = 4
# What the Dockerfile copies from the build context (the rest is .dockerignore'd).
OPERATOR_CONTEXT = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "README.md",
    "hooks",
    "nodesync",
)
# Documentation, manual pages and translations: nothing in the image reads them.
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)


def log(message: str) -> None:
    sys.stderr.write(f"image/build.py: {message}\n")
    sys.stderr.flush()


def cache_dir() -> Path:
    if os.environ.get("IMAGE_CACHE"):
        return Path(os.environ["IMAGE_CACHE"])
    root = os.environ.get("CONTROLPLANE_CACHE") or str(REPO / ".cache" / "controlplane")
    return Path(root) / "images"


def run(argv: Sequence[str], *, quiet: bool = False) -> str:
    """Run a command, its stderr (and with ``quiet`` its stdout) going to ours; its stdout."""
    log("$ " + " ".join(argv))
    proc = subprocess.run(
        list(argv), text=True, stdout=sys.stderr if quiet else subprocess.PIPE, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"image/build.py: {argv[0]} exited {proc.returncode}")
    return (proc.stdout or "").strip()


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """One build of an archive at a time per cache (parallel sessions)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f".{name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class Buildah:
    """buildah on a store of its own, removed on exit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, *args: str, quiet: bool = False) -> str:
        argv = [
            "buildah",
            "--root",
            str(self.folder / "root"),
            "--runroot",
            str(self.folder / "run"),
            "--storage-driver",
            "vfs",
            *args,
        ]
        return run(argv, quiet=quiet)


@contextlib.contextmanager
def buildah_store() -> Iterator[Buildah]:
    if shutil.which("buildah") is None:
        raise SystemExit("image/build.py: 'buildah' is not on PATH (Debian package buildah)")
    folder = Path(tempfile.mkdtemp(prefix="spo-image-", dir=cache_dir()))
    try:
        yield Buildah(folder)
    finally:
        # vfs layers are plain folders; buildah may have left mounts in its run root.
        subprocess.run(
            [
                "buildah",
                "--root",
                str(folder / "root"),
                "--runroot",
                str(folder / "run"),
                "--storage-driver",
                "vfs",
                "rm",
                "--all",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)


def _prune(pattern: str, *, keep: int) -> None:
    """Remove all but the ``keep`` newest archives matching ``pattern`` (other work trees of
    the same cache may still use a recent one)."""
    archives = sorted(cache_dir().glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in archives[keep:]:
        old.unlink(missing_ok=True)
        log(f"removed {old}")


def _publish(staged: Path, final: Path) -> Path:
    os.replace(staged, final)
    log(f"wrote {final} ({final.stat().st_size // 1024} KiB)")
    return final


# ---------------------------------------------------------------- base


def os_release() -> dict[str, str]:
    fields = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key] = value.strip().strip('"')
    return fields


def apt_mirrors() -> tuple[str, str]:
    """The Debian archive and security archive this machine's apt uses (deb822 or one-line)."""
    uris: list[tuple[str, str]] = []  # (uri, suites)
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith("#"):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
            if fields.get("enabled", "yes") != "no" and "uris" in fields:
                uris += [(uri, fields.get("suites", "")) for uri in fields["uris"].split()]
    for path in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]:
        if path.is_file():
            for line in path.read_text().splitlines():
                words = line.split("#", 1)[0].split()
                if len(words) >= 3 and words[0] == "deb":
                    rest = [w for w in words[1:] if not w.startswith("[")]
                    uris.append((rest[0], rest[1]))
    archive = next((u for u, s in uris if "security" not in s and "debian" in u), "")
    security = next((u for u, s in uris if "security" in s), "")
    return (
        os.environ.get("DEBIAN_MIRROR") or archive or "http://deb.debian.org/debian",
        os.environ.get("DEBIAN_SECURITY_MIRROR")
        or security
        or "http://deb.debian.org/debian-security",
    )


def base_key() -> tuple[str, list[str]]:
    suite = os_release().get("VERSION_CODENAME") or "bookworm"
    archive, security = apt_mirrors()
    sources = [
        f"deb {archive} {suite} main",
        f"deb {archive} {suite}-updates main",
        f"deb {security} {suite}-security main",
    ]
    recipe = "\n".join([suite, *sources, *BASE_PACKAGES, *DPKG_EXCLUDES, "essential", "v1"])
    return f"debian-{suite}-python3-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}", sources


def build_base() -> Path:
    name, sources = base_key()
    final = cache_dir() / f"{name}.oci.tar"
    if final.exists():
        log(f"cached: {final}")
        return final
    if shutil.which("mmdebstrap") is None:
        raise SystemExit("image/build.py: 'mmdebstrap' is not on PATH (Debian package mmdebstrap)")
    with locked(name):
        if final.exists():
            return final
        begin = time.monotonic()
        with buildah_store() as buildah:
            rootfs = buildah.folder / "rootfs.tar"
            suite = sources[0].split()[2]
            run(
                [
                    "mmdebstrap",
                    "--variant=essential",
                    f"--include={','.join(BASE_PACKAGES)}",
                    '--aptopt=Acquire::Languages "none"',
                    *(f"--dpkgopt={opt}" for opt in DPKG_EXCLUDES),
                    "--skip=output/dev",  # the runtime mounts /dev; no device nodes in a layer
                    suite,
                    str(rootfs),
                    *sources,
                ],
                quiet=True,
            )
            container = buildah("from", "scratch")
            buildah("add", container, str(rootfs), "/")
            buildah(
                "config",
                "--os",
                "linux",
                "--arch",
                "amd64",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env",
                "LANG=C.UTF-8",
                "--cmd",
                "python3",
                "--label",
                f"org.opencontainers.image.description=Debian {suite} with python3",
                container,
            )
            staged = final.with_suffix(".part")
            buildah("commit", "--format", "oci", container, f"oci-archive:{staged}")
            log(f"base built in {time.monotonic() - begin:.0f}s")
            return _publish(staged, final)


# ---------------------------------------------------------------- operator


def context_digest(base: Path) -> str:
    digest = hashlib.sha256(base.name.encode())
    for entry in OPERATOR_CONTEXT:
        path = REPO / entry
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                digest.update(str(file.relative_to(REPO)).encode() + b"\0")
                digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def build_operator() -> Path:
    base = build_base()
    final = cache_dir() / f"security-profiles-operator-py-{context_digest(base)}.docker.tar"
    if final.exists():
        log(f"cached: {final}")
        return final
    with locked("operator"):
        if final.exists():
            return final
        begin = time.monotonic()
        ca_bundle = Path(os.environ.get("BUILD_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt")
        trust = (
            ["--volume", f"{ca_bundle}:/etc/ssl/certs/ca-certificates.crt:ro"]
            if ca_bundle.is_file()
            else []
        )
        with buildah_store() as buildah:
            buildah(
                "bud",
                "--isolation",
                "chroot",
                "--layers=false",
                *trust,
                "--build-arg",
                f"BASE=oci-archive:{base}",
                "--tag",
                OPERATOR_IMAGE,
                "--file",
                str(REPO / "Dockerfile"),
                str(REPO),
                quiet=True,
            )
            staged = final.with_suffix(".part")
            buildah("push", OPERATOR_IMAGE, f"docker-archive:{staged}:{OPERATOR_IMAGE}")
            log(f"operator image built in {time.monotonic() - begin:.0f}s")
            published = _publish(staged, final)
        _prune("security-profiles-operator-py-*.docker.tar", keep=KEEP_OPERATOR_ARCHIVES)
        return published


# ---------------------------------------------------------------- pause


def build_pause(binary: Path) -> Path:
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:16]
    final = cache_dir() / f"pause-{digest}.docker.tar"
    if final.exists():
        log(f"cached: {final}")
        return final
    with locked("pause"), buildah_store() as buildah:
        if final.exists():
            return final
        container = buildah("from", "scratch")
        buildah("copy", "--chmod", "0755", container, str(binary), "/pause")
        buildah(
            "config",
            "--os",
            "linux",
            "--arch",
            "amd64",
            "--entrypoint",
            '["/pause"]',
            "--user",
            "65535:65535",
            container,
        )
        buildah("commit", container, PAUSE_IMAGE)
        staged = final.with_suffix(".part")
        buildah("push", PAUSE_IMAGE, f"docker-archive:{staged}:{PAUSE_IMAGE}")
        return _publish(staged, final)


# ---------------------------------------------------------------- busybox


def build_busybox(binary: Path = BUSYBOX) -> Path:
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:16]
    final = cache_dir() / f"busybox-{digest}.docker.tar"
    if final.exists():
        log(f"cached: {final}")
        return final
    applets = run([str(binary), "--list"]).split()
    with locked("busybox"), buildah_store() as buildah:
        if final.exists():
            return final
        layer = buildah.folder / "busybox.tar"
        with tarfile.open(layer, "w") as tar:
            for folder in ("bin", "tmp", "etc"):
                info = tarfile.TarInfo(folder)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
                tar.addfile(info)
            tar.add(binary, "bin/busybox")
            for applet in applets:
                if applet != "busybox":
                    link = tarfile.TarInfo(f"bin/{applet}")
                    link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                    tar.addfile(link)
        container = buildah("from", "scratch")
        buildah("add", container, str(layer), "/")
        buildah(
            "config",
            "--os",
            "linux",
            "--arch",
            "amd64",
            "--env",
            "PATH=/bin",
            "--cmd",
            "sh",
            container,
        )
        buildah("commit", container, BUSYBOX_IMAGE)
        staged = final.with_suffix(".part")
        buildah("push", BUSYBOX_IMAGE, f"docker-archive:{staged}:{BUSYBOX_IMAGE}")
        return _publish(staged, final)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("base")
    sub.add_parser("operator")
    pause = sub.add_parser("pause")
    pause.add_argument("binary", type=Path)
    sub.add_parser("busybox")
    args = parser.parse_args(argv)
    if args.what == "base":
        path = build_base()
    elif args.what == "operator":
        path = build_operator()
    elif args.what == "busybox":
        path = build_busybox()
    else:
        path = build_pause(args.binary)
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
