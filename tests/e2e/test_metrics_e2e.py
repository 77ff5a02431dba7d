"""The authenticated metrics against the real API server (docs/metrics.md).

nodesync runs as its DaemonSet runs it (``--secure-metrics-bind`` with a certificate, a
token of ``spo-nodesync`` bound to a pod on its node, the log enricher's socket), and the
hooks pod's two containers as its Deployment runs them (``spo hooks`` with
``--metrics-auth=off``, and ``spo hooks-metrics`` serving its numbers over TLS with a token
of ``spo-hooks``). Readers are real ServiceAccounts with tokens from the TokenRequest API:
the operator namespace's ``default`` (bound to ``spo-metrics-client`` by the install), a
Prometheus bound by hand, and one bound to nothing. Every TokenReview and
SubjectAccessReview is the API server's own.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from nodesync.enricher.auditlog import parse
from nodesync.enricher.containers import ContainerRef
from nodesync.enricher.enriching import LogEnricher
from nodesync.nodeio import serving
from tests.e2e.test_nodesync_e2e import LOG, content, make_profile, put_configmap
from tests.helpers.controlplane import ControlPlane, free_port
from tests.helpers.golden import golden_folder
from tests.helpers.hookserver import post
from tests.helpers.hookserver import serving as hook_serving
from tests.helpers.metrics_reader import get, self_signed, status
from tests.helpers.nodesync_process import NODE, NodeSync, eventually

pytestmark = pytest.mark.e2e
OPERATOR_NS = "security-profiles-operator"
READERS_NS = "metrics-e2e"
PROFILES_NS = "metrics-e2e-profiles"
SYNC = golden_folder("seccompprofile") / "base-profile-merged-least-restrictive-wins"
SECCOMP_LINE = (
    "type=SECCOMP msg=audit(1700000000.123:42): auid=4294967295 uid=0 gid=0 ses=4294967295 "
    'pid=7 comm="mkdir" exe="/bin/busybox" sig=0 arch=c000003e syscall=83 '
    "compat=0 ip=0x1 code=0x7ffc0000"
)


def service_account(plane: ControlPlane, namespace: str, name: str) -> None:
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"namespace": namespace, "name": name},
        }
    )


def token(plane: ControlPlane, namespace: str, name: str) -> str:
    """A token of that ServiceAccount from the TokenRequest API, as a pod's projected one."""
    return plane.kubectl("create", "token", name, "-n", namespace, "--duration=1h").stdout.strip()


class Readers:
    def __init__(self, plane: ControlPlane) -> None:
        # kube-controller-manager, which makes every namespace's "default", does not run here
        service_account(plane, OPERATOR_NS, "default")
        service_account(plane, READERS_NS, "prometheus")
        service_account(plane, READERS_NS, "nosy")
        plane.kubectl(
            "create",
            "clusterrolebinding",
            "metrics-e2e-prometheus",
            "--clusterrole=spo-metrics-client",
            f"--serviceaccount={READERS_NS}:prometheus",
        )
        self.default = token(plane, OPERATOR_NS, "default")  # the documented curl's
        self.prometheus = token(plane, READERS_NS, "prometheus")
        self.nosy = token(plane, READERS_NS, "nosy")


@pytest.fixture(scope="module")
def plane(installed: ControlPlane) -> Iterator[ControlPlane]:
    for namespace in (READERS_NS, PROFILES_NS):
        installed.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    yield installed
    installed.kubectl("delete", "clusterrolebinding", "metrics-e2e-prometheus", check=False)
    for namespace in (READERS_NS, PROFILES_NS):
        installed.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def readers(plane: ControlPlane) -> Readers:
    return Readers(plane)


@pytest.fixture(scope="module")
def enricher_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The log enricher's side of the socket: one SECCOMP record of a pod counted."""
    registry = CollectorRegistry()
    enricher = LogEnricher(
        NODE, registry, {"c" * 64: ContainerRef("shop", "web", "app")}.get, lambda _: None
    )
    record = parse(SECCOMP_LINE)
    assert record is not None
    enricher.enrich(record, "c" * 64)
    path = tmp_path_factory.mktemp("socket") / "log-enricher-metrics.sock"
    server = serving.start_unix(
        str(path), {"/metrics-spod": lambda: bytes(generate_latest(registry))}
    )
    yield path
    server.shutdown()
    server.server_close()


