"""A real Kubernetes control plane on loopback for the end-to-end tests.

etcd and kube-apiserver, compiled from the Go modules pinned under
``tests/e2e/controlplane/`` by its ``build.sh`` into
``.cache/controlplane/<k8s-version>-<etcd-version>/`` (with a kubectl of the
same release), started on free 127.0.0.1 ports with a throw-away PKI made by
the ``openssl`` command. No controller-manager, scheduler or kubelet: objects
are stored and served, admission and RBAC are enforced, nothing reconciles.
``kubenode.py`` adds those (a real node) on top of a ControlPlane.

Usage outside pytest (the ``control_plane`` fixture in conftest.py does this)::

    with ControlPlane(ensure_binaries()) as cp:
        cp.kubectl("get", "namespaces")

Environment: ``CONTROLPLANE_CACHE`` moves the binary cache (build.sh honours it
too); ``CONTROLPLANE_KEEP=1`` keeps the work folder (certificates, logs, etcd
data) after stop() for debugging.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml

REPO = Path(__file__).resolve().parents[2]
GO_DIR = REPO / "tests" / "e2e" / "controlplane"  # the pinned Go modules and build.sh
BUILD_SCRIPT = GO_DIR / "build.sh"
BINARIES = ("etcd", "kube-apiserver", "kubectl")
# What tests/e2e/kubenode.py runs besides, built by the same script into the same folder.
NODE_BINARIES = ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "pause")

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
# The first address of the range: the "kubernetes" Service, in the serving cert.
KUBERNETES_SERVICE_IP = "10.0.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

# Default admission plugins stay on, except ServiceAccount: it rejects every
# Pod whose ServiceAccount does not exist, and the "default" ServiceAccount of
# a namespace is made by kube-controller-manager, which does not run here.
DISABLED_ADMISSION_PLUGINS = ("ServiceAccount",)


class ControlPlaneUnavailable(RuntimeError):
    """The control plane cannot be had on this machine (no Go, no openssl,
    the build failed). Tests skip on it, or fail when CI is set."""


class ControlPlaneStartError(RuntimeError):
    """The binaries exist but etcd or kube-apiserver did not come up."""


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    etcd: str

    @property
    def key(self) -> str:
        return f"{self.kubernetes}-{self.etcd}"


def _required_version(gomod: Path, module: str) -> str:
    for line in gomod.read_text().splitlines():
        words = line.split("//", 1)[0].split()
        if words[:1] == ["require"]:
            words = words[1:]
        if len(words) >= 2 and words[0] == module and words[1].startswith("v"):
            return words[1]
    raise ControlPlaneUnavailable(f"{gomod} does not require {module}")


def pinned_versions() -> Versions:
    """The Kubernetes and etcd releases the Go modules under controlplane/ pin."""
    return Versions(
        kubernetes=_required_version(GO_DIR / "kube" / "go.mod", "k8s.io/kubernetes"),
        etcd=_required_version(GO_DIR / "etcd" / "go.mod", "go.etcd.io/etcd/server/v3"),
    )


def cache_root() -> Path:
    return Path(os.environ.get("CONTROLPLANE_CACHE") or REPO / ".cache" / "controlplane")


def binaries_dir(versions: Versions | None = None) -> Path:
    return cache_root() / (versions or pinned_versions()).key


def _complete(bin_dir: Path, names: Sequence[str] = BINARIES) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) for name in names)


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def ensure_binaries(*, timeout: float = 3600.0, names: Sequence[str] = BINARIES) -> Path:
    """The folder holding etcd, kube-apiserver and kubectl (or ``names``, e.g.
    BINARIES + NODE_BINARIES); builds the missing ones with build.sh first (a
    cold build takes minutes; follow it with ``tail -f .cache/controlplane/build.log``)."""
    bin_dir = binaries_dir()
    if _complete(bin_dir, names):
        return bin_dir
    if shutil.which("go") is None:
        raise ControlPlaneUnavailable(
            f"control plane binaries are not built in {bin_dir} and 'go' is not on PATH"
            f" (needed by {BUILD_SCRIPT})"
        )
    log = cache_root() / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as err:
        try:
            proc = subprocess.run(
                ["bash", str(BUILD_SCRIPT), *names],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ControlPlaneUnavailable(
                f"{BUILD_SCRIPT} did not finish in {timeout:.0f}s; last lines of {log}:\n"
                + _tail(log)
            ) from None
    if proc.returncode != 0:
        raise ControlPlaneUnavailable(
            f"{BUILD_SCRIPT} failed (exit {proc.returncode}); last lines of {log}:\n{_tail(log)}"
        )
    built = Path(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else bin_dir
    if not _complete(built, names):
        raise ControlPlaneUnavailable(f"{BUILD_SCRIPT} succeeded but {built} lacks {names}")
    return built


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# prctl(PR_SET_PDEATHSIG, SIGKILL) in the child between fork and exec: the
# kernel kills etcd and kube-apiserver when the process that started them dies,
# so a pytest killed with SIGKILL does not leave them behind. Looked up here,
# not in the child, because a forked child must not take the loader lock.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _preexec() -> Callable[[], None] | None:
    # preexec_fn is only safe while the process has a single thread; with more
    # (a test's in-process HTTP server, say) the children just lack the guard.
    return _die_with_parent if threading.active_count() == 1 else None


CLIENT_EXTENSIONS = (
    "basicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=clientAuth"
)


def server_extensions(sans: Sequence[str]) -> str:
    """openssl extensions of a serving certificate for ``sans`` (``IP:...``, ``DNS:...``)."""
    return (
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={','.join(sans)}"
    )


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path
    # What kube-apiserver presents to kubelets (logs, exec): O=system:masters.
    kubelet_client_cert: Path
    kubelet_client_key: Path
    days: int = 7

    def issue(self, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
        """Another certificate signed by this CA, beside the others: (``<name>.crt``, ``.key``).
        ``extensions``: CLIENT_EXTENSIONS or server_extensions([...])."""
        _sign(self.ca_cert.parent, name, subject, extensions, self.days)
        return self.ca_cert.parent / f"{name}.crt", self.ca_cert.parent / f"{name}.key"


def _openssl(cwd: Path, *args: str) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ControlPlaneStartError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


def _key(folder: Path, name: str) -> None:
    _openssl(
        folder, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name
    )


def _sign(folder: Path, name: str, subject: str, extensions: str, days: int) -> None:
    """``<name>.key`` and ``<name>.crt`` in ``folder``, signed by its ``ca.crt``/``ca.key``."""
    _key(folder, f"{name}.key")
    _openssl(folder, "req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr")
    (folder / f"{name}.ext").write_text(f"[ext]\n{extensions}\n")
    _openssl(
        folder,
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        f"0x{secrets.token_hex(12)}",
        "-days",
        str(days),
        "-extfile",
        f"{name}.ext",
        "-extensions",
        "ext",
        "-out",
        f"{name}.crt",
    )


def make_pki(folder: Path, *, days: int = 7, extra_sans: Sequence[str] = ()) -> Pki:
    """A CA, a serving certificate for the apiserver on 127.0.0.1/localhost (and
    ``extra_sans``, e.g. ``IP:<node address>``), an admin client certificate
    (O=system:masters), the apiserver's client certificate for kubelets and a
    ServiceAccount token signing key pair. ECDSA P-256 throughout: quick to
    generate. ``Pki.issue`` signs more."""
    if shutil.which("openssl") is None:
        raise ControlPlaneUnavailable("the 'openssl' command is not on PATH")
    folder.mkdir(parents=True, exist_ok=True)

    def key(name: str) -> None:
        _key(folder, name)

    def sign(name: str, subject: str, extensions: str) -> None:
        _sign(folder, name, subject, extensions, days)

    key("ca.key")
    _openssl(
        folder,
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=spo-e2e-ca",
        "-days",
        str(days),
        "-out",
        "ca.crt",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    sans = ",".join(
        [
            "IP:127.0.0.1",
            f"IP:{KUBERNETES_SERVICE_IP}",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
            *extra_sans,
        ]
    )
    sign(
        "apiserver",
        "/CN=kube-apiserver",
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}",
    )
    sign("admin", "/O=system:masters/CN=spo-e2e-admin", CLIENT_EXTENSIONS)
    sign("kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", CLIENT_EXTENSIONS)
    key("sa.key")
    _openssl(folder, "pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    return Pki(
        ca_cert=folder / "ca.crt",
        ca_key=folder / "ca.key",
        serving_cert=folder / "apiserver.crt",
        serving_key=folder / "apiserver.key",
        admin_cert=folder / "admin.crt",
        admin_key=folder / "admin.key",
        sa_key=folder / "sa.key",
        sa_pub=folder / "sa.pub",
        kubelet_client_cert=folder / "kubelet-client.crt",
        kubelet_client_key=folder / "kubelet-client.key",
        days=days,
    )


def _kubeconfig(server: str, ca: Path, user: Mapping[str, str], name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "e2e", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": name, "user": dict(user)}],
        "contexts": [{"name": name, "context": {"cluster": "e2e", "user": name}}],
        "current-context": name,
    }


class ControlPlane:
    """etcd + kube-apiserver on loopback. start() returns once /readyz is ok;
    stop() (idempotent) kills both and removes the work folder.

    For a cluster with a node (tests/e2e/kubenode.py): ``bind_address`` "0.0.0.0"
    and ``advertise_address`` the node's address put the "kubernetes" Service's
    endpoints there (the lease reconciler), so that pods reach the API server
    through that Service; ``disabled_admission_plugins=()`` keeps ServiceAccount
    admission, whose ServiceAccounts kube-controller-manager then makes. The
    apiserver always presents ``pki.kubelet_client_cert`` to kubelets and checks
    their serving certificates against the CA (``kubectl logs``, ``exec``)."""

    def __init__(
        self,
        bin_dir: Path,
        *,
        workdir: Path | None = None,
        extra_apiserver_args: Sequence[str] = (),
        keep: bool | None = None,
        bind_address: str = "127.0.0.1",
        advertise_address: str = "127.0.0.1",
        disabled_admission_plugins: Sequence[str] = DISABLED_ADMISSION_PLUGINS,
    ) -> None:
        self.bin_dir = bin_dir
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="spo-e2e-cp-"))
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.bind_address = bind_address
        self.advertise_address = advertise_address
        self.disabled_admission_plugins = list(disabled_admission_plugins)
        self.keep = os.environ.get("CONTROLPLANE_KEEP") == "1" if keep is None else keep
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.etcd_log = self.workdir / "etcd.log"
        self.apiserver_log = self.workdir / "kube-apiserver.log"
        self.server = ""
        self.port = 0  # kube-apiserver's, kept across restart_apiserver()
        self.etcd_url = ""
        self.pki: Pki | None = None
        self.etcd: subprocess.Popen[bytes] | None = None
        self.apiserver: subprocess.Popen[bytes] | None = None
        self.timings: dict[str, float] = {}
        self._logs: list[IO[bytes]] = []
        self._sa_kubeconfigs = 0
        self._last_check = ""
        self.on_stop: list[Callable[[], None]] = []
        """Called by stop() first (clients closing their connections)."""

    # lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, *, timeout: float = 180.0, attempts: int = 3) -> None:
        """Start etcd then kube-apiserver; on failure everything started is
        stopped and ControlPlaneStartError carries the tails of both logs."""
        begin = time.monotonic()
        try:
            extra_sans = [] if self._loopback_advertised else [f"IP:{self.advertise_address}"]
            self.pki = make_pki(self.workdir / "pki", extra_sans=extra_sans)
            self.timings["pki_s"] = time.monotonic() - begin
            for attempt in range(1, attempts + 1):
                try:
                    self._start_processes(timeout)
                    break
                except ControlPlaneStartError:
                    # A free port can be taken between free_port() and bind().
                    if attempt == attempts or not self._port_clash():
                        raise
                    self._kill_processes()
            self._write_admin_kubeconfig()
        except BaseException:
            self.stop()
            raise
        self.timings["start_s"] = time.monotonic() - begin

    @property
    def _loopback_advertised(self) -> bool:
        return self.advertise_address.startswith("127.")

    def _port_clash(self) -> bool:
        return any(
            "address already in use" in _tail(log, 200)
            for log in (self.etcd_log, self.apiserver_log)
        )

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        out = log.open("ab")
        self._logs.append(out)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
            preexec_fn=_preexec(),  # noqa: PLW1509 - only when single-threaded
        )

    def _start_processes(self, timeout: float) -> None:
        assert self.pki is not None
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self.etcd = self._spawn(
            [
                str(self.bin_dir / "etcd"),
                "--name=e2e",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=e2e={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync",  # a throw-away store: durability buys nothing
                "--quota-backend-bytes=2147483648",
            ],
            self.etcd_log,
        )
        self._wait("etcd", deadline, self._etcd_healthy)
        self.timings["etcd_ready_s"] = time.monotonic() - t0

        t1 = time.monotonic()
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self._spawn_apiserver()
        self._wait("kube-apiserver", deadline, self._apiserver_ready)
        self.timings["apiserver_ready_s"] = time.monotonic() - t1

    def _spawn_apiserver(self) -> None:
        assert self.pki is not None
        pki, port = self.pki, self.port
        admission = (
            [f"--disable-admission-plugins={','.join(self.disabled_admission_plugins)}"]
            if self.disabled_admission_plugins
            else []
        )
        # The lease reconciler refuses a loopback advertise address, and the "kubernetes"
        # Service's endpoints would serve nobody then anyway.
        reconciler = ["--endpoint-reconciler-type=none"] if self._loopback_advertised else []
        # Without a node nothing routes a Service's cluster IP (no kube-proxy): admission
        # webhooks are then called on an endpoint of their Service, read from its
        # EndpointSlices (tests/helpers/webhook_server.py publishes the endpoint).
        routing = ["--enable-aggregator-routing=true"] if self._loopback_advertised else []
        self.apiserver = self._spawn(
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--bind-address={self.bind_address}",
                f"--advertise-address={self.advertise_address}",
                f"--secure-port={port}",
                f"--etcd-servers={self.etcd_url}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                *admission,
                *reconciler,
                f"--kubelet-client-certificate={pki.kubelet_client_cert}",
                f"--kubelet-client-key={pki.kubelet_client_key}",
                f"--kubelet-certificate-authority={pki.ca_cert}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                *routing,
                "--allow-privileged=true",
                "--profiling=false",
                *self.extra_apiserver_args,
            ],
            self.apiserver_log,
        )

    def stop_apiserver(self, *, timeout: float = 30.0) -> None:
        """Stop kube-apiserver (SIGTERM, SIGKILL after ``timeout``) and keep etcd, so the
        objects stay; clients get connection refused until start_apiserver()."""
        proc, self.apiserver = self.apiserver, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)

    def start_apiserver(self, *, timeout: float = 120.0) -> None:
        """Start kube-apiserver again after stop_apiserver(): same port, certificates, flags
        and etcd, so kubeconfigs and ServiceAccount tokens made before keep working.
        Returns once /readyz is ok."""
        if self.apiserver is not None:
            raise RuntimeError("kube-apiserver is running: stop_apiserver() first")
        deadline = time.monotonic() + timeout
        while True:
            self._wait_port_free(deadline)
            offset = self.apiserver_log.stat().st_size if self.apiserver_log.exists() else 0
            self._spawn_apiserver()
            try:
                self._wait("kube-apiserver", deadline, self._apiserver_ready)
                return
            except ControlPlaneStartError:
                # Something took the port between the check and the bind: wait, try again.
                clash = "address already in use" in _read_from(self.apiserver_log, offset)
                self.stop_apiserver()
                if not clash or time.monotonic() > deadline:
                    raise

    def restart_apiserver(self, *, timeout: float = 120.0) -> None:
        """stop_apiserver() then start_apiserver(): watches break, the stored objects stay."""
        self.stop_apiserver()
        self.start_apiserver(timeout=timeout)

    def _wait_port_free(self, deadline: float) -> None:
        """Until kube-apiserver's port can be listened on again. The probe sets SO_REUSEADDR
        as Go's listener does: connections left in TIME_WAIT do not block the bind."""
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((self.bind_address, self.port))
                    return
                except OSError as exc:
                    if time.monotonic() > deadline:
                        raise ControlPlaneStartError(
                            f"port {self.port} still taken: {exc}"
                        ) from None
            time.sleep(0.1)

    def _wait(self, what: str, deadline: float, ready: Callable[[], bool]) -> None:
        while True:
            for name, proc in (("etcd", self.etcd), ("kube-apiserver", self.apiserver)):
                if proc is not None and proc.poll() is not None:
                    raise ControlPlaneStartError(
                        f"{name} exited with {proc.returncode} while waiting for {what}\n"
                        + self.describe_logs()
                    )
            if ready():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneStartError(
                    f"{what} not ready in time; last check: {self._last_check}\n"
                    + self.describe_logs()
                )
            time.sleep(0.05)

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as resp:
                body = resp.read().decode()
        except (OSError, urllib.error.URLError) as exc:
            self._last_check = f"etcd /health: {exc}"
            return False
        self._last_check = f"etcd /health: {body}"
        return bool(json.loads(body).get("health") == "true")

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the CA and presenting the admin cert."""
        assert self.pki is not None
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return ctx

    def get(self, path: str, *, timeout: float = 10.0) -> tuple[int, str]:
        """GET a raw API path as admin: (HTTP status, body)."""
        req = urllib.request.Request(f"{self.server}{path}")
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def _apiserver_ready(self) -> bool:
        try:
            status, body = self.get("/readyz?verbose", timeout=5)
        except (OSError, urllib.error.URLError) as exc:
            self._last_check = f"kube-apiserver /readyz: {exc}"
            return False
        self._last_check = f"kube-apiserver /readyz ({status}):\n{body}"
        return status == 200

    def _write_admin_kubeconfig(self) -> None:
        assert self.pki is not None
        user = {
            "client-certificate": str(self.pki.admin_cert),
            "client-key": str(self.pki.admin_key),
        }
        config = _kubeconfig(self.server, self.pki.ca_cert, user, "admin")
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def describe_logs(self, lines: int = 60) -> str:
        return "\n".join(
            f"----- last {lines} lines of {log} -----\n{_tail(log, lines)}"
            for log in (self.etcd_log, self.apiserver_log)
            if log.exists()
        )

    def _kill_processes(self) -> None:
        for proc in (self.apiserver, self.etcd):
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        for out in self._logs:
            out.close()
        self._logs.clear()

    def stop(self) -> None:
        for close in self.on_stop:
            close()
        self.on_stop.clear()
        self._kill_processes()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # clients

    @property
    def kubectl_path(self) -> Path:
        return self.bin_dir / "kubectl"

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the cached kubectl as admin (or with another kubeconfig).
        With check=True a non-zero exit raises AssertionError with stderr."""
        argv = [
            str(self.kubectl_path),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
            *args,
        ]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
            )
        return proc

    def kubectl_json(self, *args: str, **kwargs: Any) -> Any:
        """kubectl ... -o json, parsed."""
        return json.loads(self.kubectl(*args, "-o", "json", **kwargs).stdout)

    def apply(
        self,
        manifest: str | Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        who: Sequence[str] = (),
    ) -> str:
        """kubectl apply -f - (server-side) of YAML text or objects, as admin or ``who``
        (impersonation arguments, e.g. ``METACONTROLLER``)."""
        if isinstance(manifest, str):
            text = manifest
        elif isinstance(manifest, Mapping):
            text = yaml.safe_dump(dict(manifest))
        else:
            text = yaml.safe_dump_all([dict(m) for m in manifest])
        return self.kubectl("apply", "--server-side", *who, "-f", "-", input=text).stdout

    @staticmethod
    def impersonate_service_account(namespace: str, name: str) -> list[str]:
        """kubectl arguments acting as that ServiceAccount (groups included:
        the apiserver adds system:serviceaccounts[:<namespace>])."""
        return [f"--as=system:serviceaccount:{namespace}:{name}"]

    def service_account_kubeconfig(
        self, namespace: str, name: str, *, create: bool = True, duration: str = "1h"
    ) -> Path:
        """A kubeconfig authenticating with a real token of that ServiceAccount
        (TokenRequest API), creating the ServiceAccount first unless told not to."""
        assert self.pki is not None
        if create:
            sa = {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"namespace": namespace, "name": name},
            }
            self.apply(sa)
        token = self.kubectl(
            "create", "token", name, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()
        self._sa_kubeconfigs += 1
        path = self.workdir / f"sa-{namespace}-{name}-{self._sa_kubeconfigs}.kubeconfig"
        config = _kubeconfig(self.server, self.pki.ca_cert, {"token": token}, f"{namespace}-{name}")
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def aggregate_cluster_role(self, name: str) -> list[dict[str, Any]]:
        """Fill an aggregated ClusterRole (``edit``, ``view``...) with the rules of the roles its
        selectors match, as kube-controller-manager's clusterrole-aggregation controller does
        (it does not run here, so the built-in roles have no rules). Returns the rules."""
        role = self.kubectl_json("get", "clusterrole", name)
        selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        if not selectors:
            return list(role.get("rules") or [])
        rules: list[dict[str, Any]] = []
        for selector in selectors:
            labels = ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items())
            for found in self.kubectl_json("get", "clusterrole", "-l", labels)["items"]:
                if found["metadata"]["name"] != name:
                    rules += [
                        r
                        for r in self.aggregate_cluster_role(found["metadata"]["name"])
                        if r not in rules
                    ]
        self.kubectl(
            "patch", "clusterrole", name, "--type=merge", "-p", json.dumps({"rules": rules})
        )
        return rules

    def node_agent_kubeconfig(self, namespace: str, name: str, node: str) -> Path:
        """A kubeconfig with a token of that ServiceAccount bound to a pod on ``node``, as a
        DaemonSet pod's projected token is: the API server then names the node in the
        user's extra (``authentication.kubernetes.io/node-name``). The pod (never run: there
        is no kubelet) is created first and must stay for the token to stay valid."""
        assert self.pki is not None
        pod = f"{name}-{node}"[:63].rstrip("-")
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"namespace": namespace, "name": pod},
                "spec": {
                    "nodeName": node,
                    "serviceAccountName": name,
                    "containers": [{"name": "agent", "image": "registry.invalid/agent:0"}],
                },
            }
        )
        token = self.kubectl(
            "create",
            "token",
            name,
            "-n",
            namespace,
            "--duration=1h",
            "--bound-object-kind=Pod",
            f"--bound-object-name={pod}",
        ).stdout.strip()
        self._sa_kubeconfigs += 1
        path = self.workdir / f"sa-{namespace}-{name}-{node}-{self._sa_kubeconfigs}.kubeconfig"
        config = _kubeconfig(self.server, self.pki.ca_cert, {"token": token}, f"{namespace}-{name}")
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def pids(self) -> list[int]:
        return [p.pid for p in (self.etcd, self.apiserver) if p is not None]


# Metacontroller's identity as its own manifests install it
# (tests/e2e/data/metacontroller-identity.yaml):
# the only one the admission policy spo-profile-configmaps lets write the profile ConfigMaps.
METACONTROLLER = ControlPlane.impersonate_service_account("metacontroller", "metacontroller")


def pid_alive(pid: int) -> bool:
    """True while a process with that pid exists and is not a zombie."""
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
