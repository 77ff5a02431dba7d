"""Who may read the metrics (nodesync/nodeio/metricsauth.py): a bearer token, reviewed by the
API server (here a stand-in that counts its calls), with answers cached by the token's hash."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from hooks.api.base import Object
from nodesync.nodeio.cluster import ApiError
from nodesync.nodeio.metricsauth import MetricsGuard, bearer_token

READER = "reader-token"
STRANGER = "stranger-token"
USERS = {
    READER: {
        "username": "system:serviceaccount:monitoring:prometheus",
        "uid": "uid-1",
        "groups": ["system:serviceaccounts", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/pod-name": ["prometheus-0"]},
    },
    STRANGER: {"username": "system:serviceaccount:shop:web", "groups": ["system:authenticated"]},
}
ALLOWED = {("system:serviceaccount:monitoring:prometheus", "/metrics-spod")}


class Reviews:
    """The API server's two reviews, from tables; counts the calls."""

    def __init__(self) -> None:
        self.token_reviews: list[Object] = []
        self.access_reviews: list[Object] = []
        self.down = False

    def create_token_review(self, body: Object) -> Object:
        if self.down:
            raise ApiError(0, "connection refused")
        self.token_reviews.append(body)
        user = USERS.get(body["spec"]["token"])
        if user is None:
            return {"status": {"authenticated": False, "error": "invalid bearer token"}}
        return {"status": {"authenticated": True, "user": user}}

    def create_subject_access_review(self, body: Object) -> Object:
        self.access_reviews.append(body)
        spec = body["spec"]
        wanted = (spec["user"], spec["nonResourceAttributes"]["path"])
        allowed = wanted in ALLOWED and spec["nonResourceAttributes"]["verb"] == "get"
        return {"status": {"allowed": allowed}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reviews() -> Reviews:
    return Reviews()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def guard(reviews: Reviews, clock: Clock) -> MetricsGuard:
    return MetricsGuard(reviews, ttl=30.0, clock=clock)


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b", "bearer" + " " * 3],
)
def test_no_bearer_token_is_401_without_asking_the_api_server(
    guard: MetricsGuard, reviews: Reviews, header: str | None
) -> None:
    assert guard.check(header, "/metrics-spod").code == 401
    assert reviews.token_reviews == []


def test_a_token_the_api_server_does_not_accept_is_401(guard: MetricsGuard) -> None:
    assert guard.check("Bearer forged", "/metrics-spod").code == 401


def test_a_user_without_the_right_is_403_and_a_user_with_it_200(guard: MetricsGuard) -> None:
    denied = guard.check(f"Bearer {STRANGER}", "/metrics-spod")
    assert denied.code == 403
    assert "system:serviceaccount:shop:web" in denied.message
    assert guard.check(f"Bearer {READER}", "/metrics-spod").code == 200
    assert guard.check(f"bearer  {READER}", "/metrics-spod").code == 200  # the scheme's case
    assert guard.check(f"Bearer {READER}", "/metrics").code == 403  # the right is per path


def test_the_access_review_names_the_tokens_whole_user_and_the_path(
    guard: MetricsGuard, reviews: Reviews
) -> None:
    guard.check(f"Bearer {READER}", "/metrics-spod")
    assert reviews.token_reviews == [
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": READER},
        }
    ]
    assert reviews.access_reviews == [
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": "system:serviceaccount:monitoring:prometheus",
                "uid": "uid-1",
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "extra": {"authentication.kubernetes.io/pod-name": ["prometheus-0"]},
                "nonResourceAttributes": {"path": "/metrics-spod", "verb": "get"},
            },
        }
    ]


def test_scrapes_within_the_ttl_cost_no_api_call(
    guard: MetricsGuard, reviews: Reviews, clock: Clock
) -> None:
    for _ in range(10):
        assert guard.check(f"Bearer {READER}", "/metrics-spod").code == 200
        assert guard.check(f"Bearer {STRANGER}", "/metrics-spod").code == 403
        assert guard.check("Bearer forged", "/metrics-spod").code == 401
        clock.now += 2.0
    assert len(reviews.token_reviews) == 3  # one per token
    assert len(reviews.access_reviews) == 2  # one per authenticated token and path
    clock.now += 30.0  # past the ttl: asked again
    assert guard.check(f"Bearer {READER}", "/metrics-spod").code == 200
    assert (len(reviews.token_reviews), len(reviews.access_reviews)) == (4, 3)


def test_the_cache_keeps_no_token_only_its_hash(guard: MetricsGuard) -> None:
    guard.check(f"Bearer {READER}", "/metrics-spod")
    guard.check(f"Bearer {STRANGER}", "/metrics-spod")
    kept = repr(guard._users) + repr(guard._rights)
    assert READER not in kept and STRANGER not in kept
    assert hashlib.sha256(READER.encode()).digest() in guard._users


def test_the_cache_stays_bounded_under_random_tokens(reviews: Reviews, clock: Clock) -> None:
    guard = MetricsGuard(reviews, ttl=30.0, max_entries=8, clock=clock)
    for n in range(100):
        assert guard.check(f"Bearer random-{n}", "/metrics-spod").code == 401
    assert len(guard._users) <= 8
    assert guard.check(f"Bearer {READER}", "/metrics-spod").code == 200
    assert len(guard._users) <= 8


def test_an_api_server_that_cannot_be_asked_is_503_and_not_remembered(
    guard: MetricsGuard, reviews: Reviews
) -> None:
    reviews.down = True
    assert guard.check(f"Bearer {READER}", "/metrics-spod").code == 503
    reviews.down = False
    assert guard.check(f"Bearer {READER}", "/metrics-spod").code == 200


def test_an_oversized_header_is_refused_without_asking(
    guard: MetricsGuard, reviews: Reviews
) -> None:
    assert guard.check("Bearer " + "x" * 100_000, "/metrics").code == 401
    assert reviews.token_reviews == []


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("  Bearer   abc  ", "abc"),
        ("BEARER abc", "abc"),
        ("Token abc", None),
    ],
)
def test_bearer_token(header: str, token: Any) -> None:
    assert bearer_token(header) == token
