"""The labels saying what a pod uses (hooks.cluster.podusage) and the rules that select on them."""

from __future__ import annotations

from typing import Any

from hooks.api.nodestatuslabels import profile_id
from hooks.cluster import podusage
from hooks.cluster.app import create_app

NS = "team-a"


def pod(
    *contexts: dict[str, Any],
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    containers = [{"name": f"c{i}", "securityContext": c} for i, c in enumerate(contexts)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": NS,
            "annotations": annotations or {},
            "labels": labels or {},
        },
        "spec": {"containers": containers},
    }


def seccomp(path: str) -> dict[str, Any]:
    return {"seccompProfile": {"type": "Localhost", "localhostProfile": path}}


def test_a_pod_is_labelled_with_the_profiles_of_its_namespace_it_uses() -> None:
    used = pod(
        seccomp(f"operator/{NS}/web.json"),
        seccomp("operator/other/theirs.json"),  # another namespace's: not this namespace's
        seccomp("my-own.json"),  # not the operator's
        {"seLinuxOptions": {"type": f"pol_{NS}.process"}},
        {"seLinuxOptions": {"type": "container_t"}},
        annotations={
            "seccomp.security.alpha.kubernetes.io/pod": f"localhost/operator/{NS}/legacy.json",
            "io.containers.trace-logs/c0": "rec_c0_abcde_fghij",
        },
    )
    assert podusage.used(used) == {
        "uses.spo.x-k8s.io/SeccompProfile-web",
        "uses.spo.x-k8s.io/SeccompProfile-legacy",
        "uses.spo.x-k8s.io/SelinuxProfile-pol",
        "uses.spo.x-k8s.io/RawSelinuxProfile-pol",
        "uses.spo.x-k8s.io/ProfileRecording-rec",
    }
    assert podusage.used(pod({})) == set()


def test_sync_sets_what_the_pod_uses_and_removes_the_rest_of_its_prefix() -> None:
    forged = pod(
        seccomp(f"operator/{NS}/web.json"),
        labels={
            "app": "web",
            "uses.spo.x-k8s.io/SeccompProfile-other": "true",
            "uses.spo.x-k8s.io/SeccompProfile-web": "true",
        },
    )
    assert podusage.sync(forged).to_wire() == {
        "labels": {
            "uses.spo.x-k8s.io/SeccompProfile-web": "true",
            "uses.spo.x-k8s.io/SeccompProfile-other": None,
        }
    }


def test_a_long_name_is_labelled_as_the_controllers_select_it() -> None:
    name = "n" * 200
    key = next(iter(podusage.used(pod(seccomp(f"operator/{NS}/{name}.json")))))
    assert key == podusage.PREFIX + profile_id("SeccompProfile", name)
    assert len(key) - len(podusage.PREFIX) <= 63
    parent = {"metadata": {"name": name, "namespace": NS}}
    rule = podusage.rule(parent, "SeccompProfile", name).to_wire()
    assert rule["labelSelector"] == {"matchLabels": {key: "true"}}


def test_the_rule_asks_for_every_pod_once_the_object_is_being_deleted() -> None:
    parent: dict[str, Any] = {"metadata": {"name": "web", "namespace": NS}}
    assert podusage.rule(parent, "SeccompProfile", "web").to_wire() == {
        "apiVersion": "v1",
        "resource": "pods",
        "namespace": NS,
        "labelSelector": {"matchLabels": {"uses.spo.x-k8s.io/SeccompProfile-web": "true"}},
    }
    parent["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    assert podusage.rule(parent, "SeccompProfile", "web").to_wire() == {
        "apiVersion": "v1",
        "resource": "pods",
        "namespace": NS,
    }


def test_the_route_answers_a_decorator_request() -> None:
    client = create_app().test_client()
    request = {
        "controller": {"metadata": {"name": "spo-pod-usage"}},
        "parent": pod(seccomp(f"operator/{NS}/web.json")),
        "children": {},
    }
    answer = client.post("/pod/sync", json=request)
    assert answer.status_code == 200
    assert answer.get_json() == {"labels": {"uses.spo.x-k8s.io/SeccompProfile-web": "true"}}
    assert client.post("/pod/sync", json={"parent": "x"}).status_code == 400
