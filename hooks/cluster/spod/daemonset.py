"""The DaemonSets of a SecurityProfilesOperatorDaemon, built from its spec alone.

Pure and deterministic: the same spod gives the same DaemonSets, built fresh
on every call. nodesync's DaemonSet is named after the spod and is the one of
``metacontroller/base/nodesync.yaml`` (a test keeps them together);
``enableLogEnricher`` adds the log enricher's. Which spec field and which
annotation go where: docs/architecture.md, "The spod's DaemonSets".
"""

from __future__ import annotations

from hooks.api.base import Object
from hooks.api.spod import (
    DEFAULT_PRIORITY_CLASS_NAME,
    DEFAULT_SELINUX_TYPE_TAG,
    SecurityProfilesOperatorDaemon,
)

IMAGE_ANNOTATION = "spo.x-k8s.io/image"
SELINUXD_IMAGE_ANNOTATION = "spo.x-k8s.io/selinuxd-image"
DEFAULT_IMAGE = "security-profiles-operator-py:latest"
DEFAULT_SELINUXD_IMAGE = "quay.io/security-profiles-operator/selinuxd"
IMAGE_ANNOTATIONS = (IMAGE_ANNOTATION, SELINUXD_IMAGE_ANNOTATION)
WATCH_NAMESPACE_ANNOTATION = "spo.x-k8s.io/watch-namespace"

APP_NAME = "spo-nodesync"
PART_OF = "security-profiles-operator"
SERVICE_ACCOUNT = "spo-nodesync"
ENRICHER_APP_NAME = "spo-log-enricher"
ENRICHER_SERVICE_ACCOUNT = "spo-log-enricher"
ENRICHER_SUFFIX = "-log-enricher"
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"

NODESYNC_USER = 65535
KUBELET_DIR = "/var/lib/kubelet"
KUBELET_SECCOMP_DIR = f"{KUBELET_DIR}/seccomp"
OPERATOR_DIR = f"{KUBELET_SECCOMP_DIR}/operator"
METRICS_PORT = 8085
ENRICHER_METRICS_PORT = 8086
# The authenticated metrics (the Service "metrics", docs/metrics.md): nodesync serves
# /metrics and /metrics-spod over HTTPS with the certificate of this Secret (optional: the
# pod starts before cert-manager or the administrator writes it), and reads the log
# enricher's audit counters from its socket in a host folder both pods mount.
SECURE_METRICS_PORT = 9443
METRICS_TLS_SECRET = "spo-metrics-tls"  # noqa: S105 (a Secret's name)
METRICS_TLS_DIR = "/etc/spo/metrics-tls"
METRICS_SOCKET_DIR = "/var/run/security-profiles-operator"
ENRICHER_METRICS_SOCKET = f"{METRICS_SOCKET_DIR}/log-enricher-metrics.sock"
ENRICHER_STATE_DIR = "/var/lib/security-profiles-operator/log-enricher"

SELINUX_POLICY_DIR = "/etc/selinux.d"
SELINUXD_DIR = "/var/run/selinuxd"
SELINUXD_SOCKET = f"{SELINUXD_DIR}/selinuxd.sock"
SELINUXD_DB = f"{SELINUXD_DIR}/selinuxd.db"
SELINUXD_TEMPLATES = "/usr/share/selinuxd/templates"
AUDIT_LOG_DIR = "/var/log/audit"
DEFAULT_HOST_PROC = "/proc"
HOST_PROC_MOUNT = "/host/proc"

NODESYNC = "nodesync"
SELINUXD = "selinuxd"
LOG_ENRICHER = "log-enricher"


