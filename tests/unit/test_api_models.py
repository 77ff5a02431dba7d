"""The models of SelinuxProfile, RawSelinuxProfile, ProfileBinding, ProfileRecording and the SPOD.

Each kind gets a manifest as a user of the Go operator would write it (plus a
status as the operator would report it); it must parse, come back unchanged
from ``to_wire()``, and reject what the CRD schema would reject.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from hooks.api import (
    GROUP,
    profilebinding,
    profilerecording,
    rawselinuxprofile,
    selinuxprofile,
    spod,
)
from hooks.api.base import Wire
from hooks.api.kinds import Kind
from hooks.api.seccompprofile import Action

SELINUX_PROFILE = """
apiVersion: security-profiles-operator.x-k8s.io/v1alpha2
kind: SelinuxProfile
metadata:
  name: web-server
  namespace: shop
spec:
  inherit:
    - kind: System
      name: container
    - kind: SelinuxProfile
      name: shared-logging
  allow:
    "@self":
      tcp_socket:
        - listen
        - accept
    http_port_t:
      tcp_socket:
        - name_bind
    var_log_t:
      dir:
        - search
        - add_name
      file:
        - create
        - append
        - open
  permissive: false
  disabled: false
status:
  status: Installed
  usage: web-server_shop.process
  activeWorkloads:
    - shop/web-7d9c5b6f4-x2k8p
  conditions:
    - type: Ready
      status: "True"
      reason: Available
      lastTransitionTime: "2024-03-01T12:00:00Z"
  observedGeneration: 2
"""

RAW_SELINUX_PROFILE = """
apiVersion: security-profiles-operator.x-k8s.io/v1alpha2
kind: RawSelinuxProfile
metadata:
  name: batch-reader
  namespace: analytics
spec:
  policy: |
    (blockinherit container)
    (allow process var_spool_t (dir (open read getattr search)))
    (allow process var_spool_t (file (open read getattr)))
status:
  status: InProgress
  usage: batch-reader_analytics.process
"""

PROFILE_BINDING = """
apiVersion: security-profiles-operator.x-k8s.io/v1alpha1
kind: ProfileBinding
metadata:
  name: bind-redis
  namespace: cache
spec:
  profileRef:
    kind: SeccompProfile
    name: redis-strict
  image: docker.io/library/redis:7.2
status:
  activeWorkloads:
    - cache/redis-0
    - cache/redis-1
  observedGeneration: 1
"""

PROFILE_RECORDING = """
apiVersion: security-profiles-operator.x-k8s.io/v1alpha1
kind: ProfileRecording
metadata:
  name: record-api
  namespace: payments
spec:
  kind: SeccompProfile
  recorder: logs
  mergeStrategy: containers
  podSelector:
    matchLabels:
      app: payments-api
    matchExpressions:
      - key: tier
        operator: In
        values:
          - backend
  containers:
    - api
    - sidecar
  disableProfileAfterRecording: true
status:
  activeWorkloads:
    - payments/payments-api-5b7c9d-abcde
"""

SPOD = """
apiVersion: security-profiles-operator.x-k8s.io/v1alpha1
kind: SecurityProfilesOperatorDaemon
metadata:
  name: spod
  namespace: security-profiles-operator
spec:
  verbosity: 1
  enableProfiling: false
  enableMemoryOptimization: true
  enableSelinux: true
  selinuxTypeTag: spc_t
  enableLogEnricher: true
  enableBpfRecorder: false
  enableAppArmor: false
  hostProcVolumePath: /hostproc
  staticWebhookConfig: false
  disableOciArtifactSignatureVerification: false
  priorityClassName: system-node-critical
  selinuxOptions:
    allowedSystemProfiles:
      - container
      - net_container
  allowedSyscalls:
    - read
    - write
    - exit_group
  allowedSeccompActions:
    - SCMP_ACT_ALLOW
    - SCMP_ACT_ERRNO
    - SCMP_ACT_LOG
  tolerations:
    - key: node-role.kubernetes.io/control-plane
      operator: Exists
      effect: NoSchedule
    - key: node.kubernetes.io/not-ready
      operator: Exists
      effect: NoExecute
      tolerationSeconds: 300
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions:
              - key: kubernetes.io/os
                operator: In
                values:
                  - linux
  imagePullSecrets:
    - name: registry-credentials
  daemonResourceRequirements:
    requests:
      cpu: 100m
      memory: 64Mi
    limits:
      cpu: 500m
      memory: 128Mi
      ephemeral-storage: 200Mi
  webhookOptions:
    - name: binding.spo.io
      failurePolicy: Ignore
      namespaceSelector:
        matchExpressions:
          - key: spo.x-k8s.io/enable-binding
            operator: Exists
    - name: recording.spo.io
      objectSelector:
        matchLabels:
          recordable: "yes"
