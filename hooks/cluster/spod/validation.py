"""Checks of a SecurityProfilesOperatorDaemon that its schema cannot express.

Each check raises a ProfileProblem whose message starts with the field it is
about (``spec.tolerations[1].value: ...``), so the Error condition says where
to look. What is checked is what would make the API server refuse the
DaemonSet (a toleration Kubernetes rejects, an unparseable or negative
quantity, limits below requests), so that a typo ends in an Error status
instead of a DaemonSet update Metacontroller retries forever.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from hooks.api.problems import ProfileProblem
from hooks.api.spod import ResourceRequirements, SecurityProfilesOperatorDaemon, Toleration

INVALID_SPEC = "InvalidSPODSpec"
INVALID_NAME = "InvalidSPODName"
INVALID_TOLERATION = "InvalidToleration"
INVALID_RESOURCES = "InvalidResourceRequirements"
INVALID_VERBOSITY = "InvalidVerbosity"
INVALID_HOST_PROC = "InvalidHostProcVolumePath"
INVALID_PRIORITY_CLASS = "InvalidPriorityClassName"
INVALID_IMAGE = "InvalidImage"

# The reason of a schema error, by the spec field it is in.
REASON_OF_FIELD = {
    "tolerations": INVALID_TOLERATION,
    "daemonResourceRequirements": INVALID_RESOURCES,
    "verbosity": INVALID_VERBOSITY,
    "hostProcVolumePath": INVALID_HOST_PROC,
    "priorityClassName": INVALID_PRIORITY_CLASS,
}

MAX_VERBOSITY = 10
"""0 logs at info level, 1 and more at debug level (Go's daemon knew 0 and 1)."""
MAX_NAME = 63
"""The spod's name is a label value of its DaemonSet's pods."""

OPERATORS = ("Exists", "Equal")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")

_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(
    r"^(?P<sign>[+-]?)(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE](?P<exponent>[+-]?[0-9]+))?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def check(spod: SecurityProfilesOperatorDaemon, image_annotations: dict[str, str]) -> None:
    """Raise ProfileProblem for the first thing wrong with the spod."""
    if len(spod.name) > MAX_NAME:
        raise ProfileProblem(
            INVALID_NAME,
            f"metadata.name: at most {MAX_NAME} characters (a label value), got {len(spod.name)}",
        )
    for annotation, image in sorted(image_annotations.items()):
        check_image(f"metadata.annotations[{annotation}]", image)
    spec = spod.spec
    for index, toleration in enumerate(spec.tolerations or []):
        check_toleration(f"spec.tolerations[{index}]", toleration)
    if spec.daemonResourceRequirements is not None:
        check_resources("spec.daemonResourceRequirements", spec.daemonResourceRequirements)
    if spec.verbosity is not None and not 0 <= spec.verbosity <= MAX_VERBOSITY:
        raise ProfileProblem(
            INVALID_VERBOSITY,
            f"spec.verbosity: must be between 0 and {MAX_VERBOSITY}, got {spec.verbosity}",
        )
    if spec.hostProcVolumePath is not None:
        check_host_path("spec.hostProcVolumePath", spec.hostProcVolumePath)
    if spec.priorityClassName is not None and not is_subdomain(spec.priorityClassName):
        raise ProfileProblem(
            INVALID_PRIORITY_CLASS,
            f"spec.priorityClassName: {spec.priorityClassName!r} is not a valid name "
            "(lower case letters, digits, '-' and '.', at most 253 characters)",
        )


def check_toleration(field: str, toleration: Toleration) -> None:
    """The rules the API server applies to a pod's toleration."""
    key, operator = toleration.key or "", toleration.operator or ""
    value, effect = toleration.value or "", toleration.effect or ""
    if key and not is_qualified_name(key):
        raise ProfileProblem(INVALID_TOLERATION, f"{field}.key: {key!r} is not a valid label key")
    if operator and operator not in OPERATORS:
        raise ProfileProblem(
            INVALID_TOLERATION, f"{field}.operator: must be Exists or Equal, got {operator!r}"
        )
    if not key and operator != "Exists":
        raise ProfileProblem(
            INVALID_TOLERATION, f"{field}.operator: must be Exists when the key is empty"
        )
    if operator == "Exists" and value:
        raise ProfileProblem(
            INVALID_TOLERATION,
            f"{field}.value: must be empty when the operator is Exists, got {value!r}",
        )
    if operator != "Exists" and not is_label_value(value):
        raise ProfileProblem(
            INVALID_TOLERATION, f"{field}.value: {value!r} is not a valid label value"
        )
    if effect and effect not in EFFECTS:
        raise ProfileProblem(
            INVALID_TOLERATION,
            f"{field}.effect: must be NoSchedule, PreferNoSchedule or NoExecute, got {effect!r}",
        )
    if toleration.tolerationSeconds is not None and effect != "NoExecute":
        raise ProfileProblem(
            INVALID_TOLERATION, f"{field}.tolerationSeconds: only valid with the effect NoExecute"
        )


def check_resources(field: str, resources: ResourceRequirements) -> None:
    """Known resource names, non-negative parseable quantities, limits at least the requests."""
    texts = {"requests": resources.requests or {}, "limits": resources.limits or {}}
    amounts: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for part, quantities in texts.items():
        for name in sorted(quantities):
            where = f"{field}.{part}[{name}]"
            if not is_resource_name(name):
                raise ProfileProblem(
                    INVALID_RESOURCES,
                    f"{where}: not a container resource (cpu, memory, ephemeral-storage, "
                    "hugepages-<size> or a domain-prefixed extended resource)",
                )
            amount = parse_quantity(quantities[name])
            if amount is None:
                raise ProfileProblem(
                    INVALID_RESOURCES, f"{where}: {quantities[name]!r} is not a quantity"
                )
            if amount < 0:
                raise ProfileProblem(
                    INVALID_RESOURCES, f"{where}: must not be negative, got {quantities[name]!r}"
                )
            amounts[part][name] = amount
    for name, request in sorted(amounts["requests"].items()):
        limit = amounts["limits"].get(name)
        if limit is not None and request > limit:
            raise ProfileProblem(
                INVALID_RESOURCES,
                f"{field}.requests[{name}]: {texts['requests'][name]!r} is more than "
                f"the limit {texts['limits'][name]!r}",
            )


def check_host_path(field: str, path: str) -> None:
    if not path.startswith("/"):
        raise ProfileProblem(INVALID_HOST_PROC, f"{field}: must be an absolute path, got {path!r}")
    if any(part in (".", "..") for part in path.split("/")) or "\x00" in path:
        raise ProfileProblem(
            INVALID_HOST_PROC, f"{field}: must not contain '.' or '..' components, got {path!r}"
        )


def check_image(field: str, image: str) -> None:
    if not image or any(char.isspace() for char in image):
        raise ProfileProblem(INVALID_IMAGE, f"{field}: {image!r} is not an image reference")


def parse_quantity(text: str) -> Decimal | None:
    """The value of a Kubernetes quantity (``100m`` -> 0.1, ``1Ki`` -> 1024), or None."""
    match = _QUANTITY.match(text)
    if not match:
        return None
    try:
        number = Decimal(match["number"])
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None
    if match["sign"] == "-":
        number = -number
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * (Decimal(1024) ** _BINARY[suffix])
    if match["exponent"] is not None:
        return number.scaleb(int(match["exponent"]))
    return number.scaleb(_DECIMAL[suffix])


def is_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_SUBDOMAIN.match(name))


def is_qualified_name(key: str) -> bool:
    """A label key: an optional DNS subdomain prefix and a name of at most 63 characters."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (prefix and is_subdomain(prefix)):
        return False
    return len(name) <= 63 and bool(_NAME_PART.match(name))


def is_label_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and bool(_NAME_PART.match(value)))


def is_resource_name(name: str) -> bool:
    if name in STANDARD_RESOURCES or name.startswith("hugepages-"):
        return is_qualified_name(name)
    return "/" in name and is_qualified_name(name)
