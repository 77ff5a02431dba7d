"""Running `spo hooks` (gunicorn) on a free loopback port, for the tests that talk HTTP to it."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(
    argv: list[str],
    base: str,
    *,
    env: dict[str, str],
    cwd: Path | None = None,
    context: ssl.SSLContext | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait until ``base``/readyz answers, yield it, stop it."""
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=1, context=context):
                    break
            except OSError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = (
                        process.stderr.read().decode()
                        if process.poll() is not None and process.stderr
                        else ""
                    )
                    raise RuntimeError(
                        f"the server at {base} did not become ready: {error}\n{stderr}"
                    ) from error
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


@contextmanager
def running_hooks(workers: int = 2) -> Iterator[str]:
    """Start `spo hooks`, wait until ready, yield its base URL, stop it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    base = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable,
        "-m",
        "hooks.command.cli",
        "hooks",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]
    with serving(argv, base, env=env):
        yield base


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
    """POST and return (status, parsed JSON body), whatever the status."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())
