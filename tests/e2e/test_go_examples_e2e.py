"""The Go operator's v0.8.4 examples (every kind but AppArmor) through the real API server and
our hooks, called as Metacontroller would (tests/helpers/go_examples.py rebuilds them).

Each example is applied with strict field validation (the API server refuses a field our CRDs
lack), in a namespace of its own; the spod example, which would change the install's own
spod, only with a server-side dry run. Then every object goes through its controller's hooks,
and every profile is reported installed by one node, as nodesync reports it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api import GROUP
from hooks.api.configmaps import PROFILE_WARNING_ANNOTATION
from tests.helpers.controlplane import ControlPlane
from tests.helpers.go_examples import (
    EXAMPLES,
    HIGH_RISK,
    HIGH_RISK_OTHER_ARCHES,
    Example,
    in_namespace,
)
from tests.helpers.metacontroller_step import CompositeStep

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent.parent
NODE = "node-go"
CONTROLLERS = {
    "SeccompProfile": ("seccompprofile-controller.yaml", "seccompprofile-controller"),
    "SelinuxProfile": ("selinuxprofile-controller.yaml", "selinuxprofile-controller"),
    "RawSelinuxProfile": ("selinuxprofile-controller.yaml", "rawselinuxprofile-controller"),
    "ProfileBinding": ("profilebinding-controller.yaml", "profilebinding-controller"),
    "ProfileRecording": ("profilerecording-controller.yaml", "profilerecording-controller"),
}
PROFILE_KINDS = ("SeccompProfile", "SelinuxProfile", "RawSelinuxProfile")
BY_FILE = {example.file: example for example in EXAMPLES}


def _controller(kind: str) -> dict[str, Any]:
    file, name = CONTROLLERS[kind]
    for doc in yaml.safe_load_all((REPO / "metacontroller" / "base" / file).read_text()):
        if doc and doc["metadata"]["name"] == name:
            return dict(doc)
    raise LookupError(name)


@pytest.fixture(scope="module")
def steps(installed: ControlPlane, hook_server: str) -> Iterator[dict[str, CompositeStep]]:
    namespaces = sorted({example.namespace for example in EXAMPLES})
    for namespace in namespaces:
        installed.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    yield {kind: CompositeStep(installed, hook_server, _controller(kind)) for kind in CONTROLLERS}
    for namespace in namespaces:
        installed.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _apply_strictly(plane: ControlPlane, obj: dict[str, Any], *extra: str) -> None:
    plane.kubectl(
        "apply", "--server-side", "--validate=strict", *extra, "-f", "-", input=json.dumps(obj)
    )


def _plural(kind: str) -> str:
    return f"{kind.lower()}s.{GROUP}"


def _get(plane: ControlPlane, kind: str, namespace: str, name: str) -> dict[str, Any]:
    return dict(plane.kubectl_json("get", _plural(kind), name, "-n", namespace))


def _report_installed(plane: ControlPlane, kind: str, namespace: str, profile: str) -> None:
    """What nodesync does once it installed ``profile``: its node status, created Installed."""
    name = f"{profile}-{NODE}"
    plane.apply(
        {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "SecurityProfileNodeStatus",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {
                    "spo.x-k8s.io/profile-id": f"{kind}-{profile}",
                    "spo.x-k8s.io/node-name": NODE,
                    "spo.x-k8s.io/profile-kind": kind,
                    "spo.x-k8s.io/profile-state": "Installed",
                },
            },
            "nodeName": NODE,
            "status": "Installed",
        }
    )


def _put(example: Example, steps: dict[str, CompositeStep]) -> dict[str, dict[str, Any]]:
    """Apply the example, sync each object, report its seccomp profiles installed, sync them
    again; the answers of the last syncs, by name."""
    plane = next(iter(steps.values())).plane
    objects = [in_namespace(obj, example.namespace) for obj in example.objects]
    for obj in objects:
        _apply_strictly(plane, obj)
    answers = {}
    for obj in objects:
        name, kind = obj["metadata"]["name"], obj["kind"]
        answers[name] = steps[kind].sync(example.namespace, name)
        if kind == "SeccompProfile" and answers[name]["status"]["status"] != "Error":
            _report_installed(plane, kind, example.namespace, name)
            answers[name] = steps[kind].sync(example.namespace, name)
    return answers


def _seccomp_examples() -> list[Example]:
    return [e for e in EXAMPLES if any(o["kind"] == "SeccompProfile" for o in e.objects)]


@pytest.mark.parametrize("example", _seccomp_examples(), ids=lambda e: e.id)
def test_seccomp_examples_are_installed_as_given(
    example: Example, steps: dict[str, CompositeStep]
) -> None:
    plane = steps["SeccompProfile"].plane
    answers = _put(example, steps)
    for obj in example.objects:
        name = obj["metadata"]["name"]
        status = _get(plane, "SeccompProfile", example.namespace, name)["status"]
        assert status["status"] == example.expected[name], (name, status)
        assert answers[name]["status"]["status"] == status["status"]
        configmap = plane.kubectl_json(
            "get", "configmap", f"seccomp-{name}", "-n", example.namespace
        )
        written = json.loads(configmap["data"]["profile.json"])
        wanted = {k: v for k, v in obj["spec"].items() if k != "baseProfileName"}
        assert written == wanted  # every name as given, those of other architectures too


def test_the_high_risk_example_warns_in_its_condition_and_its_configmap(
    steps: dict[str, CompositeStep],
) -> None:
    example = BY_FILE["seccompprofile.yaml"]
    plane = steps["SeccompProfile"].plane
    _put(example, steps)
    name = "profile-complain-block-high-risk"
    profile = _get(plane, "SeccompProfile", example.namespace, name)
    ready = profile["status"]["conditions"][0]
    assert (profile["status"]["status"], ready["reason"]) == ("Installed", "Available")
    listed = ", ".join(HIGH_RISK_OTHER_ARCHES)
    assert ready["message"].startswith(
        "installed on every node that reported; warning: spec.syscalls[1].names: "
    )
    assert ready["message"].endswith(f": {listed}")
    assert "SCMP_ARCH_X86_64" in ready["message"]
    configmap = plane.kubectl_json("get", "configmap", f"seccomp-{name}", "-n", example.namespace)
    refused = json.loads(configmap["data"]["profile.json"])["syscalls"][1]["names"]
    assert refused == HIGH_RISK
    # The warning goes to the nodes in the ConfigMap (accepted by the admission policy from
    # Metacontroller), for the Event each node emits on saving the profile
    # (tests/e2e/test_nodesync_e2e.py); the hooks make no Event themselves.
    warning = configmap["metadata"]["annotations"][PROFILE_WARNING_ANNOTATION]
    assert ready["message"] == f"installed on every node that reported; warning: {warning}"
    events = plane.kubectl_json(
        "get",
        "events",
        "-n",
        example.namespace,
        "--field-selector",
        f"involvedObject.name={name},involvedObject.kind=SeccompProfile",
    )["items"]
    assert events == []

    # Synced again, nothing changes: the same ConfigMap, the same condition.
    steps["SeccompProfile"].sync(example.namespace, name)
    again = plane.kubectl_json("get", "configmap", f"seccomp-{name}", "-n", example.namespace)
    assert again["metadata"]["resourceVersion"] == configmap["metadata"]["resourceVersion"]
    assert _get(plane, "SeccompProfile", example.namespace, name)["status"] == profile["status"]


@pytest.mark.parametrize(
    "example",
    [
        e
        for e in EXAMPLES
        if any(o["kind"] in ("SelinuxProfile", "RawSelinuxProfile") for o in e.objects)
    ],
    ids=lambda e: e.id,
)
def test_selinux_examples_are_accepted(example: Example, steps: dict[str, CompositeStep]) -> None:
    plane = steps["SelinuxProfile"].plane
    _put(example, steps)
    for obj in example.objects:
        name = obj["metadata"]["name"]
        status = _get(plane, obj["kind"], example.namespace, name)["status"]
        # SELinux is off in the install's spod: accepted, and Pending until it is on.
        assert status["status"] == example.expected[name], status
        ready = status["conditions"][0]
        assert ready["reason"] == "SelinuxDisabled", ready
        assert status["usage"] == f"{name}_{example.namespace}.process"


def test_the_binding_example_binds_the_profile_of_its_neighbour(
    steps: dict[str, CompositeStep],
) -> None:
    binding = BY_FILE["profilebinding.yaml"]
    assert binding.beside is not None
    _put(BY_FILE[binding.beside], steps)  # profile-allow-unsafe, installed
    answers = _put(binding, steps)
    ready = answers["profile-binding"]["status"]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("True", "Bound"), ready
    assert "new containers of image nginx:1.19.1" in ready["message"]


RECORDINGS = [e for e in EXAMPLES if e.objects[0]["kind"] == "ProfileRecording"]


@pytest.mark.parametrize("example", RECORDINGS, ids=lambda e: e.id)
def test_recording_examples_are_accepted(example: Example, steps: dict[str, CompositeStep]) -> None:
    plane = steps["ProfileRecording"].plane
    _put(example, steps)
    obj = example.objects[0]
    stored = _get(plane, "ProfileRecording", example.namespace, obj["metadata"]["name"])
    # Nothing pruned (containers, recorder, podSelector); mergeStrategy defaults to none.
    assert stored["spec"] == {"mergeStrategy": "none", **obj["spec"]}
    ready = stored["status"]["conditions"][0]
    if obj["spec"]["recorder"] == "bpf":
        # The BPF recorder is not available here (README, "Where this differs").
        assert ready["reason"] == "RecorderNotSupported", ready
    else:
        # Recording, or waiting for the logging profile the install brings (no node here).
        assert ready["reason"] in ("Recording", "LoggingProfileNotInstalled"), ready


def test_the_spod_example_is_accepted_as_it_is(steps: dict[str, CompositeStep]) -> None:
    plane = steps["SeccompProfile"].plane
    (spod,) = BY_FILE["config.yaml"].objects
    # A dry run: the install's own spod stays as the other tests left it.
    _apply_strictly(plane, spod, "--dry-run=server", "--force-conflicts")


def test_strict_validation_refuses_a_field_the_crds_lack(steps: dict[str, CompositeStep]) -> None:
    """The other tests mean something: a field our CRDs lack is refused, not pruned silently."""
    plane = steps["SeccompProfile"].plane
    (spod,) = BY_FILE["config.yaml"].objects
    unknown = {**spod, "spec": {**spod["spec"], "enableTelepathy": True}}
    done = plane.kubectl(
        "apply",
        "--server-side",
        "--validate=strict",
        "--dry-run=server",
        "--force-conflicts",
        "-f",
        "-",
        input=json.dumps(unknown),
        check=False,
    )
    assert done.returncode != 0 and "enableTelepathy" in done.stderr, done
