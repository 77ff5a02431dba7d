"""SELinux policies into a real policy store: Debian's reference policy, real ``semodule``.

Every test works in a private copy of the store (``semodule -p``) that already
holds the container shim and udica's templates (the ``store`` fixture of conftest.py);
nothing touches the machine's.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api.profilestate import ProfileState
from nodesync.nodeio import reports
from nodesync.selinux.batch import SemoduleInstaller
from nodesync.selinux.dropdir import DropDir
from nodesync.selinux.recordingpolicy import RECORDING_POLICY, RECORDING_TYPE
from nodesync.selinux.selinuxd import SelinuxdClient
from nodesync.selinux.sync import BatchBackend, SelinuxdBackend, SelinuxSync
from tests.helpers.golden import cases, golden_folder, response_of
from tests.helpers.owners import owned
from tests.helpers.selinux_env import (
    ROOT,
    compiled_policy,
    kernel_policy_cil,
    selinuxd_unavailable,
)
from tests.helpers.selinuxd_double import SelinuxdDouble

pytestmark = pytest.mark.node

WEB = """\
(block {name}
  (blockinherit container)
  (allow process http_port_t (tcp_socket (name_bind)))
)
"""
NET = """\
(block {name}
  (blockinherit net_container)
  (allow process http_port_t (tcp_socket (name_bind name_connect)))
  (allow process proc_t (file (getattr open read)))
)
"""
LOGS = """\
(block {name}
  (blockinherit log_container)
  (allow process var_log_t (dir (getattr open read search)))
)
"""
TYPO = """\
(block {name}
  (blockinherit container)
  (allow process http_prot_t (tcp_socket (name_bind)))
)
"""


def configmap(name: str, cil: str, namespace: str = "default") -> dict[str, Any]:
    return owned(
        {
            "kind": "ConfigMap",
            "metadata": {
                "name": f"selinux-{name}",
                "namespace": namespace,
                "labels": {"spo.x-k8s.io/profile-kind": "SelinuxProfile"},
                "annotations": {"spo.x-k8s.io/profile-name": name},
            },
            "data": {"policy.cil": cil.format(name=f"{name}_{namespace}")},
        }
    )


def wait_for(condition: Any, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def test_templates_are_in_the_store(store: SemoduleInstaller) -> None:
    installed = store.installed()
    assert {"spo_container_shim", "base_container", "net_container", "log_container"} <= installed


def test_realistic_policies_install_and_a_typo_is_rejected_with_semodule_message(
    store: SemoduleInstaller, tmp_path: Path
) -> None:
    policy = Path(store.root or "") / "etc/selinux/default/policy/policy.33"
    before = policy.stat().st_mtime_ns
    files = {}
    for name, text in (("web", WEB), ("net", NET), ("logs", LOGS), ("typo", TYPO)):
        path = tmp_path / f"{name}_default.cil"
        path.write_text(text.format(name=f"{name}_default"))
        files[path.stem] = path
    results = store.install(files)
    assert {p: r.ok for p, r in results.items()} == {
        "web_default": True,
        "net_default": True,
        "logs_default": True,
        "typo_default": False,
    }
    assert "Failed to resolve allow statement" in results["typo_default"].message
    assert "typo_default" in results["typo_default"].message
    installed = store.installed()
    assert {"web_default", "net_default", "logs_default"} <= installed
    assert "typo_default" not in installed
    assert policy.stat().st_mtime_ns != before  # the whole policy was relinked
    ok, output = store.remove(["web_default"])
    assert ok, output
    assert "web_default" not in store.installed()


def test_nodesync_through_selinuxd_reports_installed_and_error(
    store: SemoduleInstaller, tmp_path: Path
) -> None:
    reason = selinuxd_unavailable()
    if reason is not None:
        print(f"selinuxd cannot be built here, using the double: {reason}")
    drop = tmp_path / "selinux.d"
    with SelinuxdDouble(tmp_path / "selinuxd.sock", drop, store) as double:
        client = SelinuxdClient(str(double.socket_path))
        wait_for(client.ready, "selinuxd ready")
        sync = SelinuxSync(DropDir(drop), SelinuxdBackend(client))
        outcomes = sync.converge([configmap("web", WEB), configmap("typo", TYPO)])
        assert {o.state for o in outcomes} == {ProfileState.PENDING}
        wait_for(lambda: (sync.poll(), sync.settled())[1], "both policies handled")
        final = {o.name: o for o in sync.outcomes()}
        assert final["web"].state is ProfileState.INSTALLED
        assert final["typo"].state is ProfileState.ERROR
        wire = reports.desired(final["typo"], "node-a")
        assert wire["status"] == "Error"
        assert "Failed to resolve allow statement" in wire["message"]
        assert {"web_default"} <= store.installed()
        sync.delete(configmap("web", WEB))
        wait_for(lambda: client.status("web_default") is None, "selinuxd forgot the policy")
        assert "web_default" not in store.installed()


def test_nodesync_batch_backend_installs_into_the_store(
    store: SemoduleInstaller, tmp_path: Path
) -> None:
    sync = SelinuxSync(DropDir(tmp_path / "drop"), BatchBackend(store))
    cms = [configmap(f"app{i}", WEB) for i in range(4)] + [configmap("typo", TYPO)]
    outcomes = {o.name: o for o in sync.converge(cms)}
    assert all(outcomes[f"app{i}"].state is ProfileState.INSTALLED for i in range(4))
    assert outcomes["typo"].state is ProfileState.ERROR
    assert "Failed to resolve allow statement" in (outcomes["typo"].message or "")
    assert {f"app{i}_default" for i in range(4)} <= store.installed()


def semodule_list(store: SemoduleInstaller) -> set[str]:
    """The module names ``semodule -l`` lists in the store (every priority)."""
    done = subprocess.run(
        [store.semodule, "-p", str(store.root), "-l"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


def kernel_types(store: SemoduleInstaller, out: Path) -> tuple[set[str], set[str]]:
    """(every type, the permissive types) of the kernel policy built in the store."""
    cil = kernel_policy_cil(compiled_policy(Path(store.root or "")), out)
    types = set(re.findall(r"^\(type (\S+)\)$", cil, re.MULTILINE))
    permissive = set(re.findall(r"^\(typepermissive (\S+)\)$", cil, re.MULTILINE))
    return types, permissive


def test_nodesync_installs_the_recording_policy_whose_type_is_permissive(
    store: SemoduleInstaller, tmp_path: Path
) -> None:
    """What the recording webhook gives a recorded container exists and logs instead of denying."""
    before, _ = kernel_types(store, tmp_path / "before.cil")
    assert RECORDING_TYPE not in before
    sync = SelinuxSync(DropDir(tmp_path / "drop"), BatchBackend(store))
    outcomes = sync.converge([configmap("web", WEB)])
    assert [(o.name, o.state) for o in outcomes] == [("web", ProfileState.INSTALLED)]
    assert store.stats.transactions == 1  # with the profiles, in their transaction
    assert RECORDING_POLICY in semodule_list(store)
    assert RECORDING_POLICY in store.installed()  # at nodesync's priority
    types, permissive = kernel_types(store, tmp_path / "after.cil")
    assert RECORDING_TYPE in types
    assert RECORDING_TYPE in permissive
    # A profile's type without typepermissive is not: the check tells them apart.
    assert "web_default.process" in types
    assert "web_default.process" not in permissive


def _cil_in(document: Any) -> Iterator[str]:
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "policy.cil" and isinstance(value, str):
                yield value
            else:
                yield from _cil_in(value)
    elif isinstance(document, list):
        for value in document:
            yield from _cil_in(value)


def _block_name(cil: str) -> str:
    return cil.split("(block", 1)[1].split(maxsplit=1)[0]


def golden_policies() -> list[str]:
    """Every policy.cil in the hooks' golden responses (what the hooks send to the nodes)."""
    found: list[str] = []
    for kind in ("selinuxprofile", "rawselinuxprofile"):
        folder = golden_folder(kind)
        for case in cases(folder):
            found.extend(_cil_in(response_of(folder / case)))
    return sorted(set(found))


