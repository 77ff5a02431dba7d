"""``spo render``: the whole path of a profile, offline, on one simulated node.

Custom resources are read from YAML, each profile goes through the very same
sync function Metacontroller calls, the ConfigMaps it returns go through the
very same code nodesync runs on a node, and what the node reports goes back
into the sync function for the final status — exactly the loop of a cluster
with one node, run once. This module sits above both ``hooks`` and
``nodesync``: it is the command line's, not the hook service's.

- SeccompProfile: the node writes ``<out>/seccomp/operator/<ns>/<name>.json``,
  which is the profile installed.
- SelinuxProfile, RawSelinuxProfile: the node writes
  ``<out>/selinux.d/<name>_<ns>.cil`` for selinuxd, which installs it on a
  real node; offline nothing installs it, so these stay Pending (or Error).
  They need a SecurityProfilesOperatorDaemon with ``enableSelinux: true``
  among the inputs, as in a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from hooks.api import GROUP, rawselinuxprofile, seccompprofile, selinuxprofile
from hooks.api.base import Object
from hooks.api.configmaps import PROFILE_KINDS
from hooks.api.nodestatuslabels import (
    NODE_NAME_LABEL,
    PROFILE_ID_LABEL,
    PROFILE_KIND_LABEL,
    PROFILE_STATE_LABEL,
    profile_id,
    status_name,
)
from hooks.api.profilestate import ProfileState
from hooks.cluster.contract import CONFIGMAP, SyncRequest, SyncResponse
from hooks.cluster.seccomp import controller as seccomp
from hooks.cluster.selinux import controller as selinux

NODE = "render-node"
DEFAULT_NAMESPACE = "default"
SELINUX_DROP_DIR = "selinux.d"
SECCOMP_KIND, SELINUX_KIND, RAW_KIND = (
    seccompprofile.KIND.kind,
    selinuxprofile.KIND.kind,
    rawselinuxprofile.KIND.kind,
)


@dataclass(frozen=True)
class Rendered:
    namespace: str
    name: str
    kind: str
    state: str
    use_as: str  # what a pod names: the localhostProfile, or the SELinux type
    message: str


@dataclass(frozen=True)
class NodeReport:
    """What the simulated node says about one profile."""

    namespace: str
    name: str
    kind: str
    state: ProfileState
    message: str | None = None


@dataclass
class Report:
    items: list[Rendered] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(item.state == "Error" for item in self.items)

    def text(self) -> str:
        rows = [("NAMESPACE", "NAME", "KIND", "STATUS", "USE AS", "MESSAGE")]
        rows += [
            (i.namespace, i.name, i.kind, i.state, i.use_as or "-", i.message) for i in self.items
        ]
        widths = [max(len(row[col]) for row in rows) for col in range(5)]
        lines = [
            "  ".join(cell.ljust(widths[n]) for n, cell in enumerate(row[:5])) + "  " + row[5]
            for row in rows
        ]
        lines += [f"skipped: {what}" for what in self.skipped]
        return "\n".join(line.rstrip() for line in lines) + "\n"


def load(paths: Iterable[Path]) -> list[Object]:
    """Every YAML document under ``paths`` (files, or folders searched recursively), in path
    order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
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


def _node_status(report: NodeReport) -> Object:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "SecurityProfileNodeStatus",
        "metadata": {
            "name": status_name(report.name, NODE),
            "namespace": report.namespace,
            "labels": {
                PROFILE_ID_LABEL: profile_id(report.kind, report.name),
                NODE_NAME_LABEL: NODE,
                PROFILE_KIND_LABEL: report.kind,
                PROFILE_STATE_LABEL: str(report.state),
            },
        },
        "nodeName": NODE,
        "status": str(report.state),
        **({"message": report.message} if report.message else {}),
    }


def _seccomp_node(configmaps: list[Object], out: Path) -> list[NodeReport]:
    from nodesync.seccomp.materialising import materialise

    return [
        NodeReport(o.namespace, o.name, o.kind, o.state, o.message)
        for o in materialise(configmaps, out)
    ]


def _selinux_node(configmaps: list[Object], out: Path) -> list[NodeReport]:
    """Hand each policy to selinuxd's drop folder, as nodesync does; nothing installs it here."""
    from nodesync.selinux.dropdir import DropDir
    from nodesync.selinux.policies import Policy, read_policies

    drop = DropDir(out / SELINUX_DROP_DIR)
    reports = []
    for item in read_policies(configmaps):
        source = item.source
        if isinstance(item, Policy):
            drop.write(item.name, item.content)
            reports.append(
                NodeReport(source.namespace, source.name, source.kind, ProfileState.PENDING)
            )
        else:
            reports.append(
                NodeReport(
                    source.namespace, source.name, source.kind, ProfileState.ERROR, item.message
                )
            )
    return reports


