"""nodesync's command line: the SELinux and namespace flags, what the spod's DaemonSet sets,
the local mode writing SELinux policies, the loops of the API mode, the namespaced requests."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api.spod import SecurityProfilesOperatorDaemon
from hooks.cluster.spod import daemonset
from nodesync.command import nodesync as command
from nodesync.nodeio.cluster import ApiError
from nodesync.selinux.batch import SemoduleInstaller
from nodesync.selinux.dropdir import DropDir
from nodesync.selinux.recordingpolicy import OPERATOR_POLICIES
from nodesync.selinux.selinuxd import DEFAULT_SOCKET
from nodesync.selinux.sync import BatchBackend, SelinuxSync
from tests.helpers.owners import owner_reference

ROOT = Path(__file__).parents[2]
ENV = ("SELINUX_POLICY_DIR", "SELINUXD_SOCKET", "WATCH_NAMESPACE", "NODE_NAME", "KUBELET_DIR")

FAKE_SEMODULE = """\
#!{python}
import sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(" ".join(args) + "\\n")
for i, a in enumerate(args):
    if a == "-i" and "BROKEN" in open(args[i + 1]).read():
        print("Failed to resolve allow statement at " + args[i + 1] + ":2", file=sys.stderr)
        sys.exit(1)
"""


def parse(argv: list[str], monkeypatch: pytest.MonkeyPatch, **env: str) -> argparse.Namespace:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


def nodesync_env(spod: dict[str, Any]) -> dict[str, str]:
    ds = daemonset.daemonset(SecurityProfilesOperatorDaemon.model_validate(spod))
    [container] = [
        c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "nodesync"
    ]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def default_spod() -> dict[str, Any]:
    spod: dict[str, Any] = yaml.safe_load((ROOT / "metacontroller/base/spod.yaml").read_text())
    return spod


# -- flags ----------------------------------------------------------------------------------------


def test_the_daemonset_env_is_what_nodesync_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    spod = default_spod()
    spod["spec"]["enableSelinux"] = True
    spod["metadata"]["annotations"] = {daemonset.WATCH_NAMESPACE_ANNOTATION: "team-a"}
    args = parse([], monkeypatch, **nodesync_env(spod))
    assert command.selinux_dir(args) == Path(daemonset.SELINUX_POLICY_DIR)
    assert args.selinuxd_socket == daemonset.SELINUXD_SOCKET
    assert args.selinux_installer == "selinuxd"
    assert args.namespace == "team-a"


def test_the_default_daemonset_leaves_selinux_off_and_every_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = parse([], monkeypatch, **nodesync_env(default_spod()))
    assert command.selinux_dir(args) is None
    assert args.namespace is None


def test_selinux_is_on_with_a_dir_or_the_flag_and_off_with_no_selinux(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert command.selinux_dir(parse(["--selinux-dir", str(tmp_path)], monkeypatch)) == tmp_path
    assert command.selinux_dir(parse(["--selinux"], monkeypatch)) == Path("/etc/selinux.d")
    assert command.selinux_dir(parse([], monkeypatch)) is None
    env = {"SELINUX_POLICY_DIR": str(tmp_path)}
    assert command.selinux_dir(parse([], monkeypatch, **env)) == tmp_path
    assert command.selinux_dir(parse(["--no-selinux"], monkeypatch, **env)) is None
    assert parse([], monkeypatch).selinuxd_socket == DEFAULT_SOCKET
    assert parse(["--selinux-installer", "batch"], monkeypatch).selinux_installer == "batch"
    with pytest.raises(SystemExit):
        parse(["--selinux-installer", "semanage"], monkeypatch)


@pytest.mark.parametrize("bad", ["Team-A", "team_a", "-a", "a" * 64, "a/b"])
def test_a_namespace_must_be_a_namespace_name(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    with pytest.raises(SystemExit):
        parse(["--namespace", bad], monkeypatch)
    with pytest.raises(SystemExit):
        parse([], monkeypatch, WATCH_NAMESPACE=bad)
    assert parse(["--namespace", "team-a"], monkeypatch).namespace == "team-a"
    assert parse([], monkeypatch, WATCH_NAMESPACE="").namespace is None


# -- local mode -----------------------------------------------------------------------------------


def configmap(kind: str, name: str, key: str, data: str, namespace: str = "team-a") -> Any:
    prefix = {"SeccompProfile": "seccomp", "SelinuxProfile": "selinux"}[kind]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{prefix}-{name}",
            "namespace": namespace,
            "labels": {"spo.x-k8s.io/profile-kind": kind},
            "annotations": {"spo.x-k8s.io/profile-name": name},
            "ownerReferences": [owner_reference(kind, name)],
        },
        "data": {key: data},
    }


def folder_of(tmp_path: Path, *docs: Any) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "all.yaml").write_text(yaml.safe_dump_all(docs))
    return folder


def local(folder: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--from-dir",
        str(folder),
        "--kubelet-dir",
        str(tmp_path / "kubelet"),
        "--once",
        "--metrics-bind",
        "",
        *extra,
    ]


def test_local_mode_writes_cil_files_next_to_the_seccomp_profiles(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = folder_of(
        tmp_path,
        configmap("SeccompProfile", "log", "profile.json", '{"defaultAction": "SCMP_ACT_LOG"}'),
        configmap("SelinuxProfile", "web", "policy.cil", "(block web_team-a)\n"),
        configmap("SelinuxProfile", "empty", "other", "x"),
    )
    drop = tmp_path / "selinux.d"
    argv = local(folder, tmp_path, "--selinux-dir", str(drop))
    argv += ["--selinuxd-socket", str(tmp_path / "absent.sock")]
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    assert command.main(argv) == 1  # the ConfigMap without policy.cil is an error
    summary = json.loads(capsys.readouterr().out)
    assert summary["profiles"] == 3  # the operator's own policy is no profile
    assert [(e["name"], e["reason"]) for e in summary["errors"]] == [
        ("empty", "InvalidSelinuxPolicy")
    ]
    assert (drop / "web_team-a.cil").read_text() == "(block web_team-a)\n"
    assert (drop / "selinuxrecording.cil").read_bytes() == OPERATOR_POLICIES["selinuxrecording"]
    assert sorted(p.name for p in drop.iterdir() if not p.name.startswith(".")) == [
        "selinuxrecording.cil",
        "web_team-a.cil",
    ]
    assert (tmp_path / "kubelet/seccomp/operator/team-a/log.json").is_file()

    # Without --selinux-dir, the same folder writes no policy (and the SELinux ConfigMaps
    # are not the seccomp side's business).
    (drop / "web_team-a.cil").unlink()
    assert command.main(local(folder, tmp_path)) == 0
    assert json.loads(capsys.readouterr().out)["profiles"] == 1
    assert not (drop / "web_team-a.cil").exists()


def test_local_mode_with_the_batch_installer_reports_semodule_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    semodule = bin_dir / "semodule"
    log = tmp_path / "semodule.log"
    semodule.write_text(FAKE_SEMODULE.format(python=sys.executable, log=str(log)))
    semodule.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    folder = folder_of(
        tmp_path,
        configmap("SelinuxProfile", "good", "policy.cil", "(block good_team-a)\n"),
        configmap("SelinuxProfile", "bad", "policy.cil", "(block bad_team-a BROKEN)\n"),
    )
    drop = tmp_path / "selinux.d"
    argv = local(folder, tmp_path, "--selinux-dir", str(drop), "--selinux-installer", "batch")
    argv += ["--semodule-root", str(tmp_path / "root")]
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    assert command.main(argv) == 1
    summary = json.loads(capsys.readouterr().out)
    [error] = summary["errors"]
    assert error["name"] == "bad"
    assert "Failed to resolve allow statement" in error["message"]
    calls = log.read_text().splitlines()
    assert calls[0].startswith(f"-p {tmp_path / 'root'} -n -X 350 -i ")
    assert all(call.startswith(f"-p {tmp_path / 'root'} -n ") for call in calls)


def test_batch_installer_installs_the_files_found_at_start(tmp_path: Path) -> None:
    """After a restart the files are unchanged, but their installation must be known."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    semodule = bin_dir / "semodule"
    log = tmp_path / "semodule.log"
    semodule.write_text(FAKE_SEMODULE.format(python=sys.executable, log=str(log)))
    semodule.chmod(0o755)
    drop = DropDir(tmp_path / "drop")
    drop.write("kept_team-a", b"(block kept_team-a)\n")
    sync = SelinuxSync(drop, BatchBackend(SemoduleInstaller(semodule=str(semodule))))
    [outcome] = sync.converge(
        [configmap("SelinuxProfile", "kept", "policy.cil", "(block kept_team-a)\n")]
    )
    assert outcome.state.value == "Installed"
    assert not outcome.changed
    assert "-i " + str(drop.file("kept_team-a")) in log.read_text()


