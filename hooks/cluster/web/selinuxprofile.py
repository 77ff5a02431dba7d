"""Routes of the SelinuxProfile and RawSelinuxProfile CompositeControllers."""

from __future__ import annotations

from flask import Blueprint, Response

from hooks.cluster.contract import CustomizeRequest, SyncRequest
from hooks.cluster.selinux import controller
from hooks.cluster.web.edge import answer, decode, now

blueprint = Blueprint("selinuxprofile", __name__)

_ROUTES = (("selinuxprofile", controller.SELINUX_KIND), ("rawselinuxprofile", controller.RAW_KIND))


def _register(prefix: str, kind: str) -> None:
    def customize() -> Response:
        return answer(
            f"{prefix}-customize", lambda: controller.customize(decode(CustomizeRequest), kind)
        )

    def sync() -> Response:
        return answer(f"{prefix}-sync", lambda: controller.sync(decode(SyncRequest), now(), kind))

    def finalize() -> Response:
        return answer(
            f"{prefix}-finalize", lambda: controller.sync(decode(SyncRequest), now(), kind)
        )

    blueprint.add_url_rule(
        f"/{prefix}/customize", f"{prefix}_customize", customize, methods=["POST"]
    )
    blueprint.add_url_rule(f"/{prefix}/sync", f"{prefix}_sync", sync, methods=["POST"])
    blueprint.add_url_rule(f"/{prefix}/finalize", f"{prefix}_finalize", finalize, methods=["POST"])


for _prefix, _kind in _ROUTES:
    _register(_prefix, _kind)
