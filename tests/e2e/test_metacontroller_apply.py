"""The emulation's client-side apply against cases worked out from Metacontroller's
``pkg/dynamic/apply/apply.go`` and ``ApplyUpdate`` (no control plane needed)."""

from __future__ import annotations

import json

import pytest

from tests.helpers.metacontroller_apply import (
    LAST_APPLIED,
    MergeError,
    apply_update,
    for_create,
    go_json,
    merge,
)


def _configmap(data: dict[str, str], **meta: object) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "n", **meta},
        "data": data,
    }


def test_create_records_the_desired_object_before_anything_is_added() -> None:
    desired = _configmap({"a": "1"}, labels={"x": "y"})
    created = for_create(desired)
    assert json.loads(created["metadata"]["annotations"][LAST_APPLIED]) == desired
    assert "annotations" not in desired["metadata"]  # type: ignore[operator]


def test_a_field_dropped_from_the_answer_goes_and_a_foreign_field_stays() -> None:
    observed = for_create(_configmap({"a": "1", "b": "2"}, labels={"mine": "1"}))
    observed["metadata"]["labels"]["theirs"] = "2"
    observed["metadata"].update(uid="u", resourceVersion="7", creationTimestamp="t")
    updated = apply_update(observed, _configmap({"a": "1"}, labels={"mine": "1"}))
    assert updated["data"] == {"a": "1"}
    assert updated["metadata"]["labels"] == {"mine": "1", "theirs": "2"}
    assert (updated["metadata"]["uid"], updated["metadata"]["resourceVersion"]) == ("u", "7")
    assert json.loads(updated["metadata"]["annotations"][LAST_APPLIED]) == _configmap(
        {"a": "1"}, labels={"mine": "1"}
    )


def test_nothing_changes_when_the_answer_is_the_last_applied_one() -> None:
    desired = _configmap({"a": "1"})
    observed = for_create(desired)
    observed["metadata"]["managedFields"] = [{"manager": "metacontroller", "operation": "Update"}]
    assert apply_update(observed, desired) == observed


def test_a_list_without_a_merge_key_is_replaced_whole() -> None:
    desired = {"kind": "X", "rules": [{"apiGroups": [""], "resources": ["pods"]}]}
    observed = for_create(desired)
    observed["rules"][0]["scope"] = "*"
    observed["rules"].append({"apiGroups": ["apps"], "resources": ["daemonsets"]})
    assert apply_update(observed, desired)["rules"] == desired["rules"]


def test_webhooks_are_merged_by_name_and_keep_an_injected_ca_bundle() -> None:
    """``name`` is one of the conventional keys: a field the answer never set stays."""
    desired = {
        "apiVersion": "v1",
        "kind": "X",
        "metadata": {"name": "w"},
        "webhooks": [{"name": "a", "clientConfig": {"service": {"path": "/a"}}}],
    }
    observed = for_create(desired)
    observed["webhooks"][0]["clientConfig"]["caBundle"] = "Q0E="
    assert apply_update(observed, desired) == observed


def test_mount_path_is_the_key_before_name() -> None:
    """Two mounts of one volume share a ``name``: ``mountPath`` tells them apart."""
    desired = {
        "kind": "X",
        "mounts": [{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/b"}],
    }
    observed = for_create(desired)
    observed["mounts"][1]["readOnly"] = True
    assert apply_update(observed, desired)["mounts"] == [
        {"name": "v", "mountPath": "/a"},
        {"name": "v", "mountPath": "/b", "readOnly": True},
    ]


def test_a_merged_list_keeps_the_observed_order_and_appends_new_items() -> None:
    desired = {"kind": "X", "env": [{"name": "B"}, {"name": "A"}, {"name": "C"}]}
    observed = for_create({"kind": "X", "env": [{"name": "A"}, {"name": "B"}]})
    assert [e["name"] for e in apply_update(observed, desired)["env"]] == ["A", "B", "C"]


def test_a_list_of_objects_sharing_a_merge_key_is_merged_item_by_item() -> None:
    desired = {"kind": "Service", "spec": {"ports": [{"port": 443, "targetPort": 8443}]}}
    observed = for_create(desired)
    observed["spec"]["ports"][0]["nodePort"] = 30443
    observed["spec"]["ports"].append({"port": 80, "targetPort": 8080})
    updated = apply_update(
        observed, {"kind": "Service", "spec": {"ports": [{"port": 443, "targetPort": 9443}]}}
    )
    assert updated["spec"]["ports"] == [
        {"port": 443, "targetPort": 9443, "nodePort": 30443},
        {"port": 80, "targetPort": 8080},
    ]


def test_status_and_system_metadata_stay_as_observed() -> None:
    observed = for_create(_configmap({"a": "1"}))
    observed["status"] = {"s": 1}
    observed["metadata"]["generation"] = 3
    desired = _configmap({"a": "2"}, generation=9)
    desired["status"] = {"s": 2}
    updated = apply_update(observed, desired)
    assert updated["status"] == {"s": 1}
    assert updated["metadata"]["generation"] == 3


def test_a_type_mismatch_is_an_error() -> None:
    with pytest.raises(MergeError):
        merge({"data": {"a": "1"}}, None, {"data": "text"})


def test_annotation_is_written_as_go_writes_json() -> None:
    assert go_json({"b": "<&>", "a": "é"}) == '{"a":"é","b":"\\u003c\\u0026\\u003e"}'
