"""Names and namespaces as Kubernetes spells them (DNS-1123), checked by every hook.

The API server checks a custom resource's name only as a path segment (no
``/``, not ``.`` or ``..``), but the hooks make file paths, child names and
label values out of names and namespaces. Every hook therefore refuses a
parent whose name is not a DNS-1123 subdomain or whose namespace is not a
DNS-1123 label, as the built-in kinds require; the problem names the field and
quotes the value cut short.
"""

from __future__ import annotations

import re

from hooks.api.objectshapes import shown

MAX_SUBDOMAIN = 253
MAX_LABEL = 63
_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(_LABEL, re.ASCII)
_SUBDOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.ASCII)


def is_subdomain(value: object) -> bool:
    """A DNS-1123 subdomain: lowercase letters, digits, ``-`` and ``.``, at most 253 characters."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_SUBDOMAIN
        and _SUBDOMAIN_RE.fullmatch(value) is not None
    )


def is_label(value: object) -> bool:
    """A DNS-1123 label: lowercase letters, digits and ``-``, at most 63 characters."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_LABEL
        and _LABEL_RE.fullmatch(value) is not None
    )


def name_problem(name: object, namespace: object, *, namespaced: bool = True) -> str | None:
    """What is wrong with an object's ``metadata.name`` and ``metadata.namespace``, or None."""
    if not is_subdomain(name):
        return (
            f"metadata.name: {shown(name)} is not a DNS-1123 subdomain (lowercase letters, digits, "
            f"'-' and '.', starting and ending with a letter or digit, at most {MAX_SUBDOMAIN} "
            "characters)"
        )
    if namespaced and not is_label(namespace):
        return (
            f"metadata.namespace: {shown(namespace)} is not a DNS-1123 label (lowercase "
            "letters, digits "
            f"and '-', starting and ending with a letter or digit, at most {MAX_LABEL} characters)"
        )
    return None
