"""A stand-in for selinuxd, used because selinuxd itself cannot be built here (see selinux_env).

It behaves as selinuxd's daemon does, as far as nodesync can tell:
- it watches the top of a drop directory (not below it; hidden files and files
  without an extension are ignored), installs a new or changed ``<policy>.cil``
  with one ``semodule -X 350 -i <file>`` at a time (a real ``semodule``: a
  ``SemoduleInstaller``), and removes the module when the file disappears;
- it remembers each policy's status and the checksum it was installed from, so
  an unchanged file is not installed again;
- it serves ``GET /ready``, ``GET /policies/`` and ``GET /policies/<name>``
  (``{"status": "Installed"|"Failed", "msg": ...}``, 404 while not handled) over
  HTTP on a unix socket; any other path is a 400.

One difference, on purpose: a failure's ``msg`` carries ``semodule``'s output
after selinuxd's own ``cannot install module: <file>`` (selinuxd's libsemanage
build reports libsemanage's messages too; its policycoreutils build only the
first line).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodesync.selinux.batch import SemoduleInstaller

Install = Callable[[Path], tuple[bool, str]]
Remove = Callable[[str], tuple[bool, str]]


@dataclass
class _Status:
    status: str
    msg: str
    checksum: bytes


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    double: SelinuxdDouble


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def _send(self, code: int, body: object) -> None:
        data = (json.dumps(body) + "\n").encode() if code == 200 else f"{body}\n".encode()
        self.send_response(code)
        kind = "application/json" if code == 200 else "text/plain; charset=utf-8"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        double = self.server.double
        path = self.path.split("?", 1)[0]
        if path in ("/ready", "/ready/"):
            self._send(200, {"ready": double.ready.is_set()})
        elif path == "/policies/":
            self._send(200, sorted(double.statuses()))
        elif path.startswith("/policies/") and "/" not in path[len("/policies/") :]:
            status = double.statuses().get(path[len("/policies/") :])
            if status is None:
                self._send(404, "couldn't find requested policy")
            else:
                self._send(200, {"status": status.status, "msg": status.msg})
        else:
            self._send(400, "Invalid path")


class SelinuxdDouble:
    def __init__(
        self,
        socket_path: Path,
        drop_dir: Path,
        installer: SemoduleInstaller | None = None,
        *,
        install: Install | None = None,
        remove: Remove | None = None,
        interval: float = 0.05,
    ) -> None:
        self.socket_path = socket_path
        self.drop_dir = drop_dir
        self.interval = interval
        if installer is not None:
            install = install or (lambda path: installer.transaction([path]))
            remove = remove or (lambda policy: installer.remove([policy]))
        if install is None or remove is None:
            raise ValueError("give an installer, or both install and remove")
        self._install = install
        self._remove = remove
        self._statuses: dict[str, _Status] = {}
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self.installs = 0  # how many semodule runs it made
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: _Server | None = None

    def statuses(self) -> dict[str, _Status]:
        with self._lock:
            return dict(self._statuses)

    def start(self) -> SelinuxdDouble:
        self.drop_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        server = _Server(str(self.socket_path), _Handler)
        server.double = self
        os.chmod(self.socket_path, 0o660)
        self._server = server
        self._threads = [
            threading.Thread(target=server.serve_forever, daemon=True),
            threading.Thread(target=self._watch, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=600)

    def __enter__(self) -> SelinuxdDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for entry in os.scandir(self.drop_dir):
            stem, dot, extension = entry.name.rpartition(".")
            if entry.name.startswith(".") or not dot or not stem or not extension:
                continue
            if entry.is_file(follow_symlinks=False):
                found[stem] = Path(entry.path)
        return found

    def _watch(self) -> None:
        seen: dict[str, Path] = {}
        while not self._stop.is_set():
            files = self._files()
            for policy in sorted(set(seen) - set(files)):
                self._remove(policy)
                self.installs += 1
                with self._lock:
                    self._statuses.pop(policy, None)
            for policy, path in sorted(files.items()):
                try:
                    checksum = hashlib.sha512(path.read_bytes()).digest()
                except OSError:
                    continue
                known = self.statuses().get(policy)
                if known is not None and known.checksum == checksum:
                    continue
                ok, output = self._install(path)
                self.installs += 1
                msg = "" if ok else f"cannot install module: {path}\n{output}".rstrip()
                with self._lock:
                    self._statuses[policy] = _Status("Installed" if ok else "Failed", msg, checksum)
            seen = files
            self.ready.set()
            self._stop.wait(self.interval)