def example_policies() -> list[str]:
    """The CIL the hooks make of every example in examples/selinux."""
    from hooks.api.rawselinuxprofile import RawSelinuxProfile
    from hooks.api.selinuxprofile import SelinuxProfile
    from hooks.cluster.selinux.translation import translate

    profiles: list[SelinuxProfile | RawSelinuxProfile] = []
    for path in sorted((ROOT / "examples/selinux").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "SelinuxProfile":
                profiles.append(SelinuxProfile.model_validate(doc))
            elif isinstance(doc, dict) and doc.get("kind") == "RawSelinuxProfile":
                profiles.append(RawSelinuxProfile.model_validate(doc))
    siblings = {p.name: p for p in profiles if isinstance(p, SelinuxProfile)}
    return [translate(p, siblings=siblings) for p in profiles]


def rounds(policies: list[str]) -> list[list[str]]:
    """Transactions in which no module name occurs twice; a policy that stands alone (say,
    one that others inherit) is in every round."""
    by_name: dict[str, list[str]] = {}
    for cil in policies:
        by_name.setdefault(_block_name(cil), []).append(cil)
    count = max((len(v) for v in by_name.values()), default=0)
    return [[versions[i % len(versions)] for versions in by_name.values()] for i in range(count)]


@pytest.mark.parametrize("source", ["golden", "examples"])
def test_project_policies_install(store: SemoduleInstaller, tmp_path: Path, source: str) -> None:
    policies = golden_policies() if source == "golden" else example_policies()
    assert policies, f"no {source} SELinux policies found"
    for number, group in enumerate(rounds(policies)):
        folder = tmp_path / f"round{number}"
        folder.mkdir()
        files = {}
        for cil in group:
            path = folder / f"{_block_name(cil)}.cil"
            path.write_text(cil)
            files[path.stem] = path
        results = store.install(files)
        failed = {p: (r.message, files[p].read_text()) for p, r in results.items() if not r.ok}
        assert failed == {}
        assert set(files) <= store.installed()


def avc(serial: int, perms: str, ttype: str, tclass: str) -> str:
    """An AVC record as the kernel logs it for a container running as selinuxrecording.process."""
    return (
        f"type=AVC msg=audit(1700000000.{serial:03d}:{serial}): avc:  denied  {{ {perms} }} for  "
        f'pid=4242 comm="nginx" name="x" dev="overlay" ino=1 '
        f"scontext=system_u:system_r:{RECORDING_TYPE}:s0:c1,c2 "
        f"tcontext=system_u:object_r:{ttype}:s0 tclass={tclass} permissive=1"
    )


def test_a_profile_recorded_from_avcs_installs(store: SemoduleInstaller, tmp_path: Path) -> None:
    """AVCs of a recorded container -> the log enricher's SelinuxProfile -> the hook's CIL -> the
    store."""
    from hooks.api.selinuxprofile import SelinuxProfile
    from hooks.cluster.selinux.translation import translate
    from nodesync.enricher.containers import Lookup
    from nodesync.enricher.recorder import Recorder
    from nodesync.enricher.recordingagent import RecordingAgent

    container_id = "c" * 64
    recorder = Recorder(lambda pid: Lookup(container_id if pid == 4242 else None, "host"))
    created: list[dict[str, Any]] = []
    agent = RecordingAgent(recorder, created.append, arch="SCMP_ARCH_X86_64")
    recorder.consume(
        [
            avc(1, "name_bind", "http_port_t", "tcp_socket"),
            avc(2, "search getattr", "var_log_t", "dir"),
            avc(3, "read open", "proc_t", "file"),
            avc(4, "read", "kernel_t", "system"),  # refused by the profile checks: left out
            avc(5, "write", RECORDING_TYPE, "fifo_file"),  # its own type: @self
        ]
    )
    pod = {
        "metadata": {
            "namespace": "web",
            "name": "nginx",
            "uid": "u1",
            "annotations": {"io.containers.trace-avcs/nginx": "rec_nginx_abcde_1"},
        },
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [{"name": "nginx", "containerID": f"cri-o://{container_id}"}],
        },
    }
    (decision,) = agent.observe(pod)
    assert decision.error is None and created == [decision.profile]
    profile = SelinuxProfile.model_validate(created[0])
    cil = translate(profile)
    assert "kernel_t" not in cil
    sync = SelinuxSync(DropDir(tmp_path / "drop"), BatchBackend(store))
    document = configmap("rec-nginx", "", "web")
    document["data"]["policy.cil"] = cil
    outcomes = sync.converge([document])
    assert [(o.name, o.state) for o in outcomes] == [("rec-nginx", ProfileState.INSTALLED)], (
        outcomes
    )
    assert profile.spec.allow is not None and set(profile.spec.allow) == {
        "http_port_t",
        "var_log_t",
        "proc_t",
        "@self",
    }
    assert "rec-nginx_web" in semodule_list(store)
