"""The nodesync DaemonSet of a SecurityProfilesOperatorDaemon, built from its spec alone.

Pure and deterministic: the same spod gives the same DaemonSet, built fresh on
every call (nothing mutable is shared between calls). With the default spod
it is the DaemonSet of ``metacontroller/base/nodesync.yaml`` (a test keeps the two
together), plus Go's default tolerations.

What comes from where:

- The DaemonSet is named after the spod (``spod``), as in the Go operator, so
  ``kubectl -n security-profiles-operator get ds spod`` still works. Its
  selector never changes with the spec (a DaemonSet's selector is immutable).
- Images: Go took the daemon's image from the operator's own Deployment and
  selinuxd's from ``RELATED_IMAGE_SELINUXD``; a pure hook sees neither. The
  annotations ``spo.x-k8s.io/image`` and ``spo.x-k8s.io/selinuxd-image`` on
  the spod choose them; without them the images are ``DEFAULT_IMAGE`` (the
  one image of this project) and ``DEFAULT_SELINUXD_IMAGE`` (Go's).
- The annotation ``spo.x-k8s.io/watch-namespace`` on the spod (the spod has no
  field for it) restricts nodesync to that one namespace: it gets
  ``WATCH_NAMESPACE``, lists and watches the profile ConfigMaps there only and
  writes node statuses there only. The install variant
  ``metacontroller/namespaced/`` sets it, and gives nodesync a Role in that
  namespace instead of its ClusterRole. Without it (or empty), every namespace.
- ``daemonResourceRequirements`` replaces the nodesync container's resources
  as a whole (as in Go); ``priorityClassName`` and ``tolerations`` go to the
  pod, with Go's defaults when unset (an empty list means no toleration).
- ``verbosity`` 1 or more sets ``LOG_LEVEL=debug`` on our containers (0 leaves
  nodesync's default, info).
- ``enableMemoryOptimization`` sets ``ENABLE_MEMORY_OPTIMIZATION=true`` on
  nodesync: its pod cache then holds only the pods of its node labelled
  ``spo.x-k8s.io/enable-recording``.
- ``enableSelinux`` adds selinuxd (and an init container installing the
  policy templates selinuxd ships, which profiles inherit from), the shared
  policy drop directory and socket, and the host's SELinux directories; nodesync
  gets ``SELINUXD_SOCKET`` and ``SELINUX_POLICY_DIR``.
- ``enableLogEnricher`` adds the log-enricher container, the host's audit log
  directory (read-only) and ``hostPID``. A ``hostProcVolumePath`` other than
  ``/proc`` is mounted read-only at ``/host/proc`` in the log enricher, which is
  told so with ``--proc-dir``; without the log enricher it has no use.
- ``selinuxTypeTag`` (default ``spc_t``) labels the root containers (selinuxd,
  its init container, the log enricher) always, and nodesync and its init
  container when the tag is set explicitly or SELinux is enabled.
- ``affinity`` and ``imagePullSecrets`` go to the pod as given.
"""

from __future__ import annotations

from typing import Any

from hooks.api.spod import (
    DEFAULT_PRIORITY_CLASS_NAME,
    DEFAULT_SELINUX_TYPE_TAG,
    SecurityProfilesOperatorDaemon,
)

Object = dict[str, Any]

IMAGE_ANNOTATION = "spo.x-k8s.io/image"
SELINUXD_IMAGE_ANNOTATION = "spo.x-k8s.io/selinuxd-image"
DEFAULT_IMAGE = "security-profiles-operator-py:latest"
DEFAULT_SELINUXD_IMAGE = "quay.io/security-profiles-operator/selinuxd"
IMAGE_ANNOTATIONS = (IMAGE_ANNOTATION, SELINUXD_IMAGE_ANNOTATION)
WATCH_NAMESPACE_ANNOTATION = "spo.x-k8s.io/watch-namespace"

APP_NAME = "spo-nodesync"
PART_OF = "security-profiles-operator"
SERVICE_ACCOUNT = "spo-nodesync"
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"

NODESYNC_USER = 65535
KUBELET_DIR = "/var/lib/kubelet"
KUBELET_SECCOMP_DIR = f"{KUBELET_DIR}/seccomp"
OPERATOR_DIR = f"{KUBELET_SECCOMP_DIR}/operator"
METRICS_PORT = 8085

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
    """The DaemonSet's selector: fixed for a spod, whatever its spec says."""
    return {"matchLabels": {NAME_LABEL: APP_NAME, INSTANCE_LABEL: spod_name}}


