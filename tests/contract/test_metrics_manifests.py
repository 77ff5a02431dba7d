"""The install's metrics objects agree with each other and with the node agents the spod
controller computes: the Service "metrics" selects nodesync's pods on their "https" port, the
certificate is the Secret they mount, the roles grant exactly the reading and the checking,
and the ServiceMonitor component points at both Services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hooks.api.spod import SecurityProfilesOperatorDaemon
from hooks.cluster.spod import daemonset

ROOT = Path(__file__).parents[2]
BASE = ROOT / "metacontroller" / "base"
COMPONENT = ROOT / "metacontroller" / "components" / "servicemonitor"
NS = "security-profiles-operator"


def docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def default_spod(**spec: Any) -> SecurityProfilesOperatorDaemon:
    raw = yaml.safe_load((BASE / "spod.yaml").read_text())
    raw["spec"].update(spec)
    return SecurityProfilesOperatorDaemon.model_validate(raw)


METRICS = docs(BASE / "metrics.yaml")


def test_the_service_fronts_every_nodesync_pod_on_443() -> None:
    service = find(METRICS, "Service", "metrics")
    assert service["metadata"]["namespace"] == NS
    [port] = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (443, "https")
    pod = daemonset.daemonset(default_spod())["spec"]["template"]
    selector = service["spec"]["selector"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    [nodesync] = [c for c in pod["spec"]["containers"] if c["name"] == "nodesync"]
    assert {"name": "https", "containerPort": 9443, "protocol": "TCP"} in nodesync["ports"]
    assert "--secure-metrics-bind=0.0.0.0:9443" in nodesync["args"]
    enricher = daemonset.log_enricher_daemonset(default_spod(enableLogEnricher=True))
    labels = enricher["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= labels.items()  # one endpoint per node: nodesync's


def test_nodesync_serves_the_certificate_cert_manager_issues() -> None:
    certificate = find(docs(BASE / "webhook-cert-manager.yaml"), "Certificate", "spo-metrics-cert")
    secret = certificate["spec"]["secretName"]
    assert "metrics.security-profiles-operator.svc" in certificate["spec"]["dnsNames"]
    pod = daemonset.daemonset(default_spod())["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == secret]
    assert volume["secret"]["optional"] is True  # profiles install before the certificate exists
    [nodesync] = [c for c in pod["containers"] if c["name"] == "nodesync"]
    [mount] = [m for m in nodesync["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    assert f"--tls-cert-file={mount['mountPath']}/tls.crt" in nodesync["args"]
    assert f"--tls-key-file={mount['mountPath']}/tls.key" in nodesync["args"]


def test_the_reader_role_is_get_on_the_two_paths_bound_as_the_go_operator_binds_it() -> None:
    role = find(METRICS, "ClusterRole", "spo-metrics-client")
    assert role["rules"] == [{"nonResourceURLs": ["/metrics", "/metrics-spod"], "verbs": ["get"]}]
    binding = find(METRICS, "ClusterRoleBinding", "spo-metrics-client")
    assert binding["roleRef"]["name"] == "spo-metrics-client"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "default", "namespace": NS}]


def test_only_the_checkers_may_review_tokens_and_nothing_else() -> None:
    role = find(METRICS, "ClusterRole", "spo-metrics-reviewer")
    assert role["rules"] == [
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["tokenreviews"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["subjectaccessreviews"],
            "verbs": ["create"],
        },
    ]
    binding = find(METRICS, "ClusterRoleBinding", "spo-metrics-reviewer")
    assert {s["name"] for s in binding["subjects"]} == {"spo-nodesync", "spo-hooks", "spo-webhook"}


def test_only_the_metrics_container_holds_a_token_and_it_guards_metrics() -> None:
    deployment = find(docs(BASE / "hooks.yaml"), "Deployment", "spo-hooks")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    containers = {c["name"]: c for c in pod["containers"]}
    token_volumes = {
        v["name"]
        for v in pod["volumes"]
        if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))
    }
    assert len(token_volumes) == 1
    mounted = {
        name
        for name, container in containers.items()
        for m in container.get("volumeMounts", [])
        if m["name"] in token_volumes
    }
    assert mounted == {"metrics"}
    metrics = containers["metrics"]
    # a server of the metrics alone (always behind a token), not the hooks' app
    assert metrics["command"][:2] == ["spo", "hooks-metrics"]
    assert "--metrics-dir=/tmp/metrics" in metrics["command"]
    assert {m["mountPath"]: m.get("readOnly", False) for m in metrics["volumeMounts"]}["/tmp"]
    assert "env" not in metrics  # it writes no numbers of its own
    hooks = containers["hooks"]
    assert hooks["args"] == ["--metrics-auth=off"]
    env = {e["name"]: e["value"] for e in hooks["env"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/metrics"


def test_the_servicemonitors_scrape_both_services_with_the_token() -> None:
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    monitors = [d for path in kustomization["resources"] for d in docs(COMPONENT / path)]
    token = find(monitors, "Secret", "metrics-token")
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "default"
    services = {
        "metrics": find(METRICS, "Service", "metrics"),
        "spo-hooks-metrics": find(docs(BASE / "hooks.yaml"), "Service", "spo-hooks-metrics"),
        "spo-webhook": find(docs(BASE / "webhook.yaml"), "Service", "spo-webhook"),
    }
    scraped = {}
    for monitor in (d for d in monitors if d["kind"] == "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        [name] = [n for n, s in services.items() if wanted <= s["metadata"]["labels"].items()]
        port_names = {p["name"] for p in services[name]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names and endpoint["scheme"] == "https"
            assert endpoint["bearerTokenSecret"] == {"name": "metrics-token", "key": "token"}
            assert endpoint["tlsConfig"]["serverName"] == f"{name}.{NS}.svc"
            scraped.setdefault(name, set()).add(endpoint["path"])
    assert scraped == {
        "metrics": {"/metrics", "/metrics-spod"},
        "spo-hooks-metrics": {"/metrics"},
        "spo-webhook": {"/metrics"},
    }
