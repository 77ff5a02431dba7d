"""Crash safety: SIGKILL at random points of a large sync never exposes a partial file.

A reader thread reads every profile file continuously while ``nodesync --once``
is killed again and again in the middle of rewriting thousands of profiles.
Every file the reader ever sees must be complete, valid JSON that belongs to
its path; after a final run the tree converges exactly, with no leftovers.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from hooks.api.configmaps import configmap_metadata
from tests.helpers.nodesync_once import REPO
from tests.helpers.owners import owned

pytestmark = pytest.mark.node

PROFILES = 3000
NAMESPACES = 10
KILLS = 12


def payload(index: int, version: int) -> str:
    names = [f"syscall_{index}_{j}" for j in range(150 + 40 * version)]  # sizes differ by version
    body = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
    }
    return json.dumps({**body, "profile": f"p{index}", "version": version})


def write_folder(folder: Path, version: int, count: int = PROFILES) -> None:
    items = []
    for i in range(count):
        metadata = configmap_metadata("SeccompProfile", f"ns{i % NAMESPACES}", f"p{i}")
        items.append(
            owned(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": metadata,
                    "data": {"profile.json": payload(i, version)},
                }
            )
        )
    temporary = folder / ".profiles.json.tmp"
    temporary.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    temporary.replace(folder / "profiles.json")


class Reader(threading.Thread):
    """Reads every profile file over and over; remembers anything that is not a whole profile."""

    def __init__(self, operator: Path) -> None:
        super().__init__(daemon=True)
        self.operator = operator
        self.stop = threading.Event()
        self.problems: list[str] = []
        self.reads = 0

    def run(self) -> None:
        while not self.stop.is_set():
            for namespace in sorted(os.listdir(self.operator)) if self.operator.is_dir() else []:
                try:
                    names = os.listdir(self.operator / namespace)
                except FileNotFoundError:
                    continue
                for name in names:
                    if name.startswith(".") or not name.endswith(".json"):
                        continue
                    try:
                        data = (self.operator / namespace / name).read_bytes()
                    except FileNotFoundError:
                        continue  # removed between listdir and open: fine
                    self.reads += 1
                    self._check(name, data)

    def _check(self, name: str, data: bytes) -> None:
        try:
            body: Any = json.loads(data)
        except ValueError:
            self.problems.append(f"{name}: invalid JSON ({len(data)} bytes)")
            return
        if f"{body.get('profile')}.json" != name or body.get("version") not in (1, 2):
            self.problems.append(f"{name}: wrong content {str(body)[:80]}")
        elif json.dumps(body) != payload(int(name[1:-5]), body["version"]):
            self.problems.append(f"{name}: content of no version")


def wait_for_writing(first: Path, version: int, process: subprocess.Popen[bytes]) -> None:
    """Until the first profile (in write order) has the new version, or nodesync ended."""
    while process.poll() is None:
        try:
            if json.loads(first.read_bytes())["version"] == version:
                return
        except FileNotFoundError:
            pass  # not written yet (a partial file raises: the test fails)


def nodesync(folder: Path, kubelet: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
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
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_mid_sync_never_exposes_partial_files_and_restart_converges(tmp_path: Path) -> None:
    folder, kubelet = tmp_path / "configmaps", tmp_path / "kubelet"
    folder.mkdir()
    operator = kubelet / "seccomp/operator"
    rng = random.Random(20240611)
    reader = Reader(operator)
    reader.start()
    killed_while_running = 0
    interrupted = 0
    try:
        write_folder(folder, 1)
        assert nodesync(folder, kubelet).wait(timeout=120) == 0
        for kill in range(KILLS):
            write_folder(folder, 2 if kill % 2 == 0 else 1)
            version = 2 if kill % 2 == 0 else 1
            process = nodesync(folder, kubelet)
            if kill % 3 == 0:
                delay = rng.uniform(0.0, 1.0)  # anywhere, start-up included
            else:
                wait_for_writing(operator / "ns0/p0.json", version, process)
                delay = rng.uniform(0.0, 0.3)  # somewhere inside the writes
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                killed_while_running += 1
            process.wait(timeout=60)
            versions = {json.loads(p.read_bytes())["version"] for p in operator.glob("*/*.json")}
            leftovers = list(operator.glob("*/.*.tmp"))
            interrupted += len(versions) > 1 or bool(leftovers)
        final = KILLS % 2 + 1  # the version the last loop wrote, or the other one:
        write_folder(folder, final)
        assert nodesync(folder, kubelet).wait(timeout=120) == 0
    finally:
        reader.stop.set()
        reader.join(timeout=60)
    assert reader.problems == []
    assert reader.reads > PROFILES
    assert killed_while_running > 0 and interrupted > 0, "no kill landed inside a sync"
    files = sorted(str(p.relative_to(operator)) for p in operator.rglob("*") if p.is_file())
    assert files == sorted(f"ns{i % NAMESPACES}/p{i}.json" for i in range(PROFILES))
    for i in range(0, PROFILES, 97):
        assert (operator / f"ns{i % NAMESPACES}/p{i}.json").read_text() == payload(i, final)
