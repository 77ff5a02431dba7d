"""The few API calls nodesync makes, as an interface; ``requesting.KubernetesCluster`` is the real
one.

Everything passes plain JSON dicts, as the API server spells them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hooks.api.base import Object


class ApiError(Exception):
    """An API call failed: ``status`` is the HTTP status, 0 when the server was not reached."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class Expired(ApiError):
    """The resourceVersion to watch from is too old (410 Gone): list again."""

    def __init__(self, message: str = "resource version expired") -> None:
        super().__init__(410, message)


class Cluster(Protocol):
    def list_configmaps(self, selector: str) -> tuple[list[Object], str]:
        """All ConfigMaps matching ``selector`` in the watched namespace (every namespace, or the
        one the cluster was restricted to), and the list's resourceVersion."""
        ...

    def watch_configmaps(
        self, selector: str, resource_version: str, timeout: int
    ) -> Iterator[Object]:
        """Watch events ({"type", "object"}) from ``resource_version`` for up to ``timeout``
        seconds."""
        ...

    def list_node_statuses(self, selector: str) -> list[Object]:
        """The node statuses matching ``selector`` in the watched namespace (or every one)."""
        ...

    def create_node_status(self, namespace: str, body: Object) -> Object: ...

    def patch_node_status(self, namespace: str, name: str, patch: Object) -> Object:
        """A JSON merge patch of the object (``status`` included: no subresource)."""
        ...

    def delete_node_status(self, namespace: str, name: str) -> None: ...

    def create_event(self, namespace: str, body: Object) -> None: ...
