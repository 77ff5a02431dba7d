"""The audit-log thread of the log enricher: read, enrich and record each batch, finish what is
due."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

from hooks.api import GROUP
from nodesync.enricher.auditlog import last_event_time_of_text
from nodesync.enricher.deferring import Deferred
from nodesync.enricher.enriching import LogEnricher
from nodesync.enricher.following import Follower
from nodesync.enricher.losses import AuditdWatch, KernelLogWatch
from nodesync.enricher.process_events import ProcessEvents
from nodesync.nodeio.reporting import event_body

if TYPE_CHECKING:
    from nodesync.enricher.recordingagent import Decision, RecordingAgent


COMPONENT = "spo-log-enricher"  # the Events' source


def event(node: str, decision: Decision) -> dict[str, Any]:
    """The Event telling a ProfileRecording what became of one of its containers' profiles."""
    target = decision.target
    failed = decision.profile is None
    if failed:
        message = (
            f"{target.kind} {decision.name} of container {target.ref.container} of pod "
            f"{target.ref.pod} was not created: {decision.error}"
        )
    else:
        message = (
            f"recorded {target.kind} {decision.name} from container {target.ref.container} of pod "
            f"{target.ref.pod}"
        )
    involved = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ProfileRecording",
        "name": target.recording,
        "namespace": target.ref.namespace,
    }
    return event_body(
        involved,
        "ProfileNotRecorded" if failed else "ProfileRecorded",
        message[:1024],
        warning=failed,
        component=COMPONENT,
        node=node,
    )


def follow(
    follower: Follower,
    agent: RecordingAgent,
    enricher: LogEnricher,
    deferred: Deferred,
    stop: threading.Event,
    *,
    auditd: AuditdWatch | None = None,
    kernel: KernelLogWatch | None = None,
    processes: ProcessEvents | None = None,
) -> None:
    """Read the audit log until ``stop``: enrich and record every batch, run what is due.

    The process events are applied after a batch is read and before it is
    accounted: every process created before a record of the batch was written
    is then known (:mod:`nodesync.enricher.processes`).
    """
    try:
        while not stop.is_set():
            if auditd is not None:
                auditd.check()
            if kernel is not None:
                kernel.check()
            batch = follower.poll_text()  # the batch's lines, never split on the hot path
            if processes is not None:
                processes.drain()
            if batch is not None:
                agent.consume_text(batch, each=enricher)
                sys.stdout.flush()  # the enriched lines of a batch leave together
                follower.commit()
                if processes is not None:
                    read = last_event_time_of_text(batch)
                    if read is not None:
                        processes.table.read_until(read)
            deferred.run_due()
            follower.maybe_checkpoint()
            if batch is None:
                stop.wait(follower.poll_interval)
    finally:
        follower.checkpoint()
        follower.close()
        if kernel is not None:
            kernel.close()
        if processes is not None:
            processes.close()
