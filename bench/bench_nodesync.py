"""Benchmark: 10,000 seccomp profiles materialised from cold by nodesync.

Prints one JSON object:
- ``cold``: the real ``python -m nodesync --from-dir DIR --once`` on 10,000 ConfigMaps
  (one JSON file each), from an empty kubelet dir: wall seconds and peak RSS (MiB) of
  that process, and how many files it wrote;
- ``warm``: the same command again with nothing changed: it must write nothing;
- ``write``: in-process, the materialiser's time to write the 10,000 files from cold
  (atomic: temp file, fsync, rename, directory fsync) against a baseline that only
  writes the same bytes to the same paths in a plain loop, and the ratio of the two.
Targets: cold under 5 s and under 64 MiB RSS.

Run: .venv/bin/python -m bench.bench_nodesync [--profiles N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hooks.api.configmaps import configmap_metadata
from nodesync.seccomp.materialising import materialise
from nodesync.seccomp.paths import profile_path

REPO = Path(__file__).resolve().parents[1]

SYSCALLS = [
    "accept4",
    "access",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "clone",
    "close",
    "connect",
    "dup2",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "execve",
    "exit_group",
    "fcntl",
    "fstat",
    "fstatfs",
    "futex",
    "getcwd",
    "getdents64",
    "getpid",
    "getppid",
    "getrandom",
    "getsockname",
    "getuid",
    "ioctl",
    "listen",
    "lseek",
    "madvise",
    "mmap",
    "mprotect",
    "munmap",
    "nanosleep",
    "newfstatat",
    "openat",
    "prctl",
    "pread64",
    "prlimit64",
    "read",
    "readlink",
    "recvfrom",
    "rseq",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_yield",
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "setgid",
    "setgroups",
    "setsockopt",
    "setuid",
    "socket",
    "sigaltstack",
    "tgkill",
    "uname",
    "write",
]


def configmaps(count: int) -> list[dict[str, Any]]:
    items = []
    for i in range(count):
        profile = {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": SYSCALLS[: 20 + i % 40], "action": "SCMP_ACT_ALLOW"}],
        }
        metadata = configmap_metadata("SeccompProfile", f"team-{i % 50}", f"profile-{i}")
        metadata["ownerReferences"] = [
            {
                "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
                "kind": "SeccompProfile",
                "name": f"profile-{i}",
                "uid": f"uid-{i}",
                "controller": True,
            }
        ]
        items.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata,
                "data": {"profile.json": json.dumps(profile, indent=2)},
            }
        )
    return items


# The peak RSS of a child counts what it inherited at fork until it execs, so nodesync
# is started from a small launcher process, never from this (large) one.
LAUNCHER = """
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"seconds": time.perf_counter() - start, "maxrss_kib": usage.ru_maxrss,
                  "code": os.waitstatus_to_exitcode(status)}), file=sys.stderr)
"""


def run_nodesync(folder: Path, kubelet: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-c",
        LAUNCHER,
        "-m",
        "nodesync",
        "--from-dir",
        str(folder),
        "--kubelet-dir",
        str(kubelet),
        "--once",
        "--metrics-bind",
        "",
        "--log-level",
        "warning",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    measured = json.loads(done.stderr.strip().splitlines()[-1])
    if measured["code"] != 0:
        raise SystemExit(f"nodesync failed: {done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    return {
        "seconds": round(measured["seconds"], 3),
        "rss_mib": round(measured["maxrss_kib"] / 1024, 1),
        "written": summary["written"],
        "profiles": summary["profiles"],
    }


def baseline(items: list[dict[str, Any]], kubelet: Path) -> float:
    """Only write the same bytes to the same paths, in a plain loop."""
    start = time.perf_counter()
    for item in items:
        metadata = item["metadata"]
        path = profile_path(
            kubelet, metadata["namespace"], metadata["annotations"]["spo.x-k8s.io/profile-name"]
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item["data"]["profile.json"].encode())
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=10_000)
    parser.add_argument("--workdir", default=None, help="where to write (default: a temp dir)")
    options = parser.parse_args()
    items = configmaps(options.profiles)
    work = Path(tempfile.mkdtemp(prefix="bench-nodesync-", dir=options.workdir))
    try:
        folder = work / "configmaps"
        folder.mkdir()
        for index, item in enumerate(items):  # one ConfigMap a file, as `kubectl get -o json` gives
            (folder / f"cm-{index:05d}.json").write_text(json.dumps(item))
        cold = run_nodesync(folder, work / "kubelet-cli")
        warm = run_nodesync(folder, work / "kubelet-cli")

        os.sync()
        start = time.perf_counter()
        outcomes = materialise(items, work / "kubelet-lib")
        ours = time.perf_counter() - start
        assert sum(o.changed for o in outcomes) == options.profiles
        os.sync()
        plain = baseline(items, work / "kubelet-plain")
        os.sync()
        result = {
            "profiles": options.profiles,
            "bytes": sum(len(i["data"]["profile.json"]) for i in items),
            "cold": cold,
            "warm": warm,
            "write": {
                "nodesync_seconds": round(ours, 3),
                "baseline_seconds": round(plain, 3),
                "ratio": round(ours / plain, 2),
            },
            "targets": {
                "cold_under_5s": cold["seconds"] < 5.0,
                "rss_under_64mib": cold["rss_mib"] < 64.0,
                "warm_writes_nothing": warm["written"] == 0,
            },
            "cpus": os.cpu_count(),
        }
        sys.stdout.write(json.dumps(result) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