# -- API mode: loops ------------------------------------------------------------------------------


def test_a_failing_loop_stops_the_others_and_the_exit_code_says_so() -> None:
    stop = threading.Event()
    interrupted: list[bool] = []
    started = threading.Event()

    def waits() -> None:
        started.set()
        stop.wait(60)

    def fails() -> None:
        started.wait(10)
        raise RuntimeError("boom")

    loops = command.Loops({"waits": waits, "fails": fails}, stop, lambda: interrupted.append(True))
    assert loops.run() == 1
    assert loops.failed == ["fails"]
    assert interrupted == [True]
    assert not loops.healthy()
    assert not any(thread.is_alive() for thread in loops.threads)


def test_loops_stopped_from_outside_end_cleanly() -> None:
    stop = threading.Event()
    seen: list[str] = []

    def waits() -> None:
        seen.append("waits")
        stop.wait(60)

    loops = command.Loops(
        {"a": waits, "b": lambda: bool(stop.wait(60)) and None},
        stop,
        lambda: seen.append("interrupt"),
    )
    threading.Timer(0.2, stop.set).start()
    assert loops.run() == 0
    assert loops.healthy()
    assert seen == ["waits"]  # told to stop: nothing to interrupt


# -- namespaced requests --------------------------------------------------------------------------


