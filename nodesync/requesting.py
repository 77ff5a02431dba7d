"""The real ``Cluster``: raw JSON requests through the kubernetes client's configuration and auth.

With ``namespace``, every request stays in that namespace (the namespaced API
paths), so a Role there is all the rights it needs.

The generated API classes are bypassed on purpose: lists and watches are read
as JSON straight from the response (a ConfigMap stays a dict, never a model),
which keeps memory and CPU low with thousands of profiles.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any

from kubernetes import client as kube_client
from kubernetes import config as kube_config
from urllib3.exceptions import HTTPError

from hooks.api import GROUP
from hooks.api.nodestatus import KIND
from nodesync.cluster import ApiError, Expired, Json
from nodesync.logs import about

log = logging.getLogger(__name__)

PAGE = 500
_CONNECT_TIMEOUT = 10.0
_STATUSES = f"/apis/{GROUP}/{KIND.storage_version}"


class KubernetesCluster:
    def __init__(self, kubeconfig: str | None = None, *, namespace: str | None = None) -> None:
        self.namespace = namespace or None
        config: Any = kube_config  # untyped library
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig)
        else:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
        self.api = kube_client.ApiClient()
        self._watch: Any = None  # the urllib3 response of the watch being read, if any
        self._interrupted = False

    # -- transport ----------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Json | None = None,
        *,
        content_type: str = "application/json",
        read_timeout: float = 30.0,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        try:
            request = self.api.param_serialize(
                method,
                path,
                query_params=params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(
                *request, _request_timeout=(_CONNECT_TIMEOUT, read_timeout)
            )
        except (HTTPError, OSError) as error:
            raise ApiError(0, str(error)) from error
        raw = response.response
        if raw.status >= 400:
            data = raw.data
            try:
                message = str(json.loads(data).get("message") or data)
            except ValueError:
                message = data.decode(errors="replace")
            if raw.status == 410:
                raise Expired(message)
            raise ApiError(raw.status, message)
        return raw

    def _json(self, method: str, path: str, query: dict[str, Any] | None = None, **kw: Any) -> Json:
        raw = self._send(method, path, query, **kw)
        data = raw.data
        return json.loads(data) if data else {}

    # -- ConfigMaps ---------------------------------------------------------------------------

    def _configmaps_path(self) -> str:
        if self.namespace is None:
            return "/api/v1/configmaps"
        return f"/api/v1/namespaces/{urllib.parse.quote(self.namespace, safe='')}/configmaps"

    def list_configmaps(self, selector: str) -> tuple[list[Json], str]:
        items: list[Json] = []
        token: str | None = None
        while True:
            page = self._json(
                "GET",
                self._configmaps_path(),
                {"labelSelector": selector, "limit": PAGE, "continue": token},
                read_timeout=120.0,
            )
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or None
            if token is None:
                return items, str(metadata.get("resourceVersion") or "")

    def watch_configmaps(
        self, selector: str, resource_version: str, timeout: int
    ) -> Iterator[Json]:
        query = {
            "labelSelector": selector,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout,
        }
        raw = self._send("GET", self._configmaps_path(), query, read_timeout=timeout + 30.0)
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

    def list_node_statuses(self, selector: str) -> list[Json]:
        path = (
            f"{_STATUSES}/{KIND.plural}"
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
        base = f"{_STATUSES}/namespaces/{urllib.parse.quote(namespace, safe='')}/{KIND.plural}"
        return f"{base}/{urllib.parse.quote(name, safe='')}" if name else base

    def create_node_status(self, namespace: str, body: Json) -> Json:
        self._confine(namespace)
        return self._json("POST", self._status_path(namespace), body=body)

    def patch_node_status(
        self, namespace: str, name: str, patch: Json, *, status: bool = False
    ) -> Json:
        self._confine(namespace)
        path = self._status_path(namespace, name) + ("/status" if status else "")
        return self._json("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete_node_status(self, namespace: str, name: str) -> None:
        self._confine(namespace)
        self._json("DELETE", self._status_path(namespace, name))

    def create_event(self, namespace: str, body: Json) -> None:
        self._confine(namespace)
        ns = urllib.parse.quote(namespace, safe="")
        self._json("POST", f"/api/v1/namespaces/{ns}/events", body=body)

    # -- recording ----------------------------------------------------------------------------

    def list_node_pods(self, node_name: str) -> list[Json]:
        """The pods scheduled to ``node_name`` (in the watched namespace when restricted)."""
        path = (
            "/api/v1/pods"
            if self.namespace is None
            else f"/api/v1/namespaces/{urllib.parse.quote(self.namespace, safe='')}/pods"
        )
        items: list[Json] = []
        token: str | None = None
        while True:
            page = self._json(
                "GET",
                path,
                {"fieldSelector": f"spec.nodeName={node_name}", "limit": PAGE, "continue": token},
                read_timeout=120.0,
            )
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                return items

    def create_seccomp_profile(self, body: Json) -> Json:
        """POST a SeccompProfile (v1beta1) into the namespace its metadata names."""
        namespace = str((body.get("metadata") or {}).get("namespace") or "")
        self._confine(namespace)
        ns = urllib.parse.quote(namespace, safe="")
        return self._json(
            "POST", f"/apis/{GROUP}/v1beta1/namespaces/{ns}/seccompprofiles", body=body
        )

    def get_profile_recording(self, namespace: str, name: str) -> Json | None:
        """The ProfileRecording ``namespace/name``, None when there is none (or it cannot be read)."""
        ns = urllib.parse.quote(namespace, safe="")
        path = (
            f"/apis/{GROUP}/v1alpha1/namespaces/{ns}/profilerecordings/"
            f"{urllib.parse.quote(name, safe='')}"
        )
        try:
            return self._json("GET", path)
        except ApiError as error:
            if error.status != 404:
                log.warning(
                    "reading the ProfileRecording failed (%s): its profiles are created enabled",
                    error.message,
                    extra=about(namespace, name),
                )
            return None
