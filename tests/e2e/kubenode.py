"""A real Kubernetes node on this machine for the end-to-end tests.

On top of a ``ControlPlane`` (etcd, kube-apiserver) this starts the rest of a
one-node cluster, every part a real component:

- kube-controller-manager (all its default controllers: garbage collector,
  Deployment, ReplicaSet, DaemonSet, namespace, ServiceAccount and token,
  endpoints, root CA publisher ...);
- kube-scheduler;
- containerd (Debian's package) with its CRI plugin and the CNI bridge of
  Debian's containernetworking-plugins, on a configuration and state of its
  own (its root, state and socket live in the work folder);
- the kubelet, at its usual root ``/var/lib/kubelet`` (the operator writes
  profiles under ``/var/lib/kubelet/seccomp``), on cgroup v1 with the
  cgroupfs driver and a cgroup root of its own (``/spo-e2e-kubelet``), so it
  never touches the ``/kubepods`` cgroups the node tests make;
- kube-proxy (iptables mode), so that Service IPs work as on any cluster:
  pods reach the API server at the ``kubernetes`` Service (the API server
  advertises the node's address, listening on every address), and the API
  server reaches the operator's admission webhook at its Service.

The Kubernetes binaries come from ``controlplane/build.sh`` (the same
k8s.io/kubernetes module as the API server); images from
``tools/image/build.sh`` are imported with ``ctr images import``: nothing is
pulled from a registry.

One node per machine: the kubelet's root, its ports, the kernel settings it
changes and kube-proxy's iptables chains are the machine's. ``node_cluster()``
takes a file lock (``NODE_LOCK``) for the whole life of the cluster, and
records what it is about to change in ``NODE_STATE`` so that the next run can
undo a run that was killed. Teardown leaves the machine as found: pods are
deleted first (stopping the kubelet does not stop containers), then the
processes are stopped, leftover mounts, folders, cgroups, the bridge and
kube-proxy's chains are removed, and the sysctls the kubelet and the CNI
bridge set are restored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from tests.helpers.controlplane import (
    BINARIES,
    CLIENT_EXTENSIONS,
    NODE_BINARIES,
    ControlPlane,
    ControlPlaneStartError,
    ControlPlaneUnavailable,
    _kubeconfig,
    _preexec,
    _tail,
    ensure_binaries,
    pid_alive,
    server_extensions,
)

NODE_NAME = "spo-e2e-node"
NODE_LOCK = Path("/run/lock/spo-e2e-kubelet-node.lock")
NODE_STATE = Path("/run/lock/spo-e2e-kubelet-node.json")
KUBELET_ROOT = Path("/var/lib/kubelet")
# The kubelet's cgroup root, under every cgroup v1 hierarchy: /sys/fs/cgroup/<h>/spo-e2e-kubelet.
CGROUP_ROOT = "spo-e2e-kubelet"
CGROUP_FS = Path("/sys/fs/cgroup")
POD_CIDR = "10.88.0.0/16"
BRIDGE = "spo-e2e0"
CNI_BIN_DIR = Path("/usr/lib/cni")
SANDBOX_IMAGE = "localhost/spo-e2e/pause:3.10"
KUBELET_HEALTHZ = "http://127.0.0.1:10248/healthz"
KUBE_PROXY_HEALTHZ = "http://127.0.0.1:10256/healthz"

# What the kubelet (setupKernelTunables), the CNI bridge (isGateway) and kube-proxy may change.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
)
# Host paths the node's components create; removed at teardown unless they existed before.
HOST_PATHS = (
    str(KUBELET_ROOT),
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd",
    "/var/lib/cni",
    "/run/netns",
    "/var/run/netns",
    "/opt/cni",
    "/etc/cni",
    # hostPath volumes of the operator's own DaemonSets (DirectoryOrCreate)
    "/var/lib/security-profiles-operator",
    "/var/run/security-profiles-operator",
    "/var/log/audit",
)


class NodeStartError(ControlPlaneStartError):
    """A component of the node did not come up; carries the tails of its logs."""


def node_address() -> str:
    """The machine's address on its default route: the node's InternalIP."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("198.51.100.1", 9))  # no packet is sent: this only picks a route
        address: str = sock.getsockname()[0]
    if address.startswith("127."):
        raise ControlPlaneUnavailable("this machine has no address besides loopback")
    return address


