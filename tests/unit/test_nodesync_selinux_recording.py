"""The operator's own SELinux policy (``selinuxrecording``): always in the drop directory
whenever nodesync installs SELinux policies, never removed, never reported as a profile."""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hooks.api.podannotations import SELINUX_RECORDING_TYPE
from nodesync.command import nodesync as command
from nodesync.nodeio.agent import NodeAgent
from nodesync.nodeio.outcomes import Outcome
from nodesync.selinux.batch import SemoduleInstaller
from nodesync.selinux.dropdir import STAGING, DropDir
from nodesync.selinux.recordingpolicy import (
    OPERATOR_POLICIES,
    RECORDING_CIL,
    RECORDING_POLICY,
    RECORDING_TYPE,
)
from nodesync.selinux.selinuxd import SelinuxdClient
from nodesync.selinux.sync import BatchBackend, SelinuxdBackend, SelinuxSync
from tests.helpers.owners import owner_reference
from tests.helpers.selinuxd_double import SelinuxdDouble

RECORDING_FILE = RECORDING_POLICY + ".cil"

FAKE_SEMODULE = """\
#!{python}
import sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(" ".join(args) + "\\n")
for i, a in enumerate(args):
    if a == "-i" and "BROKEN" in open(args[i + 1]).read():
        print("Failed to resolve blockinherit statement at " + args[i + 1] + ":2", file=sys.stderr)
        sys.exit(1)
"""


def configmap(name: str, namespace: str = "default") -> dict[str, Any]:
    policy = f"{name}_{namespace}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"selinux-{name}",
            "namespace": namespace,
            "labels": {"spo.x-k8s.io/profile-kind": "SelinuxProfile"},
            "annotations": {"spo.x-k8s.io/profile-name": name},
            "ownerReferences": [owner_reference("SelinuxProfile", name)],
        },
        "data": {"policy.cil": f"(block {policy}\n    (blockinherit container)\n)\n"},
    }


def files(drop: Path) -> list[str]:
    return sorted(name for name in os.listdir(drop) if not name.startswith("."))


def fake_semodule(tmp_path: Path) -> tuple[str, Path]:
    script = tmp_path / "semodule"
    log = tmp_path / "semodule.log"
    script.write_text(FAKE_SEMODULE.format(python=sys.executable, log=str(log)))
    script.chmod(0o755)
    return str(script), log


def batch_sync(tmp_path: Path, **kwargs: Any) -> tuple[SelinuxSync, Path]:
    semodule, log = fake_semodule(tmp_path)
    backend = BatchBackend(SemoduleInstaller(semodule=semodule))
    return SelinuxSync(DropDir(tmp_path / "drop"), backend, **kwargs), log


class Sink:
    """A status sink that keeps everything it is given."""

    def __init__(self) -> None:
        self.synced: list[Outcome] = []
        self.reported: list[Outcome] = []
        self.forgotten: list[Outcome] = []

    def sync(self, outcomes: Any) -> None:
        self.synced = list(outcomes)

    def report(self, outcome: Outcome) -> None:
        self.reported.append(outcome)

    def forget(self, outcome: Outcome) -> None:
        self.forgotten.append(outcome)

    def retry(self) -> None:
        pass

    def everything(self) -> list[Outcome]:
        return [*self.synced, *self.reported, *self.forgotten]


# -- the policy -----------------------------------------------------------------------------------


def test_the_policy_declares_the_type_the_recording_webhook_sets() -> None:
    assert RECORDING_TYPE == SELINUX_RECORDING_TYPE == "selinuxrecording.process"
    assert dict(OPERATOR_POLICIES) == {"selinuxrecording": RECORDING_CIL.encode()}
    lines = [line.strip() for line in RECORDING_CIL.splitlines()]
    assert lines == [
        "(block selinuxrecording",
        "(blockinherit container)",
        "(typepermissive process)",
        ")",
    ]


def test_both_modes_build_a_sync_that_installs_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """API and --from-dir mode share ``command.selinux_sync``: the policy is in its default."""
    for name in ("SELINUX_POLICY_DIR", "SELINUXD_SOCKET"):
        monkeypatch.delenv(name, raising=False)
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    for installer in command.INSTALLERS:
        args = parser.parse_args(["--selinux", "--selinux-installer", installer])
        sync = command.selinux_sync(args, tmp_path)
        assert sync.own == {RECORDING_POLICY: RECORDING_CIL.encode()}


# -- the drop directory ---------------------------------------------------------------------------


def test_converge_without_configmaps_writes_it_atomically(tmp_path: Path) -> None:
    sync, _ = batch_sync(tmp_path)
    assert sync.converge([]) == []
    drop = tmp_path / "drop"
    assert files(drop) == [RECORDING_FILE]
    path = drop / RECORDING_FILE
    assert path.read_bytes() == RECORDING_CIL.encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(drop / STAGING) == []  # staged and renamed, no temporary left


