"""nodesync's SELinux side without a policy store: ConfigMaps, drop directory, selinuxd client,
the batch installer's bisection (against a fake ``semodule``) and the sync's outcomes."""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hooks.api.profilestate import ProfileState
from nodesync.nodeio import reports
from nodesync.nodeio.agent import NodeAgent
from nodesync.nodeio.outcomes import Outcome
from nodesync.selinux.batch import SemoduleInstaller, clean_output
from nodesync.selinux.dropdir import STAGING, DropDir
from nodesync.selinux.policies import (
    INVALID_POLICY,
    Policy,
    PolicyRejection,
    read_policies,
    read_policy,
)
from nodesync.selinux.reporter import SELECTOR, node_selector
from nodesync.selinux.selinuxd import SelinuxdClient, SelinuxdError
from nodesync.selinux.sync import BatchBackend, SelinuxdBackend, SelinuxSync
from tests.helpers.selinuxd_double import SelinuxdDouble


def configmap(
    name: str, namespace: str = "default", *, kind: str = "SelinuxProfile", cil: str | None = None
) -> dict[str, Any]:
    prefix = "selinux" if kind == "SelinuxProfile" else "rawselinux"
    policy = f"{name}_{namespace}"
    body = cil if cil is not None else f"(block {policy}\n  (blockinherit container)\n)\n"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{prefix}-{name}",
            "namespace": namespace,
            "labels": {"spo.x-k8s.io/profile-kind": kind},
            "annotations": {"spo.x-k8s.io/profile-name": name},
            "ownerReferences": [
                {
                    "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha2",
                    "kind": kind,
                    "name": name,
                    "uid": "u-1",
                    "controller": True,
                }
            ],
        },
        "data": {"policy.cil": body},
    }


