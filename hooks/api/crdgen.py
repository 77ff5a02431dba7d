"""Turn the API models into CustomResourceDefinitions.

Pydantic's JSON schema is close to what Kubernetes wants, but a CRD schema must
be *structural*: every node has a type, there are no ``$ref``, no ``anyOf`` for
optional fields, and ``properties`` never sits beside ``additionalProperties``.
This module rewrites the one into the other; ``spo crds`` writes the result and
a test fails when ``crds/`` differs from it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from hooks.api import GROUP
from hooks.api.kinds import Kind

JSON = dict[str, Any]
PART_OF_LABEL = "app.kubernetes.io/part-of"
PART_OF = "security-profiles-operator"
_DROP = {"title"}


def _resolve(node: Any, defs: JSON) -> Any:
    """Inline every ``$ref`` and simplify optional unions, recursively."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve({**target, **extra}, defs)
    if "anyOf" in node:
        options = [opt for opt in node["anyOf"] if opt.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"a CRD schema cannot express the union {node['anyOf']}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", 0) is None:
            del rest["default"]
        merged = {**_resolve(options[0], defs), **rest}
        return _resolve(merged, defs)
    out: JSON = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _resolve(value, defs)
    return _structural(out)


def _structural(node: JSON) -> JSON:
    additional = node.pop("additionalProperties", None)
    if additional is True:
        node["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(additional, dict) and "properties" not in node:
        node["additionalProperties"] = additional
    if (
        node.get("type") == "object"
        and not node.get("properties")
        and "additionalProperties" not in node
    ):
        node.pop("properties", None)
        node["x-kubernetes-preserve-unknown-fields"] = True
    if "type" not in node and "enum" not in node and not node.get("x-kubernetes-int-or-string"):
        node["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    return node


def openapi_schema(kind: Kind) -> JSON:
    """The structural OpenAPI v3 schema of one kind's objects."""
    raw = kind.model.model_json_schema(mode="validation")
    defs = raw.pop("$defs", {})
    root: JSON = _resolve(raw, defs)
    props = root.get("properties", {})
    props["apiVersion"] = {
        "description": (
            "APIVersion defines the versioned schema of this representation of an object."
        ),
        "type": "string",
    }
    props["kind"] = {
        "description": (
            "Kind is a string value representing the REST resource this object represents."
        ),
        "type": "string",
    }
    props["metadata"] = {"type": "object"}
    root.pop("x-kubernetes-preserve-unknown-fields", None)
    required = [name for name in root.get("required", []) if name != "metadata"]
    if required:
        root["required"] = required
    else:
        root.pop("required", None)
    return root


def crd(kind: Kind) -> JSON:
    """The CustomResourceDefinition of one kind, every version with the same schema."""
    schema = openapi_schema(kind)
    columns = [
        {
            "name": col.name,
            "type": col.type,
            "jsonPath": col.json_path,
            **({"priority": col.priority} if col.priority else {}),
        }
        for col in kind.columns
    ]
    names: JSON = {
        "kind": kind.kind,
        "listKind": f"{kind.kind}List",
        "plural": kind.plural,
        "singular": kind.singular,
    }
    if kind.short_names:
        names["shortNames"] = list(kind.short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}", "labels": {PART_OF_LABEL: PART_OF}},
        "spec": {
            "group": GROUP,
            "names": names,
            "scope": kind.scope,
            "versions": [
                {
                    "name": version.name,
                    "served": version.served,
                    "storage": version.storage,
                    "schema": {"openAPIV3Schema": copy.deepcopy(schema)},
                    "subresources": {"status": {}} if kind.status_subresource else {},
                    **({"additionalPrinterColumns": columns} if columns else {}),
                }
                for version in kind.versions
            ],
        },
    }


def all_kinds() -> Iterable[Kind]:
    """Every kind of the API, in a fixed order."""
    from hooks.api.registry import KINDS

    return KINDS