class SecureNodeSync(NodeSync):
    secure_port = 0
    ca = Path()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.secure_port}{path}"


@pytest.fixture(scope="module")
def nodesync(
    plane: ControlPlane, enricher_socket: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureNodeSync]:
    work = tmp_path_factory.mktemp("nodesync-metrics")
    cert, key = self_signed(work)
    secure_port = free_port()
    agent = SecureNodeSync(
        plane.node_agent_kubeconfig(OPERATOR_NS, "spo-nodesync", NODE),
        work / "kubelet",
        work / "nodesync.log",
        extra=[
            f"--secure-metrics-bind=127.0.0.1:{secure_port}",
            f"--tls-cert-file={cert}",
            f"--tls-key-file={key}",
            f"--enricher-metrics-socket={enricher_socket}",
        ],
    )
    agent.secure_port, agent.ca = secure_port, cert
    agent.start()
    try:

        def ready() -> None:
            try:
                code, body = agent.get("/readyz")
            except OSError as error:
                raise AssertionError(str(error)) from None
            assert code == 200, f"/readyz: {code} {body}"
            try:
                get(agent.url("/metrics"), cert)
            except OSError as error:
                raise AssertionError(f"secure listener: {error}") from None

        eventually("nodesync ready", ready, agent)
        yield agent
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.stop(timeout=30)


def test_no_token_401_a_token_without_the_right_403_a_bound_one_200(
    nodesync: SecureNodeSync, readers: Readers
) -> None:
    for path in ("/metrics", "/metrics-spod"):
        url = nodesync.url(path)
        assert get(url, nodesync.ca)[0] == 401
        assert get(url, nodesync.ca, "not-a-token")[0] == 401
        code, body = get(url, nodesync.ca, readers.nosy)
        assert code == 403, body
        assert f"system:serviceaccount:{READERS_NS}:nosy" in body
        for reader in (readers.default, readers.prometheus):
            code, body = get(url, nodesync.ca, reader)
            assert code == 200, body


def test_the_documented_paths_carry_the_go_operators_metrics(
    plane: ControlPlane, nodesync: SecureNodeSync, readers: Readers
) -> None:
    uid = make_profile(plane, PROFILES_NS, "counted", LOG)
    put_configmap(plane, PROFILES_NS, "counted", uid, content(LOG))

    def written() -> str:
        code, body = get(nodesync.url("/metrics-spod"), nodesync.ca, readers.default)
        assert code == 200, body
        assert 'security_profiles_operator_seccomp_profile_total{operation="update"}' in body
        return body

    spod = eventually("the profile counted", written, nodesync)
    assert (
        'security_profiles_operator_seccomp_profile_audit_total{container="app",'
        f'executable="/bin/busybox",namespace="shop",node="{NODE}",pod="web",syscall="mkdir"}} 1.0'
        in spod
    )
    assert "# TYPE security_profiles_operator_selinux_profile_total counter" in spod
    code, loops = get(nodesync.url("/metrics"), nodesync.ca, readers.default)
    assert code == 200
    assert (
        'controller_runtime_reconcile_total{controller="seccompprofile",result="success"}' in loops
    )
    # the plain port answers the probes only
    assert nodesync.get("/metrics")[0] == 404
    assert nodesync.get("/healthz")[0] == 200


def test_the_answers_are_reused_within_the_ttl(
    nodesync: SecureNodeSync, readers: Readers, plane: ControlPlane
) -> None:
    """A binding removed takes effect within the ttl, not at once: the answers are cached."""
    plane.kubectl(
        "create",
        "clusterrolebinding",
        "metrics-e2e-brief",
        "--clusterrole=spo-metrics-client",
        f"--serviceaccount={READERS_NS}:brief",
    )
    service_account(plane, READERS_NS, "brief")
    brief = token(plane, READERS_NS, "brief")
    assert get(nodesync.url("/metrics"), nodesync.ca, brief)[0] == 200
    plane.kubectl("delete", "clusterrolebinding", "metrics-e2e-brief")
    assert get(nodesync.url("/metrics"), nodesync.ca, brief)[0] == 200  # cached (30 s)
    assert get(nodesync.url("/metrics-spod"), nodesync.ca, brief)[0] == 403  # a path not asked


