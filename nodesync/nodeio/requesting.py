"""The real ``Cluster``: raw JSON requests over urllib3, with the credentials of
``nodesync.nodeio.credentials`` (the pod's ServiceAccount or a kubeconfig).

With ``namespace``, every request stays in that namespace (the namespaced API
paths), so a Role there is all the rights it needs.

No client library's API classes: lists and watches are read as JSON straight
from the response (a ConfigMap stays a dict, never a model), which keeps memory
and CPU low with thousands of profiles; and the kubernetes client package is not
even imported (its models alone took 11 MiB of each process).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import urllib3
from urllib3.exceptions import HTTPError

from hooks.api import GROUP
from hooks.api.nodestatuslabels import PLURAL as NODE_STATUSES
from hooks.api.nodestatuslabels import STORAGE_VERSION as NODE_STATUS_VERSION
from nodesync.nodeio import credentials
from nodesync.nodeio.cluster import ApiError, Expired

if TYPE_CHECKING:
    from hooks.api.base import Object
    from hooks.api.kinds import Kind

log = logging.getLogger(__name__)

USER_AGENT = "security-profiles-operator-py"

PAGE = 500
_CONNECT_TIMEOUT = 10.0
_STATUSES = f"/apis/{GROUP}/{NODE_STATUS_VERSION}"


def _recorded_kinds() -> tuple[Kind, ...]:
    """The kinds the log enricher may write. Imported when first asked for (by the log
    enricher): the registry loads the models, which nodesync's process does not."""
    from hooks.api.registry import RECORDED_KINDS

    return RECORDED_KINDS


