"""Report outcomes as SecurityProfileNodeStatus objects, writing only when something changed.

The reporter remembers what the API server holds for this node (primed from a
list after every re-list of ConfigMaps), so an unchanged outcome costs no
request. A failed request is logged, counted as ``CannotUpdateNodeStatus``
and retried on the next ``retry()``.

Only outcomes of a profile's own ConfigMap are reported (``Outcome.owner`` set):
a ConfigMap that is not its profile's has no profile to report on, and the
status it names may be the real profile's, which it must not overwrite.

An Event on the profile says when its state on this node changes (``SavedSeccompProfile``
when it is installed). The ConfigMap's warning annotation (``Outcome.warning``) is copied
into that Event's message as it is; an installed profile that gets a new warning gets that
Event again. No other object, and no watch, carries a warning to an Event.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from hooks.api.configmaps import SECCOMP_KIND
from hooks.api.profilestate import ProfileState
from nodesync.nodeio import reasons, reports
from nodesync.nodeio.cluster import ApiError, Cluster
from nodesync.nodeio.logs import about
from nodesync.nodeio.metrics import SECCOMP, Metrics
from nodesync.nodeio.outcomes import Outcome
from nodesync.nodeio.reports import Report

log = logging.getLogger(__name__)

COMPONENT = "spo-nodesync"


def event_body(
    involved: dict[str, Any],
    reason: str,
    message: str,
    *,
    warning: bool,
    component: str,
    node: str,
) -> dict[str, Any]:
    """A core/v1 Event about ``involved`` (which names its namespace), from ``component`` on
    ``node``."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{involved['name']}.", "namespace": involved["namespace"]},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": {"component": component, "host": node},
        "reportingComponent": component,
        "reportingInstance": node,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class StatusSink(Protocol):
    """Where outcomes go: node statuses in the API (``NodeStatusReporter``) or nowhere (local
    mode)."""

    def sync(self, outcomes: Iterable[Outcome]) -> None:
        """Report every outcome and drop the statuses of profiles no longer present."""
        ...

    def report(self, outcome: Outcome) -> None: ...

    def forget(self, outcome: Outcome) -> None: ...

    def retry(self) -> None: ...

    def waiting(self) -> bool:
        """Whether reports failed and wait for ``retry()``."""
        ...


class NoStatus:
    """The local mode's sink: outcomes are only logged (by the materialiser)."""

    def sync(self, outcomes: Iterable[Outcome]) -> None:
        pass

    def report(self, outcome: Outcome) -> None:
        pass

    def forget(self, outcome: Outcome) -> None:
        pass

    def retry(self) -> None:
        pass

    def waiting(self) -> bool:
        return False


