"""Conventions shared by every API model.

Models keep the API's own (camelCase) field names as Python attribute names, so
what you read in a manifest is what you type in code. Unset optional fields are
``None`` and are dropped on output (``to_wire``), so only what we own is sent.

Metadata that a model does not describe is kept (``extra="allow"``) on objects
that come from the API server, because dropping a field we do not know would
make an apply remove it.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

# A Kubernetes object as the API server spells it in JSON: the one alias for it.
Object = dict[str, Any]


class Wire(BaseModel):
    """A strict model: unknown fields are an error (what a CRD schema rejects)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        return cls.model_validate(data)


class Open(Wire):
    """A lenient model for things the API server owns (metadata, related objects)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class OwnerReference(Open):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    blockOwnerDeletion: bool | None = None


class ObjectMeta(Open):
    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    generation: int | None = None
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    ownerReferences: list[OwnerReference] | None = None
    finalizers: list[str] | None = None


class Condition(Wire):
    """A status condition, as the Go operator writes them (type Ready, reason, message)."""

    type: str = Field(
        description=(
            "Type of this condition. At most one of each condition type may apply to a resource at "
            "any point in time."
        )
    )
    status: str = Field(
        description="Status of this condition; is it currently True, False, or Unknown?"
    )
    lastTransitionTime: str | None = Field(
        default=None,
        description=(
            "LastTransitionTime is the last time this condition transitioned from one status to "
            "another."
        ),
    )
    reason: str | None = Field(
        default=None,
        description="A Reason for this condition's last transition from one status to another.",
    )
    message: str | None = Field(
        default=None,
        description=(
            "A Message containing details about this condition's last transition from one status "
            "to another, if any."
        ),
    )


class Resource(Open):
    """Top-level shape of a Kubernetes object: apiVersion, kind, metadata."""

    apiVersion: str | None = None
    kind: str | None = None
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or ""
