"""``spo render``: the whole path of a profile, offline, on one simulated node.

Custom resources are read from YAML, each profile goes through the very same
sync function Metacontroller calls, the ConfigMaps it returns go through the
very same materialiser nodesync runs, and what the node reports goes back
into the sync function for the final status — exactly the loop of a cluster
with one node, run once. This module sits above both ``hooks`` and
``nodesync``: it is the command line's, not the hook service's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from hooks.api import GROUP
from hooks.api.nodestatus import (
    NODE_NAME_LABEL,
    PROFILE_ID_LABEL,
    PROFILE_KIND_LABEL,
    PROFILE_STATE_LABEL,
    profile_id,
    status_name,
)
from hooks.contract import CONFIGMAP, Object, SyncRequest
from hooks.seccomp import controller as seccomp

NODE = "render-node"
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Rendered:
    namespace: str
    name: str
    kind: str
    state: str
    localhost_profile: str
    message: str


@dataclass
class Report:
    items: list[Rendered] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(item.state == "Error" for item in self.items)

    def text(self) -> str:
        rows = [("NAMESPACE", "NAME", "KIND", "STATUS", "LOCALHOSTPROFILE", "MESSAGE")]
        rows += [
            (i.namespace, i.name, i.kind, i.state, i.localhost_profile or "-", i.message) for i in self.items
        ]
        widths = [max(len(row[col]) for row in rows) for col in range(5)]
        lines = ["  ".join(cell.ljust(widths[n]) for n, cell in enumerate(row[:5])) + "  " + row[5] for row in rows]
        lines += [f"skipped: {what}" for what in self.skipped]
        return "\n".join(line.rstrip() for line in lines) + "\n"


def load(paths: Iterable[Path]) -> list[Object]:
    """Every YAML document under ``paths`` (files, or folders searched recursively), in path order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    docs: list[Object] = []
    for file in files:
        for doc in yaml.safe_load_all(file.read_text()):
            if isinstance(doc, dict):
                doc.setdefault("metadata", {}).setdefault("namespace", DEFAULT_NAMESPACE)
                docs.append(doc)
    return docs


def _key(obj: Object) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def _node_status(outcome: Any) -> Object:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "SecurityProfileNodeStatus",
        "metadata": {
            "name": status_name(outcome.name, NODE),
            "namespace": outcome.namespace,
            "labels": {
                PROFILE_ID_LABEL: profile_id(outcome.kind, outcome.name),
                NODE_NAME_LABEL: NODE,
                PROFILE_KIND_LABEL: outcome.kind,
                PROFILE_STATE_LABEL: str(outcome.state),
            },
        },
        "nodeName": NODE,
        "status": str(outcome.state),
        **({"message": outcome.message} if outcome.message else {}),
    }


def render_paths(paths: Iterable[Path], out: Path) -> Report:
    from nodesync.materialising import materialise

    docs = load(paths)
    report = Report()
    ours = [d for d in docs if str(d.get("apiVersion", "")).startswith(GROUP)]
    profiles = [d for d in ours if d.get("kind") == "SeccompProfile"]
    daemons = [d for d in ours if d.get("kind") == "SecurityProfilesOperatorDaemon"]
    report.skipped = [f"{d.get('kind')} {_key(d)}" for d in docs if d not in profiles and d not in daemons]
    siblings: dict[str, dict[str, Object]] = {}
    for profile in profiles:
        siblings.setdefault(profile["metadata"]["namespace"], {})[_key(profile)] = profile
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def request(profile: Object, children: list[Object], statuses: list[Object]) -> SyncRequest:
        related: dict[str, dict[str, Object]] = {
            seccomp.SECCOMP_PROFILES: siblings[profile["metadata"]["namespace"]],
            seccomp.NODE_STATUSES: {_key(s): s for s in statuses},
            seccomp.DAEMONS: {_key(d): d for d in daemons},
        }
        return SyncRequest(parent=profile, children={CONFIGMAP: {_key(c): c for c in children}}, related=related)

    first = {_key(p): seccomp.sync(request(p, [], []), now) for p in profiles}
    configmaps = [child for response in first.values() for child in response.children]
    outcomes = {(o.namespace, o.name): o for o in materialise(configmaps, out)}
    for profile in profiles:
        meta = profile["metadata"]
        outcome = outcomes.get((meta["namespace"], meta["name"]))
        statuses = [_node_status(outcome)] if outcome else []
        final = seccomp.sync(request(profile, first[_key(profile)].children, statuses), now)
        status = final.status or {}
        condition = (status.get("conditions") or [{}])[0]
        installed = status.get("status") == "Installed"
        report.items.append(
            Rendered(
                namespace=meta["namespace"],
                name=meta["name"],
                kind="SeccompProfile",
                state=str(status.get("status", "")),
                localhost_profile=str(status.get("localhostProfile", "")) if installed else "",
                message=str(condition.get("message", "")),
            )
        )
    return report
