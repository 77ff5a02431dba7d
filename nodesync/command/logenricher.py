"""``spo log-enricher``: the log enricher and the recorder of one node (``enableLogEnricher``).

One process per node, in the spod's ``<spod>-log-enricher`` DaemonSet (its own
ServiceAccount: nodesync stays unable to write profiles or read pods). It
follows the audit log (:mod:`nodesync.enricher.following`) and, for every SECCOMP or AVC
record of a process in a pod's container:

- prints one JSON line telling the record with its pod (:mod:`nodesync.enricher.enriching`)
  and counts it in ``security_profiles_operator_seccomp_profile_audit_total`` (or, for an
  AVC record, ``..._selinux_profile_audit_total``);
- accumulates what the containers marked by the recording webhook did
  (:mod:`nodesync.enricher.recorder`) and, when such a pod has Succeeded or is gone,
  creates its recorded SeccompProfile or SelinuxProfile
  (:mod:`nodesync.enricher.recordingagent`); recordings with ``mergeStrategy:
  containers`` are merged when they are deleted (:mod:`nodesync.enricher.merging`).

Three threads: the audit log, the watch of this node's pods
(:mod:`nodesync.enricher.nodepods`), the merge poll. The pod watch does not finish a pod
itself: it queues the pod, and the audit-log thread finishes it once it has
read what auditd wrote up to ``--finish-delay`` seconds after the pod was seen
done, so that a container's last records are in its profile.

Nothing is lost on a restart: the position in the audit log and what the
recorder accumulated are saved together, atomically, in ``--state-dir``.

With ``--metrics-socket`` the audit counters are served on that Unix socket
(``/metrics-spod``) for nodesync, which adds them to its authenticated
``/metrics-spod``; the plain ``--metrics-bind`` listener (on the host's network)
then keeps ``/healthz`` and ``/readyz`` only.

Without auditd the kernel rate-limits the audit records it logs; the recorder
then says so at ERROR and refuses to create any profile (an incomplete profile
breaks the workload it is meant for).
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from socketserver import BaseServer

from prometheus_client import CollectorRegistry, generate_latest

from nodesync.command.running import Loops, add_agent_arguments, stop_on_signals
from nodesync.enricher.auditloop import event, follow
from nodesync.enricher.containers import ContainerResolver
from nodesync.enricher.deferring import Deferred, DeferredRecording
from nodesync.enricher.enriching import LogEnricher
from nodesync.enricher.following import Follower
from nodesync.enricher.losses import AuditdWatch, KernelLogWatch, read_lost_counter
from nodesync.enricher.nodepods import NodePods, selector
from nodesync.enricher.process_events import open_process_events
from nodesync.enricher.recorder import Recorder
from nodesync.enricher.state import RecorderState
from nodesync.nodeio import serving
from nodesync.nodeio.logs import about, configure
from nodesync.nodeio.metrics import Metrics

log = logging.getLogger(__name__)

DEFAULT_METRICS_BIND = "0.0.0.0:8086"
RETRY_SECONDS = 10.0  # a recorded pod whose ProfileRecording could not be read waits this long
STATE_FILE = "audit-log.json"
DEFAULT_AUDIT_LOG = "/var/log/audit/audit.log"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_agent_arguments(
        parser,
        metrics_bind=DEFAULT_METRICS_BIND,
        node_help="(env NODE_NAME; required)",
        namespace_help="record and merge in NS only",
    )
    parser.add_argument(
        "--audit-log",
        default=os.environ.get("AUDIT_LOG_PATH") or DEFAULT_AUDIT_LOG,
        metavar="PATH",
        help=f"the audit log to follow (env AUDIT_LOG_PATH; default {DEFAULT_AUDIT_LOG})",
    )
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("STATE_DIR") or None,
        metavar="DIR",
        help="where the position in the audit log and the recording so far are saved "
        "(default: not saved; a restart starts at the end of the log)",
    )
    parser.add_argument(
        "--memory-optimization",
        action=argparse.BooleanOptionalAction,
        default=_flag("ENABLE_MEMORY_OPTIMIZATION"),
        help="cache only the pods labelled spo.x-k8s.io/enable-recording "
        "(env ENABLE_MEMORY_OPTIMIZATION)",
    )
    parser.add_argument(
        "--finish-delay",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long after a recorded pod is done its last audit records are waited for",
    )
    parser.add_argument(
        "--merge-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often deleted recordings with mergeStrategy containers are looked for",
    )
    parser.add_argument(
        "--require-auditd",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="refuse to record when no auditd process runs on the node (default on)",
    )
    parser.add_argument(
        "--kernel-log",
        default="/dev/kmsg",
        metavar="PATH",
        help="the kernel log, read for reports of dropped audit records ('' not to read it)",
    )
    parser.add_argument(
        "--process-events",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow process creation (the kernel's proc connector: hostNetwork, and CAP_NET_ADMIN "
        "before Linux 6.6) so that records of processes that have exited are attributed "
        "(default on)",
    )
    parser.add_argument(
        "--metrics-socket",
        default=os.environ.get("METRICS_SOCKET") or None,
        metavar="PATH",
        help="serve the audit counters on this Unix socket for nodesync, not on --metrics-bind "
        "(env METRICS_SOCKET)",
    )
    parser.add_argument(
        "--metrics-socket-group",
        type=int,
        default=None,
        metavar="GID",
        help="the group that may read the socket (nodesync's; this process must be in it)",
    )
    parser.add_argument(
        "--lost-counter",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="watch the kernel's lost audit records counter with auditctl -s, where it works",
    )


def run(args: argparse.Namespace) -> int:
    configure(args.node_name, getattr(logging, str(args.log_level).upper(), logging.INFO))
    if not args.node_name:
        log.error("--node-name (or NODE_NAME) is required", extra=about("", ""))
        return 2

    from nodesync.enricher.merging import merge_loop
    from nodesync.enricher.recordingagent import RecordingAgent
    from nodesync.nodeio.requesting import KubernetesCluster
    from nodesync.nodeio.watching import Watcher

    stop = threading.Event()
    metrics = Metrics()
    processes = open_process_events(args.proc_dir) if args.process_events else None
    resolver = ContainerResolver(
        args.proc_dir, remembered=processes.remembered if processes is not None else None
    )
    recorder = Recorder(resolver.lookup, count_lines=False)  # counted by nobody here

    pods_cluster = KubernetesCluster(args.kubeconfig, namespace=args.namespace)
    api = KubernetesCluster(args.kubeconfig, namespace=args.namespace)
    deferred = Deferred(args.finish_delay)
    agent = RecordingAgent(
        recorder,
        api.create_profile,
        recording=api.get_profile_recording,
        report=lambda decision: api.create_event(
            decision.target.ref.namespace, event(args.node_name, decision)
        ),
        retry=lambda call: deferred.later(call, RETRY_SECONDS),
    )
    state: RecorderState | None = None
    if args.state_dir:
        Path(args.state_dir).mkdir(parents=True, exist_ok=True)
        state = RecorderState(Path(args.state_dir) / STATE_FILE, recorder, agent)
        restored = state.restore()
        if restored:
            log.info("restored the recording of %d containers", restored, extra=about("", ""))
    follower = Follower(Path(args.audit_log), state)
    auditd = AuditdWatch(recorder.detector, args.proc_dir) if args.require_auditd else None
    if auditd is not None:
        auditd.check()  # now, so that the log says it at start
    kernel = KernelLogWatch(
        recorder.detector,
        args.kernel_log or None,
        counter=read_lost_counter if args.lost_counter else None,
    )
    if not Path(args.audit_log).exists():
        log.warning("%s does not exist yet: waiting for it", args.audit_log, extra=about("", ""))
    pods = NodePods(DeferredRecording(agent, deferred))
    enricher = LogEnricher(args.node_name, metrics.registry, pods.lookup)
    audit = CollectorRegistry()
    audit.register(enricher.collector)
    source = pods_cluster.pods_of_node(args.node_name, selector(args.memory_optimization))
    log.info(
        "following %s; pods of node %s%s",
        args.audit_log,
        args.node_name,
        " labelled spo.x-k8s.io/enable-recording" if args.memory_optimization else "",
        extra=about(args.namespace or "", ""),
    )

    def interrupt() -> None:
        pods_cluster.interrupt()
        api.interrupt()

    stop_on_signals(stop, interrupt)
    loops: dict[str, Callable[[], None]] = {
        "audit-log": lambda: follow(
            follower,
            agent,
            enricher,
            deferred,
            stop,
            auditd=auditd,
            kernel=kernel,
            processes=processes,
        ),
        "pods": Watcher(source, pods, stop, timeout=args.watch_timeout).run,
        "merge": lambda: merge_loop(
            api.list_profile_recordings,
            api.list_profiles,
            api.create_profile,
            api.delete_profile,
            stop,
            args.merge_interval,
        ),
    }
    runner = Loops(loops, stop, interrupt)
    servers = _serve(args, metrics, audit, pods.ready, runner.healthy)
    try:
        return runner.run()
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()  # the metrics socket leaves the host folder with the process


def _serve(
    args: argparse.Namespace,
    metrics: Metrics,
    audit: CollectorRegistry,
    ready: threading.Event,
    healthy: Callable[[], bool],
) -> list[BaseServer]:
    """The probes' listener, with every metric unless the audit counters go to nodesync
    through ``--metrics-socket``."""
    servers: list[BaseServer] = []
    if args.metrics_bind:
        servers.append(
            serving.start(
                args.metrics_bind, None if args.metrics_socket else metrics, ready, healthy
            )
        )
    if args.metrics_socket:
        servers.append(
            serving.start_unix(
                args.metrics_socket,
                {"/metrics-spod": lambda: bytes(generate_latest(audit))},
                group=args.metrics_socket_group,
            )
        )
    return servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spo log-enricher", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