def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


def test_a_namespaced_cluster_uses_namespaced_paths_and_writes_nowhere_else(
    tmp_path: Path,
) -> None:
    from nodesync.nodeio.requesting import KubernetesCluster

    paths: list[tuple[str, str]] = []

    def record(self: Any, method: str, path: str, query: Any = None, **kw: Any) -> Any:
        paths.append((method, path))
        return {"items": [], "metadata": {"resourceVersion": "7"}}

    everywhere = KubernetesCluster(kubeconfig(tmp_path))
    restricted = KubernetesCluster(kubeconfig(tmp_path), namespace="team-a")
    for cluster in (everywhere, restricted):
        cluster._json = record.__get__(cluster)  # type: ignore[method-assign]
        assert cluster.list_configmaps("a=b") == ([], "7")
        cluster.list_node_statuses("a=b")
    statuses = "/apis/security-profiles-operator.x-k8s.io/v1alpha1"
    assert paths == [
        ("GET", "/api/v1/configmaps"),
        ("GET", f"{statuses}/securityprofilenodestatuses"),
        ("GET", "/api/v1/namespaces/team-a/configmaps"),
        ("GET", f"{statuses}/namespaces/team-a/securityprofilenodestatuses"),
    ]
    paths.clear()
    restricted.delete_node_status("team-a", "p-node")
    assert paths == [("DELETE", f"{statuses}/namespaces/team-a/securityprofilenodestatuses/p-node")]
    for write in (
        lambda: restricted.create_node_status("team-b", {}),
        lambda: restricted.patch_node_status("team-b", "p-node", {}),
        lambda: restricted.delete_node_status("team-b", "p-node"),
        lambda: restricted.create_event("team-b", {}),
    ):
        with pytest.raises(ApiError, match="outside the watched namespace"):
            write()
    assert len(paths) == 1