def missing_components() -> list[str]:
    """The system components (Debian packages) the node needs that are not installed."""
    wanted = {
        "containerd": "containerd",
        "containerd-shim-runc-v2": "containerd",
        "ctr": "containerd",
        "runc": "runc",
        "iptables": "iptables",
        "ip": "iproute2",
    }
    missing = [f"{name} ({pkg})" for name, pkg in wanted.items() if shutil.which(name) is None]
    for plugin in ("bridge", "host-local", "loopback"):
        if not os.access(CNI_BIN_DIR / plugin, os.X_OK):
            missing.append(f"{CNI_BIN_DIR / plugin} (containernetworking-plugins)")
    if not (CGROUP_FS / "memory").is_dir():
        missing.append("cgroup v1 hierarchies under /sys/fs/cgroup (this node is set up for v1)")
    if os.geteuid() != 0:
        missing.append("root (the kubelet and containerd run as root)")
    return missing


# ---------------------------------------------------------------- machine state


def _read_sysctl(name: str) -> str | None:
    try:
        return (Path("/proc/sys") / name).read_text().strip()
    except OSError:
        return None


def _write_sysctl(name: str, value: str) -> None:
    with contextlib.suppress(OSError):
        (Path("/proc/sys") / name).write_text(value + "\n")


def _mounts_under(prefixes: Sequence[str]) -> list[str]:
    """Mount points at or below any of ``prefixes``, deepest first."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def _unmount_under(prefixes: Sequence[str]) -> None:
    for point in _mounts_under(prefixes):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _remove_cgroups(name: str) -> None:
    """rmdir every cgroup at and under ``/<hierarchy>/<name>``, leaves first."""
    if not CGROUP_FS.is_dir():
        return
    for hierarchy in CGROUP_FS.iterdir():
        top = hierarchy / name
        if not top.is_dir():
            continue
        dirs = [Path(root) for root, _, _ in os.walk(top)]
        for cgroup in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                cgroup.rmdir()


def _iptables_chains(prefix: str) -> dict[str, list[str]]:
    """Chains named ``prefix*`` by table, as iptables-save shows them."""
    chains: dict[str, list[str]] = {}
    for table in ("filter", "nat", "mangle"):
        proc = subprocess.run(
            ["iptables-save", "-t", table], capture_output=True, text=True, check=False
        )
        chains[table] = [
            line[1:].split()[0]
            for line in proc.stdout.splitlines()
            if line.startswith(":" + prefix)
        ]
    return chains


@dataclass
class MachineState:
    """What the node is about to change, recorded before it starts (and saved to NODE_STATE)."""

    sysctls: dict[str, str]
    existing_paths: list[str]
    kube_chains: dict[str, list[str]]
    bridge_existed: bool
    workdir: str = ""
    pids: list[int] = field(default_factory=list)
    containerd_socket: str = ""

    @classmethod
    def snapshot(cls) -> MachineState:
        sysctls = {name: value for name in SYSCTLS if (value := _read_sysctl(name)) is not None}
        return cls(
            sysctls=sysctls,
            existing_paths=[p for p in HOST_PATHS if os.path.lexists(p)],
            kube_chains=_iptables_chains("KUBE-"),
            bridge_existed=Path(f"/sys/class/net/{BRIDGE}").exists(),
        )

    def save(self) -> None:
        NODE_STATE.parent.mkdir(parents=True, exist_ok=True)
        NODE_STATE.write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls) -> MachineState | None:
        try:
            return cls(**json.loads(NODE_STATE.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def restore(self) -> None:
        """Undo whatever the node left; safe to call on a machine the node never touched."""
        for pid in self.pids:
            _kill_component(pid)
        if self.containerd_socket:
            _kill_shims(self.containerd_socket)
        _kill_cgroup_processes(CGROUP_ROOT)
        prefixes = [str(KUBELET_ROOT), "/run/containerd", "/run/netns", "/var/run/netns"]
        if self.workdir:
            prefixes.append(self.workdir)
        _unmount_under(prefixes)
        for path in HOST_PATHS:
            if path not in self.existing_paths and os.path.lexists(path):
                if os.path.islink(path):
                    os.unlink(path)
                else:
                    shutil.rmtree(path, ignore_errors=True)
        _remove_cgroups(CGROUP_ROOT)
        if not self.bridge_existed and Path(f"/sys/class/net/{BRIDGE}").exists():
            subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)
        _remove_new_chains(self.kube_chains)
        for name, value in self.sysctls.items():
            if _read_sysctl(name) != value:
                _write_sysctl(name, value)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _remove_new_chains(before: dict[str, list[str]]) -> None:
    """Flush and delete the KUBE-* chains (and the rules jumping to them) made since ``before``."""
    for table, chains in _iptables_chains("KUBE-").items():
        new = [c for c in chains if c not in before.get(table, [])]
        if not new:
            continue
        dump = subprocess.run(
            ["iptables-save", "-t", table], capture_output=True, text=True, check=False
        ).stdout
        for line in dump.splitlines():
            words = shlex.split(line)  # kube-proxy's rules carry quoted comments
            jumps_to_new = "-j" in words and words[words.index("-j") + 1] in new
            if line.startswith("-A ") and jumps_to_new and words[1] not in new:
                subprocess.run(
                    ["iptables", "-t", table, "-D", *words[1:]], capture_output=True, check=False
                )
        for chain in new:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True, check=False)
        for chain in new:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True, check=False)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _kill_component(pid: int) -> None:
    """SIGKILL ``pid`` if it is still a node component (the pid was recorded when it started)."""
    argv = _cmdline(pid)
    names = ("kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager", "containerd")
    if argv and Path(argv[0]).name in names and pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _kill_cgroup_processes(name: str, timeout: float = 10.0) -> None:
    """SIGKILL every process left in the node's cgroups (``/<hierarchy>/<name>`` and below):
    the containers of a killed run, orphaned when their shims died, which would keep the
    cgroups, mounts and network namespaces alive."""
    if not CGROUP_FS.is_dir():
        return
    deadline = time.monotonic() + timeout
    while True:
        pids: set[int] = set()
        for hierarchy in CGROUP_FS.iterdir():
            for root, _, files in os.walk(hierarchy / name):
                if "cgroup.procs" in files:
                    with contextlib.suppress(OSError):
                        text = (Path(root) / "cgroup.procs").read_text()
                        pids.update(int(pid) for pid in text.split())
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _kill_shims(containerd_socket: str) -> None:
    """containerd's shims outlive it; each names the socket of the containerd that started it."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(int(entry.name))
        if argv and Path(argv[0]).name.startswith("containerd-shim") and containerd_socket in argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