class KubernetesCluster:
    def __init__(self, kubeconfig: str | None = None, *, namespace: str | None = None) -> None:
        self.namespace = namespace or None
        self.credentials = credentials.load(kubeconfig)
        # Kept connections: a watch holds one while the reports and lists of its process
        # take others. urllib3's default retries, as the kubernetes client had them: a
        # connection that fails before the request is sent is tried again.
        self.pool = urllib3.PoolManager(
            maxsize=4,
            ssl_context=self.credentials.context,
            server_hostname=self.credentials.server_hostname,
        )
        self._watch: Any = None  # the urllib3 response of the watch being read, if any
        self._interrupted = False

    # -- transport ----------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Object | None = None,
        *,
        content_type: str = "application/json",
        read_timeout: float = 30.0,
    ) -> Any:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = content_type
        token = self.credentials.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        params = [(k, str(v)) for k, v in (query or {}).items() if v is not None]
        url = self.credentials.server + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            raw = self.pool.request(
                method,
                url,
                body=None if body is None else json.dumps(body).encode(),
                headers=headers,
                timeout=urllib3.Timeout(connect=_CONNECT_TIMEOUT, read=read_timeout),
                preload_content=False,
            )
        except (HTTPError, OSError) as error:
            raise ApiError(0, str(error)) from error
        if raw.status >= 400:
            try:
                data = raw.data
            except (HTTPError, OSError) as error:
                raise ApiError(raw.status, str(error)) from error
            finally:
                raw.release_conn()
            try:
                message = str(json.loads(data).get("message") or data)
            except ValueError:
                message = data.decode(errors="replace")
            if raw.status == 410:
                raise Expired(message)
            raise ApiError(raw.status, message)
        return raw

    def _json(
        self, method: str, path: str, query: dict[str, Any] | None = None, **kw: Any
    ) -> Object:
        raw = self._send(method, path, query, **kw)
        try:
            data = raw.data
        except (HTTPError, OSError) as error:
            raise ApiError(0, str(error)) from error
        finally:
            raw.release_conn()
        return json.loads(data) if data else {}

    # -- ConfigMaps ---------------------------------------------------------------------------

    def _collection(self, resource: str, namespace: str | None = None) -> str:
        """The core API collection of ``resource`` in ``namespace`` (or the watched scope)."""
        scope = namespace or self.namespace
        if scope is None:
            return f"/api/v1/{resource}"
        return f"/api/v1/namespaces/{urllib.parse.quote(scope, safe='')}/{resource}"

    def _list(self, path: str, query: dict[str, Any]) -> tuple[list[Object], str]:
        """Every item of a paginated list, and the list's resourceVersion."""
        items: list[Object] = []
        token: str | None = None
        while True:
            page = self._json(
                "GET", path, {**query, "limit": PAGE, "continue": token}, read_timeout=120.0
            )
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or None
            if token is None:
                return items, str(metadata.get("resourceVersion") or "")

    def _watch_path(
        self, path: str, query: dict[str, Any], resource_version: str, timeout: int
    ) -> Iterator[Object]:
        query = {
            **query,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout,
        }
        raw = self._send("GET", path, query, read_timeout=timeout + 30.0)
        self._watch = raw
        buffer = b""
        finished = False
        try:
            if self._interrupted:
                raise ApiError(0, "watch interrupted: stopping")
            for chunk in raw.stream(1 << 16, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            finished = True
        except (HTTPError, OSError) as error:
            raise ApiError(0, f"watch interrupted: {error}") from error
        finally:
            self._watch = None
            if not finished:
                # Left before the server ended it (an ERROR event, a stop, a failure): the
                # rest of the stream is still on the connection, which must not be reused.
                raw.close()
            raw.release_conn()

    def list_configmaps(self, selector: str) -> tuple[list[Object], str]:
        return self._list(self._collection("configmaps"), {"labelSelector": selector})

    def watch_configmaps(
        self, selector: str, resource_version: str, timeout: int
    ) -> Iterator[Object]:
        return self._watch_path(
            self._collection("configmaps"), {"labelSelector": selector}, resource_version, timeout
        )

    def interrupt(self) -> None:
        """End the watch being read now (safe from a signal handler or another thread).

        A watch can sit idle for minutes between events; without this, a stop
        request would wait for the server to end it. Later watches end at once."""
        self._interrupted = True
        raw = self._watch
        if raw is None:
            return
        try:
            raw.shutdown()  # urllib3 >= 2.3: shuts the socket's read side, the read returns
        except (AttributeError, ValueError, RuntimeError, OSError):
            with contextlib.suppress(AttributeError, OSError):
                raw._connection.sock.shutdown(socket.SHUT_RDWR)

    # -- node statuses and events -------------------------------------------------------------

    def list_node_statuses(self, selector: str) -> list[Object]:
        path = (
            f"{_STATUSES}/{NODE_STATUSES}"
            if self.namespace is None
            else self._status_path(self.namespace)
        )
        page = self._json("GET", path, {"labelSelector": selector})
        return list(page.get("items") or [])

    def _confine(self, namespace: str) -> None:
        """Restricted to a namespace, nodesync never writes outside it."""
        if self.namespace is not None and namespace != self.namespace:
            raise ApiError(
                403, f"namespace {namespace!r} is outside the watched namespace {self.namespace!r}"
            )

    def _status_path(self, namespace: str, name: str = "") -> str:
        base = f"{_STATUSES}/namespaces/{urllib.parse.quote(namespace, safe='')}/{NODE_STATUSES}"
        return f"{base}/{urllib.parse.quote(name, safe='')}" if name else base

    def create_node_status(self, namespace: str, body: Object) -> Object:
        self._confine(namespace)
        return self._json("POST", self._status_path(namespace), body=body)

    def patch_node_status(self, namespace: str, name: str, patch: Object) -> Object:
        self._confine(namespace)
        path = self._status_path(namespace, name)
        return self._json("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete_node_status(self, namespace: str, name: str) -> None:
        self._confine(namespace)
        self._json("DELETE", self._status_path(namespace, name))

    def create_event(self, namespace: str, body: Object) -> None:
        self._confine(namespace)
        ns = urllib.parse.quote(namespace, safe="")
        self._json("POST", f"/api/v1/namespaces/{ns}/events", body=body)

    # -- who reads the metrics (metricsauth) ---------------------------------------------------

    def create_token_review(self, body: Object) -> Object:
        """Who a bearer token is (``authentication.k8s.io``; cluster-scoped, whatever the
        watched namespace)."""
        return self._json(
            "POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=body, read_timeout=10.0
        )

    def create_subject_access_review(self, body: Object) -> Object:
        """Whether a user may do something (``authorization.k8s.io``; cluster-scoped)."""
        return self._json(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            body=body,
            read_timeout=10.0,
        )

    # -- recording (the log enricher's identity, not nodesync's) ------------------------------

    def pods_of_node(self, node_name: str, selector: str = "") -> PodSource:
        """The pods scheduled to ``node_name`` (and matching ``selector``), for a ``Watcher``."""
        return PodSource(self, node_name, selector)

    def _profiles_path(self, plural: str, namespace: str, name: str = "") -> str:
        kind = next((k for k in _recorded_kinds() if k.plural == plural), None)
        if kind is None:
            raise ValueError(f"not a recorded profile kind: {plural!r}")
        version = kind.storage_version
        self._confine(namespace)
        base = (
            f"/apis/{GROUP}/{version}/namespaces/{urllib.parse.quote(namespace, safe='')}/{plural}"
        )
        return f"{base}/{urllib.parse.quote(name, safe='')}" if name else base

    def create_profile(self, body: Object) -> Object:
        """POST a SeccompProfile or SelinuxProfile into the namespace its metadata names."""
        kind = next((k for k in _recorded_kinds() if k.kind == body.get("kind")), None)
        if kind is None:
            raise ValueError(f"not a recorded profile kind: {body.get('kind')!r}")
        plural = kind.plural
        namespace = str((body.get("metadata") or {}).get("namespace") or "")
        return self._json("POST", self._profiles_path(plural, namespace), body=body)

    def list_profiles(self, plural: str, namespace: str, selector: str) -> list[Object]:
        return self._list(self._profiles_path(plural, namespace), {"labelSelector": selector})[0]

    def delete_profile(self, plural: str, namespace: str, name: str) -> None:
        self._json("DELETE", self._profiles_path(plural, namespace, name))

    def _recordings_path(self, namespace: str | None) -> str:
        scope = namespace or self.namespace
        if scope is None:
            return f"/apis/{GROUP}/v1alpha1/profilerecordings"
        namespace = urllib.parse.quote(scope, safe="")
        return f"/apis/{GROUP}/v1alpha1/namespaces/{namespace}/profilerecordings"

    def list_profile_recordings(self) -> list[Object]:
        """The ProfileRecordings of the watched scope."""
        return self._list(self._recordings_path(None), {})[0]

    def get_profile_recording(self, namespace: str, name: str) -> Object | None:
        """The ProfileRecording ``namespace/name``, None when there is none; ApiError otherwise."""
        path = f"{self._recordings_path(namespace)}/{urllib.parse.quote(name, safe='')}"
        try:
            return self._json("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise


class ResourceSource:
    """Every object of one custom resource (``group/version`` and plural) in the watched scope,
    with the ``list_configmaps``/``watch_configmaps`` shape a ``Watcher`` reads (the webhook's
    tables: ``hooks.command.webhook``)."""

    def __init__(self, cluster: KubernetesCluster, api_version: str, plural: str) -> None:
        self.cluster = cluster
        scope = cluster.namespace
        prefix = f"/apis/{api_version}"
        if scope is not None:
            prefix += f"/namespaces/{urllib.parse.quote(scope, safe='')}"
        self.path = f"{prefix}/{plural}"

    def list_configmaps(self, selector: str) -> tuple[list[Object], str]:
        return self.cluster._list(self.path, {})

    def watch_configmaps(
        self, selector: str, resource_version: str, timeout: int
    ) -> Iterator[Object]:
        return self.cluster._watch_path(self.path, {}, resource_version, timeout)

    def interrupt(self) -> None:
        self.cluster.interrupt()


class PodSource:
    """The pods of one node, with the ``list_configmaps``/``watch_configmaps`` shape a ``Watcher``
    reads."""

    def __init__(self, cluster: KubernetesCluster, node_name: str, selector: str) -> None:
        self.cluster = cluster
        self.query: dict[str, Any] = {"fieldSelector": f"spec.nodeName={node_name}"}
        if selector:
            self.query["labelSelector"] = selector

    def list_configmaps(self, selector: str) -> tuple[list[Object], str]:
        return self.cluster._list(self.cluster._collection("pods"), self.query)

    def watch_configmaps(
        self, selector: str, resource_version: str, timeout: int
    ) -> Iterator[Object]:
        return self.cluster._watch_path(
            self.cluster._collection("pods"), self.query, resource_version, timeout
        )

    def interrupt(self) -> None:
        self.cluster.interrupt()
