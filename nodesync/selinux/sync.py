"""SELinux ConfigMaps to installed policies, and their per-node outcome.

``SelinuxSync`` writes ``<policy>.cil`` into the drop directory (only on
change) and removes the files of deleted ConfigMaps; an installer backend turns
the files into modules and says how each one went. The operator's own policies
(``selinux_recording_policy``) are part of every convergence, whatever the
ConfigMaps say: written like the others, never removed, and only logged (no
profile owns them, so there is no node status to report):

- ``SelinuxdBackend``: selinuxd watches the directory and installs one policy at
  a time; the outcome is read from its status API (404 = still pending).
- ``BatchBackend``: nodesync itself runs ``semodule`` with every changed policy
  in one transaction (``selinux_batch``), no selinuxd needed.

The outcome of a policy is ``Installed``, ``Error`` (with the installer's
message) or ``Pending`` until the installer has handled it; ``poll()`` returns
the outcomes that changed since they were last returned, for the status reporter.

Metrics (``security_profiles_operator_selinux_profile_*``): a policy file written
counts as an ``update``, one removed as a ``delete`` (the operator's own policies
not counted); a refused ConfigMap, a file that cannot be written, and a policy
that turns to ``Error`` (or whose installer cannot be asked) count an error with
their reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from hooks.api.profilestate import ProfileState
from nodesync.nodeio.logs import about
from nodesync.nodeio.metrics import SELINUX, Metrics
from nodesync.nodeio.outcomes import Outcome
from nodesync.nodeio.sources import Source, source_of
from nodesync.selinux.batch import SemoduleInstaller
from nodesync.selinux.dropdir import DropDir
from nodesync.selinux.policies import (
    CANNOT_INSTALL_POLICY,
    CANNOT_SAVE_POLICY,
    INSTALLED_POLICY,
    PENDING_POLICY,
    SELINUXD_UNAVAILABLE,
    Policy,
    PolicyRejection,
    is_selinux_configmap,
    outranks,
    policy_name,
    read_policies,
    read_policy,
    taken,
)
from nodesync.selinux.recordingpolicy import OPERATOR_POLICIES
from nodesync.selinux.selinuxd import PolicyStatus, SelinuxdClient, SelinuxdError

log = logging.getLogger(__name__)

# The udica templates (and our shim for the container-selinux types) live in the
# same directory on a node; nodesync never removes them.
TEMPLATES = frozenset(
    {
        "base_container",
        "config_container",
        "home_container",
        "log_container",
        "net_container",
        "tmp_container",
        "tty_container",
        "virt_container",
        "x_container",
    }
)
SETTLE_POLLS = 5  # after a write, how many answers to read before trusting a status


class Backend(Protocol):
    def apply(self, drop: DropDir, changed: set[str], removed: set[str]) -> None:
        """The files of ``changed`` were (re)written, those of ``removed`` deleted."""
        ...

    def status(self, policy: str) -> PolicyStatus | None:
        """How the last version of ``policy`` went, or None while pending."""
        ...


class SelinuxdBackend:
    """selinuxd does the installing; we only ask it how it went."""

    def __init__(self, client: SelinuxdClient) -> None:
        self.client = client

    def apply(self, drop: DropDir, changed: set[str], removed: set[str]) -> None:
        return None  # selinuxd reacts to the files themselves

    def status(self, policy: str) -> PolicyStatus | None:
        return self.client.status(policy)


class BatchBackend:
    """nodesync installs with ``semodule`` itself: one transaction for every change."""

    def __init__(self, installer: SemoduleInstaller) -> None:
        self.installer = installer
        self.results: dict[str, PolicyStatus] = {}
        self.primed = False

    def apply(self, drop: DropDir, changed: set[str], removed: set[str]) -> None:
        if not self.primed:
            # The first convergence (after a start): the files already there are unchanged,
            # but how their installation went is known to no one; install them too.
            self.primed = True
            changed = changed | (drop.policies() - removed)
        if removed:
            present = self.installer.installed()
            gone = sorted(policy for policy in removed if policy in present)
            ok, output = self.installer.remove(gone)
            if not ok:
                log.error("cannot remove policies %s: %s", gone, output, extra=about("", ""))
            for policy in removed:
                self.results.pop(policy, None)
        if changed:
            results = self.installer.install({policy: drop.file(policy) for policy in changed})
            for policy, result in results.items():
                status = "Installed" if result.ok else "Failed"
                self.results[policy] = PolicyStatus(policy, status, result.message)

    def status(self, policy: str) -> PolicyStatus | None:
        return self.results.get(policy)


def _outcome(
    source: Source,
    state: ProfileState,
    reason: str,
    message: str | None,
    *,
    path: str | None,
    changed: bool = False,
) -> Outcome:
    return Outcome(
        namespace=source.namespace,
        name=source.name,
        kind=source.kind,
        state=state,
        message=message,
        changed=changed,
        reason=reason,
        path=path,
        configmap=source.configmap,
        owner=source.owner,
    )


def outcome_of(
    source: Source, policy: str, status: PolicyStatus | None, *, changed: bool
) -> Outcome:
    path = policy + ".cil"
    if status is None:
        return _outcome(
            source, ProfileState.PENDING, PENDING_POLICY, None, path=path, changed=changed
        )
    if status.installed:
        return _outcome(
            source, ProfileState.INSTALLED, INSTALLED_POLICY, None, path=path, changed=changed
        )
    message = status.message or f"policy {policy} could not be installed"
    return _outcome(source, ProfileState.ERROR, CANNOT_INSTALL_POLICY, message, path=path)


class SelinuxSync:
    """The SELinux policies of this node: an ``Installer`` of the node agent."""

    what = "SELinux policies"

    def __init__(
        self,
        drop: DropDir,
        backend: Backend,
        *,
        keep: Iterable[str] = TEMPLATES,
        own: Mapping[str, bytes] = OPERATOR_POLICIES,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.drop = drop
        self.backend = backend
        self.keep = frozenset(keep)
        self.own = dict(own)  # policy -> CIL: the operator's, wanted whatever the ConfigMaps say
        self.awaiting = set(self.own)  # own policies whose installation is still to be logged
        self.sources: dict[str, Source] = {}  # policy -> the ConfigMap it came from
        self.by_configmap: dict[tuple[str, str], str] = {}  # ConfigMap key -> policy
        self.rejected: dict[tuple[str, str], Outcome] = {}
        self.reported: dict[str, Outcome] = {}  # policy -> the outcome last returned
        self.unsettled: dict[str, int] = {}  # policy -> answers still to read

    def accepts(self, configmap: Mapping[str, Any]) -> bool:
        return is_selinux_configmap(configmap)

    # -- full convergence -------------------------------------------------------------------

    def converge(self, configmaps: Iterable[Mapping[str, Any]]) -> list[Outcome]:
        items = read_policies(configmaps)
        wanted = {item.name: item.content for item in items if isinstance(item, Policy)}
        wanted.update(self.own)
        keep = self.keep | {
            item.name for item in items if isinstance(item, PolicyRejection) and item.name
        }
        try:
            written, removed = self.drop.converge(wanted, keep)
        except OSError as error:
            log.error("cannot write policies: %s", error, extra=about("", ""))
            return [self._reject_all(item, error) for item in items]
        self.metrics.updated(len(written - self.own.keys()), kind=SELINUX)
        self.metrics.deleted(len(removed - self.own.keys()), kind=SELINUX)
        self.backend.apply(self.drop, written, removed)
        self.awaiting |= written & self.own.keys()
        self._log_own()
        self.sources.clear()
        self.by_configmap.clear()
        self.rejected.clear()
        outcomes: list[Outcome] = []
        for item in items:
            if isinstance(item, PolicyRejection):
                outcome = self._rejected(item)
                self.rejected[item.source.key] = outcome
                outcomes.append(outcome)
                continue
            self.sources[item.name] = item.source
            self.by_configmap[item.source.key] = item.name
            if item.name in written:
                self.unsettled[item.name] = SETTLE_POLLS
            outcomes.append(self._read(item.name, changed=item.name in written))
        for policy in set(self.reported) - set(self.sources):
            del self.reported[policy]
        for policy in set(self.unsettled) - set(self.sources):
            del self.unsettled[policy]  # removed before it settled: nothing left to ask
        return outcomes

    def _reject_all(self, item: Policy | PolicyRejection, error: OSError) -> Outcome:
        if isinstance(item, PolicyRejection):
            return self._rejected(item)
        self.metrics.error(CANNOT_SAVE_POLICY, kind=SELINUX)
        return _outcome(item.source, ProfileState.ERROR, CANNOT_SAVE_POLICY, str(error), path=None)

    # -- single changes -----------------------------------------------------------------------

    def upsert(self, configmap: Mapping[str, Any]) -> Outcome:
        item = read_policy(configmap)
        key = item.source.key
        old = self.by_configmap.get(key)
        if isinstance(item, Policy):
            holder = self.sources.get(item.name)
            if holder is not None and holder.key != key:
                if outranks(item.source.kind, holder.kind):
                    self._displace(item, holder)
                else:
                    item = taken(item, holder)
        removed: set[str] = set()
        # A ConfigMap no longer its profile's loses its policy; an invalid new version of a
        # profile's own ConfigMap keeps what was installed.
        if old is not None and isinstance(item, PolicyRejection) and item.source.owner is None:
            self._remove(old, item.source)
            self.by_configmap.pop(key, None)
        if isinstance(item, PolicyRejection):
            outcome = self._rejected(item)
            self.rejected[key] = outcome
            return outcome
        self.rejected.pop(key, None)
        try:
            written = self.drop.write(item.name, item.content)
        except OSError as error:
            self.metrics.error(CANNOT_SAVE_POLICY, kind=SELINUX)
            return _outcome(
                item.source, ProfileState.ERROR, CANNOT_SAVE_POLICY, str(error), path=None
            )
        if written:
            self.metrics.updated(kind=SELINUX)
        self.sources[item.name] = item.source
        self.by_configmap[key] = item.name
        self.backend.apply(self.drop, {item.name} if written else set(), removed)
        if written:
            self.unsettled[item.name] = SETTLE_POLLS
        return self._read(item.name, changed=written)

    def delete(self, configmap: Mapping[str, Any]) -> Outcome | None:
        source = source_of(configmap)
        key = source.key
        rejected = self.rejected.pop(key, None)
        policy = self.by_configmap.pop(key, None)
        if policy is None:
            return rejected
        last = self.reported.get(policy) or outcome_of(
            self.sources[policy], policy, None, changed=False
        )
        self._remove(policy, source)
        return last

    def _remove(self, policy: str, source: Source) -> None:
        """Remove ``policy``'s file (the next convergence tries again when that fails)."""
        where = about(source.namespace, source.name)
        try:
            if self.drop.remove(policy):
                self.metrics.deleted(kind=SELINUX)
                self.backend.apply(self.drop, set(), {policy})
        except OSError as error:
            log.error("cannot remove policy %s: %s", policy, error, extra=where)
        else:
            log.info("policy removed", extra={**where, "path": policy})
        self._drop(policy)

    def _displace(self, policy: Policy, holder: Source) -> None:
        """``policy`` outranks the ConfigMap ``holder``, which held its name: ``holder`` is
        refused."""
        self.by_configmap.pop(holder.key, None)
        self._drop(policy.name)
        displaced = Policy(holder, policy.name, b"", "")
        self.rejected[holder.key] = self._rejected(taken(displaced, policy.source))

    def _rejected(self, item: PolicyRejection) -> Outcome:
        self.metrics.error(item.reason, kind=SELINUX)
        source = item.source
        if source.owner is None:
            log.warning(
                "%s: nothing written",
                item.message,
                extra={
                    **about(source.namespace, source.name, configmap=source.configmap),
                    "reason": item.reason,
                },
            )
        return _outcome(source, ProfileState.ERROR, item.reason, item.message, path=None)

    def _drop(self, policy: str) -> None:
        self.sources.pop(policy, None)
        self.reported.pop(policy, None)
        self.unsettled.pop(policy, None)

    # -- status -------------------------------------------------------------------------------

    def _read(self, policy: str, *, changed: bool) -> Outcome:
        source = self.sources[policy]
        try:
            status = self.backend.status(policy)
        except SelinuxdError as error:
            outcome = _outcome(
                source, ProfileState.PENDING, SELINUXD_UNAVAILABLE, str(error), path=policy + ".cil"
            )
        else:
            outcome = outcome_of(source, policy, status, changed=changed)
            if status is not None and policy in self.unsettled:
                self.unsettled[policy] -= 1
                if self.unsettled[policy] <= 0:
                    del self.unsettled[policy]
        before = self.reported.get(policy)
        if outcome.reason in (CANNOT_INSTALL_POLICY, SELINUXD_UNAVAILABLE) and (
            before is None or before.reason != outcome.reason
        ):
            self.metrics.error(outcome.reason, kind=SELINUX)
        self.reported[policy] = outcome
        return outcome

    def _log_own(self) -> None:
        """Log how the installation of the operator's own policies went, once it is known."""
        for policy in sorted(self.awaiting):
            try:
                status = self.backend.status(policy)
            except SelinuxdError:
                return  # asked again at the next poll
            if status is None:
                continue
            self.awaiting.discard(policy)
            extra = {**about("", ""), "path": policy + ".cil"}
            if status.installed:
                log.info("operator policy %s installed", policy, extra=extra)
            else:
                extra["reason"] = CANNOT_INSTALL_POLICY
                log.error(
                    "operator policy %s could not be installed: %s",
                    policy,
                    status.message or "no message",
                    extra=extra,
                )

    def outcomes(self) -> list[Outcome]:
        return [*self.reported.values(), *self.rejected.values()]

    def last(self, configmap: Mapping[str, Any]) -> Outcome | None:
        """The last outcome of this ConfigMap, if it was seen."""
        key = source_of(configmap).key
        policy = self.by_configmap.get(key)
        if policy is not None:
            return self.reported.get(policy)
        return self.rejected.get(key)

    def poll(self) -> list[Outcome]:
        """Ask again about the policies still pending or recently written; return what changed."""
        self._log_own()
        changed: list[Outcome] = []
        for policy in sorted(self.sources):
            before = self.reported.get(policy)
            if (
                before is not None
                and before.state is not ProfileState.PENDING
                and (policy not in self.unsettled)
            ):
                continue
            after = self._read(policy, changed=False)
            if before is None or replace(before, changed=False) != after:
                changed.append(after)
        return changed

    def needs_poll(self) -> bool:
        """Whether ``poll()`` has something to ask: a policy pending or recently written."""
        return bool(self.unsettled) or bool(self.awaiting) or not self.settled()

    def settled(self) -> bool:
        """Whether every policy has a final status (nothing pending)."""
        return all(outcome.state is not ProfileState.PENDING for outcome in self.reported.values())


def policy_of(outcome: Outcome) -> str:
    return policy_name(outcome.name, outcome.namespace)
