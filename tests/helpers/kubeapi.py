"""A small REST client for the tests' real API server: discovery, CRUD, status, watch.

Used by the Metacontroller emulation (``metacontroller_step``), which must read and write
the way Metacontroller's dynamic client does (GET, LIST, PUT with ``resourceVersion``,
DELETE with a UID precondition, WATCH), without a ``kubectl`` process per call. Objects
come back as the API server sends them, ``managedFields`` included; LIST items get the
``apiVersion`` and ``kind`` the API server leaves out of them, as client-go's unstructured
lists set them.

The client authenticates with the control plane's admin certificate and, given an
:class:`Identity`, acts as that user on every request (reads, writes and watches) with the
API server's impersonation headers (``Impersonate-User``, one ``Impersonate-Group`` line per
group): the admission policies of the install let only Metacontroller's ServiceAccount write
the profile ConfigMaps, and only the garbage collector delete them besides it.

Connections are HTTP/1.1 keep-alive, one per thread. A watch has its own connection whose
socket :meth:`Watch.close` shuts down, so a thread blocked reading it returns at once.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

Object = dict[str, Any]
MAX_RETRIES = 10


@dataclass(frozen=True)
class Identity:
    """Who the client acts as: a user name and its groups (the impersonation headers)."""

    user: str
    groups: tuple[str, ...] = ()

    @classmethod
    def service_account(cls, namespace: str, name: str) -> Identity:
        """A ServiceAccount with the groups the API server gives its tokens."""
        return cls(
            f"system:serviceaccount:{namespace}:{name}",
            (
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ),
        )

    def headers(self) -> list[tuple[str, str]]:
        return [("Impersonate-User", self.user)] + [
            ("Impersonate-Group", group) for group in self.groups
        ]


class ApiError(Exception):
    """A non-2xx answer: the HTTP code, the Status reason (``NotFound``, ``Conflict``...)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.code == 404

    @property
    def conflict(self) -> bool:
        return self.code == 409 and self.reason == "Conflict"

    @property
    def already_exists(self) -> bool:
        return self.code == 409 and self.reason == "AlreadyExists"

    @property
    def gone(self) -> bool:
        return self.code == 410


@dataclass(frozen=True)
class Resource:
    """What discovery says about one resource of one group version."""

    api_version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: frozenset[str]

    @property
    def group(self) -> str:
        return self.api_version.split("/", 1)[0] if "/" in self.api_version else ""

    def path(
        self, namespace: str | None = None, name: str | None = None, sub: str | None = None
    ) -> str:
        base = (
            f"/api/{self.api_version}"
            if "/" not in self.api_version
            else f"/apis/{self.api_version}"
        )
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
        return base


def _status_error(code: int, body: bytes) -> ApiError:
    try:
        status = json.loads(body)
    except ValueError:
        return ApiError(code, "", body.decode(errors="replace")[:500])
    if not isinstance(status, dict):
        return ApiError(code, "", str(status)[:500])
    return ApiError(code, str(status.get("reason") or ""), str(status.get("message") or ""))


class Watch:
    """One open watch stream; iterate for ``(type, object)``; :meth:`close` from any thread."""

    def __init__(
        self, connection: http.client.HTTPSConnection, response: http.client.HTTPResponse
    ) -> None:
        self._connection = connection
        self._response = response
        self._closed = False

    def __iter__(self) -> Iterator[tuple[str, Object]]:
        while not self._closed:
            try:
                line = self._response.readline()
            except (OSError, http.client.HTTPException, ValueError, AttributeError):  # closed
                return
            if not line:
                return
            line = line.strip()
            if not line:
                continue
            event = json.loads(line)
            yield str(event.get("type")), dict(event.get("object") or {})

    def close(self) -> None:
        self._closed = True
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._connection.close()


