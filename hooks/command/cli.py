"""The ``spo`` command: serve the hooks and the webhooks, run nodesync, render offline, generate
CRDs."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from hooks import logs
from nodesync.command.running import add_metrics_auth_ttl

if TYPE_CHECKING:
    from flask import Flask

DEFAULT_BIND = "0.0.0.0:8080"
DEFAULT_WEBHOOK_BIND = "0.0.0.0:8443"
METRICS_AUTH = ("none", "token", "off")


def _unpaired_certificate(command: str, args: argparse.Namespace) -> bool:
    """``--certfile`` without ``--keyfile`` or the reverse, said on stderr."""
    if (args.certfile is None) == (args.keyfile is None):
        return False
    print(f"spo {command}: --certfile and --keyfile go together", file=sys.stderr)
    return True


def _hooks(args: argparse.Namespace) -> int:
    from hooks.cluster import serving

    if _unpaired_certificate("hooks", args):
        return 2
    serving.serve(
        bind=args.bind,
        workers=args.workers,
        certfile=args.certfile,
        keyfile=args.keyfile,
        factory=functools.partial(
            _hooks_app, args.metrics_auth, args.metrics_dir or [], args.metrics_auth_ttl
        ),
    )
    return 0


def _hooks_app(auth: str, extra_dirs: Sequence[str], ttl: float) -> Flask:
    """The hooks' app (in each worker) with the ``/metrics`` access ``--metrics-auth`` asks
    for."""
    from hooks.cluster.app import create_app

    return _guarded(create_app(), auth, extra_dirs, ttl)


def _webhook(args: argparse.Namespace) -> int:
    from hooks.cluster import serving

    if _unpaired_certificate("webhook", args):
        return 2
    serving.serve(
        bind=args.bind,
        workers=1,  # the one process that holds the tables
        certfile=args.certfile,
        keyfile=args.keyfile,
        factory=functools.partial(
            _webhook_app,
            args.kubeconfig,
            args.namespace or None,
            args.metrics_auth,
            args.metrics_auth_ttl,
        ),
    )
    return 0


def _webhook_app(kubeconfig: str | None, namespace: str | None, auth: str, ttl: float) -> Flask:
    """The webhooks' app, in the worker: the tables, their watches started."""
    import threading

    from hooks.cluster.app import create_webhook_app
    from hooks.cluster.webhook.tables import WatchedTables
    from hooks.command import webhook

    tables = WatchedTables()
    webhook.start(tables, threading.Event(), kubeconfig=kubeconfig, namespace=namespace)
    return _guarded(create_webhook_app(tables), auth, (), ttl)


def _guarded(app: Flask, auth: str, extra_dirs: Sequence[str], ttl: float) -> Flask:
    """``app`` with the ``/metrics`` access ``--metrics-auth`` asks for: ``none`` open, ``off``
    404, ``token`` a bearer token the API server accepts and allows to get ``/metrics``
    (TokenReview and SubjectAccessReview, with the pod's own ServiceAccount token, or
    ``$KUBECONFIG``)."""
    from hooks.cluster.web import health

    app.extensions[health.EXTRA_DIRS] = tuple(extra_dirs)
    if auth == "off":
        app.extensions[health.GUARD] = lambda authorization, path: (404, "not found")
    elif auth == "token":
        from nodesync.nodeio.metricsauth import MetricsGuard
        from nodesync.nodeio.requesting import KubernetesCluster

        guard = MetricsGuard(KubernetesCluster(), ttl=ttl)

        def check(authorization: str | None, path: str) -> tuple[int, str]:
            verdict = guard.check(authorization, path)
            return verdict.code, verdict.message

        app.extensions[health.GUARD] = check
    return app


