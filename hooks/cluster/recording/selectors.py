"""Kubernetes label selectors, checked and matched without a client (the webhook's selector test).

Semantics of ``metav1.LabelSelectorAsSelector``: every ``matchLabels`` pair and
every requirement must hold; an empty selector matches every pod. ``In`` and
``NotIn`` need values, ``Exists`` and ``DoesNotExist`` take none; ``NotIn`` and
``DoesNotExist`` hold for a pod without the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_WITH_VALUES = ("In", "NotIn")
_WITHOUT_VALUES = ("Exists", "DoesNotExist")


def problem(selector: Mapping[str, Any]) -> str | None:
    """What makes ``selector`` unusable (the API server's words, roughly), or None."""
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict) or not all(
        isinstance(v, str) for v in match_labels.values()
    ):
        return "podSelector.matchLabels: values must be strings"
    for index, requirement in enumerate(selector.get("matchExpressions") or []):
        where = f"podSelector.matchExpressions[{index}]"
        if not isinstance(requirement, dict) or not isinstance(requirement.get("key"), str):
            return f"{where}: a requirement needs a key"
        operator, values = requirement.get("operator"), requirement.get("values") or []
        if operator in _WITH_VALUES and not values:
            return f"{where}: operator {operator} needs at least one value"
        if operator in _WITHOUT_VALUES and values:
            return f"{where}: operator {operator} takes no values"
        if operator not in _WITH_VALUES + _WITHOUT_VALUES:
            return f"{where}: unknown operator {operator!r} (In, NotIn, Exists, DoesNotExist)"
    return None


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a pod with ``labels`` is selected; an unusable selector selects nothing."""
    if problem(selector) is not None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.get("matchExpressions") or []:
        key, operator, values = (
            requirement["key"],
            requirement["operator"],
            requirement.get("values") or [],
        )
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True