def daemonset(spod: SecurityProfilesOperatorDaemon) -> Object:
    """The desired DaemonSet of ``spod`` (already validated), with only the fields we own."""
    spec = spod.spec
    image, selinuxd_image = images(spod)
    selinux = bool(spec.enableSelinux)
    enricher = bool(spec.enableLogEnricher)
    host_proc = spec.hostProcVolumePath or DEFAULT_HOST_PROC
    custom_proc = enricher and host_proc != DEFAULT_HOST_PROC
    type_tag = spec.selinuxTypeTag or DEFAULT_SELINUX_TYPE_TAG
    label_nodesync = spec.selinuxTypeTag is not None or selinux
    debug = (spec.verbosity or 0) >= 1

    nodesync = _nodesync(spod, image, debug=debug, selinux=selinux)
    init_containers = [_prepare_operator_dir(image)]
    containers = [nodesync]
    volumes = [
        _host_path("kubelet-seccomp", KUBELET_SECCOMP_DIR, "DirectoryOrCreate"),
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
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
    if enricher:
        containers.append(_log_enricher(image, type_tag, debug=debug, custom_proc=custom_proc))
        volumes.append(_host_path("host-audit-log", AUDIT_LOG_DIR, "DirectoryOrCreate"))
        if custom_proc:
            volumes.append(_host_path("host-proc", host_proc, "Directory"))

    pod: Object = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "priorityClassName": spec.priorityClassName or DEFAULT_PRIORITY_CLASS_NAME,
        "tolerations": (
            default_tolerations()
            if spec.tolerations is None
            else [toleration.to_wire() for toleration in spec.tolerations]
        ),
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": init_containers,
        "containers": containers,
        "volumes": volumes,
    }
    if enricher:
        pod["hostPID"] = True
    if spec.affinity is not None:
        pod["affinity"] = spec.affinity.to_wire()
    if spec.imagePullSecrets is not None:
        pod["imagePullSecrets"] = [secret.to_wire() for secret in spec.imagePullSecrets]

    name = spod.name
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": spod.namespace, "labels": _labels(name)},
        "spec": {
            "selector": selector(name),
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
            "template": {
                "metadata": {
                    # Go's pod labels too, for selectors written against the Go operator.
                    "labels": {**_labels(name), "app": PART_OF, "name": name},
                },
                "spec": pod,
            },
        },
    }


def _labels(spod_name: str) -> dict[str, str]:
    return {NAME_LABEL: APP_NAME, INSTANCE_LABEL: spod_name, "app.kubernetes.io/part-of": PART_OF}


def _host_path(name: str, path: str, kind: str) -> Object:
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def _env(name: str, value: str) -> Object:
    return {"name": name, "value": value}


def _node_name() -> Object:
    return {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}


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
            f"mkdir -p {OPERATOR_DIR} && chown -R {owner} {OPERATOR_DIR} && chmod 0744 {OPERATOR_DIR}",
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
    if spec.enableMemoryOptimization:
        env.append(_env("ENABLE_MEMORY_OPTIMIZATION", "true"))
    watch_namespace = (spod.metadata.annotations or {}).get(WATCH_NAMESPACE_ANNOTATION, "")
    if watch_namespace.strip():
        env.append(_env("WATCH_NAMESPACE", watch_namespace.strip()))
    mounts = [
        {"name": "kubelet-seccomp", "mountPath": KUBELET_SECCOMP_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
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
        "args": [f"--metrics-bind=0.0.0.0:{METRICS_PORT}"],
        "env": env,
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "periodSeconds": 20,
            "failureThreshold": 3,
        },
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 5},
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


def _log_enricher(image: str, type_tag: str, *, debug: bool, custom_proc: bool) -> Object:
    """The log enricher reads the host's audit log as root, with no capability."""
    env = [_node_name(), _env("PYTHONDONTWRITEBYTECODE", "1")]
    if debug:
        env.append(_env("LOG_LEVEL", "debug"))
    mounts = [{"name": "host-audit-log", "mountPath": AUDIT_LOG_DIR, "readOnly": True}]
    container: Object = {
        "name": LOG_ENRICHER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["spo", "log-enricher"],
    }
    if custom_proc:
        container["args"] = [f"--proc-dir={HOST_PROC_MOUNT}"]
        mounts.append({"name": "host-proc", "mountPath": HOST_PROC_MOUNT, "readOnly": True})
    container |= {
        "env": env,
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seLinuxOptions": {"type": type_tag},
        },
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "250m", "memory": "256Mi"},
        },
        "volumeMounts": mounts,
    }
    return container