def wait_for(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


# -- ConfigMaps -------------------------------------------------------------------------------


def test_policy_is_named_profile_underscore_namespace() -> None:
    item = read_policy(configmap("web", "shop"))
    assert isinstance(item, Policy)
    assert item.name == "web_shop"
    assert item.filename == "web_shop.cil"
    assert item.source.kind == "SelinuxProfile"
    assert item.content.startswith(b"(block web_shop")


def test_configmap_without_policy_is_rejected_with_reason() -> None:
    cm = configmap("web")
    cm["data"] = {}
    item = read_policy(cm)
    assert isinstance(item, PolicyRejection)
    assert item.reason == INVALID_POLICY
    assert "policy.cil" in item.message


def test_unsafe_policy_name_is_rejected() -> None:
    item = read_policy(configmap("../x"))
    assert isinstance(item, PolicyRejection)
    assert "not a valid SELinux module name" in item.message


def test_selinux_profile_outranks_raw_profile_of_same_name() -> None:
    """Only the cross-kind pair can ask for one policy name; the order they come in is moot."""
    typed, raw = configmap("p", kind="SelinuxProfile"), configmap("p", kind="RawSelinuxProfile")
    for items in (read_policies([typed, raw]), read_policies([raw, typed])):
        by_kind = {item.source.kind: item for item in items}
        assert isinstance(by_kind["SelinuxProfile"], Policy)
        rejected = by_kind["RawSelinuxProfile"]
        assert isinstance(rejected, PolicyRejection) and rejected.name is None
        assert "SelinuxProfile p's" in rejected.message and "rename" in rejected.message


def selinux_forgeries() -> list[dict[str, Any]]:
    """ConfigMaps that are not their profile's, each asking for policy p_default."""

    def forged(configmap_name: str, label: str = "SelinuxProfile", **owner: Any) -> dict[str, Any]:
        body = configmap("p", kind=label, cil="(block p_default (typepermissive process))\n")
        body["metadata"]["name"] = configmap_name
        reference = body["metadata"]["ownerReferences"][0]
        body["metadata"]["ownerReferences"] = [{**reference, **owner}] if owner else None
        return body

    return [
        forged("selinux-p-copy"),  # no owner
        forged("selinux-p-copy2", name="p"),  # owner p, not p's ConfigMap name
        forged("selinux-evil", name="evil"),  # evil's ConfigMap claiming p
        forged("selinux-p", name="p", kind="SeccompProfile"),  # a seccomp profile's
        forged("rawselinux-p", "RawSelinuxProfile", name="p", kind="SelinuxProfile"),
        forged("selinux-p", name="p", apiVersion="example.com/v1"),
        forged("selinux-p", name="p", controller=False),
    ]


def test_only_the_owners_configmap_counts_for_selinux(tmp_path: Path) -> None:
    backend = SelinuxdBackend(SelinuxdClient(str(tmp_path / "no.sock"), timeout=1))
    sync = SelinuxSync(DropDir(tmp_path / "drop"), backend, own={})
    forgeries = selinux_forgeries()
    unique = [f for f in forgeries if f["metadata"]["name"] != "selinux-p"]  # one object a name
    outcomes = sync.converge([*unique, configmap("p")])
    refused = [o for o in outcomes if o.configmap != "selinux-p"]
    assert len(refused) == len(unique)
    assert {(o.state, o.reason, o.owner) for o in refused} == {
        (ProfileState.ERROR, "ConfigMapNotOwnedByProfile", None)
    }
    assert (
        tmp_path / "drop/p_default.cil"
    ).read_text() == "(block p_default\n  (blockinherit container)\n)\n"
    assert sorted(os.listdir(tmp_path / "drop")) == [STAGING, "p_default.cil"]
    for forged in unique:  # one by one, as watch events
        assert sync.upsert(forged).reason == "ConfigMapNotOwnedByProfile"
        sync.delete(forged)
        assert (
            (tmp_path / "drop/p_default.cil")
            .read_text()
            .startswith("(block p_default\n  (blockinherit")
        )
    changed = [f for f in forgeries if f["metadata"]["name"] == "selinux-p"]
    assert len(changed) == 3
    for forged in changed:  # the real ConfigMap itself changed into a forgery: its policy goes
        sync.converge([configmap("p")])
        assert sync.upsert(forged).reason == "ConfigMapNotOwnedByProfile"
        assert "p_default.cil" not in os.listdir(tmp_path / "drop")
    # forgeries alone: the real one gone, nothing of theirs appears
    sync.converge(unique)
    assert sorted(os.listdir(tmp_path / "drop")) == [STAGING]


def test_an_orphaned_selinux_configmap_loses_its_policy(tmp_path: Path) -> None:
    sink = Sink()
    backend = SelinuxdBackend(SelinuxdClient(str(tmp_path / "no.sock"), timeout=1))
    agent = NodeAgent(SelinuxSync(DropDir(tmp_path / "drop"), backend, own={}), sink)
    agent.relist([configmap("p")])
    assert (tmp_path / "drop/p_default.cil").exists()
    orphan = configmap("p")
    del orphan["metadata"]["ownerReferences"]
    agent.event("MODIFIED", orphan)
    assert not (tmp_path / "drop/p_default.cil").exists()
    assert [o.name for o in sink.forgotten] == ["p"]  # its node status goes
    assert sink.reported[-1].owner is None


def test_seccomp_configmaps_are_ignored() -> None:
    cm = configmap("p")
    cm["metadata"]["labels"]["spo.x-k8s.io/profile-kind"] = "SeccompProfile"
    assert read_policies([cm]) == []


def test_selectors() -> None:
    assert SELECTOR == "spo.x-k8s.io/profile-kind in (SelinuxProfile,RawSelinuxProfile)"
    assert node_selector("n1") == f"spo.x-k8s.io/node-name=n1,{SELECTOR}"


# -- drop directory ---------------------------------------------------------------------------


def test_drop_dir_writes_only_on_change_and_atomically(tmp_path: Path) -> None:
    drop = DropDir(tmp_path / "d")
    assert drop.write("a_ns", b"(block a_ns)\n") is True
    path = tmp_path / "d" / "a_ns.cil"
    before = os.stat(path)
    assert drop.write("a_ns", b"(block a_ns)\n") is False
    after = os.stat(path)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert drop.write("a_ns", b"(block a_ns (type t))\n") is True
    assert path.read_bytes() == b"(block a_ns (type t))\n"
    assert os.stat(path).st_ino != before.st_ino  # replaced by rename, never rewritten in place
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(os.listdir(tmp_path / "d")) == [STAGING, "a_ns.cil"]
    assert os.listdir(tmp_path / "d" / STAGING) == []
    assert drop.policies() == {"a_ns"}


def test_drop_dir_remove_and_converge_keep_templates(tmp_path: Path) -> None:
    drop = DropDir(tmp_path)
    (tmp_path / "base_container.cil").write_text("(block container)\n")
    drop.write("old_ns", b"(block old_ns)\n")
    (tmp_path / STAGING / ".x.cil.1234.tmp").parent.mkdir(exist_ok=True)
    (tmp_path / STAGING / ".x.cil.1234.tmp").write_text("crash leftover")
    written, removed = drop.converge({"new_ns": b"(block new_ns)\n"}, keep={"base_container"})
    assert (written, removed) == ({"new_ns"}, {"old_ns"})
    assert drop.policies() == {"new_ns", "base_container"}
    assert os.listdir(tmp_path / STAGING) == []
    assert drop.remove("new_ns") is True
    assert drop.remove("new_ns") is False


# -- selinuxd client against the double (fake installs) ---------------------------------------


class FakeInstalls:
    """Stands in for semodule: a policy containing BROKEN fails; can be held to stay pending."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.installed: list[str] = []
        self.removed: list[str] = []

    def install(self, path: Path) -> tuple[bool, str]:
        self.gate.wait(30)
        if b"BROKEN" in path.read_bytes():
            return False, "Failed to resolve allow statement at x:4\nsemodule:  Failed!"
        self.installed.append(path.stem)
        return True, ""

    def remove(self, policy: str) -> tuple[bool, str]:
        self.removed.append(policy)
        return True, ""


@pytest.fixture
def double(tmp_path: Path) -> Any:
    fake = FakeInstalls()
    sock = tmp_path / "selinuxd.sock"
    with SelinuxdDouble(
        sock, tmp_path / "drop", install=fake.install, remove=fake.remove, interval=0.01
    ) as running:
        running.fake = fake
        yield running


def test_client_ready_status_pending_and_errors(double: Any, tmp_path: Path) -> None:
    client = SelinuxdClient(str(double.socket_path))
    wait_for(client.ready, "ready")
    assert client.status("nothing_here") is None  # 404 = not handled yet
    (tmp_path / "drop" / "good_ns.cil").write_text("(block good_ns)")
    (tmp_path / "drop" / "bad_ns.cil").write_text("(block bad_ns BROKEN)")
    wait_for(
        lambda: client.status("bad_ns") is not None and client.status("good_ns") is not None,
        "statuses",
    )
    good, bad = client.status("good_ns"), client.status("bad_ns")
    assert good is not None and good.installed and good.message == ""
    assert bad is not None and not bad.installed and bad.status == "Failed"
    assert "Failed to resolve allow statement" in bad.message
    assert sorted(client.policies()) == ["bad_ns", "good_ns"]
    assert client._get("/nope")[0] == 400
    assert client.status("a/b") is None  # quoted: one path segment, unknown


def test_client_reports_unreachable_socket(tmp_path: Path) -> None:
    with pytest.raises(SelinuxdError, match="cannot reach selinuxd"):
        SelinuxdClient(str(tmp_path / "absent.sock"), timeout=1).ready()


# -- sync + selinuxd backend ------------------------------------------------------------------


def test_sync_reports_pending_then_installed_and_error_with_message(
    double: Any, tmp_path: Path
) -> None:
    double.fake.gate.clear()  # hold installs: everything is pending
    sync = SelinuxSync(
        DropDir(tmp_path / "drop"), SelinuxdBackend(SelinuxdClient(str(double.socket_path)))
    )
    bad = configmap("bad", cil="(block bad_default BROKEN)\n")
    outcomes = sync.converge([configmap("good"), bad])
    assert {o.name: o.state for o in outcomes} == {
        "good": ProfileState.PENDING,
        "bad": ProfileState.PENDING,
    }
    assert all(o.changed for o in outcomes)
    double.fake.gate.set()
    changed: list[Outcome] = []
    wait_for(lambda: (changed.extend(sync.poll()), sync.settled())[1], "settled")
    final = {o.name: o for o in sync.outcomes()}
    assert final["good"].state is ProfileState.INSTALLED
    assert final["bad"].state is ProfileState.ERROR
    assert final["bad"].reason == "CannotInstallSelinuxPolicy"
    assert "Failed to resolve allow statement" in (final["bad"].message or "")
    assert {o.name for o in changed} >= {"good", "bad"}
    status = reports.desired(final["bad"], "node-1")
    assert status["status"] == "Error"
    assert "Failed to resolve allow statement" in status["message"]
    assert status["metadata"]["labels"]["spo.x-k8s.io/profile-id"] == "SelinuxProfile-bad"
    assert status["metadata"]["labels"]["spo.x-k8s.io/profile-kind"] == "SelinuxProfile"
    # unchanged relist writes nothing
    again = sync.converge([configmap("good"), bad])
    assert not any(o.changed for o in again)
    # delete removes the file, and the double removes the module
    last = sync.delete(configmap("good"))
    assert last is not None and last.name == "good"
    assert not (tmp_path / "drop" / "good_default.cil").exists()
    wait_for(lambda: "good_default" in double.fake.removed, "removal")


def test_sync_reports_selinuxd_down_as_pending(tmp_path: Path) -> None:
    sync = SelinuxSync(
        DropDir(tmp_path / "drop"),
        SelinuxdBackend(SelinuxdClient(str(tmp_path / "no.sock"), timeout=1)),
    )
    [outcome] = sync.converge([configmap("p")])
    assert outcome.state is ProfileState.PENDING
    assert outcome.reason == "SelinuxdUnavailable"
    assert (tmp_path / "drop" / "p_default.cil").is_file()


class Sink:
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


def test_agent_events_and_ticks(double: Any, tmp_path: Path) -> None:
    sink = Sink()
    agent = NodeAgent(
        SelinuxSync(
            DropDir(tmp_path / "drop"), SelinuxdBackend(SelinuxdClient(str(double.socket_path)))
        ),
        sink,
    )
    agent.relist([])
    assert agent.ready.is_set()
    agent.event("ADDED", configmap("web"))
    wait_for(
        lambda: (agent.tick(), any(o.state is ProfileState.INSTALLED for o in sink.reported))[1],
        "installed report",
    )
    agent.event("DELETED", configmap("web"))
    assert [o.name for o in sink.forgotten] == ["web"]
    seccomp = configmap("s")
    seccomp["metadata"]["labels"]["spo.x-k8s.io/profile-kind"] = "SeccompProfile"
    agent.event("ADDED", seccomp)  # not ours: nothing happens
    assert not (tmp_path / "drop" / "s_default.cil").exists()


# -- batch installer against a fake semodule --------------------------------------------------

FAKE_SEMODULE = """\
#!{python}
import sys
args = sys.argv[1:]
log = open({log!r}, "a")
log.write(" ".join(args) + "\\n")
files = [args[i + 1] for i, a in enumerate(args) if a == "-i"]
for f in files:
    if "BROKEN" in open(f).read():
        print("Failed to resolve allow statement at " + f + ":4", file=sys.stderr)
        print("semodule:  Failed!", file=sys.stderr)
        sys.exit(1)
if "-lfull" in args:
    print("350 a_ns            cil")
print("libsemanage.add_user: user sddm not in password file", file=sys.stderr)
"""


def test_batch_installs_in_one_transaction_and_bisects_to_the_broken_one(tmp_path: Path) -> None:
    script = tmp_path / "semodule"
    log = tmp_path / "log"
    script.write_text(FAKE_SEMODULE.format(python=sys.executable, log=str(log)))
    script.chmod(0o755)
    files = {}
    for i in range(16):
        path = tmp_path / f"p{i:02d}_ns.cil"
        path.write_text("BROKEN" if i == 11 else f"(block p{i:02d}_ns)")
        files[path.stem] = path
    installer = SemoduleInstaller(semodule=str(script), root=tmp_path / "root", reload=False)
    results = installer.install({k: v for k, v in files.items() if k != "p11_ns"})
    assert all(r.ok for r in results.values()) and len(results) == 15
    assert installer.stats.transactions == 1
    first = log.read_text().splitlines()[0].split()
    assert first[:4] == ["-p", str(tmp_path / "root"), "-n", "-X"] and first.count("-i") == 15
    installer = SemoduleInstaller(semodule=str(script), reload=True)
    results = installer.install(files)
    assert [p for p, r in results.items() if not r.ok] == ["p11_ns"]
    assert "Failed to resolve allow statement" in results["p11_ns"].message
    assert "sddm" not in results["p11_ns"].message
    assert installer.stats.transactions == 1 + 2 * 4  # full, then two halves per level down to one
    assert "-n" not in log.read_text().splitlines()[-1].split()
    assert installer.installed() == {"a_ns"}


def test_batch_backend_through_sync(tmp_path: Path) -> None:
    script = tmp_path / "semodule"
    script.write_text(FAKE_SEMODULE.format(python=sys.executable, log=str(tmp_path / "log")))
    script.chmod(0o755)
    backend = BatchBackend(SemoduleInstaller(semodule=str(script)))
    sync = SelinuxSync(DropDir(tmp_path / "drop"), backend)
    outcomes = sync.converge([configmap("a", "ns"), configmap("b", cil="(block b_default BROKEN)")])
    states = {o.name: (o.state, o.message) for o in outcomes}
    assert states["a"] == (ProfileState.INSTALLED, None)
    assert states["b"][0] is ProfileState.ERROR
    assert "Failed to resolve" in (states["b"][1] or "")
    assert sync.delete(configmap("a", "ns")) is not None
    assert "-r a_ns" in (tmp_path / "log").read_text()


def test_clean_output_drops_harmless_warnings() -> None:
    assert clean_output("libsemanage.add_user: user sddm not in password file\nreal\n") == "real"


def test_a_policy_removed_before_it_settled_is_not_polled_for_ever(tmp_path: Path) -> None:
    script = tmp_path / "semodule"
    script.write_text(FAKE_SEMODULE.format(python=sys.executable, log=str(tmp_path / "log")))
    script.chmod(0o755)
    backend = BatchBackend(SemoduleInstaller(semodule=str(script)))
    sync = SelinuxSync(DropDir(tmp_path / "drop"), backend)
    sync.converge([configmap("a"), configmap("b")])
    assert sync.needs_poll()  # just written: a few more answers are read before trusting them
    sync.converge([configmap("b")])
    for _ in range(10):
        sync.poll()
    assert not sync.needs_poll()


def test_a_selinux_profile_takes_its_policy_name_from_a_raw_one_by_watch_events(
    tmp_path: Path,
) -> None:
    backend = SelinuxdBackend(SelinuxdClient(str(tmp_path / "no.sock"), timeout=1))
    sync = SelinuxSync(DropDir(tmp_path / "drop"), backend, own={})
    raw = configmap("p", kind="RawSelinuxProfile", cil="(block p_default (raw))\n")
    typed = configmap("p", kind="SelinuxProfile", cil="(block p_default (typed))\n")
    assert sync.upsert(raw).state is ProfileState.PENDING
    assert (tmp_path / "drop/p_default.cil").read_text() == "(block p_default (raw))\n"
    assert sync.upsert(typed).state is ProfileState.PENDING
    assert (tmp_path / "drop/p_default.cil").read_text() == "(block p_default (typed))\n"
    refused = sync.upsert(raw)  # the raw one comes again: refused, the file stays the typed one's
    assert refused.state is ProfileState.ERROR and "SelinuxProfile p's" in (refused.message or "")
    assert (tmp_path / "drop/p_default.cil").read_text() == "(block p_default (typed))\n"
    outcomes = sync.converge([raw, typed])  # a relist agrees
    assert {o.kind: o.state for o in outcomes} == {
        "SelinuxProfile": ProfileState.PENDING,
        "RawSelinuxProfile": ProfileState.ERROR,
    }
