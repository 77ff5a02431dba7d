"""The recording webhook, called by the real kube-apiserver over HTTPS, and the
ProfileRecording controller.

The server (``spo webhook``, its tables kept from its own watches), the certificate, the
Service route and the decorator step are the binding e2e's (``tests.helpers.webhook_server``):
the configuration the namespace decorator computes is attached as it is and the CA injector's
stand-in fills in its ``caBundle``. The logging profile of the install
(metacontroller/recording-profile.yaml) is applied and reported Installed, as nodesync would
report it.

Pods are created in a namespace labelled ``spo.x-k8s.io/enable-recording``
and, as a control, the same pod in an unlabelled namespace: the difference
between the two stored pods is exactly what the webhook changed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from hooks.api import GROUP
from tests.helpers.controlplane import ControlPlane
from tests.helpers.metacontroller_step import CompositeStep
from tests.helpers.pod_usage import label_pods
from tests.helpers.webhook_server import (
    CONFIGURATION,
    OPERATOR_NS,
    REPO,
    WebhookServer,
    changes,
    create,
    decorator_step,
    pod,
    serving_webhooks,
    wait_admitted,
    with_status,
)

pytestmark = pytest.mark.e2e
RECORDING_NS = "rec-e2e"
PLAIN_NS = "rec-e2e-plain"
LOGGING = {
    "type": "Localhost",
    "localhostProfile": "operator/security-profiles-operator/log-enricher-trace.json",
}
SELINUX_TYPE = "selinuxrecording.process"
PROFILES = f"seccompprofiles.{GROUP}"
RECORDINGS = f"profilerecordings.{GROUP}"


@pytest.fixture(scope="module")
def webhook(
    installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookServer]:
    try:
        with serving_webhooks(tmp_path_factory.mktemp("recording-webhook"), installed) as server:
            yield server
    finally:
        installed.kubectl(
            "delete",
            "mutatingwebhookconfiguration",
            CONFIGURATION,
            "--ignore-not-found",
            check=False,
        )
        for namespace in (RECORDING_NS, PLAIN_NS):
            installed.kubectl(
                "delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False
            )


def _recording(name: str, kind: str, labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ProfileRecording",
        "metadata": {"name": name, "namespace": RECORDING_NS},
        "spec": {"kind": kind, "recorder": "logs", "podSelector": {"matchLabels": labels}, **spec},
    }


@pytest.fixture(scope="module")
def recording(installed: ControlPlane, webhook: WebhookServer) -> ControlPlane:
    plane = installed
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": RECORDING_NS, "labels": {"spo.x-k8s.io/enable-recording": ""}},
        }
    )
    plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLAIN_NS}})
    plane.kubectl(
        "apply",
        "--server-side",
        "-f",
        str(REPO / "metacontroller" / "base" / "recording-profile.yaml"),
    )
    with_status(
        plane,
        PROFILES,
        OPERATOR_NS,
        "log-enricher-trace",
        {"status": "Installed", "localhostProfile": LOGGING["localhostProfile"]},
    )
    plane.apply(_recording("web-recording", "SeccompProfile", {"app": "web"}, containers=["app"]))
    plane.apply(_recording("web-selinux", "SelinuxProfile", {"app": "web"}))
    plane.apply(_recording("bpf-recording", "SeccompProfile", {"app": "bpf"}, recorder="bpf"))
    answer = decorator_step(plane, webhook)
    assert [a["kind"] for a in answer["attachments"]] == ["MutatingWebhookConfiguration"]
    probe = pod("probe", [{"name": "app", "image": "nginx:1.27"}], labels={"app": "web"})
    got = wait_admitted(plane, RECORDING_NS, probe, lambda p: len(_ids(p)) == 2)
    assert len(_ids(got)) == 2  # the webhook's watches have seen both recordings
    return plane


def _ids(stored: dict[str, Any]) -> dict[str, str]:
    return {
        k: v
        for k, v in (stored["metadata"].get("annotations") or {}).items()
        if k.startswith("io.containers.")
    }


def test_selected_pod_is_annotated_and_runs_under_the_logging_profiles(
    recording: ControlPlane,
) -> None:
    manifest = pod(
        "web",
        [{"name": "app", "image": "nginx:1.27"}, {"name": "sidecar", "image": "busybox:1.36"}],
        labels={"app": "web"},
    )
    changed, stored, warnings = changes(recording, manifest, RECORDING_NS, PLAIN_NS)
    assert changed == {
        "/containers/0/securityContext/seccompProfile/type": "Localhost",
        "/containers/0/securityContext/seccompProfile/localhostProfile": LOGGING[
            "localhostProfile"
        ],
        "/containers/0/securityContext/seLinuxOptions/type": SELINUX_TYPE,
        "/containers/1/securityContext/seLinuxOptions/type": SELINUX_TYPE,
    }
    assert "Warning" not in warnings
    ids = _ids(stored)
    assert set(ids) == {
        "io.containers.trace-logs/app",
        "io.containers.trace-avcs/app",
        "io.containers.trace-avcs/sidecar",
    }
    parts = {key: value.split("_") for key, value in ids.items()}
    assert parts["io.containers.trace-logs/app"][:2] == ["web-recording", "app"]
    assert parts["io.containers.trace-avcs/sidecar"][:2] == ["web-selinux", "sidecar"]
    assert len({tuple(p[2:]) for p in parts.values()}) == 1, "one admission request, one uid"
    assert all(len(p) == 4 for p in parts.values())


def test_each_pod_gets_its_own_recording_id(recording: ControlPlane) -> None:
    first, _ = create(
        recording,
        RECORDING_NS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "web-", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
        },
    )
    second, _ = create(
        recording,
        RECORDING_NS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "web-", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
        },
    )
    one, two = (
        _ids(first)["io.containers.trace-logs/app"],
        _ids(second)["io.containers.trace-logs/app"],
    )
    assert one.startswith("web-recording_app_") and two.startswith("web-recording_app_")
    assert one != two


def test_overriding_the_users_security_context_is_warned(recording: ControlPlane) -> None:
    own = {
        "seccompProfile": {"type": "RuntimeDefault"},
        "seLinuxOptions": {"type": "container_t", "level": "s0:c1,c2"},
    }
    manifest = pod(
        "own",
        [{"name": "app", "image": "nginx:1.27", "securityContext": own}],
        labels={"app": "web"},
    )
    changed, _, warnings = changes(recording, manifest, RECORDING_NS, PLAIN_NS)
    assert changed == {
        "/containers/0/securityContext/seccompProfile/type": "Localhost",
        "/containers/0/securityContext/seccompProfile/localhostProfile": LOGGING[
            "localhostProfile"
        ],
        "/containers/0/securityContext/seLinuxOptions/type": SELINUX_TYPE,
    }
    assert (
        "Warning: spo: recording 'web-recording' replaces the seccomp profile of container 'app' "
        "with the logging profile" in warnings
    )
    assert (
        "Warning: spo: recording 'web-selinux' replaces the SELinux type 'container_t' "
        "of container 'app'" in warnings
    )


def test_unselected_pod_and_unlabelled_namespace_are_untouched(recording: ControlPlane) -> None:
    changed, stored, warnings = changes(
        recording,
        pod("db", [{"name": "app", "image": "redis:7"}], labels={"app": "db"}),
        RECORDING_NS,
        PLAIN_NS,
    )
    assert changed == {}
    assert _ids(stored) == {}
    assert "Warning" not in warnings
    plain, plain_warnings = create(
        recording,
        PLAIN_NS,
        pod("plain-only", [{"name": "app", "image": "nginx:1.27"}], labels={"app": "web"}),
    )
    assert "securityContext" not in plain["spec"]["containers"][0]
    assert _ids(plain) == {}
    assert "Warning" not in plain_warnings


def test_bpf_recording_is_skipped_with_a_warning(recording: ControlPlane) -> None:
    stored, warnings = create(
        recording,
        RECORDING_NS,
        pod("bpf", [{"name": "app", "image": "nginx:1.27"}], labels={"app": "bpf"}),
    )
    assert _ids(stored) == {}
    assert (
        "Warning: spo: recording 'bpf-recording' skipped: "
        "the bpf recorder is not available in this operator" in warnings
    )


def test_update_is_not_mutated(recording: ControlPlane) -> None:
    before, _ = create(
        recording,
        RECORDING_NS,
        pod("late", [{"name": "app", "image": "nginx:1.27"}], labels={"app": "later"}),
    )
    recording.kubectl("label", "pod", "late", "-n", RECORDING_NS, "app=web", "--overwrite")
    after = recording.kubectl_json("get", "pod", "late", "-n", RECORDING_NS)
    assert after["metadata"]["labels"]["app"] == "web"
    assert after["spec"] == before["spec"]
    assert _ids(after) == {}


def test_registered_configuration_routes_recording_to_the_recording_webhook(
    recording: ControlPlane,
) -> None:
    stored = recording.kubectl_json("get", "mutatingwebhookconfiguration", CONFIGURATION)
    hook = {w["name"]: w for w in stored["webhooks"]}["recording.spo.io"]
    assert hook["clientConfig"]["service"]["path"] == "/mutate-v1-pod-recording"
    assert hook["namespaceSelector"] == {
        "matchExpressions": [{"key": "spo.x-k8s.io/enable-recording", "operator": "Exists"}]
    }
    assert hook["rules"][0]["operations"] == ["CREATE"]


def test_a_new_recording_applies_to_a_pod_created_at_once(recording: ControlPlane) -> None:
    """``kubectl apply`` of a ProfileRecording, then at once a pod it selects: the pod is
    recorded, within a second of the recording's creation."""
    started = time.monotonic()
    recording.apply(_recording("fresh-recording", "SeccompProfile", {"app": "fresh"}))
    stored, _ = create(
        recording,
        RECORDING_NS,
        pod("fresh", [{"name": "app", "image": "nginx:1.27"}], labels={"app": "fresh"}),
    )
    took = time.monotonic() - started
    assert set(_ids(stored)) == {"io.containers.trace-logs/app"}
    assert _ids(stored)["io.containers.trace-logs/app"].startswith("fresh-recording_app_")
    assert stored["spec"]["containers"][0]["securityContext"]["seccompProfile"] == LOGGING
    assert took < 1.0, f"recording to recorded pod took {took:.2f} s"