def _crds(args: argparse.Namespace) -> int:
    from hooks.command import crdfiles

    if args.out is None:
        sys.stdout.write(crdfiles.render_all())
        return 0
    for path in crdfiles.write_all(Path(args.out)):
        print(f"wrote {path}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from hooks.command import render

    try:
        report = render.render_paths([Path(p) for p in args.paths], Path(args.out))
    except (OSError, yaml.YAMLError) as error:
        print(f"spo render: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(report.text())
    return 1 if report.failed else 0


def _nodesync(args: argparse.Namespace) -> int:
    from nodesync.command import nodesync as command

    return command.run(args)


def _log_enricher(args: argparse.Namespace) -> int:
    from nodesync.command import logenricher as enricher_command

    return enricher_command.run(args)


def parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``spo`` command line. Given ``only``, only that subcommand gets its arguments
    (and the others their names and help): the modules of ``record``, ``run`` and
    ``log-enricher`` are loaded only to run them, so that ``spo nodesync`` loads no pydantic
    (nodesync's memory on every node)."""

    def wanted(*names: str) -> bool:
        return only is None or only in names

    top = argparse.ArgumentParser(
        prog="spo",
        description="Security Profiles Operator for Kubernetes, driven by Metacontroller.",
    )
    top.add_argument(
        "--log-level", default=None, help="logging level (default INFO; WARNING for render)"
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    hooks = sub.add_parser(
        "hooks",
        help="serve the Metacontroller hooks over HTTP (gunicorn)",
        description="Serve the Metacontroller hooks, /healthz, /readyz and /metrics with gunicorn.",
    )
    hooks.add_argument(
        "--bind",
        default=DEFAULT_BIND,
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_BIND})",
    )
    hooks.add_argument(
        "--workers", type=int, default=2, metavar="N", help="gunicorn worker processes (default 2)"
    )
    hooks.add_argument(
        "--certfile",
        metavar="PATH",
        help="serve HTTPS with this certificate (PEM); needs --keyfile",
    )
    hooks.add_argument("--keyfile", metavar="PATH", help="the private key of --certfile (PEM)")
    hooks.add_argument(
        "--metrics-auth",
        choices=METRICS_AUTH,
        default=os.environ.get("METRICS_AUTH", "none"),
        help="who may read /metrics: anyone (none, the default), bearer tokens allowed to get "
        "it (token: TokenReview and SubjectAccessReview with the pod's ServiceAccount, "
        "or $KUBECONFIG), nobody (off) (env METRICS_AUTH)",
    )
    hooks.add_argument(
        "--metrics-dir",
        action="append",
        metavar="DIR",
        help="another server's PROMETHEUS_MULTIPROC_DIR whose numbers /metrics includes "
        "(repeatable)",
    )
    add_metrics_auth_ttl(hooks)
    hooks.set_defaults(func=_hooks)

    from hooks.command import hooksmetrics

    hooksmetrics.add_arguments(
        sub.add_parser(
            "hooks-metrics",
            help="serve the hooks' numbers over HTTPS to bearer tokens (the metrics container)",
            description="Serve /metrics over HTTPS from the hooks' prometheus_client folders, "
            "to bearer tokens the API server allows to get it; /healthz and /readyz on a "
            "plain port for the kubelet.",
        )
    )

    webhook = sub.add_parser(
        "webhook",
        help="serve the admission webhooks over HTTPS, their tables kept from watches",
        description="Serve the binding and recording admission webhooks, /healthz, /readyz "
        "(ready once every ProfileBinding, ProfileRecording, SeccompProfile and SelinuxProfile "
        "was listed) and /metrics; the tables are kept in memory from list and watch.",
    )
    webhook.add_argument(
        "--bind",
        default=DEFAULT_WEBHOOK_BIND,
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_WEBHOOK_BIND})",
    )
    webhook.add_argument(
        "--certfile", metavar="PATH", help="serve HTTPS with this certificate (PEM)"
    )
    webhook.add_argument("--keyfile", metavar="PATH", help="the private key of --certfile (PEM)")
    webhook.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG") or None,
        metavar="PATH",
        help="credentials to watch with (default: the pod's ServiceAccount, else $KUBECONFIG)",
    )
    webhook.add_argument(
        "--namespace",
        default=os.environ.get("WATCH_NAMESPACE", ""),
        metavar="NS",
        help="watch this namespace only (env WATCH_NAMESPACE; default every namespace)",
    )
    webhook.add_argument(
        "--metrics-auth",
        choices=METRICS_AUTH,
        default=os.environ.get("METRICS_AUTH", "none"),
        help="who may read /metrics, as for spo hooks (env METRICS_AUTH)",
    )
    add_metrics_auth_ttl(webhook)
    webhook.set_defaults(func=_webhook)

    nodesync = sub.add_parser(
        "nodesync",
        help="run the node agent that installs profiles on this node",
        description=(
            "Install the profiles of the cluster's ConfigMaps on this node and report per-node "
            "status."
        ),
    )
    from nodesync.command import nodesync as command

    command.add_arguments(nodesync)
    nodesync.set_defaults(func=_nodesync)

    enricher = sub.add_parser(
        "log-enricher",
        help="enrich this node's audit records and record profiles from them",
        description=(
            "Follow the audit log: log each seccomp/AVC record with its pod, and create the "
            "profiles of the containers the recording webhook marked."
        ),
    )
    if wanted("log-enricher"):
        from nodesync.command import logenricher as enricher_command

        enricher_command.add_arguments(enricher)
        enricher.set_defaults(func=_log_enricher)

    render = sub.add_parser(
        "render",
        help="compute profiles offline, as a single node would get them",
        description="Run the hooks on YAML files of custom resources with a simulated single node: "
        "print each profile's status and write the node's files into --out.",
    )
    render.add_argument(
        "paths", nargs="+", metavar="PATH", help="YAML files or folders of custom resources"
    )
    render.add_argument(
        "--out", required=True, metavar="DIR", help="folder that plays the node's kubelet directory"
    )
    render.set_defaults(func=_render)

    recorder = sub.add_parser(
        "record",
        help="record the syscalls of a command on this machine into a SeccompProfile",
        description="Run CMD with all its processes and threads under a seccomp filter that "
        "reports every syscall (seccomp user notification: Linux 5.6+, no root needed), and "
        "write a SeccompProfile that denies by default and allows what CMD called, ready for "
        "kubectl apply. Exit code: CMD's.",
        usage="spo record [-o FILE] [--name NAME] [--namespace NS] [--base NAME|FILE] "
        "[--format crd|oci] -- CMD [ARGS...]",
    )

    runner = sub.add_parser(
        "run",
        help="run a command under a seccomp profile and report each syscall it refuses",
        description="Run CMD under a profile (a SeccompProfile with its bases merged as the "
        "operator merges them, or a runtime seccomp JSON), compiled with libseccomp as runc "
        "compiles it, and name on stderr each syscall the profile refuses. Exit code: CMD's.",
        usage="spo run --profile FILE [--base-dir DIR] -- CMD [ARGS...]",
    )
    if wanted("record", "run"):
        from hooks.command import record

        record.add_record_arguments(recorder)
        record.add_run_arguments(runner)

    crds = sub.add_parser(
        "crds",
        help="print or write the CustomResourceDefinitions",
        description="Generate the CustomResourceDefinitions from the API models.",
    )
    crds.add_argument(
        "--out", metavar="DIR", help="write one file per CRD into DIR instead of printing them"
    )
    crds.set_defaults(func=_crds)
    return top


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is no option nor an option's value),
    or None."""
    words = [
        w
        for i, w in enumerate(argv)
        if not w.startswith("-") and (i == 0 or argv[i - 1] != "--log-level")
    ]
    return words[0] if words else None


def _share_metrics_between_workers(argv: Sequence[str]) -> None:
    """Give gunicorn's workers a shared metrics folder, before prometheus_client is imported.

    prometheus_client picks its storage when it is first imported, and building
    the parser imports it (through nodesync), so this must come first.
    """
    if _command_of(argv) in ("hooks", "webhook") and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="spo-metrics-")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _share_metrics_between_workers(argv)
    args = parser(_command_of(argv)).parse_args(argv)
    logs.configure(args.log_level or ("WARNING" if args.command == "render" else "INFO"))
    logging.getLogger(__name__).debug("running %s", args.command)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
