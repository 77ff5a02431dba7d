"""Who may read the metrics: a bearer token, checked by the API server itself.

A request to ``/metrics`` or ``/metrics-spod`` must carry ``Authorization: Bearer
<token>``. The token is authenticated with a TokenReview; its user is then authorized
with a SubjectAccessReview on the non-resource URL of the request, verb ``get`` (the
ClusterRole ``spo-metrics-client`` grants exactly that). No token, or one the API
server does not accept: 401. A user without the right: 403. The API server cannot be
asked: 503 (a scrape fails; nothing is served).

Both answers are kept for ``ttl`` seconds, keyed by the SHA-256 of the token (the token
itself is never kept), so that a scraper asking every few seconds costs the API server
two requests per ``ttl``, not two per scrape. A revoked token or a removed binding
therefore still reads the metrics for at most ``ttl`` seconds. The cache holds at most
``max_entries`` answers (oldest dropped first): random tokens cannot grow it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from nodesync.nodeio.cluster import ApiError
from nodesync.nodeio.logs import about

if TYPE_CHECKING:
    from hooks.api.base import Object

log = logging.getLogger(__name__)

DEFAULT_TTL = 30.0
DEFAULT_MAX_ENTRIES = 1024
MAX_TOKEN_BYTES = 16384  # larger headers are refused without asking the API server
VERB = "get"


class Reviews(Protocol):
    """The two API calls the check makes; ``requesting.KubernetesCluster`` is the real one."""

    def create_token_review(self, body: Object) -> Object: ...

    def create_subject_access_review(self, body: Object) -> Object: ...


@dataclass(frozen=True)
class Verdict:
    code: int  # 200, 401, 403 or 503
    message: str

    @property
    def allowed(self) -> bool:
        return self.code == 200


@dataclass(frozen=True)
class _User:
    name: str
    uid: str
    groups: tuple[str, ...]
    extra: tuple[tuple[str, tuple[str, ...]], ...]


UNAUTHENTICATED = Verdict(401, "Unauthorized")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


class MetricsGuard:
    """Checks a request's bearer token for ``get`` on a non-resource path, with a cache."""

    def __init__(
        self,
        reviews: Reviews,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reviews = reviews
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._users: dict[bytes, tuple[float, _User | None]] = {}
        self._rights: dict[tuple[bytes, str], tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def check(self, authorization: str | None, path: str) -> Verdict:
        """The verdict on a request for ``path`` carrying the header ``authorization``."""
        token = bearer_token(authorization)
        if token is None or len(token) > MAX_TOKEN_BYTES:
            return UNAUTHENTICATED
        key = hashlib.sha256(token.encode(errors="surrogateescape")).digest()
        try:
            user = self._user(key, token)
            if user is None:
                return UNAUTHENTICATED
            if not self._allowed(key, user, path):
                return Verdict(403, f'Forbidden (user={user.name}, verb={VERB}, path="{path}")')
        except ApiError as error:
            log.warning("cannot check a metrics reader: %s", error, extra=about("", ""))
            return Verdict(503, "the API server cannot check the token now")
        return Verdict(200, "OK")

    # -- the two reviews, each cached ---------------------------------------------------------

    def _user(self, key: bytes, token: str) -> _User | None:
        now = self.clock()
        with self._lock:
            cached = self._users.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        review = self.reviews.create_token_review(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            }
        )
        status: dict[str, Any] = review.get("status") or {}
        user: _User | None = None
        if status.get("authenticated") is True:
            info = status.get("user") or {}
            extra = info.get("extra") or {}
            user = _User(
                name=str(info.get("username") or ""),
                uid=str(info.get("uid") or ""),
                groups=tuple(str(g) for g in info.get("groups") or ()),
                extra=tuple(sorted((str(k), tuple(map(str, v))) for k, v in extra.items())),
            )
        with self._lock:
            self._remember(self._users, key, (now + self.ttl, user))
        return user

    def _allowed(self, key: bytes, user: _User, path: str) -> bool:
        now = self.clock()
        with self._lock:
            cached = self._rights.get((key, path))
        if cached is not None and cached[0] > now:
            return cached[1]
        spec: dict[str, Any] = {
            "user": user.name,
            "groups": list(user.groups),
            "nonResourceAttributes": {"path": path, "verb": VERB},
        }
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {name: list(values) for name, values in user.extra}
        review = self.reviews.create_subject_access_review(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": spec,
            }
        )
        allowed = (review.get("status") or {}).get("allowed") is True
        with self._lock:
            self._remember(self._rights, (key, path), (now + self.ttl, allowed))
        return allowed

    def _remember(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        """Store ``value``, first dropping expired answers, then the oldest, to stay bounded."""
        cache.pop(key, None)
        if len(cache) >= self.max_entries:
            now = self.clock()
            for old in [k for k, (expiry, _) in cache.items() if expiry <= now]:
                del cache[old]
            while len(cache) >= self.max_entries:
                del cache[next(iter(cache))]
        cache[key] = value
