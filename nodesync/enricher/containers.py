"""Which container a process belongs to, and which pod that container is.

A process's container is read from ``/proc/<pid>/cgroup``: every container
runtime that Kubernetes drives puts a container in a cgroup named after its
64-hex-digit id, with a runtime prefix and a ``.scope`` suffix under the
systemd cgroup driver:

==========================  ==========================================================
cgroupfs driver (v1 or v2)  ``/kubepods/burstable/pod<uid>/<id>`` (containerd, runc),
                            ``/kubepods/besteffort/pod<uid>/crio-<id>`` (CRI-O)
systemd driver
``/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope``,
                            ``.../crio-<id>.scope`` (CRI-O, which may nest ``/container`` below),
                            ``.../docker-<id>.scope``, ``/system.slice/runc-<id>.scope``
==========================  ==========================================================

A reader in a private cgroup namespace sees paths relative to its own cgroup
(``0::/../../kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope``);
the id is still the last component that is one.

CRI-O's ``crio-conmon-<id>.scope`` is the monitor process of a container, not
the container: it is not attributed to it (its syscalls are not the workload's).

The pod side: ``status.containerStatuses[].containerID`` is ``<runtime>://<id>``
(``containerd://``, ``cri-o://``, ``docker://``); the id after ``://`` is the
one in the cgroup path.
"""

from __future__ import annotations

import errno
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

_HEX: Final = frozenset("0123456789abcdef")
ID_LENGTH: Final = 64
# A cgroup component that names a container: optional runtime prefix, the id, optional suffix.
_PREFIXES: Final = ("cri-containerd-", "crio-", "docker-", "libpod-", "runc-", "containerd-")
_NOT_CONTAINERS: Final = ("crio-conmon-", "libpod-conmon-")
_SUFFIX: Final = ".scope"
_STATUS_KEYS: Final = ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")


def _is_id(text: str) -> bool:
    return len(text) == ID_LENGTH and _HEX.issuperset(text)


def container_id_of_component(component: str) -> str | None:
    """The container id a single cgroup path component names, if it names one."""
    if component.endswith(_SUFFIX):
        component = component[: -len(_SUFFIX)]
    if _is_id(component):
        return component
    if component.startswith(_NOT_CONTAINERS):
        return None
    for prefix in _PREFIXES:
        if component.startswith(prefix):
            rest = component[len(prefix) :]
            return rest if _is_id(rest) else None
    return None


def container_id_of_path(path: str) -> str | None:
    """The id of the innermost container cgroup on one cgroup path."""
    for component in reversed(path.split("/")):
        found = container_id_of_component(component)
        if found is not None:
            return found
    return None


def container_id_of_cgroup(text: str) -> str | None:
    """The container id in the text of ``/proc/<pid>/cgroup`` (cgroup v1 or v2), or None.

    Each line is ``hierarchy-id:controllers:path``. The v2 line (``0::``) is
    preferred, then the v1 lines in file order: a container is in the same
    cgroup on every hierarchy, but a v1 hierarchy may also hold host paths
    (``name=systemd`` of the host on hybrid systems).
    """
    v1: list[str] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            found = container_id_of_path(parts[2])
            if found is not None:
                return found
        else:
            v1.append(parts[2])
    for path in v1:
        found = container_id_of_path(path)
        if found is not None:
            return found
    return None


def pod_uid_of_cgroup(text: str) -> str | None:
    """The pod UID on a kubelet cgroup path (``pod<uid>`` or systemd's
    ``-pod<uid_with_underscores>.slice``)."""
    for line in text.splitlines():
        for component in reversed(line.split(":", 2)[-1].split("/")):
            at = component.rfind("pod")
            if at < 0:
                continue
            uid = component[at + 3 :]
            if uid.endswith(".slice"):
                uid = uid[: -len(".slice")]
            uid = uid.replace("_", "-")
            if len(uid) == 36 and uid.count("-") == 4:
                return uid
    return None


