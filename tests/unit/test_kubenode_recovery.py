"""What the node tests undo after a run killed before its teardown (``tests/e2e/kubenode``):
kube-proxy's chains, whose rules carry quoted comments, and the containers its shims left."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import kubenode

FILTER = """*filter
:INPUT ACCEPT [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "k8s service portals" -j KUBE-SERVICES
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -j ACCEPT
-A OUTPUT -j ACCEPT
COMMIT
"""


def test_the_rules_jumping_to_new_chains_are_deleted_comments_and_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[list[str]] = []

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        ran.append(argv)
        dump = FILTER if argv[:3] == ["iptables-save", "-t", "filter"] else ""
        return subprocess.CompletedProcess(argv, 0, dump, "")

    monkeypatch.setattr(subprocess, "run", run)
    kubenode._remove_new_chains({"filter": [], "nat": [], "mangle": []})
    changes = [argv for argv in ran if argv[0] == "iptables"]
    deleted = [argv[3:] for argv in changes if argv[3] == "-D"]
    assert deleted == [
        [
            "-D",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-m",
            "comment",
            "--comment",
            "k8s service portals",
            "-j",
            "KUBE-SERVICES",
        ],
        [
            "-D",
            "FORWARD",
            "-m",
            "comment",
            "--comment",
            "kubernetes forwarding rules",
            "-j",
            "KUBE-FORWARD",
        ],
    ]
    assert [argv[3:] for argv in changes if argv[3] in ("-F", "-X")] == [
        ["-F", "KUBE-FORWARD"],
        ["-F", "KUBE-SERVICES"],
        ["-X", "KUBE-FORWARD"],
        ["-X", "KUBE-SERVICES"],
    ]


def test_the_processes_left_in_the_nodes_cgroups_are_killed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    orphan = subprocess.Popen(["sleep", "60"])
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        pod = tmp_path / "pids" / kubenode.CGROUP_ROOT / "kubepods" / "pod-a"
        pod.mkdir(parents=True)
        procs = pod / "cgroup.procs"
        procs.write_text(f"{orphan.pid}\n")
        other = tmp_path / "pids" / "elsewhere"
        other.mkdir()
        (other / "cgroup.procs").write_text(f"{bystander.pid}\n")
        monkeypatch.setattr(kubenode, "CGROUP_FS", tmp_path)

        def kernel() -> None:  # a dead process leaves its cgroup
            orphan.wait(timeout=10)
            procs.write_text("")

        exits = threading.Thread(target=kernel)
        exits.start()
        started = time.monotonic()
        kubenode._kill_cgroup_processes(kubenode.CGROUP_ROOT, timeout=10)
        exits.join()
        assert orphan.returncode == -9
        assert bystander.poll() is None
        assert time.monotonic() - started < 10
    finally:
        for proc in (orphan, bystander):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
