"""The one place that builds on-node paths of seccomp profiles.

``<kubelet dir>/seccomp/operator/<namespace>/<name>.json``: every component is
checked to be a plain Kubernetes name (no separators, no ``.``/``..``, no NUL,
short enough for a file name), and the joined result is checked to lie inside
the operator root. Nothing is silently rewritten: a component that is not a
valid name is an error, so two different profiles can never share a file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SECCOMP_DIR = "seccomp"
OPERATOR_DIR = "operator"
EXTENSION = ".json"
NAME_MAX = 255  # Linux file name limit, in bytes

# A DNS-1123 subdomain (what Kubernetes accepts as an object name), which also
# excludes "", ".", "..", "/", NUL and anything starting or ending with a dot.
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_MAX_NAMESPACE = 63
_MAX_NAME = NAME_MAX - len(EXTENSION)


class PathError(ValueError):
    """A namespace or name that cannot be turned into a path inside the operator root."""


def operator_root(kubelet_dir: Path | str) -> Path:
    """``<kubelet dir>/seccomp/operator``, the only directory nodesync writes in."""
    return Path(os.path.normpath(os.fspath(kubelet_dir))) / SECCOMP_DIR / OPERATOR_DIR


def check_component(value: str, *, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise PathError(f"{what} is empty")
    if len(value.encode("utf-8", "surrogatepass")) > limit:
        raise PathError(f"{what} is longer than {limit} bytes")
    if _SUBDOMAIN.fullmatch(value) is None:
        raise PathError(f"{what} {value!r} is not a valid Kubernetes name")
    return value


def relative_path(namespace: str, name: str) -> str:
    """``<namespace>/<name>.json``, relative to the operator root; raises PathError."""
    check_component(namespace, what="namespace", limit=_MAX_NAMESPACE)
    check_component(name, what="profile name", limit=_MAX_NAME)
    relative = f"{namespace}/{name}{EXTENSION}"
    parts = relative.split("/")
    if len(parts) != 2 or any(part in ("", ".", "..") for part in parts):  # belt and braces
        raise PathError(f"{relative!r} is not <namespace>/<name>{EXTENSION}")
    return relative


def localhost_profile(namespace: str, name: str) -> str:
    """What a pod puts in ``seccompProfile.localhostProfile``: ``operator/<ns>/<name>.json``."""
    return f"{OPERATOR_DIR}/{relative_path(namespace, name)}"


def profile_path(kubelet_dir: Path | str, namespace: str, name: str) -> Path:
    """The absolute path of a profile's file, guaranteed to be inside the operator root."""
    root = operator_root(kubelet_dir)
    candidate = Path(os.path.normpath(root / relative_path(namespace, name)))
    if candidate.parent.parent != root or os.path.commonpath([root, candidate]) != str(root):
        raise PathError(f"{candidate} is outside {root}")
    return candidate