def _owned(child: Object, parent: Object) -> Object:
    """``child`` with ``parent`` as its controller owner, as Metacontroller applies it (a profile
    read from a file has no uid: a stand-in names it)."""
    meta = parent["metadata"]
    uid = meta.get("uid") or f"render-{parent['kind']}-{meta['namespace']}-{meta['name']}"
    owner = {
        "apiVersion": parent["apiVersion"],
        "kind": parent["kind"],
        "name": meta["name"],
        "uid": uid,
        "controller": True,
    }
    return {**child, "metadata": {**child["metadata"], "ownerReferences": [owner]}}


def render_paths(paths: Iterable[Path], out: Path) -> Report:
    docs = load(paths)
    ours = [d for d in docs if str(d.get("apiVersion", "")).startswith(GROUP)]
    profiles = [d for d in ours if d.get("kind") in PROFILE_KINDS]
    daemons = [d for d in ours if d.get("kind") == "SecurityProfilesOperatorDaemon"]
    report = Report(
        skipped=[
            f"{d.get('kind')} {_key(d)}" for d in docs if d not in profiles and d not in daemons
        ]
    )
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    by_kind: dict[str, dict[str, Object]] = {}
    for profile in profiles:
        by_kind.setdefault(profile["kind"], {})[_key(profile)] = profile

    def related(kind: str, namespace: str, statuses: list[Object]) -> dict[str, dict[str, Any]]:
        siblings = {k: p for k, p in by_kind.get(kind, {}).items() if k.startswith(f"{namespace}/")}
        kind_key = seccomp.SECCOMP_PROFILES if kind == SECCOMP_KIND else selinux.SELINUX_PROFILES
        if kind == RAW_KIND:
            siblings = {
                k: p
                for k, p in by_kind.get(SELINUX_KIND, {}).items()
                if k.startswith(f"{namespace}/")
            }
        return {
            kind_key: siblings,
            seccomp.NODE_STATUSES: {_key(s): s for s in statuses},
            seccomp.DAEMONS: {_key(d): d for d in daemons},
        }

    def sync(profile: Object, children: list[Object], statuses: list[Object]) -> SyncResponse:
        kind = profile["kind"]
        request = SyncRequest(
            parent=profile,
            children={CONFIGMAP: {_key(c): c for c in children}},
            related=related(kind, profile["metadata"]["namespace"], statuses),
        )
        return (
            seccomp.sync(request, now)
            if kind == SECCOMP_KIND
            else selinux.sync(request, now, kind=kind)
        )

    first = {(p["kind"], _key(p)): sync(p, [], []) for p in profiles}
    owned = {
        (p["kind"], _key(p)): [_owned(c, p) for c in first[(p["kind"], _key(p))].children]
        for p in profiles
    }
    nodes: dict[str, Callable[[list[Object], Path], list[NodeReport]]] = {
        SECCOMP_KIND: _seccomp_node,
        SELINUX_KIND: _selinux_node,
    }
    reports: dict[tuple[str, str, str], NodeReport] = {}
    for kinds, node in (
        ((SECCOMP_KIND,), nodes[SECCOMP_KIND]),
        ((SELINUX_KIND, RAW_KIND), nodes[SELINUX_KIND]),
    ):
        configmaps = [c for (kind, _), children in owned.items() if kind in kinds for c in children]
        for node_report in node(configmaps, out):
            reports[(node_report.kind, node_report.namespace, node_report.name)] = node_report
    for profile in profiles:
        meta, kind = profile["metadata"], profile["kind"]
        reported = reports.get((kind, meta["namespace"], meta["name"]))
        statuses = [_node_status(reported)] if reported else []
        final = sync(profile, first[(kind, _key(profile))].children, statuses)
        status = final.status or {}
        condition = (status.get("conditions") or [{}])[0]
        use_as = status.get("localhostProfile") if kind == SECCOMP_KIND else status.get("usage")
        report.items.append(
            Rendered(
                namespace=meta["namespace"],
                name=meta["name"],
                kind=kind,
                state=str(status.get("status", "")),
                use_as=str(use_as or "") if status.get("status") != "Error" else "",
                message=str(condition.get("message", "")),
            )
        )
    return report
