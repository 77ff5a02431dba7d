"""The project's servers run as its manifests run them, for the benchmarks that weigh them: the
hooks pod (metacontroller/base/hooks.yaml: the ``hooks`` container and the ``metrics``
container) and the webhook pod (metacontroller/base/webhook.yaml), each with the command line
of its container, but for where it listens and where its certificate and credentials are.

The command lines are read from the manifests, so that what is measured is what is deployed:
a change of ``--workers`` there is a change here.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.controlplane import ControlPlane, make_pki
from tests.helpers.hookserver import free_port, serving

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "metacontroller" / "base"
OPERATOR_NS = "security-profiles-operator"
# the flags each container gets anew here (where it listens, its certificate, its folders)
PLACED = ("--bind", "--probes", "--certfile", "--keyfile", "--metrics-dir")


def container(manifest: str, name: str) -> dict[str, Any]:
    """The container ``name`` of the Deployment in ``metacontroller/base/<manifest>``."""
    for doc in yaml.safe_load_all((MANIFESTS / manifest).read_text()):
        if doc and doc.get("kind") == "Deployment":
            for found in doc["spec"]["template"]["spec"]["containers"]:
                if found["name"] == name:
                    return dict(found)
    raise LookupError(f"no container {name} in {manifest}")


def deployed_flags(manifest: str, name: str) -> list[str]:
    """The container's ``spo`` arguments after the subcommand, without the ``PLACED`` ones."""
    spec = container(manifest, name)
    words = [*spec.get("command", [])[2:], *spec.get("args", [])]
    flags: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in PLACED:
            skip = True
        elif not word.startswith(tuple(f"{flag}=" for flag in PLACED)):
            flags.append(word)
    return flags


def _spo(*args: str) -> list[str]:
    return [sys.executable, "-m", "hooks.command.cli", *args]


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PROMETHEUS_MULTIPROC_DIR", "KUBECONFIG", "WATCH_NAMESPACE"}
    }
    return {**env, "PYTHONPATH": str(ROOT), **extra}


@dataclass
class HooksPod:
    base: str  # the hooks container (HTTP), as Metacontroller calls it
    hooks_pid: int  # its gunicorn master
    metrics_pid: int | None  # the metrics container's process, if it runs
    metrics_url: str | None
    context: ssl.SSLContext | None

    def scrape(self, token: str) -> int:
        """One read of the metrics container's /metrics, as Prometheus does it: the answer's
        status."""
        if self.metrics_url is None:
            return 0
        request = urllib.request.Request(
            self.metrics_url, headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as answer:
                answer.read()
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)


@contextlib.contextmanager
def hooks_pod(plane: ControlPlane | None, folder: Path) -> Iterator[HooksPod]:
    """The hooks container on 127.0.0.1 (HTTP) and, given ``plane``, the metrics container
    beside it over HTTPS (a certificate for 127.0.0.1, the ServiceAccount ``spo-hooks``'s token
    for its token reviews), sharing the folder of the hooks' numbers as the pod's /tmp does."""
    shared = folder / "metrics"  # the hooks container's PROMETHEUS_MULTIPROC_DIR
    port = free_port()
    hooks = _spo("hooks", "--bind", f"127.0.0.1:{port}", *deployed_flags("hooks.yaml", "hooks"))
    base = f"http://127.0.0.1:{port}"
    with serving(hooks, base, env=_env(PROMETHEUS_MULTIPROC_DIR=str(shared)), cwd=ROOT) as main:
        if plane is None:
            yield HooksPod(base, main.pid, None, None, None)
            return
        with _https_spo(
            plane,
            folder / "pki",
            "spo-hooks",
            "hooks-metrics",
            [f"--metrics-dir={shared}", *deployed_flags("hooks.yaml", "metrics")],
            probes=True,
        ) as (side, url, context):
            yield HooksPod(base, main.pid, side.pid, f"{url}/metrics", context)


@contextlib.contextmanager
def _https_spo(
    plane: ControlPlane,
    pki_folder: Path,
    account: str,
    command: str,
    flags: list[str],
    *,
    served: str | None = None,
    kubeconfig_flag: bool = False,
    probes: bool = False,
) -> Iterator[tuple[subprocess.Popen[bytes], str, ssl.SSLContext]]:
    """``spo <command> <flags>`` over HTTPS on 127.0.0.1 (a certificate of its own), as the
    operator namespace's ServiceAccount ``account``, its numbers in ``served`` if given; ready
    once it answers (on a plain port of its own with ``probes``). The process, its URL and a
    context that trusts it."""
    pki = make_pki(pki_folder)
    kubeconfig = plane.service_account_kubeconfig(OPERATOR_NS, account, create=False)
    port, probes_port = free_port(), free_port()
    argv = _spo(
        command,
        f"--bind=127.0.0.1:{port}",
        *([f"--probes=127.0.0.1:{probes_port}"] if probes else []),
        f"--certfile={pki.serving_cert}",
        f"--keyfile={pki.serving_key}",
        *([f"--kubeconfig={kubeconfig}"] if kubeconfig_flag else []),
        *flags,
    )
    numbers = {"PROMETHEUS_MULTIPROC_DIR": served} if served else {}
    env = _env(KUBECONFIG=str(kubeconfig), **numbers)
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    url = f"https://127.0.0.1:{port}"
    ready_at = f"http://127.0.0.1:{probes_port}" if probes else url
    with serving(argv, ready_at, env=env, cwd=ROOT, context=context) as process:
        yield process, url, context


@contextlib.contextmanager
def webhook_pod(plane: ControlPlane, folder: Path) -> Iterator[int]:
    """``spo webhook`` over HTTPS on 127.0.0.1 with the ServiceAccount ``spo-webhook``'s token,
    watching every namespace; ready once its tables are loaded. Its gunicorn master's pid."""
    with (
        tempfile.TemporaryDirectory(prefix="spo-webhook-metrics-") as numbers,
        _https_spo(
            plane,
            folder / "webhook-pki",
            "spo-webhook",
            "webhook",
            deployed_flags("webhook.yaml", "webhook"),
            served=numbers,
            kubeconfig_flag=True,
        ) as (process, _, _),
    ):
        yield process.pid


def reader_token(plane: ControlPlane) -> str:
    """A token of the operator namespace's ``default`` ServiceAccount, which may read the
    metrics (metacontroller/base/metrics.yaml); created first (no controller makes it here)."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount"}
    plane.apply({**account, "metadata": {"name": "default", "namespace": OPERATOR_NS}})
    return str(plane.kubectl("create", "token", "default", "-n", OPERATOR_NS).stdout.strip())
