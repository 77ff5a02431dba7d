"""The benchmarks' baseline routes, served beside the real hooks; never part of the product.

- ``/echo``: a trivial JSON route, the baseline of ``bench_hooks.py``;
- ``/admit-allow``: a trivial admission route (allowed, no patch), the baseline
  of ``bench_binding_webhook.py``.

``python -m bench.baselines --bind HOST:PORT --workers N [--certfile F --keyfile F]``
serves them with the real ``spo hooks`` server (``hooks.cluster.serving``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flask import Flask, Response

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from hooks.cluster import serving
from hooks.cluster.app import create_app
from hooks.cluster.binding import admission
from hooks.cluster.web import edge


def _echo() -> Response:
    return edge.answer("echo", edge.decode_object)


def _admit_allow() -> Response:
    def allow() -> admission.AdmissionReviewResponse:
        review = edge.decode(admission.AdmissionReviewRequest)
        return admission.AdmissionReviewResponse(
            response=admission.AdmissionResponse(uid=review.request.uid, allowed=True)
        )

    return edge.answer("admit-allow", allow)


def with_baselines(app: Flask) -> Flask:
    """``app`` with the two baseline routes added."""
    app.add_url_rule("/echo", "echo", _echo, methods=["POST"])
    app.add_url_rule("/admit-allow", "admit_allow", _admit_allow, methods=["POST"])
    return app


def app() -> Flask:
    """The hook app and the baselines: what the benchmarks' gunicorn serves."""
    return with_baselines(create_app())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args()
    serving.serve(args.bind, args.workers, args.certfile, args.keyfile, factory=app)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
