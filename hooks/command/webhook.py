"""``spo webhook``: the admission webhooks, with their tables kept from list and watch.

One gunicorn worker process serves admission and holds the tables
(``hooks.cluster.webhook.tables.WatchedTables``); in it, one thread per watched
kind lists and watches it with ``nodesync.nodeio.watching.Watcher`` (the loop
nodesync uses: paginated list, watch from its resourceVersion with bookmarks,
list again at once on 410 Gone, after a jittered exponential backoff when the
API server cannot be reached), and one thread rebuilds the tables from what
changed (at most every ``INTERVAL`` seconds). Under gunicorn's gevent worker
these threads are greenlets: they wait on the network without holding a thread.

The credentials are the pod's ServiceAccount (or ``--kubeconfig``), which may
only get, list and watch the four kinds (metacontroller/base/webhook.yaml);
with ``--namespace`` (``WATCH_NAMESPACE``) every list and watch stays in that
namespace, so a Role there is enough (metacontroller/namespaced/).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from hooks.api.kinds import Kind
from hooks.cluster.webhook.tables import WATCHED, KindFeed, WatchedTables
from hooks.logs import about
from nodesync.nodeio.requesting import KubernetesCluster, ResourceSource
from nodesync.nodeio.watching import Backoff, Watcher

log = logging.getLogger(__name__)

WATCH_TIMEOUT = 300


def _forever(name: str, loop: Callable[[], None], stop: threading.Event) -> None:
    """Run ``loop`` until ``stop``; a loop that fails with a bug is logged and run again after a
    backoff, so the tables are never left without a watch."""
    backoff = Backoff(base=1.0, cap=60.0)
    while not stop.is_set():
        try:
            loop()
        except Exception:
            delay = backoff.next()
            log.exception("the %s loop failed; again in %.1fs", name, delay, extra=about())
            stop.wait(delay)


def watcher(
    tables: WatchedTables, kind: Kind, source: ResourceSource, stop: threading.Event
) -> Watcher:
    return Watcher(source, KindFeed(tables, kind), stop, selector="", timeout=WATCH_TIMEOUT)


def start(
    tables: WatchedTables,
    stop: threading.Event,
    *,
    kubeconfig: str | None = None,
    namespace: str | None = None,
) -> list[threading.Thread]:
    """Start the watches of every kind the tables need and the rebuilding thread (daemons)."""
    threads = []
    for kind in WATCHED:
        # One client per watch: a watch being read holds its connection.
        cluster = KubernetesCluster(kubeconfig, namespace=namespace)
        source = ResourceSource(cluster, kind.api_version, kind.plural)
        threads.append(
            threading.Thread(
                target=_forever,
                args=(f"{kind.plural} watch", watcher(tables, kind, source, stop).run, stop),
                name=f"watch-{kind.plural}",
                daemon=True,
            )
        )
    threads.append(
        threading.Thread(
            target=_forever,
            args=("tables", lambda: tables.publish_forever(stop), stop),
            name="tables",
            daemon=True,
        )
    )
    for thread in threads:
        thread.start()
    return threads