def _recorded_profile(plane: ControlPlane, container: str) -> None:
    """What the recorder writes when a recorded container stops (labels of the Go operator)."""
    plane.apply(
        {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "SeccompProfile",
            "metadata": {
                "name": f"web-recording-{container}",
                "namespace": RECORDING_NS,
                "labels": {
                    "spo.x-k8s.io/recording-id": "web-recording",
                    "spo.x-k8s.io/container-id": container,
                },
            },
            "spec": {"defaultAction": "SCMP_ACT_ERRNO"},
        }
    )


def test_recording_status_and_deletion_waits_for_collection(
    recording: ControlPlane, webhook: WebhookServer
) -> None:
    manifest = yaml.safe_load(
        (REPO / "metacontroller" / "base" / "profilerecording-controller.yaml").read_text()
    )
    step = CompositeStep(recording, webhook.hooks, manifest)
    create(
        recording,
        RECORDING_NS,
        pod(
            "job",
            [{"name": "app", "image": "nginx:1.27"}],
            labels={"app": "web"},
            restartPolicy="Never",
        ),
    )
    label_pods(recording, webhook.hooks, RECORDING_NS)  # spo-pod-usage
    step.add_finalizer(RECORDING_NS, "web-recording")
    step.sync(RECORDING_NS, "web-recording")
    status = recording.kubectl_json("get", RECORDINGS, "web-recording", "-n", RECORDING_NS)[
        "status"
    ]
    assert {"job", "web", "own"} <= set(status["activeWorkloads"])
    assert not {"db", "bpf", "late"} & set(status["activeWorkloads"])
    assert status["conditions"][0]["reason"] == "Recording"

    recording.kubectl("delete", RECORDINGS, "web-recording", "-n", RECORDING_NS, "--wait=false")
    assert step.sync(RECORDING_NS, "web-recording")["finalized"] is False

    # The job's container stops; until the recorder has written its profile, the recording
    # stays.
    job = recording.kubectl_json("get", "pod", "job", "-n", RECORDING_NS)
    job["status"] = {"phase": "Succeeded"}
    recording.kubectl("replace", "--subresource=status", "-f", "-", input=json.dumps(job))
    for name in status["activeWorkloads"]:
        if name != "job":
            recording.kubectl(
                "delete",
                "pod",
                name,
                "-n",
                RECORDING_NS,
                "--grace-period=0",
                "--force",
                check=False,
            )
    answer = step.sync(RECORDING_NS, "web-recording")
    assert answer["finalized"] is False
    assert "job/app" in answer["status"]["conditions"][0]["message"]

    _recorded_profile(recording, "app")
    assert step.sync(RECORDING_NS, "web-recording")["finalized"] is True
    gone = recording.kubectl("get", RECORDINGS, "web-recording", "-n", RECORDING_NS, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