class KubeApi:
    """The API server at ``server``, as the holder of ``context``'s client certificate."""

    def __init__(
        self,
        server: str,
        context: ssl.SSLContext,
        *,
        timeout: float = 30.0,
        user_agent: str = "spo-e2e",
        identity: Identity | None = None,
    ) -> None:
        parts = urlsplit(server)
        self.user_agent = user_agent
        self.identity = identity
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 443
        self.context = context
        self.timeout = timeout
        self._connections: dict[int, http.client.HTTPSConnection] = {}
        self._lock = threading.Lock()
        self._resources: dict[tuple[str, str], Resource] = {}
        self._by_kind: dict[tuple[str, str], Resource] = {}
        self.requests: Counter[str] = Counter()
        """Requests sent so far, by verb (``get``, ``list``, ``watch``, ``update``...)."""

    def _count(self, verb: str) -> None:
        with self._lock:
            self.requests[verb] += 1

    def _connection(self) -> http.client.HTTPSConnection:
        """This thread's keep-alive connection (the ones of finished threads are closed)."""
        ident = threading.get_ident()
        with self._lock:
            conn = self._connections.get(ident)
            if conn is None:
                alive = {t.ident for t in threading.enumerate()}
                for dead in [i for i in self._connections if i not in alive]:
                    self._connections.pop(dead).close()
                conn = http.client.HTTPSConnection(
                    self.host, self.port, context=self.context, timeout=self.timeout
                )
                self._connections[ident] = conn
        return conn

    def _drop_connection(self) -> None:
        with self._lock:
            conn = self._connections.pop(threading.get_ident(), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Closes every keep-alive connection (a later call opens a new one)."""
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            conn.close()

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        verb: str,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """One request; the decoded JSON answer, or ApiError for a non-2xx answer."""
        self._count(verb)
        url = path + ("?" + urlencode(params) if params else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if data is not None:
            headers["Content-Type"] = "application/json"
        return self._answer(method, url, data, headers)

    def _answer(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> Any:
        """client-go's retries: an answer with Retry-After (429, or 5xx) is asked again after
        that delay, ten times at most."""
        for retry in range(MAX_RETRIES + 1):
            status, retry_after, raw = self._send(method, url, data, headers)
            if status < 300:
                return json.loads(raw) if raw else None
            if retry_after is None or retry == MAX_RETRIES or not (status == 429 or status >= 500):
                raise _status_error(status, raw)
            time.sleep(min(retry_after, 10.0))
        raise AssertionError("unreachable")

    def _request(
        self,
        conn: http.client.HTTPSConnection,
        method: str,
        url: str,
        data: bytes | None,
        headers: dict[str, str],
    ) -> None:
        """Sends one request on ``conn``, with the impersonation headers of :attr:`identity`
        (``Impersonate-Group`` repeated, which ``conn.request``'s dict cannot say)."""
        conn.putrequest(method, url)
        for name, value in headers.items():
            conn.putheader(name, value)
        for name, value in self.identity.headers() if self.identity else []:
            conn.putheader(name, value)
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)

    def _send(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, float | None, bytes]:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                self._request(conn, method, url, data, headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
                ssl.SSLEOFError,
                http.client.CannotSendRequest,
            ):
                # A keep-alive connection the server closed meanwhile (a reset, or over TLS a
                # close without close_notify: SSLEOFError): one more try on a new one, as Go's
                # transport retries a request on a reused connection that failed this way.
                self._drop_connection()
                if attempt == 2:
                    raise
            except (OSError, http.client.HTTPException):
                self._drop_connection()
                raise
        retry_after = response.getheader("Retry-After")
        try:
            delay = float(retry_after) if retry_after else None
        except ValueError:
            delay = None
        return response.status, delay, raw

    # discovery

    def resource(self, api_version: str, plural: str) -> Resource:
        """The resource ``plural`` of ``api_version`` (``v1``, ``group/version``), from
        discovery."""
        key = (api_version, plural)
        if key not in self._resources:
            self._discover(api_version)
        if key not in self._resources:
            raise ApiError(404, "NotFound", f"no resource {plural} in {api_version}")
        return self._resources[key]

    def resource_of_kind(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        if key not in self._by_kind:
            self._discover(api_version)
        if key not in self._by_kind:
            raise ApiError(404, "NotFound", f"no kind {kind} in {api_version}")
        return self._by_kind[key]

    def _discover(self, api_version: str) -> None:
        path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        listing = self.call("GET", path, verb="discovery")
        subresources: dict[str, set[str]] = {}
        for entry in listing.get("resources") or []:
            name = str(entry["name"])
            if "/" in name:
                parent, sub = name.split("/", 1)
                subresources.setdefault(parent, set()).add(sub)
        with self._lock:
            for entry in listing.get("resources") or []:
                name = str(entry["name"])
                if "/" in name:
                    continue
                resource = Resource(
                    api_version,
                    name,
                    str(entry["kind"]),
                    bool(entry["namespaced"]),
                    frozenset(subresources.get(name, ())),
                )
                self._resources[(api_version, name)] = resource
                self._by_kind[(api_version, resource.kind)] = resource

    # verbs

    def get(self, resource: Resource, namespace: str | None, name: str) -> Object:
        obj: Object = self.call("GET", resource.path(namespace, name), verb="get")
        return obj

    def find(self, resource: Resource, namespace: str | None, name: str) -> Object | None:
        """GET, or None when there is no such object."""
        try:
            return self.get(resource, namespace, name)
        except ApiError as error:
            if error.not_found:
                return None
            raise

    def list(
        self, resource: Resource, namespace: str | None = None, label_selector: str = ""
    ) -> tuple[list[Object], str]:
        """The items (with apiVersion and kind) and the list's resourceVersion."""
        params = {"labelSelector": label_selector} if label_selector else None
        answer = self.call("GET", resource.path(namespace), verb="list", params=params)
        items = [
            dict(item, apiVersion=resource.api_version, kind=resource.kind)
            for item in answer.get("items") or []
        ]
        return items, str((answer.get("metadata") or {}).get("resourceVersion") or "")

    def create(self, resource: Resource, obj: Object) -> Object:
        namespace = (obj.get("metadata") or {}).get("namespace")
        created: Object = self.call("POST", resource.path(namespace), obj, verb="create")
        return created

    def update(self, resource: Resource, obj: Object) -> Object:
        meta = obj["metadata"]
        updated: Object = self.call(
            "PUT", resource.path(meta.get("namespace"), meta["name"]), obj, verb="update"
        )
        return updated

    def update_status(self, resource: Resource, obj: Object) -> Object:
        meta = obj["metadata"]
        path = resource.path(meta.get("namespace"), meta["name"], "status")
        updated: Object = self.call("PUT", path, obj, verb="update-status")
        return updated

    def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Object,
        kind: str = "merge",
    ) -> Object:
        content = {"merge": "application/merge-patch+json", "json": "application/json-patch+json"}[
            kind
        ]
        self._count("patch")
        headers = {
            "Content-Type": content,
            "Accept": "application/json",
            "User-Agent": self.user_agent,
        }
        patched: Object = self._answer(
            "PATCH", resource.path(namespace, name), json.dumps(patch).encode(), headers
        )
        return patched

    def delete(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        *,
        uid: str | None = None,
        propagation: str | None = "Background",
    ) -> None:
        body: Object = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if uid:
            body["preconditions"] = {"uid": uid}
        if propagation:
            body["propagationPolicy"] = propagation
        self.call("DELETE", resource.path(namespace, name), body, verb="delete")

    def watch(
        self, resource: Resource, resource_version: str, *, timeout_seconds: int = 300
    ) -> Watch:
        """A watch of every object of ``resource`` from ``resource_version`` (bookmarks on)."""
        self._count("watch")
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        conn = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=timeout_seconds + 30
        )
        self._request(
            conn,
            "GET",
            resource.path() + "?" + urlencode(params),
            None,
            {"Accept": "application/json", "User-Agent": self.user_agent},
        )
        response = conn.getresponse()
        if response.status >= 300:
            raw = response.read()
            conn.close()
            raise _status_error(response.status, raw)
        return Watch(conn, response)
