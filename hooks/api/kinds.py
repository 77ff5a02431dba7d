"""What the API knows of each kind besides its schema: names, versions, columns, and how a
profile of the kind travels to the nodes. ``hooks.api.registry`` lists them all."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0


@dataclass(frozen=True)
class Version:
    name: str
    storage: bool = False
    served: bool = True


@dataclass(frozen=True)
class Kind:
    """One custom resource kind: names, versions, columns and the model of its body."""

    kind: str
    plural: str
    singular: str
    model: type[BaseModel]
    versions: tuple[Version, ...]
    short_names: tuple[str, ...] = ()
    columns: tuple[PrinterColumn, ...] = field(default_factory=tuple)
    scope: str = "Namespaced"
    # The ConfigMap that carries a profile of this kind to the nodes
    # (hooks/api/configmaps.py): its name prefix and data key. None: no node installs it.
    configmap_prefix: str | None = None
    configmap_key: str | None = None
    # Whether ``status`` is a subresource (written apart from the object, ignored on create).
    status_subresource: bool = True

    @property
    def storage_version(self) -> str:
        return next(v.name for v in self.versions if v.storage)

    @property
    def api_version(self) -> str:
        from hooks.api import GROUP

        return f"{GROUP}/{self.storage_version}"


STATUS_COLUMN = PrinterColumn("Status", ".status.status")
AGE_COLUMN = PrinterColumn("Age", ".metadata.creationTimestamp", type="date")
