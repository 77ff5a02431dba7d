"""What the recording end-to-end tests share: the log enricher as a process, the recording
webhook of a namespace, recorded containers under runc, and the hooks that turn a recorded
profile into the bytes a node installs.

A test module makes its own namespace and recordings with :func:`recording_webhook` (a
module fixture: the MutatingWebhookConfiguration is a cluster singleton that each module
registers on entry and deletes on exit, so the modules run one after the other), and runs
each recorded pod's container as a real runc container in the cgroup the kubelet's cgroupfs
driver would give it (:class:`RecordedContainer`), reporting the pod's status as the kubelet
would. Every wait polls against a deadline (:func:`nodesync_process.eventually`, or
:func:`until` while no enricher runs to watch).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from hooks.api import GROUP
from hooks.api.seccompprofile import SeccompProfileSpec
from hooks.cluster.seccomp.oci import encode, runtime_profile
from tests.helpers.auditd import AUDIT_LOG
from tests.helpers.controlplane import ControlPlane
from tests.helpers.metacontroller_step import CompositeStep
from tests.helpers.nodesync_process import NODE, NodeSync, eventually
from tests.helpers.runc_bundle import Bundle, Run, localhost_seccomp
from tests.helpers.webhook_server import (
    CONFIGURATION,
    OPERATOR_NS,
    REPO,
    WebhookServer,
    create,
    decorator_step,
    serving_webhooks,
    with_status,
)

PROFILES = f"seccompprofiles.{GROUP}"
RECORDINGS = f"profilerecordings.{GROUP}"
RECORDING_LABEL = "spo.x-k8s.io/recording-id"
CONTAINER_LABEL = "spo.x-k8s.io/container-id"
PARTIAL_LABEL = "spo.x-k8s.io/partial"
CONTAINER = "work"
DEADLINE = 60.0
SLEEPS = frozenset({"nanosleep", "clock_nanosleep"})  # what busybox's sleep waits with
T = TypeVar("T")


class LogEnricher(NodeSync):
    """``spo log-enricher`` as a process; its JSON lines (enriched records and logs) in a file."""

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "hooks.command.cli",
            "log-enricher",
            "--kubeconfig",
            str(self.kubeconfig),
            "--node-name",
            self.node,
            "--metrics-bind",
            f"127.0.0.1:{self.port}",
            "--audit-log",
            str(AUDIT_LOG),
            "--finish-delay",
            "1",
            *self.extra,
        ]

    def audit_lines(self, pod_name: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("msg") == "audit" and r.get("pod") == pod_name]

    def syscalls(self, pod_name: str) -> set[str]:
        """The names of the syscalls this enricher told for ``pod_name`` so far."""
        return {str(line.get("syscallName")) for line in self.audit_lines(pod_name)}

    def ready(self) -> None:
        try:
            code, body = self.get("/readyz")
        except OSError as error:  # not listening yet
            raise AssertionError(f"/readyz: {error}") from None
        assert code == 200, f"/readyz: {code} {body}"

    def crash(self) -> None:
        """SIGKILL: no signal handler runs, nothing is saved on the way out."""
        assert self.proc is not None
        self.proc.kill()
        assert self.proc.wait(timeout=15) == -signal.SIGKILL


def until(what: str, check: Callable[[], T], timeout: float = DEADLINE) -> T:
    """Call ``check`` until it returns without AssertionError, while no enricher runs to watch."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not so after {timeout:.0f}s: {error}") from None
        time.sleep(0.05)


def started(agent: LogEnricher) -> LogEnricher:
    agent.start()
    eventually("the log enricher is ready", agent.ready, agent)
    return agent


def enricher_kubeconfig(plane: ControlPlane) -> Path:
    """A kubeconfig with a token of the install's ``spo-log-enricher`` ServiceAccount."""
    return plane.service_account_kubeconfig(OPERATOR_NS, "spo-log-enricher", create=False)


def recording(namespace: str, name: str, app: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ProfileRecording",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "kind": "SeccompProfile",
            "recorder": "logs",
            "podSelector": {"matchLabels": {"app": app}},
            **spec,
        },
    }


