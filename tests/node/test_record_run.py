"""``spo record`` and ``spo run`` on real processes: a shell's short-lived child, threads, a server.

Each case records a command with the real ``spo`` (a process of its own), runs
the command again under the recorded profile (it must succeed), then under the
profile without one syscall that only the child, a thread or the server makes
(it must fail with EPERM, and spo must name the syscall). A recording of a
command that does not make that syscall shows it came from where we say.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from hooks.api import syscalls
from hooks.api.seccompprofile import SeccompProfile
from tests.helpers.unavailable import unavailable

ROOT = Path(__file__).parent.parent.parent
SPO = str(Path(sys.executable).parent / "spo")
TIMEOUT = 60


@pytest.fixture(scope="module", autouse=True)
def _machine_can_trace() -> None:
    from nodesync.tracing import filters, kernel

    try:
        kernel.check()
        filters.libseccomp_version()
    except kernel.Unsupported as missing:
        unavailable(f"spo record/run cannot work here: {missing}")


def spo(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SPO, *args], capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd, check=False
    )


def record(out: Path, command: list[str]) -> tuple[dict[str, Any], str]:
    done = spo("record", "-o", str(out), "--namespace", "default", "--", *command)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(out.read_text()), done.stderr


def allowed(profile: dict[str, Any]) -> set[str]:
    return set(profile["spec"]["syscalls"][0]["names"])


def without(profile: dict[str, Any], names: set[str], out: Path) -> Path:
    rule = profile["spec"]["syscalls"][0]
    reduced = {
        **profile,
        "spec": {
            **profile["spec"],
            "syscalls": [{**rule, "names": sorted(set(rule["names"]) - names)}],
        },
    }
    out.write_text(yaml.safe_dump(reduced, sort_keys=False))
    return out


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(
        (ROOT / "crds" / "security-profiles-operator.x-k8s.io_seccompprofiles.yaml").read_text()
    )
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")["schema"][
        "openAPIV3Schema"
    ]


def test_short_lived_child_of_a_shell_is_recorded_and_its_syscall_refused(tmp_path: Path) -> None:
    def script(folder: Path) -> list[str]:
        folder.mkdir()
        return ["sh", "-c", f"mkdir {folder}/x && ls {folder}"]

    profile, said = record(tmp_path / "sh.yaml", script(tmp_path / "recorded"))
    jsonschema.validate(profile, crd_schema())
    model = SeccompProfile.model_validate(profile)
    assert model.apiVersion == "security-profiles-operator.x-k8s.io/v1beta1"
    assert model.metadata.namespace == "default"
    assert model.spec.defaultAction.value == "SCMP_ACT_ERRNO"
    assert [arch.value for arch in model.spec.architectures or []] == [syscalls.native_arch()]
    assert len(model.spec.syscalls or []) == 1
    assert model.spec.syscalls[0].names == sorted(model.spec.syscalls[0].names)  # type: ignore[index]
    makes_dir = allowed(profile) & {"mkdir", "mkdirat"}
    assert makes_dir, sorted(allowed(profile))
    assert "from 3 processes" in said  # sh, mkdir, ls

    shell_only, _ = record(tmp_path / "echo.yaml", ["sh", "-c", "echo hello"])
    assert not allowed(shell_only) & {"mkdir", "mkdirat"}  # so mkdir came from the child

    ok = spo("run", "--profile", str(tmp_path / "sh.yaml"), "--", *script(tmp_path / "again"))
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "again" / "x").is_dir()
    assert "refused nothing" in ok.stderr

    refused = spo(
        "run",
        "--profile",
        str(without(profile, makes_dir, tmp_path / "no-mkdir.yaml")),
        "--",
        *script(tmp_path / "refused"),
    )
    assert refused.returncode != 0
    assert "Operation not permitted" in refused.stderr
    name = sorted(makes_dir)[0]
    assert f"refused {name} (EPERM) to mkdir" in refused.stderr, refused.stderr
    assert not (tmp_path / "refused" / "x").exists()


THREADS = textwrap.dedent(
    """
    import os, sys, threading
    calls = [
        lambda: os.getpriority(os.PRIO_PROCESS, 0),
        lambda: os.sched_getscheduler(0),
        lambda: os.getsid(0),
    ]
    failures = []

    def run(call):
        try:
            call()
        except OSError as error:
            failures.append(repr(error))

    if sys.argv[1:] == ["threads"]:
        threads = [threading.Thread(target=run, args=(call,)) for call in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        sys.exit("a thread failed: " + ", ".join(failures))
    print("done")
    """
)


def test_threads_are_recorded_and_a_threads_syscall_refused(tmp_path: Path) -> None:
    program = tmp_path / "threads.py"
    program.write_text(THREADS)
    command = [sys.executable, "-I", str(program)]
    only_in_threads = {"getpriority", "sched_getscheduler", "getsid"}

    profile, said = record(tmp_path / "threads.yaml", [*command, "threads"])
    assert only_in_threads <= allowed(profile), sorted(allowed(profile))
    threads = int(said.split(" threads)")[0].rsplit("(", 1)[1])
    assert threads >= 4  # the main thread and three others

    no_threads, _ = record(tmp_path / "plain.yaml", command)
    assert not only_in_threads & allowed(no_threads)

    ok = spo("run", "--profile", str(tmp_path / "threads.yaml"), "--", *command, "threads")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "done\n"

    refused = spo(
        "run",
        "--profile",
        str(without(profile, {"getpriority"}, tmp_path / "less.yaml")),
        "--",
        *command,
        "threads",
    )
    assert refused.returncode != 0
    assert "PermissionError(1, 'Operation not permitted')" in refused.stderr
    assert "refused getpriority (EPERM)" in refused.stderr, refused.stderr


SERVER = textwrap.dedent(
    """
    import socket
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    print(server.getsockname()[1], flush=True)
    connection, _ = server.accept()
    request = connection.recv(100)
    connection.sendall(b"pong " + request)
    connection.close()
    """
)


def serve_once(args: list[str]) -> tuple[int, bytes, str]:
    """Start ``spo ARGS`` (a server), talk to it once; its exit code, the answer, its stderr."""
    with subprocess.Popen(
        [SPO, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as server:
        assert server.stdout is not None and server.stderr is not None
        try:
            port = int(server.stdout.readline())
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
                client.sendall(b"ping")
                try:
                    answer = client.recv(100)
                except ConnectionResetError:
                    answer = b""
            code = server.wait(timeout=TIMEOUT)
        finally:
            if server.poll() is None:
                server.kill()
        return code, answer, server.stderr.read()


def test_a_server_answering_one_request_is_recorded_and_its_accept_refused(tmp_path: Path) -> None:
    program = tmp_path / "server.py"
    program.write_text(SERVER)
    command = [sys.executable, "-I", str(program)]
    out = tmp_path / "server.yaml"

    code, answer, said = serve_once(["record", "-o", str(out), "--", *command])
    assert (code, answer) == (0, b"pong ping"), said
    profile = yaml.safe_load(out.read_text())
    accepts = allowed(profile) & {"accept", "accept4"}
    assert accepts and {"bind", "listen"} <= allowed(profile), sorted(allowed(profile))

    code, answer, said = serve_once(["run", "--profile", str(out), "--", *command])
    assert (code, answer) == (0, b"pong ping"), said

    reduced = without(profile, accepts, tmp_path / "no-accept.yaml")
    code, answer, said = serve_once(["run", "--profile", str(reduced), "--", *command])
    assert code != 0 and answer == b""
    assert "PermissionError" in said
    assert f"refused {sorted(accepts)[0]} (EPERM)" in said, said
