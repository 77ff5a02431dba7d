"""Turn profile ConfigMaps into files: read them, plan against the disk, execute, report.

``materialise()`` is the one-shot entry point (``spo render``, ``--from-dir --once``);
``Materialiser`` keeps, per ConfigMap, only which file it owns and its outcome
(never the payload), so the watch loop can apply single changes between full
convergences.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hooks.api.profilestate import ProfileState
from nodesync.nodeio import outcomes, reasons
from nodesync.nodeio.atomicfiles import Perms
from nodesync.nodeio.logs import about
from nodesync.nodeio.metrics import Metrics
from nodesync.nodeio.outcomes import Outcome
from nodesync.nodeio.sources import Profile, Rejection, source_of
from nodesync.seccomp.observing import observe_files, observe_tree
from nodesync.seccomp.paths import EXTENSION, operator_root
from nodesync.seccomp.plan import Wanted, plan
from nodesync.seccomp.profiles import (
    conflict,
    is_seccomp_configmap,
    read_configmap,
    read_configmaps,
)
from nodesync.seccomp.writing import Executor, Result

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    relpath: str | None  # the file this ConfigMap owns (written, or kept)
    outcome: Outcome


def _is_profile_file(relpath: str) -> bool:
    name = relpath.rpartition("/")[2]
    return "/" in relpath and name.endswith(EXTENSION) and not name.startswith(".")


class Materialiser:
    """The seccomp files of this node: an ``Installer`` of the node agent."""

    what = "profiles"

    def __init__(
        self,
        kubelet_dir: Path | str,
        *,
        perms: Perms | None = None,
        supported: bool = True,
        metrics: Metrics | None = None,
        workers: int = 16,
    ) -> None:
        self.root = operator_root(kubelet_dir)
        self.perms = perms or Perms.of_process()
        self.supported = supported
        self.metrics = metrics or Metrics()
        self.executor = Executor(self.root, self.perms, workers=workers)
        self.entries: dict[tuple[str, str], Entry] = {}  # by (namespace, ConfigMap name)
        self.claims: dict[str, tuple[str, str]] = {}  # relpath -> ConfigMap key

    def accepts(self, configmap: Mapping[str, Any]) -> bool:
        return is_seccomp_configmap(configmap)

    def needs_poll(self) -> bool:
        return False  # a file is written or not: nothing finishes later

    def poll(self) -> list[Outcome]:
        return []

    # -- full convergence -------------------------------------------------------------------

    def converge(self, configmaps: Iterable[Mapping[str, Any]]) -> list[Outcome]:
        """Make the operator root hold exactly the files the ConfigMaps ask for."""
        items = read_configmaps(configmaps)
        if not self.supported:
            return self._remember([(item, outcomes.unsupported(item.source)) for item in items])
        desired = {
            item.relpath: Wanted(item.relpath, item.content, item.digest)
            for item in items
            if isinstance(item, Profile)
        }
        kept = {item.relpath for item in items if isinstance(item, Rejection) and item.relpath}
        observed = [entry for entry in observe_tree(self.root) if entry.relpath not in kept]
        result = self.executor.execute(plan(desired, observed, self.perms))
        self._account(result)
        return self._remember([(item, self._outcome(item, result)) for item in items])

    def _remember(self, pairs: list[tuple[Profile | Rejection, Outcome]]) -> list[Outcome]:
        self.entries.clear()
        self.claims.clear()
        for item, outcome in pairs:
            self.entries[item.source.key] = Entry(item.relpath, outcome)
            if item.relpath is not None and self.supported:
                self.claims.setdefault(item.relpath, item.source.key)
            self._log(outcome)
        return [outcome for _, outcome in pairs]

    # -- single changes -----------------------------------------------------------------------

    def upsert(self, configmap: Mapping[str, Any]) -> Outcome:
        """Apply one added or modified ConfigMap."""
        item = read_configmap(configmap)
        key = item.source.key
        holder = self.claims.get(item.relpath) if item.relpath else None
        if isinstance(item, Profile) and holder not in (None, key):
            assert holder is not None
            item = conflict(item, holder)
        if not self.supported:
            outcome = outcomes.unsupported(item.source)
            self.entries[key] = Entry(None, outcome)
            self._log(outcome)
            return outcome
        old = self.entries.get(key)
        scope: set[str] = set()
        desired: dict[str, Wanted] = {}
        if isinstance(item, Profile):
            scope.add(item.relpath)
            desired[item.relpath] = Wanted(item.relpath, item.content, item.digest)
        moved = old is not None and old.relpath and old.relpath != item.relpath
        if moved and old is not None and old.relpath and self.claims.get(old.relpath) == key:
            scope.add(old.relpath)
            del self.claims[old.relpath]
        result = Result()
        if scope:
            result = self.executor.execute(
                plan(desired, observe_files(self.root, scope), self.perms)
            )
            self._account(result)
        outcome = self._outcome(item, result)
        if item.relpath is not None and self.claims.get(item.relpath, key) == key:
            self.claims[item.relpath] = key
            self.entries[key] = Entry(item.relpath, outcome)
        else:
            self.entries[key] = Entry(None, outcome)
        self._log(outcome)
        return outcome

    def delete(self, configmap: Mapping[str, Any]) -> Outcome | None:
        """Apply one deleted ConfigMap: remove the file it owned. Returns its last outcome."""
        key = source_of(configmap).key
        entry = self.entries.pop(key, None)
        if entry is None:
            return None
        relpath = entry.relpath
        if relpath is not None and self.claims.get(relpath) == key:
            del self.claims[relpath]
            result = self.executor.execute(
                plan({}, observe_files(self.root, [relpath]), self.perms)
            )
            self._account(result)
        log.info("profile deleted", extra={**about(key[0], entry.outcome.name), "path": relpath})
        return entry.outcome

    def outcomes(self) -> list[Outcome]:
        return [entry.outcome for entry in self.entries.values()]

    # -- shared -------------------------------------------------------------------------------

    def _outcome(self, item: Profile | Rejection, result: Result) -> Outcome:
        if isinstance(item, Rejection):
            return outcomes.rejected(item)
        error = result.errors.get(item.relpath)
        if error is not None:
            return outcomes.failed(item.source, reasons.CANNOT_SAVE, error, item.relpath)
        return outcomes.installed(item, changed=item.relpath in result.written)

    def _account(self, result: Result) -> None:
        self.metrics.updated(len(result.written))
        self.metrics.deleted(sum(1 for relpath in result.removed if _is_profile_file(relpath)))
        for relpath in result.removed:
            log.info(
                "removed %s", relpath, extra={**about(relpath.split("/")[0], ""), "path": relpath}
            )
        for relpath, (reason, error) in result.other_errors.items():
            self.metrics.error(reason)
            extra = {**about(relpath.split("/")[0], ""), "path": relpath, "reason": reason}
            log.error("%s", error, extra=extra)

    def _log(self, outcome: Outcome) -> None:
        extra = {
            **about(outcome.namespace, outcome.name),
            "reason": outcome.reason,
            "path": outcome.path,
        }
        if outcome.state is ProfileState.ERROR:
            self.metrics.error(outcome.reason)
            log.warning("profile not installed: %s", outcome.message, extra=extra)
        elif outcome.changed:
            log.info("profile saved", extra={**extra, "changed": True})
        else:
            log.debug("profile unchanged", extra=extra)


def materialise(
    configmaps: Iterable[Mapping[str, Any]],
    kubelet_dir: Path | str,
    *,
    perms: Perms | None = None,
    supported: bool = True,
    metrics: Metrics | None = None,
) -> list[Outcome]:
    """Write the seccomp profiles of ``configmaps`` under ``kubelet_dir`` and prune the rest.

    Returns one ``Outcome`` per seccomp ConfigMap (other objects are ignored),
    sorted by namespace and ConfigMap name.
    """
    return Materialiser(kubelet_dir, perms=perms, supported=supported, metrics=metrics).converge(
        configmaps
    )
