"""The DecoratorController on the operator's Namespace: the webhook configuration.

A MutatingWebhookConfiguration is cluster-scoped, so the namespaced spod
cannot own it; the operator's Namespace (cluster-scoped) can, through a
DecoratorController whose one related object is the spod (hook version v2). The
sync hook attaches ``spo-mutating-webhook-configuration``, from the spod's
``webhookOptions`` (``hooks.cluster.namespace.webhookconfig``).

The binding and recording tables are not here: the webhook Deployment keeps them
in memory from its own watches (``hooks.cluster.webhook.tables``), so a profile,
binding or recording event costs this decorator nothing, and a new binding takes
effect for the next pod at once.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field, ValidationError, model_validator

from hooks.api import spod as spod_api
from hooks.api.base import Object, Open, Wire
from hooks.api.objectshapes import check_groups, check_object
from hooks.api.spod import OPERATOR_NAMESPACE
from hooks.cluster.contract import (
    CustomizeRequest,
    CustomizeResponse,
    ObjectMap,
    ResourceRule,
    group_key,
)
from hooks.cluster.namespace import webhookconfig
from hooks.logs import about

log = logging.getLogger(__name__)

DAEMONS = group_key(spod_api.KIND.kind, spod_api.KIND.api_version)
CONFIGURATIONS = group_key(webhookconfig.KIND, webhookconfig.API_VERSION)


class DecoratorSyncRequest(Open):
    """A DecoratorController sync request: the target ``object`` and what is attached to it.

    Hook version v1 names them ``object`` and ``attachments``; version v2, which the install
    uses, names them ``parent`` and ``children`` (Metacontroller's
    ``pkg/controller/decorator/api/v2/hooks.go``, ``DecoratorHookRequest``). Both are read;
    the model keeps the v1 names.
    """

    controller: Object = Field(default_factory=dict)
    object: Object
    attachments: ObjectMap | None = None
    related: ObjectMap | None = None
    finalizing: bool = False

    @model_validator(mode="before")
    @classmethod
    def _v2_names(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "object" in data or "parent" not in data:
            return data
        renamed = {k: v for k, v in data.items() if k not in ("parent", "children")}
        renamed["object"] = data["parent"]
        if "attachments" not in data and "children" in data:
            renamed["attachments"] = data["children"]
        return renamed

    @model_validator(mode="after")
    def _shaped(self) -> DecoratorSyncRequest:
        check_object(self.object, "object")
        check_groups(self.attachments, "attachments")
        check_groups(self.related, "related")
        return self

    def related_of(self, key: str) -> list[Object]:
        found = (self.related or {}).get(key) or {}
        return [found[name] for name in sorted(found)]


class DecoratorSyncResponse(Wire):
    """What a decorator's sync hook answers; ``attachments`` is the complete desired set."""

    attachments: list[Object] = Field(default_factory=list)
    resyncAfterSeconds: float | None = None


def customize(request: CustomizeRequest) -> CustomizeResponse:
    """The spod, and nothing else."""
    del request  # the same for the one Namespace this decorator selects
    return CustomizeResponse(
        relatedResources=[
            ResourceRule(
                apiVersion=spod_api.KIND.api_version,
                resource=spod_api.KIND.plural,
                namespace=OPERATOR_NAMESPACE,
                names=[spod_api.DEFAULT_SPOD_NAME],
            ),
        ]
    )


def _spod_spec(request: DecoratorSyncRequest) -> spod_api.SPODSpec | None:
    for raw in request.related_of(DAEMONS):
        meta = raw.get("metadata") or {}
        if meta.get("name") != spod_api.DEFAULT_SPOD_NAME:
            continue
        try:
            return spod_api.SecurityProfilesOperatorDaemon.model_validate(raw).spec
        except ValidationError as error:
            # The API server's schema makes this rare; the defaults are the safe answer.
            log.warning(
                "spod unreadable, webhook defaults used: %s",
                error.errors()[0]["msg"],
                extra=about(
                    namespace=meta.get("namespace"), name=meta.get("name"), reason="InvalidSpod"
                ),
            )
    return None


def sync(request: DecoratorSyncRequest) -> DecoratorSyncResponse:
    """The webhook configuration, attached to the operator's Namespace."""
    name = (request.object.get("metadata") or {}).get("name")
    if name != OPERATOR_NAMESPACE:
        # Another namespace that happens to carry the selector label gets nothing: the
        # attachments are singletons of the operator's namespace.
        log.warning("namespace is not the operator's; nothing attached", extra=about(name=name))
        return DecoratorSyncResponse()
    attachments: list[Object] = []
    configuration = webhookconfig.desired(_spod_spec(request))
    if configuration is not None:
        observed = ((request.attachments or {}).get(CONFIGURATIONS) or {}).get(webhookconfig.NAME)
        attachments.append(webhookconfig.with_observed_ca(configuration, observed))
    return DecoratorSyncResponse(attachments=attachments)