# ---------------------------------------------------------------- the node


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    out: IO[bytes]


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (OSError, urllib.error.URLError):
        return False


class Node:
    """The node's components beside a running ``plane``. ``start()`` returns once the Node is
    Ready, kube-proxy serves and the default ServiceAccount exists; ``stop()`` undoes it all."""

    def __init__(
        self,
        plane: ControlPlane,
        bin_dir: Path,
        *,
        workdir: Path | None = None,
        name: str = NODE_NAME,
        address: str | None = None,
    ) -> None:
        self.plane = plane
        self.bin_dir = bin_dir
        self.name = name
        self.address = address or node_address()
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="spo-e2e-node-"))
        self.containerd_dir = self.workdir / "containerd"
        self.containerd_socket = self.containerd_dir / "containerd.sock"
        self.timings: dict[str, float] = {}
        self.state: MachineState | None = None
        self._processes: list[_Process] = []

    # ------------------------------------------------------------ lifecycle

    def start(self, *, timeout: float = 180.0) -> None:
        begin = time.monotonic()
        deadline = begin + timeout
        self.state = MachineState.snapshot()
        self.state.workdir = str(self.workdir)
        self.state.containerd_socket = str(self.containerd_socket)
        self.state.save()
        try:
            self._write_configuration()
            self._start_containerd(deadline)
            self._start_cluster_components()
            self._start_kubelet(deadline)
            self._start_kube_proxy(deadline)
            self._wait("the default ServiceAccount", deadline, self._default_service_account)
        except BaseException:
            self.stop()
            raise
        self.timings["start_s"] = time.monotonic() - begin

    def stop(self, *, timeout: float = 120.0) -> None:
        """Delete every pod (and wait for the kubelet to stop them), stop the components, undo
        the machine changes. Idempotent."""
        begin = time.monotonic()
        if self._running("kubelet"):
            self._stop_process("kube-controller-manager")  # nothing recreates a deleted pod
            self._delete_all_pods(timeout)
        self._stop_process("kube-proxy")
        if (self.bin_dir / "kube-proxy").exists() and self.state is not None:
            subprocess.run(
                [str(self.bin_dir / "kube-proxy"), "--cleanup"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        for name in ("kubelet", "kube-scheduler", "kube-controller-manager", "containerd"):
            self._stop_process(name)
        for process in self._processes:
            process.out.close()
        self._processes.clear()
        if self.state is not None:
            keep = os.environ.get("CONTROLPLANE_KEEP") == "1"
            if keep:
                self.state.workdir = ""  # keep the logs
            self.state.restore()
            self.state = None
            NODE_STATE.unlink(missing_ok=True)
        self.timings["stop_s"] = time.monotonic() - begin

    # ------------------------------------------------------------ processes

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = self.workdir / f"{name}.log"
        out = log.open("ab")
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env or dict(os.environ),
            preexec_fn=_preexec(),  # noqa: PLW1509 - only when single-threaded
        )
        self._processes.append(_Process(name, popen, log, out))
        if self.state is not None:
            self.state.pids.append(popen.pid)
            self.state.save()

    def _process(self, name: str) -> _Process | None:
        return next((p for p in self._processes if p.name == name), None)

    def _running(self, name: str) -> bool:
        process = self._process(name)
        return process is not None and process.popen.poll() is None

    def _stop_process(self, name: str, timeout: float = 30.0) -> None:
        process = self._process(name)
        if process is None or process.popen.poll() is not None:
            return
        process.popen.terminate()
        try:
            process.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait(timeout=15)

    def _wait(self, what: str, deadline: float, ready: Callable[[], bool]) -> None:
        while True:
            for process in self._processes:
                if process.popen.poll() is not None:
                    raise NodeStartError(
                        f"{process.name} exited with {process.popen.returncode} while waiting"
                        f" for {what}\n" + self.describe_logs()
                    )
            if ready():
                return
            if time.monotonic() > deadline:
                raise NodeStartError(f"{what} not ready in time\n" + self.describe_logs())
            time.sleep(0.2)

    def describe_logs(self, lines: int = 40) -> str:
        return "\n".join(
            f"----- last {lines} lines of {p.log} -----\n{_tail(p.log, lines)}"
            for p in self._processes
        )

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    # ------------------------------------------------------------ configuration

    def _kubeconfig(self, name: str, subject: str) -> Path:
        assert self.plane.pki is not None
        cert, key = self.plane.pki.issue(name, subject, CLIENT_EXTENSIONS)
        user = {"client-certificate": str(cert), "client-key": str(key)}
        path = self.workdir / f"{name}.kubeconfig"
        config = _kubeconfig(self.plane.server, self.plane.pki.ca_cert, user, name)
        path.write_text(yaml.safe_dump(config))
        return path

    def _write_configuration(self) -> None:
        assert self.plane.pki is not None
        pki = self.plane.pki
        self.kcm_kubeconfig = self._kubeconfig(
            "kube-controller-manager", "/CN=system:kube-controller-manager"
        )
        self.scheduler_kubeconfig = self._kubeconfig("kube-scheduler", "/CN=system:kube-scheduler")
        self.proxy_kubeconfig = self._kubeconfig("kube-proxy", "/CN=system:kube-proxy")
        self.kubelet_kubeconfig = self._kubeconfig(
            "kubelet", f"/O=system:nodes/CN=system:node:{self.name}"
        )
        serving_cert, serving_key = pki.issue(
            "kubelet-serving",
            f"/O=system:nodes/CN=system:node:{self.name}",
            server_extensions([f"IP:{self.address}", f"DNS:{self.name}", "IP:127.0.0.1"]),
        )
        for sub in ("root", "state", "net.d", "cni-ipam", "pod-logs"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.containerd_dir.mkdir(parents=True, exist_ok=True)
        self.containerd_config = self.containerd_dir / "config.toml"
        self.containerd_config.write_text(self._containerd_toml())
        (self.workdir / "net.d" / "10-spo-e2e.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "spo-e2e",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(self.workdir / "cni-ipam"),
                            },
                        }
                    ],
                },
                indent=1,
            )
        )
        self.kubelet_config = self.workdir / "kubelet.yaml"
        self.kubelet_config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    # This kernel mounts cgroup v1, which kubelet 1.35+ refuses unless told.
                    "failCgroupV1": False,
                    "cgroupDriver": "cgroupfs",
                    "cgroupRoot": f"/{CGROUP_ROOT}",
                    "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
                    "authentication": {
                        "anonymous": {"enabled": False},
                        "webhook": {"enabled": True},
                        "x509": {"clientCAFile": str(pki.ca_cert)},
                    },
                    "authorization": {"mode": "Webhook"},
                    "tlsCertFile": str(serving_cert),
                    "tlsPrivateKeyFile": str(serving_key),
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",
                    "healthzPort": 10248,
                    "podLogsDir": str(self.workdir / "pod-logs"),
                    "resolvConf": "/etc/resolv.conf",
                    "clusterDomain": "cluster.local",
                    "failSwapOn": False,
                    # Our images cannot be pulled again: never collect them, never evict for disk.
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "evictionHard": {
                        "memory.available": "100Mi",
                        "nodefs.available": "1%",
                        "imagefs.available": "1%",
                        "nodefs.inodesFree": "1%",
                    },
                    # Mounted ConfigMaps (the webhook's binding table) follow in seconds.
                    "syncFrequency": "10s",
                    "serializeImagePulls": False,
                    "shutdownGracePeriod": "0s",
                }
            )
        )
        self.proxy_config = self.workdir / "kube-proxy.yaml"
        self.proxy_config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": str(self.proxy_kubeconfig)},
                    "hostnameOverride": self.name,
                    "mode": "iptables",
                    "clusterCIDR": POD_CIDR,
                    "bindAddress": self.address,
                    "healthzBindAddress": "127.0.0.1:10256",
                    "metricsBindAddress": "127.0.0.1:10249",
                    # Leave the host's conntrack settings and route_localnet alone.
                    "conntrack": {
                        "maxPerCore": 0,
                        "tcpEstablishedTimeout": "0s",
                        "tcpCloseWaitTimeout": "0s",
                    },
                    "iptables": {"localhostNodePorts": False},
                }
            )
        )

    def _containerd_toml(self) -> str:
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        runc = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]'
        return "\n".join(
            [
                "version = 2",
                f'root = "{self.workdir / "root"}"',
                f'state = "{self.workdir / "state"}"',
                # "opt" would install into /opt/containerd: nothing here needs it.
                'disabled_plugins = ["io.containerd.internal.v1.opt"]',
                "[grpc]",
                f'  address = "{self.containerd_socket}"',
                "[ttrpc]",
                f'  address = "{self.containerd_socket}.ttrpc"',
                cri,
                f'  sandbox_image = "{SANDBOX_IMAGE}"',
                # This VM lacks CAP_SYS_RESOURCE: without it runc cannot write oom_score_adj.
                "  restrict_oom_score_adj = true",
                '[plugins."io.containerd.grpc.v1.cri".containerd]',
                '  snapshotter = "overlayfs"',
                '  default_runtime_name = "runc"',
                runc,
                '  runtime_type = "io.containerd.runc.v2"',
                '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
                "  SystemdCgroup = false",
                '[plugins."io.containerd.grpc.v1.cri".cni]',
                f'  bin_dir = "{CNI_BIN_DIR}"',
                f'  conf_dir = "{self.workdir / "net.d"}"',
                "",
            ]
        )

    # ------------------------------------------------------------ components

    def ctr(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """containerd's ``ctr`` on this node's containerd, in the CRI's namespace."""
        proc = subprocess.run(
            ["ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def import_image(self, archive: Path) -> None:
        """``ctr images import`` of a docker or OCI archive (tools/image/build.sh makes them)."""
        begin = time.monotonic()
        self.ctr("images", "import", str(archive))
        self.timings[f"import_{archive.name}_s"] = time.monotonic() - begin

    def images(self) -> list[str]:
        return self.ctr("images", "list", "--quiet").stdout.split()

    def _start_containerd(self, deadline: float) -> None:
        t0 = time.monotonic()
        self._spawn("containerd", ["containerd", "--config", str(self.containerd_config)])
        self._wait("containerd", deadline, self._containerd_serves)
        self.timings["containerd_ready_s"] = time.monotonic() - t0

    def _containerd_serves(self) -> bool:
        if not self.containerd_socket.exists():
            return False
        proc = subprocess.run(
            ["ctr", "--address", str(self.containerd_socket), "version"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return proc.returncode == 0

    def _start_cluster_components(self) -> None:
        assert self.plane.pki is not None
        pki = self.plane.pki
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.kcm_kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                f"--cluster-cidr={POD_CIDR}",
                "--allocate-node-cidrs=false",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={self.scheduler_kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=1",
            ],
        )

    def _start_kubelet(self, deadline: float) -> None:
        t0 = time.monotonic()
        KUBELET_ROOT.mkdir(parents=True, exist_ok=True)
        for hierarchy in CGROUP_FS.iterdir():
            if (hierarchy / "cgroup.procs").exists():
                (hierarchy / CGROUP_ROOT).mkdir(exist_ok=True)
        cpuset = CGROUP_FS / "cpuset"
        for name in ("cpuset.cpus", "cpuset.mems"):  # a new v1 cpuset starts empty
            if (cpuset / name).exists():
                (cpuset / CGROUP_ROOT / name).write_text((cpuset / name).read_text())
        self._spawn(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={self.kubelet_config}",
                f"--kubeconfig={self.kubelet_kubeconfig}",
                f"--root-dir={KUBELET_ROOT}",
                f"--cert-dir={self.workdir / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.address}",
                "--v=1",
            ],
        )
        self._wait("the kubelet's /healthz", deadline, lambda: _http_ok(KUBELET_HEALTHZ))
        self._wait(f"Node {self.name} Ready", deadline, self._node_ready)
        self.timings["node_ready_s"] = time.monotonic() - t0

    def _node_ready(self) -> bool:
        status, body = self.plane.get(f"/api/v1/nodes/{self.name}")
        if status != 200:
            return False
        conditions = json.loads(body).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _start_kube_proxy(self, deadline: float) -> None:
        t0 = time.monotonic()
        self._spawn(
            "kube-proxy",
            [str(self.bin_dir / "kube-proxy"), f"--config={self.proxy_config}", "--v=1"],
        )
        self._wait("kube-proxy's /healthz", deadline, lambda: _http_ok(KUBE_PROXY_HEALTHZ))
        self.timings["proxy_ready_s"] = time.monotonic() - t0

    def _default_service_account(self) -> bool:
        sa, _ = self.plane.get("/api/v1/namespaces/default/serviceaccounts/default")
        ca, _ = self.plane.get("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
        return sa == 200 and ca == 200

    # ------------------------------------------------------------ pods

    def _delete_all_pods(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self.plane.kubectl(
            "delete", "pods", "--all", "--all-namespaces", "--wait=false", check=False
        )
        while time.monotonic() < deadline:
            pods = self.plane.kubectl_json("get", "pods", "--all-namespaces", check=False)
            if not pods["items"]:
                break
            time.sleep(0.5)
        else:  # what the kubelet did not stop in time goes with its containerd
            self.plane.kubectl(
                "delete",
                "pods",
                "--all",
                "--all-namespaces",
                "--force",
                "--grace-period=0",
                check=False,
            )
        # The kubelet stops a deleted pod's sandbox (its network goes with it); wait for that.
        while time.monotonic() < deadline:
            try:
                if not self.ctr("tasks", "list", "--quiet", timeout=30).stdout.split():
                    return
            except (AssertionError, subprocess.TimeoutExpired):
                return  # containerd is gone: restore() kills its shims
            time.sleep(0.5)


@contextlib.contextmanager
def machine_lock(timeout: float = 3600.0) -> Iterator[None]:
    """Hold NODE_LOCK (one node per machine); wait for it up to ``timeout`` seconds."""
    NODE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with NODE_LOCK.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ControlPlaneUnavailable(
                        f"another node holds {NODE_LOCK} for more than {timeout:.0f}s"
                    ) from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def recover_killed_run() -> bool:
    """Undo what a node killed before its teardown left (NODE_STATE); under the lock only."""
    state = MachineState.load()
    if state is None:
        return False
    state.restore()
    NODE_STATE.unlink(missing_ok=True)
    return True


@dataclass
class Cluster:
    """A one-node cluster: ``plane`` (etcd, kube-apiserver) and ``node`` (the rest)."""

    plane: ControlPlane
    node: Node
    images: dict[str, str] = field(default_factory=dict)  # role -> image reference

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl(*args, **kwargs)


def node_binaries() -> Path:
    """Every binary the cluster runs, built by controlplane/build.sh when missing."""
    return ensure_binaries(names=(*BINARIES, *NODE_BINARIES))


class MachineChanged(AssertionError):
    """The node's teardown left the machine different from how it found it."""


@contextlib.contextmanager
def node_cluster(
    bin_dir: Path, images: Sequence[Path] = (), *, lock_timeout: float = 3600.0
) -> Iterator[Cluster]:
    """Lock the machine, start a control plane for a node and the node, import ``images``;
    on exit stop everything and leave the machine as found: MachineChanged otherwise."""
    missing = missing_components()
    if missing:
        raise ControlPlaneUnavailable("the node needs: " + ", ".join(missing))
    with machine_lock(lock_timeout):
        recover_killed_run()
        before = machine_fingerprint()
        address = node_address()
        plane = ControlPlane(
            bin_dir,
            bind_address="0.0.0.0",
            advertise_address=address,
            disabled_admission_plugins=(),
            extra_apiserver_args=["--enable-admission-plugins=NodeRestriction"],
        )
        plane.start()
        try:
            node = Node(plane, bin_dir, address=address)
            node.start()
            try:
                for archive in images:
                    node.import_image(archive)
                yield Cluster(plane, node)
            finally:
                node.stop()
        finally:
            plane.stop()
        after = machine_fingerprint()
        if after != before:
            changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
            raise MachineChanged(f"the node left the machine changed (before, after): {changed}")


def machine_fingerprint() -> dict[str, Any]:
    """What the node may leave behind, as it is now: compared before and after a cluster's life.
    Only what is the node's own (its paths, mounts below them, its bridge and veths, the
    KUBE-/CNI- iptables chains, its cgroup root, the sysctls it sets), so that other work on
    the machine does not disturb the comparison."""
    prefixes = [p for p in HOST_PATHS if p != "/var/log/pods"]
    links = sorted(
        link.name
        for link in Path("/sys/class/net").iterdir()
        if link.name == BRIDGE or link.name.startswith("veth")
    )
    chains = {t: c for t, c in _iptables_chains("KUBE-").items() if c}
    chains.update({f"{t} CNI": c for t, c in _iptables_chains("CNI-").items() if c})
    return {
        "sysctls": {name: _read_sysctl(name) for name in SYSCTLS},
        "paths": [p for p in HOST_PATHS if os.path.lexists(p)],
        "mounts": _mounts_under(prefixes),
        "links": links,
        "iptables": chains,
        "cgroups": sorted(
            str(h / CGROUP_ROOT) for h in CGROUP_FS.iterdir() if (h / CGROUP_ROOT).exists()
        )
        if CGROUP_FS.is_dir()
        else [],
    }
