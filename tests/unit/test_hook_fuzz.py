"""Every hook route, fed request documents of the wrong shape: never a 500.

Metacontroller retries a 500 forever (a bug), while a 400 names what is wrong
with the request. The documents are the golden requests of each route with one
to three mutations: a value anywhere in the tree replaced by a JSON value of
another type (or a hostile string), a key removed, or a key added.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.cluster.app import create_app, create_webhook_app
from tests.helpers.fixed_tables import FixedTables, from_files

GOLDEN = Path(__file__).parent.parent / "golden"
Path_ = tuple[str | int, ...]


def _requests(folder: str) -> list[tuple[Path, dict[str, Any]]]:
    return [
        (p.parent, json.loads(p.read_text()))
        for p in sorted((GOLDEN / folder).glob("*/request.json"))
    ]


def _customize(seeds: list[tuple[Path, dict[str, Any]]]) -> list[tuple[Path, dict[str, Any]]]:
    key = "object" if "object" in seeds[0][1] else "parent"
    return [
        (where, {"controller": doc.get("controller", {}), "parent": doc[key]})
        for where, doc in seeds
    ]


# route -> seed documents (and the folder each came from, for the webhooks' tables)
ROUTES: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
for _prefix, _folder in (
    ("seccompprofile", "seccompprofile"),
    ("selinuxprofile", "selinuxprofile"),
    ("rawselinuxprofile", "rawselinuxprofile"),
    ("profilebinding", "binding/controller"),
    ("profilerecording", "recording/controller"),
):
    ROUTES[f"/{_prefix}/sync"] = _requests(_folder)
    ROUTES[f"/{_prefix}/finalize"] = _requests(_folder)
    ROUTES[f"/{_prefix}/customize"] = _customize(_requests(_folder))
ROUTES["/spod/sync"] = _requests("spod")
ROUTES["/namespace/sync"] = _requests("namespace")
ROUTES["/namespace/customize"] = _customize(_requests("namespace"))
ROUTES["/mutate-v1-pod-binding"] = _requests("binding/admission")
ROUTES["/mutate-v1-pod-recording"] = _requests("recording/admission")


@cache
def _app(route: str, table_folder: Path) -> Flask:
    config: dict[str, Any] = {"TESTING": True}
    if not route.startswith("/mutate-"):
        return create_app(config)
    table = table_folder / "table.json"
    if not table.exists():  # no table: the webhooks answer with a warning
        return create_webhook_app(FixedTables(loaded=False), config)
    if "recording" in table_folder.parts:
        return create_webhook_app(from_files(recordings=table), config)
    return create_webhook_app(from_files(bindings=table), config)


def _paths(doc: Any, here: Path_ = ()) -> Iterator[Path_]:
    yield here
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*here, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _paths(value, (*here, index))


HOSTILE = st.sampled_from(["", "../../etc/x", "a/b", "x\x00y", "A" * 300, "é", "-", ".", "..", "*"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    HOSTILE,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6) | HOSTILE, inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated(
    draw: st.DrawFn, seeds: list[tuple[Path, dict[str, Any]]]
) -> tuple[Path, dict[str, Any]]:
    where, seed = draw(st.sampled_from(seeds))
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[last] = draw(VALUES)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent[last], dict):
            parent[last][draw(st.text(max_size=6) | HOSTILE)] = draw(VALUES)
        elif isinstance(parent[last], list):
            parent[last].append(draw(VALUES))
        else:
            parent[last] = draw(VALUES)
    return where, doc


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_no_shape_of_request_is_a_500(route: str) -> None:
    seeds = ROUTES[route]
    assert seeds, f"no golden requests for {route}"

    @settings(
        max_examples=80,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated(seeds))
    def probe(case: tuple[Path, dict[str, Any]]) -> None:
        where, doc = case
        client = _app(route, where).test_client()
        response = client.post(route, data=json.dumps(doc), content_type="application/json")
        assert response.status_code in (200, 400), (
            response.status_code,
            response.get_data(as_text=True)[:500],
        )
        if response.status_code == 400:
            assert response.get_json()["message"]

    probe()
