"""The node itself: a kubelet that runs pods, with logs and exec through the API server, the
controllers of kube-controller-manager, the scheduler, and Services through kube-proxy."""

from __future__ import annotations

import json

import pytest

from tests.e2e.kubelet.busybox_pods import (
    busybox_pod,
    create,
    delete,
    exec_in,
    get,
    logs,
    wait_log,
    wait_running,
)
from tests.e2e.kubelet.operator_install import OPERATOR_IMAGE, eventually
from tests.e2e.kubelet.profiles import unique
from tests.e2e.kubenode import NODE_NAME, Cluster
from tests.helpers.controlplane import pinned_versions

pytestmark = [pytest.mark.e2e, pytest.mark.kubelet]


def test_node_is_ready_with_the_pinned_kubelet_and_containerd(cluster: Cluster) -> None:
    node = cluster.plane.kubectl_json("get", "node", NODE_NAME)
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == pinned_versions().kubernetes
    assert info["containerRuntimeVersion"].startswith("containerd://")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == cluster.node.address
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"
    # The images were imported, none pulled: the sandbox image is ours.
    assert "localhost/spo-e2e/pause:3.10" in cluster.node.images()


def test_a_scheduled_pod_runs_and_answers_logs_and_exec(cluster: Cluster) -> None:
    plane = cluster.plane
    name = unique("hello")
    pod, _ = create(plane, "default", busybox_pod(name, "echo hello from the node; sleep 3600"))
    assert "nodeName" not in pod["spec"]  # the scheduler places it
    try:
        running = wait_running(plane, "default", name)
        assert running["spec"]["nodeName"] == NODE_NAME
        assert running["status"]["podIP"].startswith("10.88.")
        wait_log(plane, "default", name, "hello from the node")
        code, out = exec_in(
            plane, "default", name, "cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
        )
        assert (code, out) == (0, "default")
    finally:
        delete(plane, "default", name)


IN_CLUSTER_CLIENT = """
import json, os, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
context = ssl.create_default_context(cafile=f"{sa}/ca.crt")
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
request = urllib.request.Request(
    f"https://{host}:{port}/version", headers={"Authorization": "Bearer " +
    open(f"{sa}/token").read()}
)
print("reached", json.load(urllib.request.urlopen(request, context=context))["gitVersion"])
"""


def test_pods_reach_the_api_server_through_the_kubernetes_service(cluster: Cluster) -> None:
    """An in-cluster client (the Service's environment variables, the ServiceAccount's token and
    CA) reaches the API server: kube-proxy's rules lead the "kubernetes" Service's ClusterIP to
    the endpoints the API server keeps on the node's address."""
    plane = cluster.plane
    slices = plane.kubectl_json(
        "get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes"
    )
    assert slices["items"][0]["endpoints"][0]["addresses"] == [cluster.node.address]
    name = unique("reach")
    manifest = busybox_pod(name, "", image=OPERATOR_IMAGE)
    manifest["spec"]["containers"][0]["command"] = ["python3", "-c", IN_CLUSTER_CLIENT]
    create(plane, "default", manifest)
    try:
        eventually(
            lambda: get(plane, "default", name)["status"].get("phase") in ("Succeeded", "Failed"),
            timeout=90,
            what="the client pod done",
        )
        assert logs(plane, "default", name).strip() == f"reached {pinned_versions().kubernetes}"
    finally:
        delete(plane, "default", name)


def test_garbage_collector_deletes_what_an_owner_leaves(cluster: Cluster) -> None:
    """kube-controller-manager's garbage collector runs: the children Metacontroller leaves to it
    after a finalize go with their owner."""
    plane = cluster.plane
    owner_name, child_name = unique("owner"), unique("child")
    owner = json.loads(
        plane.kubectl("create", "configmap", owner_name, "-n", "default", "-o", "json").stdout
    )
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": child_name,
            "namespace": "default",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": owner_name,
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
    }
    plane.apply(child)
    plane.kubectl("delete", "configmap", owner_name, "-n", "default", "--wait=false")
    eventually(
        lambda: (
            plane.kubectl("get", "configmap", child_name, "-n", "default", check=False).returncode
            != 0
        ),
        timeout=60,
        what="the garbage collector deleting the child",
    )
