"""A stand-in API server for ``spo webhook`` where no real one runs (unit tests, the bench):
it answers lists of the four watched kinds from fixed objects and holds each watch open,
empty, for a few seconds, as an idle watch is.

``objects`` maps a plural (``profilebindings``...) to its items; ``kubeconfig`` writes a
kubeconfig that points at the server without credentials.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from hooks.cluster.binding import table as binding_table
from hooks.cluster.webhook.tables import WATCHED

WATCH_SECONDS = 2.0


@dataclass
class FakeApiServer:
    url: str
    lists: list[str]

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path


@contextmanager
def fake_apiserver(objects: Mapping[str, list[dict[str, Any]]]) -> Iterator[FakeApiServer]:
    lists: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            plural = url.path.rstrip("/").rsplit("/", 1)[-1]
            if query.get("watch") == ["true"]:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                time.sleep(WATCH_SECONDS)  # an idle watch, then the server ends it
                return
            lists.append(plural)
            body = json.dumps(
                {"items": list(objects.get(plural, [])), "metadata": {"resourceVersion": "1"}}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeApiServer(f"http://127.0.0.1:{server.server_address[1]}", lists)
    finally:
        server.shutdown()
        server.server_close()


def objects_of(table: binding_table.BindingTable) -> dict[str, list[dict[str, Any]]]:
    """The ProfileBindings, SeccompProfiles and SelinuxProfiles whose resolved table is
    ``table``; every kind present, empty or not."""
    out: dict[str, list[dict[str, Any]]] = {kind.plural: [] for kind in WATCHED}
    seen: set[tuple[str, str]] = set()
    order = 0
    for namespace, images in table.namespaces.items():
        for image, entries in images.items():
            for entry in entries:
                order += 1
                out["profilebindings"].append(
                    {
                        "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha1",
                        "kind": "ProfileBinding",
                        "metadata": {
                            "name": entry.binding,
                            "namespace": namespace,
                            "creationTimestamp": f"2026-01-01T00:{order // 60 % 60:02}:"
                            f"{order % 60:02}Z",
                        },
                        "spec": {
                            "profileRef": {"kind": entry.kind, "name": entry.profile},
                            "image": image,
                        },
                    }
                )
                if (
                    entry.kind,
                    namespace,
                    entry.profile,
                ) in seen or entry.state == binding_table.MISSING:
                    continue
                seen.add((entry.kind, namespace, entry.profile))
                if entry.kind == binding_table.SECCOMP:
                    out["seccompprofiles"].append(
                        {
                            "apiVersion": "security-profiles-operator.x-k8s.io/v1beta1",
                            "kind": "SeccompProfile",
                            "metadata": {"name": entry.profile, "namespace": namespace},
                            "spec": {"defaultAction": "SCMP_ACT_ERRNO"},
                            "status": {"status": entry.state, "localhostProfile": entry.value},
                        }
                    )
                else:
                    out["selinuxprofiles"].append(
                        {
                            "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha2",
                            "kind": "SelinuxProfile",
                            "metadata": {"name": entry.profile, "namespace": namespace},
                            "spec": {},
                            "status": {"status": entry.state, "usage": entry.value},
                        }
                    )
    return out
