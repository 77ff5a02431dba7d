"""The local mode as a real process: folder watching, /healthz, /readyz, /metrics, logs, bad
input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from tests.helpers.nodesync_once import REPO, configmap_yaml

pytestmark = pytest.mark.node

GOOD = {"defaultAction": "SCMP_ACT_ALLOW"}
DEADLINE = 60.0  # generous bound on waiting for a change to show; not a performance check


def lines(stream: IO[str]) -> Iterator[dict[str, Any]]:
    for line in stream:
        yield json.loads(line)


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_watching_a_folder_serves_health_and_metrics(tmp_path: Path) -> None:
    folder, kubelet = tmp_path / "configmaps", tmp_path / "kubelet"
    folder.mkdir()
    (folder / "a.yaml").write_text(yaml.safe_dump(configmap_yaml("ns", "a", GOOD)))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nodesync",
            "--from-dir",
            str(folder),
            "--kubelet-dir",
            str(kubelet),
            "--metrics-bind",
            "127.0.0.1:0",
            "--poll-interval",
            "0.1",
            "--node-name",
            "local-node",
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        log = lines(process.stderr)
        serving = next(line for line in log if line["msg"].startswith("serving"))
        base = "http://" + serving["msg"].rsplit(" ", 1)[1]
        assert serving["node"] == "local-node" and serving["namespace"] == serving["name"] == ""
        assert get(base + "/healthz") == (200, "ok\n")
        wait_until(lambda: get(base + "/readyz")[0] == 200, "readiness")
        assert (kubelet / "seccomp/operator/ns/a.json").exists()

        (folder / "b.yaml").write_text(yaml.safe_dump(configmap_yaml("ns", "b", GOOD)))
        wait_until((kubelet / "seccomp/operator/ns/b.json").exists, "b.json")
        (folder / "a.yaml").unlink()
        wait_until(lambda: not (kubelet / "seccomp/operator/ns/a.json").exists(), "a.json to go")

        deleted = 'security_profiles_operator_seccomp_profile_total{operation="delete"} 1.0'
        # The file goes before the counter moves: wait for the count, not for the file.
        wait_until(lambda: deleted in get(base + "/metrics")[1], "the delete to be counted")
        status, metrics = get(base + "/metrics")
        assert status == 200
        assert 'security_profiles_operator_seccomp_profile_total{operation="update"} 2.0' in metrics
        assert 'security_profiles_operator_seccomp_profile_total{operation="delete"} 1.0' in metrics
        assert "security_profiles_operator_seccomp_profile_error_total" in metrics
        assert get(base + "/nothing")[0] == 404
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
    assert code == 0


def run_once(folder: Path, kubelet: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "nodesync",
            "--from-dir",
            str(folder),
            "--kubelet-dir",
            str(kubelet),
            "--once",
            "--node-name",
            "local-node",
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bad_configmaps_are_errors_logged_by_name_and_the_rest_is_installed(tmp_path: Path) -> None:
    folder, kubelet = tmp_path / "configmaps", tmp_path / "kubelet"
    folder.mkdir()
    invalid = configmap_yaml("ns", "invalid", GOOD)
    invalid["data"]["profile.json"] = '{"defaultAction": '
    dotted = configmap_yaml("ns", "../../../../etc/evil", GOOD)  # its profile's, a bad name
    forged = configmap_yaml("ns", "forged", GOOD)  # claims another profile's file
    forged["metadata"]["annotations"]["spo.x-k8s.io/profile-name"] = "good-0"
    enormous = configmap_yaml(
        "ns", "enormous", {"defaultAction": "SCMP_ACT_ALLOW", "x": "y" * (2 << 20)}
    )
    good = [configmap_yaml("ns", f"good-{i}", GOOD) for i in range(3)]
    (folder / "all.yaml").write_text(
        yaml.safe_dump_all([invalid, good[0], dotted, good[1], enormous, forged, good[2]])
    )
    done = run_once(folder, kubelet)
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert summary["profiles"] == 7 and summary["written"] == 3
    assert {(e["name"], e["reason"]) for e in summary["errors"]} == {
        ("invalid", "InvalidSeccompProfile"),
        ("../../../../etc/evil", "CannotGetSeccompProfilePath"),
        ("enormous", "InvalidSeccompProfile"),
        ("good-0", "ConfigMapNotOwnedByProfile"),
    }
    assert sorted(p.name for p in (kubelet / "seccomp/operator/ns").iterdir()) == [
        "good-0.json",
        "good-1.json",
        "good-2.json",
    ]
    assert not (tmp_path / "etc").exists()
    logged = [json.loads(line) for line in done.stderr.splitlines()]
    assert all({"namespace", "name", "node"} <= set(line) for line in logged)
    warnings = {
        (line["namespace"], line["name"], line["reason"])
        for line in logged
        if line["level"] == "warning"
    }
    assert ("ns", "invalid", "InvalidSeccompProfile") in warnings
    assert ("ns", "enormous", "InvalidSeccompProfile") in warnings
    assert ("ns", "good-0", "ConfigMapNotOwnedByProfile") in warnings
    assert (kubelet / "seccomp/operator/ns/good-0.json").read_text() == json.dumps(GOOD, indent=2)

    # A file that is not YAML at all: nothing may be concluded from the folder, so
    # nothing changes (converging without it would remove what it held).
    (folder / "broken.yaml").write_text("kind: [unclosed")
    (folder / "all.yaml").unlink()
    refused = run_once(folder, kubelet)
    assert refused.returncode == 2
    assert any("broken.yaml" in json.loads(line)["msg"] for line in refused.stderr.splitlines())
    assert len(list((kubelet / "seccomp/operator/ns").iterdir())) == 3


def test_node_without_seccomp_installs_nothing(tmp_path: Path) -> None:
    folder, kubelet, proc = tmp_path / "configmaps", tmp_path / "kubelet", tmp_path / "proc"
    folder.mkdir()
    (proc / "self").mkdir(parents=True)
    (proc / "self/status").write_text("Name:\tnodesync\nNoNewPrivs:\t0\n")  # no Seccomp: field
    (folder / "a.yaml").write_text(yaml.safe_dump(configmap_yaml("ns", "a", GOOD)))
    done = run_once(folder, kubelet, "--proc-dir", str(proc))
    assert done.returncode == 1
    [error] = json.loads(done.stdout)["errors"]
    assert error["message"] == "seccomp is not supported on this node"
    assert error["reason"] == "SeccompNotSupportedOnNode"
    assert not kubelet.exists()


def test_this_kernel_has_seccomp() -> None:
    from nodesync.seccomp.support import seccomp_supported

    assert seccomp_supported(Path("/proc"))