def default_tolerations() -> list[Object]:
    """Go's defaults: the control plane (both taint spellings) and nodes that are not ready."""
    return [
        {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
        {
            "key": "node-role.kubernetes.io/control-plane",
            "operator": "Exists",
            "effect": "NoSchedule",
        },
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    ]


def default_nodesync_resources() -> Object:
    return {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }


def images(spod: SecurityProfilesOperatorDaemon) -> tuple[str, str]:
    """The operator's image and selinuxd's, from the spod's annotations or the defaults."""
    annotations = spod.metadata.annotations or {}
    return (
        annotations.get(IMAGE_ANNOTATION, DEFAULT_IMAGE),
        annotations.get(SELINUXD_IMAGE_ANNOTATION, DEFAULT_SELINUXD_IMAGE),
    )


def selector(spod_name: str) -> Object:
    """nodesync's DaemonSet's selector: fixed for a spod, whatever its spec says."""
    return {"matchLabels": {NAME_LABEL: APP_NAME, INSTANCE_LABEL: spod_name}}


def log_enricher_name(spod_name: str) -> str:
    """The name of the log enricher's DaemonSet: ``spod-log-enricher`` for the spod ``spod``."""
    return spod_name + ENRICHER_SUFFIX


def log_enricher_selector(spod_name: str) -> Object:
    """The log enricher's DaemonSet's selector: fixed for a spod, whatever its spec says."""
    return {"matchLabels": {NAME_LABEL: ENRICHER_APP_NAME, INSTANCE_LABEL: spod_name}}


def daemonsets(spod: SecurityProfilesOperatorDaemon) -> list[Object]:
    """Every desired DaemonSet of ``spod`` (already validated): nodesync's, then the log
    enricher's."""
    wanted = [daemonset(spod)]
    if spod.spec.enableLogEnricher:
        wanted.append(log_enricher_daemonset(spod))
    return wanted


def daemonset(spod: SecurityProfilesOperatorDaemon) -> Object:
    """nodesync's desired DaemonSet of ``spod`` (already validated), with only the fields we own."""
    spec = spod.spec
    image, selinuxd_image = images(spod)
    selinux = bool(spec.enableSelinux)
    type_tag = spec.selinuxTypeTag or DEFAULT_SELINUX_TYPE_TAG
    label_nodesync = spec.selinuxTypeTag is not None or selinux
    debug = (spec.verbosity or 0) >= 1

    nodesync = _nodesync(spod, image, debug=debug, selinux=selinux)
    init_containers = [_prepare_operator_dir(image)]
    containers = [nodesync]
    volumes = [
        _host_path("kubelet-seccomp", KUBELET_SECCOMP_DIR, "DirectoryOrCreate"),
        _tmp(),
        *_metrics_volumes(),
    ]
    if label_nodesync:
        for container in (*init_containers, nodesync):
            container["securityContext"]["seLinuxOptions"] = {"type": type_tag}
    if selinux:
        init_containers.append(_selinux_templates(selinuxd_image, type_tag))
        containers.append(_selinuxd(selinuxd_image, type_tag))
        volumes += [
            {"name": "selinux-drop-dir", "emptyDir": {}},
            {"name": "selinuxd-run", "emptyDir": {}},
            _host_path("host-etc-selinux", "/etc/selinux", "Directory"),
            _host_path("host-var-lib-selinux", "/var/lib/selinux", "Directory"),
            _host_path("host-sys-fs-selinux", "/sys/fs/selinux", "Directory"),
        ]

    pod: Object = {
        "serviceAccountName": SERVICE_ACCOUNT,
        **_scheduling(spod),
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": init_containers,
        "containers": containers,
        "volumes": volumes,
    }
    _place(pod, spod)
    name = spod.name
    labels = _labels(name)
    return _daemonset(
        spod,
        name,
        labels=labels,
        pod_selector=selector(name),
        # Go's pod labels too, for selectors written against the Go operator.
        pod_labels={**labels, "app": PART_OF, "name": name},
        pod=pod,
    )


def log_enricher_daemonset(spod: SecurityProfilesOperatorDaemon) -> Object:
    """The log enricher's desired DaemonSet of ``spod`` (already validated), whether or not
    ``enableLogEnricher`` asks for it (see ``daemonsets``)."""
    spec = spod.spec
    image, _ = images(spod)
    host_proc = spec.hostProcVolumePath or DEFAULT_HOST_PROC
    custom_proc = host_proc != DEFAULT_HOST_PROC
    volumes = [
        _host_path("host-audit-log", AUDIT_LOG_DIR, "DirectoryOrCreate"),
        _host_path("state", ENRICHER_STATE_DIR, "DirectoryOrCreate"),
        _tmp(),
        _metrics_socket_volume(),
    ]
    if custom_proc:
        volumes.append(_host_path("host-proc", host_proc, "Directory"))
    pod: Object = {
        "serviceAccountName": ENRICHER_SERVICE_ACCOUNT,
        **_scheduling(spod),
        "hostPID": True,
        "hostNetwork": True,  # the proc connector is in the host's network namespace only
        "dnsPolicy": "ClusterFirstWithHostNet",
        # nodesync's group, to which the metrics socket belongs
        "securityContext": {
            "seccompProfile": {"type": "RuntimeDefault"},
            "supplementalGroups": [NODESYNC_USER],
        },
        "containers": [_log_enricher(spod, image, custom_proc=custom_proc)],
        "volumes": volumes,
    }
    _place(pod, spod)
    labels = _enricher_labels(spod.name)
    return _daemonset(
        spod,
        log_enricher_name(spod.name),
        labels=labels,
        pod_selector=log_enricher_selector(spod.name),
        pod_labels={**labels, "app": PART_OF},
        pod=pod,
    )


def _scheduling(spod: SecurityProfilesOperatorDaemon) -> Object:
    spec = spod.spec
    return {
        "priorityClassName": spec.priorityClassName or DEFAULT_PRIORITY_CLASS_NAME,
        "tolerations": (
            default_tolerations()
            if spec.tolerations is None
            else [toleration.to_wire() for toleration in spec.tolerations]
        ),
    }


def _place(pod: Object, spod: SecurityProfilesOperatorDaemon) -> None:
    """The pod fields that go to every DaemonSet of the spod as given, when given."""
    spec = spod.spec
    if spec.affinity is not None:
        pod["affinity"] = spec.affinity.to_wire()
    if spec.imagePullSecrets is not None:
        pod["imagePullSecrets"] = [secret.to_wire() for secret in spec.imagePullSecrets]


def _daemonset(
    spod: SecurityProfilesOperatorDaemon,
    name: str,
    *,
    labels: dict[str, str],
    pod_selector: Object,
    pod_labels: dict[str, str],
    pod: Object,
) -> Object:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": spod.namespace, "labels": labels},
        "spec": {
            "selector": pod_selector,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
            "template": {"metadata": {"labels": pod_labels}, "spec": pod},
        },
    }