def test_it_is_kept_while_profile_policies_come_and_go(tmp_path: Path) -> None:
    sync, _ = batch_sync(tmp_path)
    drop = tmp_path / "drop"
    path = drop / RECORDING_FILE

    sync.converge([configmap("a"), configmap("b")])
    assert files(drop) == ["a_default.cil", "b_default.cil", RECORDING_FILE]
    first = path.stat()

    sync.converge([configmap("b"), configmap("c")])
    assert files(drop) == ["b_default.cil", "c_default.cil", RECORDING_FILE]

    sync.upsert(configmap("d"))
    assert sync.delete(configmap("d")) is not None
    assert sync.delete(configmap(RECORDING_POLICY)) is None  # no ConfigMap holds it

    sync.converge([])
    assert files(drop) == [RECORDING_FILE]
    now = path.stat()
    assert (now.st_ino, now.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # never rewritten


def test_a_changed_or_deleted_file_is_restored_by_the_next_convergence(tmp_path: Path) -> None:
    sync, log = batch_sync(tmp_path)
    path = tmp_path / "drop" / RECORDING_FILE
    sync.converge([configmap("a")])
    path.write_text("(block selinuxrecording)\n")
    sync.converge([configmap("a")])
    assert path.read_bytes() == RECORDING_CIL.encode()
    path.unlink()
    sync.converge([configmap("a")])
    assert path.read_bytes() == RECORDING_CIL.encode()
    installs = [line for line in log.read_text().splitlines() if f"-i {path}" in line]
    assert len(installs) == 3  # the first start, and each restoration


# -- no status ------------------------------------------------------------------------------------


def test_it_is_installed_with_the_profiles_but_never_reported(tmp_path: Path) -> None:
    sync, log = batch_sync(tmp_path)
    sink = Sink()
    agent = NodeAgent(sync, sink)
    outcomes = agent.relist([configmap("a"), configmap("b")])
    assert sorted(o.name for o in outcomes) == ["a", "b"]
    [first] = log.read_text().splitlines()  # one transaction, the profiles and ours
    assert f"-i {tmp_path / 'drop' / RECORDING_FILE}" in first
    assert first.count("-i ") == 3
    agent.event("ADDED", configmap("c"))
    agent.event("DELETED", configmap("a"))
    agent.tick()
    agent.poll()
    seen = [*outcomes, *sink.everything()]
    seen += agent.relist([configmap("c")])
    for _ in range(10):  # until every written policy has settled
        agent.poll()
    seen += [*sink.everything(), *sync.outcomes()]
    assert {o.name for o in seen} == {"a", "b", "c"}
    assert all(not (o.path or "").startswith(RECORDING_POLICY) for o in seen)
    assert sync.settled() and not sync.needs_poll()


def test_its_outcome_is_logged_once_and_a_failure_as_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nodesync.selinux.sync")
    sync, _ = batch_sync(tmp_path, own={RECORDING_POLICY: b"(block selinuxrecording BROKEN)\n"})
    outcomes = sync.converge([configmap("a")])
    assert [(o.name, o.state.value) for o in outcomes] == [("a", "Installed")]
    [record] = [r for r in caplog.records if "operator policy" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert "Failed to resolve blockinherit statement" in record.getMessage()
    assert getattr(record, "reason", None) == "CannotInstallSelinuxPolicy"
    sync.converge([configmap("a")])
    for _ in range(10):
        sync.poll()
    assert not sync.needs_poll()
    assert len([r for r in caplog.records if "operator policy" in r.getMessage()]) == 1


@pytest.fixture
def selinuxd(tmp_path: Path) -> Iterator[tuple[SelinuxdDouble, threading.Event]]:
    gate = threading.Event()

    def install(path: Path) -> tuple[bool, str]:
        gate.wait(30)
        return True, ""

    with SelinuxdDouble(
        tmp_path / "selinuxd.sock",
        tmp_path / "drop",
        install=install,
        remove=lambda policy: (True, ""),
        interval=0.01,
    ) as double:
        yield double, gate
        gate.set()


def test_through_selinuxd_it_is_polled_until_installed_then_logged(
    selinuxd: tuple[SelinuxdDouble, threading.Event],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="nodesync.selinux.sync")
    double, gate = selinuxd
    client = SelinuxdClient(str(double.socket_path))
    sync = SelinuxSync(DropDir(tmp_path / "drop"), SelinuxdBackend(client))
    assert sync.converge([]) == []
    assert sync.settled()  # no profile is pending ...
    assert sync.needs_poll()  # ... but ours is, so the poll loop keeps asking
    gate.set()
    deadline = time.monotonic() + 20
    while sync.needs_poll():
        assert time.monotonic() < deadline, "selinuxd never installed selinuxrecording"
        assert sync.poll() == []
        time.sleep(0.02)
    status = client.status(RECORDING_POLICY)
    assert status is not None and status.installed
    messages = [r.getMessage() for r in caplog.records if "operator policy" in r.getMessage()]
    assert messages == ["operator policy selinuxrecording installed"]
