"""The checks of a SecurityProfilesOperatorDaemon's spec."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hooks.api.problems import ProfileProblem
from hooks.api.spod import ResourceRequirements, Toleration
from hooks.cluster.spod import validation


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", Decimal(0)),
        ("1", Decimal(1)),
        ("100m", Decimal("0.1")),
        ("1.5", Decimal("1.5")),
        (".5", Decimal("0.5")),
        ("64Mi", Decimal(64 * 1024**2)),
        ("1Ki", Decimal(1024)),
        ("2k", Decimal(2000)),
        ("1e3", Decimal(1000)),
        ("1E-3", Decimal("0.001")),
        ("500u", Decimal("0.0005")),
        ("3n", Decimal("0.000000003")),
        ("1Ei", Decimal(1024**6)),
        ("+2G", Decimal(2 * 10**9)),
        ("-100m", Decimal("-0.1")),
    ],
)
def test_quantities_parse_as_kubernetes_reads_them(text: str, value: Decimal) -> None:
    assert validation.parse_quantity(text) == value


@pytest.mark.parametrize(
    "text", ["", "lots", "1e3.5", "1 Gi", "1gi", "1KiB", "1.2.3", "--1", "e3", "1Mi2"]
)
def test_malformed_quantities_do_not_parse(text: str) -> None:
    assert validation.parse_quantity(text) is None


@given(
    st.integers(min_value=0, max_value=10**12),
    st.sampled_from(["", "k", "M", "G", "Ki", "Mi", "Gi", "m"]),
)
def test_binary_suffixes_are_powers_of_1024_and_decimal_ones_powers_of_ten(
    number: int, suffix: str
) -> None:
    scale = {
        "": 1,
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "Ki": 1024,
        "Mi": 1024**2,
        "Gi": 1024**3,
        "m": Decimal("0.001"),
    }
    assert validation.parse_quantity(f"{number}{suffix}") == number * Decimal(scale[suffix])


def _toleration(**fields: Any) -> Toleration:
    return Toleration.model_validate(fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"operator": "Exists"},
        {"key": "k", "operator": "Exists"},
        {"key": "k", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "k", "value": "v"},  # operator defaults to Equal
        {"key": "example.com/k", "operator": "Equal", "value": "v", "effect": "PreferNoSchedule"},
        {"key": "k", "operator": "Equal", "value": ""},
        {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0},
        {"operator": "Exists", "effect": "NoExecute"},
    ],
)
def test_tolerations_kubernetes_accepts_pass(fields: dict[str, Any]) -> None:
    validation.check_toleration("t", _toleration(**fields))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"key": "k", "operator": "In"}, "t.operator"),
        ({"key": "k", "operator": "exists"}, "t.operator"),
        ({"value": "v"}, "t.operator"),  # an empty key needs Exists
        ({"operator": "Equal"}, "t.operator"),
        ({"key": "k", "operator": "Exists", "value": "v"}, "t.value"),
        ({"key": "k", "value": "not valid"}, "t.value"),
        ({"key": "k", "value": "x" * 64}, "t.value"),
        ({"key": "k", "operator": "Exists", "effect": "noschedule"}, "t.effect"),
        (
            {"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5},
            "t.tolerationSeconds",
        ),
        ({"key": "k", "operator": "Exists", "tolerationSeconds": 5}, "t.tolerationSeconds"),
        ({"key": "bad key", "operator": "Exists"}, "t.key"),
        ({"key": "/k", "operator": "Exists"}, "t.key"),
        ({"key": "Example.com/k", "operator": "Exists"}, "t.key"),
        ({"key": "k" * 64, "operator": "Exists"}, "t.key"),
    ],
)
def test_tolerations_kubernetes_rejects_name_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ProfileProblem) as caught:
        validation.check_toleration("t", _toleration(**fields))
    assert caught.value.reason == validation.INVALID_TOLERATION
    assert caught.value.message.startswith(field + ":")


@pytest.mark.parametrize(
    "resources",
    [
        {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}},
        {"requests": {"memory": "1Gi"}},
        {"limits": {"memory": "0"}},
        {"requests": {"cpu": "1"}, "limits": {"cpu": "1000m"}},
        {
            "requests": {
                "hugepages-2Mi": "4Mi",
                "ephemeral-storage": "1Gi",
                "example.com/dongle": "1",
            }
        },
    ],
)
def test_sound_resource_requirements_pass(resources: dict[str, Any]) -> None:
    validation.check_resources("r", ResourceRequirements.model_validate(resources))


@pytest.mark.parametrize(
    ("resources", "field", "words"),
    [
        ({"requests": {"cpu": "-1"}}, "r.requests[cpu]", "negative"),
        ({"limits": {"memory": "-1Mi"}}, "r.limits[memory]", "negative"),
        ({"limits": {"memory": "1e3.5"}}, "r.limits[memory]", "not a quantity"),
        (
            {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}},
            "r.requests[cpu]",
            "more than the limit",
        ),
        (
            {"requests": {"memory": "1025Mi"}, "limits": {"memory": "1Gi"}},
            "r.requests[memory]",
            "more than the limit",
        ),
        ({"requests": {"gpu": "1"}}, "r.requests[gpu]", "not a container resource"),
        ({"limits": {"bad name/x": "1"}}, "r.limits[bad name/x]", "not a container resource"),
    ],
)
def test_unsound_resource_requirements_name_the_field(
    resources: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ProfileProblem) as caught:
        validation.check_resources("r", ResourceRequirements.model_validate(resources))
    assert caught.value.reason == validation.INVALID_RESOURCES
    assert caught.value.message.startswith(field + ":")
    assert words in caught.value.message


@pytest.mark.parametrize("path", ["/proc", "/hostproc", "/run/host/proc", "/a.b/proc"])
def test_absolute_host_paths_pass(path: str) -> None:
    validation.check_host_path("p", path)


@pytest.mark.parametrize(
    "path", ["", "proc", "./proc", "/proc/..", "/proc/../etc", "/./proc", "/pro\x00c"]
)
def test_relative_or_escaping_host_paths_fail(path: str) -> None:
    with pytest.raises(ProfileProblem) as caught:
        validation.check_host_path("p", path)
    assert caught.value.reason == validation.INVALID_HOST_PROC


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("system-node-critical", True),
        ("a.b-c", True),
        ("System", False),
        ("a_b", False),
        ("-a", False),
        ("a" * 254, False),
    ],
)
def test_priority_class_names_are_dns_subdomains(name: str, ok: bool) -> None:
    assert validation.is_subdomain(name) is ok