class NodeStatusReporter:
    # which counter a failed status update counts in, and with which reason
    metrics_kind = SECCOMP
    failure_reason = reasons.CANNOT_UPDATE_STATUS

    def __init__(
        self, cluster: Cluster, node: str, metrics: Metrics, *, events: bool = True
    ) -> None:
        self.cluster = cluster
        self.node = node
        self.metrics = metrics
        self.events = events
        self.known: dict[tuple[str, str], Report] = {}  # by (namespace, object name)
        self.pending: dict[tuple[str, str], Outcome] = {}  # failed reports, to retry
        # The warning of each profile's last report (none known after a restart: no Event
        # for a warning that may have been told already).
        self.warnings: dict[tuple[str, str], str | None] = {}

    def prime(self) -> None:
        """Learn what the API server holds for this node."""
        selector = reports.node_selector(self.node, SECCOMP_KIND)
        items = self.cluster.list_node_statuses(selector)
        self.known = {
            (str(item["metadata"]["namespace"]), str(item["metadata"]["name"])): reports.report_of(
                item
            )
            for item in items
        }

    def sync(self, outcomes: Iterable[Outcome]) -> None:
        try:
            self.prime()
        except ApiError as error:
            self._failed("", "", "cannot list node statuses", error)
        wanted: set[tuple[str, str]] = set()
        self.pending.clear()
        for outcome in outcomes:
            if outcome.owner is None:
                continue
            wanted.add(reports.key_of(outcome, self.node))
            self.report(outcome)
        for namespace, name in sorted(set(self.known) - wanted):
            self._delete(namespace, name, "")
        self.warnings = {key: text for key, text in self.warnings.items() if key in wanted}

    def report(self, outcome: Outcome) -> None:
        if outcome.owner is None:
            return  # not a profile's ConfigMap: nothing to report on (logged by the agent)
        key = reports.key_of(outcome, self.node)
        want = reports.report_for(outcome, self.node)
        have = self.known.get(key)
        warned = self._new_warning(key, outcome)
        if have == want:
            self.pending.pop(key, None)
            self.warnings[key] = outcome.warning
            if self.events and warned:
                self._event(outcome)
            return
        try:
            if have is None:
                self._create(outcome)
            else:
                self._patch(key, have, want)
        except ApiError as error:
            self.pending[key] = outcome
            self._failed(
                outcome.namespace, outcome.name, f"cannot update node status {key[1]}", error
            )
            return
        self.known[key] = want
        self.pending.pop(key, None)
        self.warnings[key] = outcome.warning
        log.info(
            "node status %s is %s",
            key[1],
            outcome.state,
            extra={**about(outcome.namespace, outcome.name), "reason": outcome.reason},
        )
        if self.events and (have is None or have.state != want.state or warned):
            self._event(outcome)

    def forget(self, outcome: Outcome) -> None:
        if outcome.owner is None:
            return
        namespace, name = reports.key_of(outcome, self.node)
        self.pending.pop((namespace, name), None)
        self.warnings.pop((namespace, name), None)
        self._delete(namespace, name, outcome.name)

    def retry(self) -> None:
        for outcome in list(self.pending.values()):
            self.report(outcome)

    def waiting(self) -> bool:
        return bool(self.pending)

    def _new_warning(self, key: tuple[str, str], outcome: Outcome) -> bool:
        """Whether ``outcome`` is an installed profile with a warning that its last report had
        not; a profile not reported since this process started has no new warning (its Event
        may have said it already)."""
        return (
            key in self.warnings
            and outcome.state is ProfileState.INSTALLED
            and outcome.warning is not None
            and outcome.warning != self.warnings[key]
        )

    def _create(self, outcome: Outcome) -> None:
        """One request: the object is created in its final state (no status subresource)."""
        body = reports.desired(outcome, self.node)
        namespace = outcome.namespace
        try:
            self.cluster.create_node_status(namespace, body)
        except ApiError as error:
            if error.status != 409:
                raise
            have = Report(labels=(), node="", state=None, message=None)  # exists: patch all of it
            self._patch((namespace, body["metadata"]["name"]), have, reports.report_of(body))

    def _patch(self, key: tuple[str, str], have: Report, want: Report) -> None:
        change = reports.patch(have, want)
        if change is not None:
            self.cluster.patch_node_status(key[0], key[1], change)

    def _delete(self, namespace: str, name: str, profile: str) -> None:
        try:
            self.cluster.delete_node_status(namespace, name)
        except ApiError as error:
            if error.status != 404:
                self._failed(namespace, profile, f"cannot delete node status {name}", error)
                return
        self.known.pop((namespace, name), None)
        log.info("node status %s deleted", name, extra=about(namespace, profile))

    def _failed(self, namespace: str, name: str, what: str, error: ApiError) -> None:
        self.metrics.error(self.failure_reason, kind=self.metrics_kind)
        extra = {**about(namespace, name), "reason": self.failure_reason}
        log.error("%s: %s", what, error, extra=extra)

    def _event(self, outcome: Outcome) -> None:
        """Best effort: an Event on the profile (or the ConfigMap) when the state changes."""
        owner = outcome.owner
        assert owner is not None  # only owned outcomes are reported
        involved: dict[str, Any] = {
            "apiVersion": owner.apiVersion,
            "kind": owner.kind,
            "name": owner.name,
            "uid": owner.uid,
            "namespace": outcome.namespace,
        }
        what = "seccomp profile" if outcome.kind == SECCOMP_KIND else "SELinux policy"
        message = outcome.message or f"{what} {outcome.state} on node {self.node}"
        if outcome.warning:
            message = f"{message}; warning: {outcome.warning}"
        body = event_body(
            involved,
            outcome.reason,
            message,
            warning=outcome.state is ProfileState.ERROR,
            component=COMPONENT,
            node=self.node,
        )
        try:
            self.cluster.create_event(outcome.namespace, body)
        except ApiError as failure:
            log.debug(
                "cannot create event: %s", failure, extra=about(outcome.namespace, outcome.name)
            )
