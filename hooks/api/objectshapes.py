"""The shapes of the Kubernetes objects a hook request carries, checked before a hook reads them.

The API server never sends a pod whose ``spec.containers`` is a number, but the
hooks are an HTTP service that anyone who reaches it can call. Each object of a
request (the parent, every child and related object, an admission's pod) is
checked here, once, at the edge: its metadata, and for the kinds whose fields
the hooks read without a model (pods, DaemonSets, ConfigMaps, node statuses),
the types of those fields. A wrong shape is a :class:`ShapeError` naming the
field, which the web layer answers with a 400; a hook never meets a string
where it reads an object.

Only types are checked here: what the values mean (a DNS-1123 name, a valid
profile) is each hook's own check, answered in the object's status.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

_SHOWN = 64  # characters of a map key (an object's name) quoted in a message


class ShapeError(ValueError):
    """An object of the request does not have the shape of its kind; the message names the field."""


# Extra keys are allowed (and ignored): only the declared ones are checked, strictly (no
# string for a number, no number for a boolean).
_open = with_config(ConfigDict(extra="allow", strict=True))


@_open
class OwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


@_open
class Metadata(TypedDict, total=False):
    name: str
    generateName: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    creationTimestamp: str | None
    deletionTimestamp: str | None
    labels: dict[str, str] | None
    annotations: dict[str, str] | None
    ownerReferences: list[OwnerReference] | None
    finalizers: list[str] | None


@_open
class Object(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: Metadata
    spec: dict[str, Any] | None
    status: dict[str, Any] | None


@_open
class SeccompProfileRef(TypedDict, total=False):
    type: str
    localhostProfile: str | None


@_open
class SELinuxOptions(TypedDict, total=False):
    user: str | None
    role: str | None
    type: str | None
    level: str | None


@_open
class SecurityContext(TypedDict, total=False):
    seccompProfile: SeccompProfileRef | None
    seLinuxOptions: SELinuxOptions | None
    privileged: bool | None


@_open
class Container(TypedDict, total=False):
    name: str
    image: str | None
    securityContext: SecurityContext | None


@_open
class PodOS(TypedDict, total=False):
    name: str


@_open
class PodSpec(TypedDict, total=False):
    securityContext: SecurityContext | None
    containers: list[Container] | None
    initContainers: list[Container] | None
    ephemeralContainers: list[Container] | None
    nodeName: str | None
    os: PodOS | None


@_open
class PodStatus(TypedDict, total=False):
    phase: str | None


@_open
class Pod(Object, total=False):
    spec: PodSpec | None  # type: ignore[misc]
    status: PodStatus | None  # type: ignore[misc]


@_open
class DaemonSetStatus(TypedDict, total=False):
    observedGeneration: int | None
    desiredNumberScheduled: int | None
    updatedNumberScheduled: int | None
    numberAvailable: int | None
    numberReady: int | None


@_open
class DaemonSet(Object, total=False):
    status: DaemonSetStatus | None  # type: ignore[misc]


@_open
class ConfigMap(Object, total=False):
    data: dict[str, str] | None
    binaryData: dict[str, str] | None


@_open
class NodeStatus(Object, total=False):
    nodeName: str | None
    status: str | None  # type: ignore[misc]
    message: str | None


_GENERIC = TypeAdapter(Object)
# By the key of the group in Metacontroller's maps (``Kind.apiVersion``).
_BY_GROUP: dict[str, TypeAdapter[Any]] = {
    "Pod.v1": TypeAdapter(Pod),
    "DaemonSet.apps/v1": TypeAdapter(DaemonSet),
    "ConfigMap.v1": TypeAdapter(ConfigMap),
    "SecurityProfileNodeStatus.security-profiles-operator.x-k8s.io/v1alpha1": TypeAdapter(
        NodeStatus
    ),
}
_POD = _BY_GROUP["Pod.v1"]


def shown(key: object) -> str:
    """A map key or value as a message quotes it: repr, cut to a few dozen characters."""
    text = repr(key)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 3]}...'"


def _cut(part: str) -> str:
    return part if len(part) <= _SHOWN else f"{part[: _SHOWN - 3]}..."


def _raise(error: ValidationError, where: str) -> None:
    first = error.errors()[0]
    field = "".join(
        f"[{part}]" if isinstance(part, int) else f".{_cut(part)}" for part in first["loc"]
    )
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    raise ShapeError(f"{where}{field}: {first['msg']}{more}") from None


def check_object(value: object, where: str, group: str | None = None) -> None:
    """Raise ShapeError if ``value`` is not shaped like an object of ``group`` (any kind if
    None)."""
    adapter = _BY_GROUP.get(group or "", _GENERIC)
    try:
        adapter.validate_python(value)
    except ValidationError as error:
        _raise(error, where)


def check_pod(value: object, where: str) -> None:
    check_object(value, where, "Pod.v1")


def check_groups(groups: object, where: str) -> None:
    """Check a map of observed objects: ``{"Kind.apiVersion": {"name" or "ns/name": object}}``."""
    if groups is None:
        return
    if not isinstance(groups, dict):
        raise ShapeError(
            f"{where}: must be an object (a map of kinds), not {type(groups).__name__}"
        )
    for group, objects in groups.items():
        here = f"{where}[{shown(group)}]"
        if not isinstance(objects, dict):
            raise ShapeError(
                f"{here}: must be an object (a map of names), not {type(objects).__name__}"
            )
        for name, value in objects.items():
            check_object(value, f"{here}[{shown(name)}]", group)