def set_pod_status(plane: ControlPlane, namespace: str, name: str, status: dict[str, Any]) -> None:
    with_status(plane, "pods", namespace, name, status)


def container_status(
    container_id: str, state: dict[str, Any], name: str = CONTAINER
) -> dict[str, Any]:
    return {
        "name": name,
        "containerID": f"containerd://{container_id}",
        "image": "busybox:1.36",
        "imageID": "",
        "ready": "running" in state,
        "restartCount": 0,
        "state": state,
    }


def profile_of(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    got = plane.kubectl("get", PROFILES, name, "-n", namespace, "-o", "json", check=False)
    assert got.returncode == 0, f"no SeccompProfile {namespace}/{name} yet: {got.stderr.strip()}"
    found: dict[str, Any] = json.loads(got.stdout)
    return found


def profiles_of(
    plane: ControlPlane, namespace: str, recording_name: str
) -> dict[str, dict[str, Any]]:
    """The SeccompProfiles labelled as recorded by ``recording_name``, by name."""
    items = plane.kubectl_json(
        "get", PROFILES, "-n", namespace, "-l", f"{RECORDING_LABEL}={recording_name}"
    )["items"]
    return {item["metadata"]["name"]: item for item in items}


def allowed(profile: dict[str, Any]) -> list[str]:
    """The names of the profile's one rule, which must allow."""
    [rule] = profile["spec"]["syscalls"]
    assert rule["action"] == "SCMP_ACT_ALLOW", rule
    names: list[str] = rule["names"]
    return names


@contextmanager
def recording_webhook(
    plane: ControlPlane, folder: Path, namespace: str, recordings: list[dict[str, Any]]
) -> Iterator[WebhookServer]:
    """``namespace`` labelled for recording, the logging profile Installed, ``recordings`` applied,
    and the webhooks served and registered; the configuration and the namespace go on exit."""
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"spo.x-k8s.io/enable-recording": ""}},
        }
    )
    plane.kubectl(
        "apply",
        "--server-side",
        "-f",
        str(REPO / "metacontroller" / "base" / "recording-profile.yaml"),
    )
    localhost = f"operator/{OPERATOR_NS}/log-enricher-trace.json"
    with_status(
        plane,
        PROFILES,
        OPERATOR_NS,
        "log-enricher-trace",
        {"status": "Installed", "localhostProfile": localhost},
    )
    for manifest in recordings:
        plane.apply(manifest)
    try:
        with serving_webhooks(folder, plane) as server:
            # registers the webhook configuration (the server listed the recordings: ready)
            decorator_step(plane, server)
            yield server
    finally:
        plane.kubectl(
            "delete",
            "mutatingwebhookconfiguration",
            CONFIGURATION,
            "--ignore-not-found",
            check=False,
        )
        plane.kubectl(
            "delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False
        )


def logging_profile_file(kubelet: Path, localhost: str) -> None:
    """What nodesync installs for the logging profile: the bytes of its ConfigMap."""
    manifest = yaml.safe_load(
        (REPO / "metacontroller" / "base" / "recording-profile.yaml").read_text()
    )
    path = kubelet / "seccomp" / localhost
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(encode(runtime_profile(SeccompProfileSpec.model_validate(manifest["spec"]))))