def _labels(spod_name: str) -> dict[str, str]:
    return {NAME_LABEL: APP_NAME, INSTANCE_LABEL: spod_name, "app.kubernetes.io/part-of": PART_OF}


def _enricher_labels(spod_name: str) -> dict[str, str]:
    return {
        NAME_LABEL: ENRICHER_APP_NAME,
        INSTANCE_LABEL: spod_name,
        "app.kubernetes.io/part-of": PART_OF,
    }


def _tmp() -> Object:
    return {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}


def _host_path(name: str, path: str, kind: str) -> Object:
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def _metrics_socket_volume() -> Object:
    return _host_path("metrics-socket", METRICS_SOCKET_DIR, "DirectoryOrCreate")


def _metrics_volumes() -> list[Object]:
    secret = {"secretName": METRICS_TLS_SECRET, "optional": True}
    return [{"name": "metrics-tls", "secret": secret}, _metrics_socket_volume()]


def _env(name: str, value: str) -> Object:
    return {"name": name, "value": value}


def _node_name() -> Object:
    return {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}


def _watch_namespace(spod: SecurityProfilesOperatorDaemon) -> list[Object]:
    watch_namespace = (spod.metadata.annotations or {}).get(WATCH_NAMESPACE_ANNOTATION, "")
    return [_env("WATCH_NAMESPACE", watch_namespace.strip())] if watch_namespace.strip() else []


def _probes() -> Object:
    return {
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "periodSeconds": 20,
            "failureThreshold": 3,
        },
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 5},
    }


def _prepare_operator_dir(image: str) -> Object:
    """The one root step: hand the operator directory to the user nodesync runs as."""
    owner = f"{NODESYNC_USER}:{NODESYNC_USER}"
    return {
        "name": "prepare-operator-dir",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "/bin/sh",
            "-c",
            f"mkdir -p {OPERATOR_DIR} && chown -R {owner} {OPERATOR_DIR} && chmod 0744 "
            f"{OPERATOR_DIR}",
        ],
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER", "DAC_OVERRIDE"]},
        },
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"cpu": "100m", "memory": "32Mi"},
        },
        "volumeMounts": [{"name": "kubelet-seccomp", "mountPath": KUBELET_SECCOMP_DIR}],
    }


