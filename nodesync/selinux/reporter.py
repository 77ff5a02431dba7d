"""The SELinux policies' node statuses: their selector, and the reporter primed from them.

Wiring (``spo nodesync``): a second watcher lists and watches ConfigMaps with
``SELECTOR`` and feeds a ``NodeAgent`` over ``SelinuxSync``; ``poll_loop``
polls it every few seconds, so that a policy selinuxd installs while the watch
is idle is reported at once, not when the watch ends.
"""

from __future__ import annotations

from hooks.api.nodestatuslabels import NODE_NAME_LABEL, PROFILE_KIND_LABEL, node_label
from nodesync.nodeio.metrics import SELINUX
from nodesync.nodeio.reporting import NodeStatusReporter
from nodesync.nodeio.reports import report_of
from nodesync.selinux.policies import SELINUX_KINDS

SELECTOR = f"{PROFILE_KIND_LABEL} in ({','.join(SELINUX_KINDS)})"
CANNOT_UPDATE_STATUS = "CannotUpdatePolicyStatus"  # the Go operator's reason


def node_selector(node: str) -> str:
    return f"{NODE_NAME_LABEL}={node_label(node)},{SELECTOR}"


class SelinuxStatusReporter(NodeStatusReporter):
    """The node status reporter, primed from (and pruning) the SELinux kinds' statuses only;
    its failures count in ``selinux_profile_error_total``."""

    metrics_kind = SELINUX
    failure_reason = CANNOT_UPDATE_STATUS

    def prime(self) -> None:
        items = self.cluster.list_node_statuses(node_selector(self.node))
        self.known = {
            (str(item["metadata"]["namespace"]), str(item["metadata"]["name"])): report_of(item)
            for item in items
        }