status:
  state: RUNNING
  conditions:
    - type: Ready
      status: "True"
      reason: Available
      lastTransitionTime: "2024-03-01T12:00:00Z"
"""

CASES: dict[str, tuple[Kind, str]] = {
    "SelinuxProfile": (selinuxprofile.KIND, SELINUX_PROFILE),
    "RawSelinuxProfile": (rawselinuxprofile.KIND, RAW_SELINUX_PROFILE),
    "ProfileBinding": (profilebinding.KIND, PROFILE_BINDING),
    "ProfileRecording": (profilerecording.KIND, PROFILE_RECORDING),
    "SecurityProfilesOperatorDaemon": (spod.KIND, SPOD),
}

# A path into each manifest whose value is an enum, and a value the enum does not have.
BAD_ENUMS: dict[str, tuple[tuple[str | int, ...], str]] = {
    "SelinuxProfile": (("spec", "inherit", 0, "kind"), "RawSelinuxProfile"),
    "RawSelinuxProfile": (("status", "status"), "Done"),
    "ProfileBinding": (("spec", "profileRef", "kind"), "AppArmorProfile"),
    "ProfileRecording": (("spec", "mergeStrategy"), "pods"),
    "SecurityProfilesOperatorDaemon": (("spec", "allowedSeccompActions", 0), "SCMP_ACT_MAYBE"),
}


def load(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def set_path(data: Any, path: tuple[str | int, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


@pytest.mark.parametrize("name", sorted(CASES))
def test_manifest_parses_and_round_trips_unchanged(name: str) -> None:
    kind, text = CASES[name]
    data = load(text)
    obj = kind.model.model_validate(data)
    assert isinstance(obj, Wire)
    assert obj.to_wire() == data
    assert data["apiVersion"] == kind.api_version
    assert data["kind"] == kind.kind


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_enum_value_is_rejected(name: str) -> None:
    kind, text = CASES[name]
    data = load(text)
    path, value = BAD_ENUMS[name]
    set_path(data, path, value)
    with pytest.raises(ValidationError):
        kind.model.model_validate(data)


@pytest.mark.parametrize("name", sorted(CASES))
def test_unknown_spec_field_is_rejected(name: str) -> None:
    kind, text = CASES[name]
    data = load(text)
    data["spec"]["enableEverything"] = True
    with pytest.raises(ValidationError, match="enableEverything"):
        kind.model.model_validate(data)


@pytest.mark.parametrize("name", sorted(CASES))
def test_unknown_status_field_is_rejected(name: str) -> None:
    kind, text = CASES[name]
    data = load(text)
    data["status"]["lastSeen"] = "yesterday"
    with pytest.raises(ValidationError, match="lastSeen"):
        kind.model.model_validate(data)


def test_unknown_metadata_is_kept() -> None:
    data = load(PROFILE_BINDING)
    data["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Apply"}]
    assert profilebinding.ProfileBinding.from_wire(data).to_wire() == data


# --- SelinuxProfile -------------------------------------------------------


def test_policy_ref_kind_defaults_to_system() -> None:
    ref = selinuxprofile.PolicyRef.model_validate({"name": "container"})
    assert ref.kind is selinuxprofile.PolicyKind.SYSTEM
    assert ref.to_wire() == {"kind": "System", "name": "container"}


def test_policy_ref_needs_a_name() -> None:
    with pytest.raises(ValidationError):
        selinuxprofile.PolicyRef.model_validate({"kind": "System"})


def test_self_is_an_allow_key() -> None:
    profile = selinuxprofile.SelinuxProfile.from_wire(load(SELINUX_PROFILE))
    assert profile.spec.allow is not None
    assert profile.spec.allow[selinuxprofile.ALLOW_SELF]["tcp_socket"] == ["listen", "accept"]


def test_permissions_must_be_a_list() -> None:
    data = load(SELINUX_PROFILE)
    data["spec"]["allow"]["http_port_t"]["tcp_socket"] = "name_bind"
    with pytest.raises(ValidationError):
        selinuxprofile.SelinuxProfile.from_wire(data)


def test_usage_is_name_underscore_namespace_dot_process() -> None:
    assert selinuxprofile.policy_name("web-server", "shop") == "web-server_shop"
    assert selinuxprofile.policy_usage("web-server", "shop") == "web-server_shop.process"
    status = selinuxprofile.SelinuxProfile.from_wire(load(SELINUX_PROFILE)).status
    assert status is not None
    assert status.usage == selinuxprofile.policy_usage("web-server", "shop")


def test_default_inherit_is_the_container_system_policy() -> None:
    assert [ref.to_wire() for ref in selinuxprofile.DEFAULT_INHERIT] == [
        {"kind": "System", "name": "container"}
    ]


def test_raw_profile_shares_the_selinux_status() -> None:
    raw = rawselinuxprofile.RawSelinuxProfile.from_wire(load(RAW_SELINUX_PROFILE))
    assert isinstance(raw.status, selinuxprofile.SelinuxProfileStatus)
    assert raw.spec.policy is not None
    assert raw.spec.policy.startswith("(blockinherit container)\n")


def test_raw_profile_without_policy_parses() -> None:
    data = load(RAW_SELINUX_PROFILE)
    del data["spec"]["policy"]
    data["spec"]["disabled"] = True
    raw = rawselinuxprofile.RawSelinuxProfile.from_wire(data)
    assert raw.spec.policy is None
    assert raw.spec.disabled is True


# --- ProfileBinding -------------------------------------------------------


@pytest.mark.parametrize("missing", ["profileRef", "image"])
def test_binding_needs_profile_ref_and_image(missing: str) -> None:
    data = load(PROFILE_BINDING)
    del data["spec"][missing]
    with pytest.raises(ValidationError, match=missing):
        profilebinding.ProfileBinding.from_wire(data)


def test_binding_accepts_star_and_selinux_profiles() -> None:
    data = load(PROFILE_BINDING)
    data["spec"] = {"profileRef": {"kind": "SelinuxProfile", "name": "web-server"}, "image": "*"}
    binding = profilebinding.ProfileBinding.from_wire(data)
    assert binding.spec.image == profilebinding.SELECT_ALL_CONTAINERS_IMAGE
    assert binding.spec.profileRef.kind is profilebinding.ProfileBindingKind.SELINUX_PROFILE


def test_binding_rejects_empty_image() -> None:
    data = load(PROFILE_BINDING)
    data["spec"]["image"] = ""
    with pytest.raises(ValidationError):
        profilebinding.ProfileBinding.from_wire(data)


# --- ProfileRecording -----------------------------------------------------


def test_merge_strategy_defaults_to_none() -> None:
    data = load(PROFILE_RECORDING)
    del data["spec"]["mergeStrategy"]
    recording = profilerecording.ProfileRecording.from_wire(data)
    assert recording.spec.mergeStrategy is profilerecording.MergeStrategy.NONE
    assert recording.to_wire()["spec"]["mergeStrategy"] == "none"


@pytest.mark.parametrize("recorder", ["logs", "bpf"])
def test_both_recorders_of_the_era_are_accepted(recorder: str) -> None:
    data = load(PROFILE_RECORDING)
    data["spec"]["recorder"] = recorder
    assert profilerecording.ProfileRecording.from_wire(data).spec.recorder == recorder


@pytest.mark.parametrize("field", ["kind", "recorder", "podSelector"])
def test_recording_required_fields(field: str) -> None:
    data = load(PROFILE_RECORDING)
    del data["spec"][field]
    with pytest.raises(ValidationError, match=field):
        profilerecording.ProfileRecording.from_wire(data)


def test_recording_rejects_unknown_recorder_and_kind() -> None:
    for field, value in (("recorder", "Logs"), ("kind", "AppArmorProfile")):
        data = load(PROFILE_RECORDING)
        data["spec"][field] = value
        with pytest.raises(ValidationError):
            profilerecording.ProfileRecording.from_wire(data)


def test_empty_pod_selector_is_valid() -> None:
    data = load(PROFILE_RECORDING)
    data["spec"]["podSelector"] = {}
    recording = profilerecording.ProfileRecording.from_wire(data)
    assert recording.spec.podSelector.matchLabels is None
    assert recording.to_wire()["spec"]["podSelector"] == {}


def test_label_selector_keeps_unknown_core_fields() -> None:
    selector = {"matchLabels": {"app": "x"}, "futureField": {"a": 1}}
    assert profilerecording.LabelSelector.model_validate(selector).to_wire() == selector


def test_label_selector_requirement_needs_key_and_operator() -> None:
    with pytest.raises(ValidationError):
        profilerecording.LabelSelector.model_validate({"matchExpressions": [{"key": "app"}]})


def test_recording_label_and_annotation_keys_are_the_go_operators() -> None:
    assert profilerecording.PROFILE_TO_RECORDING_LABEL == "spo.x-k8s.io/recording-id"
    assert profilerecording.PROFILE_TO_CONTAINER_LABEL == "spo.x-k8s.io/container-id"
    assert profilerecording.PROFILE_PARTIAL_LABEL == "spo.x-k8s.io/partial"
    assert profilerecording.ENABLE_RECORDING_LABEL == "spo.x-k8s.io/enable-recording"
    assert profilerecording.SECCOMP_RECORD_LOGS_ANNOTATION == "io.containers.trace-logs/"
    assert profilerecording.SELINUX_RECORD_LOGS_ANNOTATION == "io.containers.trace-avcs/"
    assert profilerecording.SECCOMP_RECORD_BPF_ANNOTATION == "io.containers.trace-bpf/"
    assert profilebinding.ENABLE_BINDING_LABEL == "spo.x-k8s.io/enable-binding"


# --- SecurityProfilesOperatorDaemon ---------------------------------------


def test_spod_state_is_upper_case_as_in_v1alpha1() -> None:
    assert [s.value for s in spod.SPODState] == [
        "PENDING",
        "CREATING",
        "UPDATING",
        "RUNNING",
        "ERROR",
    ]
    data = load(SPOD)
    data["status"]["state"] = "Running"
    with pytest.raises(ValidationError):
        spod.SecurityProfilesOperatorDaemon.from_wire(data)


def test_spod_allowed_actions_are_seccomp_actions() -> None:
    daemon = spod.SecurityProfilesOperatorDaemon.from_wire(load(SPOD))
    assert daemon.spec.allowedSeccompActions == [Action.ALLOW, Action.ERRNO, Action.LOG]


def test_spod_without_spec_parses_to_an_empty_spec() -> None:
    daemon = spod.SecurityProfilesOperatorDaemon.from_wire(
        {"apiVersion": spod.KIND.api_version, "kind": spod.KIND.kind, "metadata": {"name": "spod"}}
    )
    assert daemon.spec == spod.SPODSpec()
    assert daemon.spec.priorityClassName is None


def test_spod_rejects_negative_verbosity_and_unknown_failure_policy() -> None:
    for path, value in (
        (("spec", "verbosity"), -1),
        (("spec", "webhookOptions", 0, "failurePolicy"), "Retry"),
    ):
        data = load(SPOD)
        set_path(data, path, value)
        with pytest.raises(ValidationError):
            spod.SecurityProfilesOperatorDaemon.from_wire(data)


def test_webhook_option_needs_a_name() -> None:
    with pytest.raises(ValidationError):
        spod.WebhookOptions.model_validate({"failurePolicy": "Fail"})


def test_go_v04_fields_that_v08_dropped_are_rejected() -> None:
    for field in ("labelPodDenials", "manualWebhookConfig"):
        data = load(SPOD)
        data["spec"][field] = True
        with pytest.raises(ValidationError, match=field):
            spod.SecurityProfilesOperatorDaemon.from_wire(data)


def test_toleration_keeps_unknown_core_fields() -> None:
    data = load(SPOD)
    data["spec"]["tolerations"][0]["someNewField"] = "kept"
    assert spod.SecurityProfilesOperatorDaemon.from_wire(data).to_wire() == data


def test_affinity_keeps_fields_it_does_not_model() -> None:
    data = load(SPOD)
    term = data["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    term["nodeSelectorTerms"][0]["futureMatcher"] = ["x"]
    data["spec"]["affinity"]["podAntiAffinity"] = {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 50,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"name": "spod"}},
                    "topologyKey": "kubernetes.io/hostname",
                    "matchLabelKeys": ["pod-template-hash"],
                },
            }
        ]
    }
    assert spod.SecurityProfilesOperatorDaemon.from_wire(data).to_wire() == data


def test_pod_affinity_term_needs_a_topology_key() -> None:
    with pytest.raises(ValidationError, match="topologyKey"):
        spod.PodAffinityTerm.model_validate({"labelSelector": {}})


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("100m", "100m"),
        ("1.5Gi", "1.5Gi"),
        ("2e3", "2e3"),
        (1, "1"),
        (0.5, "0.5"),
        ("+.5k", "+.5k"),
    ],
)
def test_quantities_are_kept_as_text(given: object, kept: str) -> None:
    req = spod.ResourceRequirements.model_validate({"limits": {"cpu": given}})
    assert req.limits == {"cpu": kept}


@pytest.mark.parametrize("bad", ["lots", "1 Gi", "5GB", "", True, "1.2.3"])
def test_bad_quantities_are_rejected(bad: object) -> None:
    with pytest.raises(ValidationError):
        spod.ResourceRequirements.model_validate({"requests": {"memory": bad}})


# --- kinds: names, versions and columns as the Go operator declared them ----


@pytest.mark.parametrize(
    ("kind", "plural", "versions", "short_names", "columns"),
    [
        (
            selinuxprofile.KIND,
            "selinuxprofiles",
            [("v1alpha2", True)],
            (),
            [("Usage", ".status.usage", 0), ("State", ".status.status", 0)],
        ),
        (
            rawselinuxprofile.KIND,
            "rawselinuxprofiles",
            [("v1alpha2", True)],
            (),
            [("Usage", ".status.usage", 0), ("State", ".status.status", 0)],
        ),
        (profilebinding.KIND, "profilebindings", [("v1alpha1", True)], (), []),
        (
            profilerecording.KIND,
            "profilerecordings",
            [("v1alpha1", True)],
            (),
            [("PodSelector", ".spec.podSelector", 10)],
        ),
        (
            spod.KIND,
            "securityprofilesoperatordaemons",
            [("v1alpha1", True)],
            ("spod",),
            [("State", ".status.state", 0)],
        ),
    ],
)
def test_kind_names_versions_and_columns(
    kind: Kind,
    plural: str,
    versions: list[tuple[str, bool]],
    short_names: tuple[str, ...],
    columns: list[tuple[str, str, int]],
) -> None:
    assert kind.plural == plural
    assert kind.singular == kind.kind.lower()
    assert kind.scope == "Namespaced"
    assert [(v.name, v.storage) for v in kind.versions] == versions
    assert all(v.served for v in kind.versions)
    assert kind.short_names == short_names
    assert [(c.name, c.json_path, c.priority) for c in kind.columns] == columns
    assert kind.api_version.startswith(GROUP + "/")


def _unions(node: Any, where: str = "") -> list[str]:
    """Every ``anyOf``/``oneOf`` in a JSON schema that is not ``X | None``."""
    found: list[str] = []
    if isinstance(node, dict):
        for key in ("anyOf", "oneOf"):
            options = node.get(key)
            if options is not None:
                others = [o for o in options if o.get("type") != "null"]
                if not (len(options) == 2 and len(others) == 1):
                    found.append(where)
        for key, value in node.items():
            found += _unions(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _unions(value, f"{where}/{i}")
    return found


@pytest.mark.parametrize("name", sorted(CASES))
def test_schema_has_no_union_but_optional(name: str) -> None:
    kind, _ = CASES[name]
    schema = kind.model.model_json_schema()
    assert _unions(schema) == []


BASE_MODELS = {"ObjectMeta", "OwnerReference"}  # from hooks.api.base, not described here


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_spec_and_status_field_is_described(name: str) -> None:
    kind, _ = CASES[name]
    defs = kind.model.model_json_schema()["$defs"]
    undescribed = [
        f"{model}.{field}"
        for model, schema in defs.items()
        if model not in BASE_MODELS
        for field, prop in schema.get("properties", {}).items()
        if "description" not in prop
    ]
    assert undescribed == []


def test_round_trip_does_not_mutate_input() -> None:
    data = load(SPOD)
    before = copy.deepcopy(data)
    spod.SecurityProfilesOperatorDaemon.from_wire(data).to_wire()
    assert data == before