def _nodesync(
    spod: SecurityProfilesOperatorDaemon, image: str, *, debug: bool, selinux: bool
) -> Object:
    spec = spod.spec
    env = [_node_name(), _env("KUBELET_DIR", KUBELET_DIR), _env("PYTHONDONTWRITEBYTECODE", "1")]
    if debug:
        env.append(_env("LOG_LEVEL", "debug"))
    env += _watch_namespace(spod)
    mounts = [
        {"name": "kubelet-seccomp", "mountPath": KUBELET_SECCOMP_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "metrics-tls", "mountPath": METRICS_TLS_DIR, "readOnly": True},
        {"name": "metrics-socket", "mountPath": METRICS_SOCKET_DIR, "readOnly": True},
    ]
    if selinux:
        env += [
            _env("SELINUXD_SOCKET", SELINUXD_SOCKET),
            _env("SELINUX_POLICY_DIR", SELINUX_POLICY_DIR),
        ]
        mounts += [
            {"name": "selinux-drop-dir", "mountPath": SELINUX_POLICY_DIR},
            {"name": "selinuxd-run", "mountPath": SELINUXD_DIR},
        ]
    resources = (
        spec.daemonResourceRequirements.to_wire()
        if spec.daemonResourceRequirements is not None
        else default_nodesync_resources()
    )
    return {
        "name": NODESYNC,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["spo", "nodesync"],
        "args": [
            f"--metrics-bind=0.0.0.0:{METRICS_PORT}",
            f"--secure-metrics-bind=0.0.0.0:{SECURE_METRICS_PORT}",
            f"--tls-cert-file={METRICS_TLS_DIR}/tls.crt",
            f"--tls-key-file={METRICS_TLS_DIR}/tls.key",
            f"--enricher-metrics-socket={ENRICHER_METRICS_SOCKET}",
        ],
        "env": env,
        "ports": [
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            {"name": "https", "containerPort": SECURE_METRICS_PORT, "protocol": "TCP"},
        ],
        **_probes(),
        "securityContext": {
            "runAsUser": NODESYNC_USER,
            "runAsGroup": NODESYNC_USER,
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": resources,
        "volumeMounts": mounts,
    }


def _selinux_mounts() -> list[Object]:
    return [
        {"name": "host-etc-selinux", "mountPath": "/etc/selinux"},
        {"name": "host-var-lib-selinux", "mountPath": "/var/lib/selinux"},
        {"name": "host-sys-fs-selinux", "mountPath": "/sys/fs/selinux"},
    ]


def _root_security(type_tag: str) -> Object:
    """What semodule needs as root on the host's policy store, and nothing more."""
    return {
        "runAsUser": 0,
        "runAsGroup": 0,
        "runAsNonRoot": False,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER", "FSETID", "DAC_OVERRIDE"]},
        "seLinuxOptions": {"type": type_tag},
    }


def _selinux_templates(image: str, type_tag: str) -> Object:
    """Install the policy templates selinuxd ships (``container``...), which profiles inherit."""
    return {
        "name": "selinux-templates",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/bash", "-c", f"semodule -i {SELINUXD_TEMPLATES}/*.cil"],
        "securityContext": _root_security(type_tag),
        "resources": {
            "requests": {"cpu": "100m", "memory": "32Mi"},
            "limits": {"memory": "1024Mi"},
        },
        "volumeMounts": _selinux_mounts(),
    }


def _selinuxd(image: str, type_tag: str) -> Object:
    """selinuxd: installs the CIL files nodesync drops into the shared directory.

    Its socket belongs to nodesync's group, so nodesync can ask it what it did.
    """
    return {
        "name": SELINUXD,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "daemon",
            "--datastore-path",
            SELINUXD_DB,
            "--socket-path",
            SELINUXD_SOCKET,
            "--socket-uid",
            "0",
            "--socket-gid",
            str(NODESYNC_USER),
        ],
        "securityContext": _root_security(type_tag),
        # libsemanage needs a lot of memory to relink the policy.
        "resources": {
            "requests": {"cpu": "100m", "memory": "512Mi"},
            "limits": {"memory": "1024Mi"},
        },
        "volumeMounts": [
            {"name": "selinux-drop-dir", "mountPath": SELINUX_POLICY_DIR, "readOnly": True},
            {"name": "selinuxd-run", "mountPath": SELINUXD_DIR},
            *_selinux_mounts(),
        ],
    }


def _log_enricher(spod: SecurityProfilesOperatorDaemon, image: str, *, custom_proc: bool) -> Object:
    """The log enricher reads the host's audit log as root, with NET_ADMIN for the process
    events."""
    spec = spod.spec
    env = [
        _node_name(),
        _env("PYTHONDONTWRITEBYTECODE", "1"),
        _env("METRICS_BIND", f"0.0.0.0:{ENRICHER_METRICS_PORT}"),
    ]
    if (spec.verbosity or 0) >= 1:
        env.append(_env("LOG_LEVEL", "debug"))
    if spec.enableMemoryOptimization:
        env.append(_env("ENABLE_MEMORY_OPTIMIZATION", "true"))
    env += _watch_namespace(spod)
    args = [
        f"--state-dir={ENRICHER_STATE_DIR}",
        f"--metrics-socket={ENRICHER_METRICS_SOCKET}",
        f"--metrics-socket-group={NODESYNC_USER}",
    ]
    mounts = [
        {"name": "host-audit-log", "mountPath": AUDIT_LOG_DIR, "readOnly": True},
        {"name": "state", "mountPath": ENRICHER_STATE_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "metrics-socket", "mountPath": METRICS_SOCKET_DIR},
    ]
    if custom_proc:
        args.append(f"--proc-dir={HOST_PROC_MOUNT}")
        mounts.append({"name": "host-proc", "mountPath": HOST_PROC_MOUNT, "readOnly": True})
    return {
        "name": LOG_ENRICHER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["spo", "log-enricher"],
        "args": args,
        "env": env,
        "ports": [{"name": "metrics", "containerPort": ENRICHER_METRICS_PORT, "protocol": "TCP"}],
        **_probes(),
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            # to subscribe to the process events (dropped once subscribed)
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
            "seLinuxOptions": {"type": spec.selinuxTypeTag or DEFAULT_SELINUX_TYPE_TAG},
        },
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"},
        },
        "volumeMounts": mounts,
    }