# -- the hook service ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hooks(
    plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Path]]:
    """(plain base URL, TLS base URL, CA): the hooks pod's two containers as the Deployment
    runs them, sharing the hooks' multiprocess folder as the pod's /tmp does."""
    work = tmp_path_factory.mktemp("hooks-metrics")
    cert, key = self_signed(work)
    kubeconfig = plane.service_account_kubeconfig(OPERATOR_NS, "spo-hooks", create=False)
    base_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PROMETHEUS_MULTIPROC_DIR", "KUBECONFIG", "METRICS_AUTH")
    }
    plain_port, tls_port, probes_port = free_port(), free_port(), free_port()
    cli = [sys.executable, "-m", "hooks.command.cli"]
    plain = [*cli, "hooks", "--workers", "2", "--bind", f"127.0.0.1:{plain_port}"]
    plain.append("--metrics-auth=off")
    secure = [
        *cli,
        "hooks-metrics",
        f"--bind=127.0.0.1:{tls_port}",
        f"--probes=127.0.0.1:{probes_port}",
        f"--certfile={cert}",
        f"--keyfile={key}",
        f"--metrics-dir={work / 'metrics'}",
    ]
    with (
        hook_serving(
            plain,
            f"http://127.0.0.1:{plain_port}",
            env={**base_env, "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics")},
        ),
        hook_serving(
            secure,
            f"http://127.0.0.1:{probes_port}",
            env={**base_env, "KUBECONFIG": str(kubeconfig)},
        ),
    ):
        yield f"http://127.0.0.1:{plain_port}", f"https://127.0.0.1:{tls_port}", cert


def test_the_hooks_metrics_take_a_token_and_their_sync_hooks_none(
    hooks: tuple[str, str, Path], readers: Readers
) -> None:
    plain, secure, ca = hooks
    code, answer = post(f"{plain}/seccompprofile/sync", (SYNC / "request.json").read_bytes())
    assert code == 200, answer  # Metacontroller's call: no token
    assert get(f"{secure}/metrics", ca)[0] == 401
    assert get(f"{secure}/metrics", ca, readers.nosy)[0] == 403
    code, body = get(f"{secure}/metrics", ca, readers.default)
    assert code == 200, body
    # the plain container's sync, read through the TLS container (the shared /tmp)
    assert (
        'controller_runtime_reconcile_total{controller="seccompprofile",result="success"} 1.0'
        in body
    )
    assert 'spo_hook_requests_total{code="200",hook="seccompprofile-sync"} 1.0' in body
    assert status(f"{plain}/metrics") == 404  # off where nobody checks tokens


def test_the_container_with_the_token_serves_nothing_but_the_metrics(
    hooks: tuple[str, str, Path], readers: Readers
) -> None:
    """The one container of the hooks pod that holds a token answers no hook and no probe
        over HTTPS: a GET without a token 401, with a reader's 403 where the reader has no right,
    404 where the API server gives one (nothing else is served)."""
    _, secure, ca = hooks
    try:  # a hook's call (POST) is not served: no answer, or an error
        answered = post_tls(f"{secure}/seccompprofile/sync", ca)[0]
    except ConnectionError:
        answered = 0
    assert answered != 200
    assert get(f"{secure}/healthz", ca)[0] == 401
    assert get(f"{secure}/seccompprofile/sync", ca, readers.default)[0] == 403
    # anyone may get /readyz (system:public-info-viewer); this port does not serve it
    assert get(f"{secure}/readyz", ca, readers.default)[0] == 404


def post_tls(url: str, ca: Path) -> tuple[int, str]:
    request = urllib.request.Request(
        url,
        data=(SYNC / "request.json").read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(errors="replace")