def read_cgroup(pid: int, proc_root: Path | str = "/proc") -> str | None:
    """The text of ``<proc_root>/<pid>/cgroup``; None when the process is gone (or never was)."""
    try:
        with open(
            os.path.join(proc_root, str(pid), "cgroup"), encoding="utf-8", errors="replace"
        ) as file:
            return file.read()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    except OSError as error:  # ESRCH while the task exits
        if error.errno == errno.ESRCH:
            return None
        raise


class Unknown:
    """Why a process could not be mapped to a container."""

    VANISHED: Final = "vanished"  # the process exited before its cgroup was read
    HOST: Final = "host"  # the process is not in a container cgroup


@dataclass(frozen=True, slots=True)
class Lookup:
    """A pid's container id, or None with the reason (``Unknown.*``)."""

    container_id: str | None
    reason: str = ""


class ContainerResolver:
    """pid -> container id through ``/proc/<pid>/cgroup``, with a small cache.

    The cache holds up to ``size`` pids for ``ttl`` seconds (of ``clock``): long
    enough that a process making thousands of syscalls costs one read, short
    enough that a reused pid is read again. Vanished pids are not cached (a
    later record may come from a new process with that pid).

    ``remembered``, when given, is asked about a pid whose process is gone: the
    container id it had, ``""`` for a host process, None when it does not know
    (:class:`nodesync.enricher.process_events.ProcessEvents.remembered`).
    """

    def __init__(
        self,
        proc_root: Path | str = "/proc",
        size: int = 4096,
        ttl: float = 10.0,
        read: Callable[[int], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        remembered: Callable[[int], str | None] | None = None,
    ) -> None:
        self._read = read if read is not None else (lambda pid: read_cgroup(pid, proc_root))
        self._remembered = remembered
        self.from_memory = 0  # lookups of gone processes that ``remembered`` answered
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._cache: OrderedDict[int, tuple[float, Lookup]] = OrderedDict()
        self.reads = 0

    def lookup(self, pid: int) -> Lookup:
        cached = self._cache.get(pid)
        now = self._clock()
        if cached is not None and cached[0] > now:
            return cached[1]
        self.reads += 1
        text = self._read(pid)
        if text is None:
            self._cache.pop(pid, None)
            known = self._remembered(pid) if self._remembered is not None else None
            if known is None:
                return Lookup(None, Unknown.VANISHED)
            self.from_memory += 1
            return Lookup(known, "") if known else Lookup(None, Unknown.HOST)
        found = container_id_of_cgroup(text)
        result = Lookup(found, "" if found is not None else Unknown.HOST)
        self._cache[pid] = (now + self._ttl, result)
        self._cache.move_to_end(pid)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return result

    def container_id(self, pid: int) -> str | None:
        return self.lookup(pid).container_id

    def forget(self, pid: int) -> None:
        self._cache.pop(pid, None)


@dataclass(frozen=True, slots=True, order=True)
class ContainerRef:
    """A container of a pod on this node."""

    namespace: str
    pod: str
    container: str


def strip_runtime(container_id: str) -> str:
    """``containerd://<id>`` -> ``<id>`` (any ``<runtime>://``); an id without a scheme as it is."""
    _, sep, rest = container_id.partition("://")
    return rest if sep else container_id


def pod_key(pod: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of a pod object."""
    metadata = pod.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def container_index(pods: Iterable[Mapping[str, Any]]) -> dict[str, ContainerRef]:
    """container id -> (namespace, pod, container) from pod objects' container statuses.

    Init and ephemeral containers count too. Statuses without an id yet (the
    container is being created) are left out.
    """
    index: dict[str, ContainerRef] = {}
    for pod in pods:
        metadata = pod.get("metadata") or {}
        status = pod.get("status") or {}
        namespace = str(metadata.get("namespace") or "")
        name = str(metadata.get("name") or "")
        for key in _STATUS_KEYS:
            for entry in status.get(key) or ():
                raw = entry.get("containerID") or ""
                if not raw:
                    continue
                index[strip_runtime(str(raw))] = ContainerRef(
                    namespace, name, str(entry.get("name") or "")
                )
    return index