@contextmanager
def trusting(server: WebhookServer) -> Iterator[None]:
    """urllib's default context trusts the webhooks' CA (CompositeStep posts with it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(server.ca))
        yield


def controller_step(plane: ControlPlane, server: WebhookServer, controller: str) -> CompositeStep:
    """A hand-driven step of the CompositeController in
    ``metacontroller/base/<controller>.yaml``."""
    manifest = yaml.safe_load((REPO / "metacontroller" / "base" / f"{controller}.yaml").read_text())
    return CompositeStep(plane, server.hooks, manifest)


def installed_bytes(
    plane: ControlPlane, server: WebhookServer, namespace: str, name: str
) -> dict[str, Any]:
    """One sync of the SeccompProfile controller; the runtime profile of the ConfigMap it made."""
    step = controller_step(plane, server, "seccompprofile-controller")
    with trusting(server):
        answer = step.sync(namespace, name)
    assert answer["status"]["status"] != "Error", answer["status"]
    configmap = plane.kubectl_json("get", "configmap", f"seccomp-{name}", "-n", namespace)
    loaded: dict[str, Any] = json.loads(configmap["data"]["profile.json"])
    return loaded


def on_runc_base(
    plane: ControlPlane, server: WebhookServer, namespace: str, name: str
) -> dict[str, Any]:
    """The profile ``name`` built on the runc base profile (``baseProfileName``), as a node gets
    it."""
    base = yaml.safe_load((REPO / "examples" / "base-profiles" / "runc-v1.1.5.yaml").read_text())
    base["metadata"]["namespace"] = namespace
    plane.apply(base)
    patch = json.dumps({"spec": {"baseProfileName": base["metadata"]["name"]}})
    plane.kubectl("patch", PROFILES, name, "-n", namespace, "--type=merge", "-p", patch)
    return installed_bytes(plane, server, namespace, name)


class RecordedContainer:
    """A recorded pod created through the webhook, and its container run by runc in the background.

    The pod is created from ``manifest`` (``metadata.name`` or ``generateName``); its container
    runs under the logging profile the webhook gave it, as the runtime reads it from the kubelet's
    seccomp root, in the cgroup ``/kubepods/besteffort/pod<uid>/<id>``; the pod's status says
    Running with that container id, then (:meth:`succeeded`) Succeeded, as the kubelet would.
    """

    def __init__(
        self,
        plane: ControlPlane,
        namespace: str,
        manifest: dict[str, Any],
        bundle: Bundle,
        kubelet: Path,
    ) -> None:
        self.plane = plane
        self.namespace = namespace
        self.bundle = bundle
        self.pod, _ = create(plane, namespace, manifest)
        self.name: str = self.pod["metadata"]["name"]
        self.container_id = uuid.uuid4().hex + uuid.uuid4().hex
        seccomp = self.pod["spec"]["containers"][0]["securityContext"]["seccompProfile"]
        assert seccomp["type"] == "Localhost", seccomp
        logging_profile_file(kubelet, seccomp["localhostProfile"])
        self.runtime = localhost_seccomp(kubelet, seccomp["localhostProfile"])
        assert self.runtime["defaultAction"] == "SCMP_ACT_LOG"
        bundle.config["linux"]["cgroupsPath"] = (
            f"/kubepods/besteffort/pod{self.pod['metadata']['uid']}/{self.container_id}"
        )
        self._result: list[Run] = []
        self._runner: threading.Thread | None = None

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.pod["metadata"].get("annotations") or {})

    def start(self, args: list[str]) -> None:
        """The pod is Running and its container runs ``args``."""
        set_pod_status(
            self.plane,
            self.namespace,
            self.name,
            {
                "phase": "Running",
                "containerStatuses": [container_status(self.container_id, {"running": {}})],
            },
        )
        self._runner = threading.Thread(
            target=lambda: self._result.append(self.bundle.run(args, self.runtime))
        )
        self._runner.start()

    def running(self) -> bool:
        return self._runner is not None and self._runner.is_alive()

    def wait(self) -> Run:
        """The container's run, once it is over (a hang is a failure)."""
        assert self._runner is not None
        self._runner.join(DEADLINE)
        assert not self._runner.is_alive(), (
            f"the container of {self.name} still runs after {DEADLINE:.0f}s"
        )
        assert self._result, f"runc did not report on the container of {self.name}"
        return self._result[0]

    def succeeded(self) -> None:
        set_pod_status(
            self.plane,
            self.namespace,
            self.name,
            {
                "phase": "Succeeded",
                "containerStatuses": [
                    container_status(self.container_id, {"terminated": {"exitCode": 0}})
                ],
            },
        )


def recorded_pod(name: str, app: str, *, generate: bool = False) -> dict[str, Any]:
    """A one-container busybox pod of this node; ``generate``: named from
    ``generateName: <name>``."""
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": name} if generate else {"name": name},
        "spec": {
            "containers": [{"name": CONTAINER, "image": "busybox:1.36"}],
            "nodeName": NODE,
            "restartPolicy": "Never",
        },
    }
    manifest["metadata"]["labels"] = {"app": app}
    return manifest
