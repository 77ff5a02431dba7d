"""SecurityProfilesOperatorDaemon v1alpha1 (short name ``spod``): how the node daemon runs.

The spec is the flat one of the Go operator's namespaced era, as it stood in
v0.8 (the grouped ``selinux``/``enricher``/``webhook``/``scheduling``/
``security`` sections came with v1). The one printer column is ``State``.

Where the Go era differs, or we chose:
- ``status.state`` is upper case (``PENDING``, ``CREATING``, ``UPDATING``,
  ``RUNNING``, ``ERROR``), as v1alpha1 wrote it; title case came with v1.
  Scripts that wait for ``{.status.state}=RUNNING`` keep working.
- Go's CRD defaults ``selinuxTypeTag`` (spc_t), ``priorityClassName``
  (system-node-critical) and ``selinuxOptions.allowedSystemProfiles``
  ([container]). They are left out of the schema here so that what a user
  wrote round-trips unchanged; the ``DEFAULT_*`` constants below are what a
  controller applies when a field is unset.
- ``webhookOptions[].name`` is required (Go accepted an empty one, which
  matches no webhook); ``failurePolicy`` is an enum (Fail, Ignore), the only
  values a webhook configuration accepts.
- v0.4's ``labelPodDenials`` and the short-lived ``manualWebhookConfig``
  spelling of ``staticWebhookConfig`` are not in the schema: v0.8 had neither.
- Kubernetes core types (tolerations, affinity, resource requirements, label
  selectors, secret references) are modelled with their main fields and keep
  any other field as given.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, WithJsonSchema

from hooks.api.base import Condition, Open, Resource, Wire
from hooks.api.kinds import Kind, PrinterColumn, Version
from hooks.api.profilerecording import LabelSelector
from hooks.api.seccompprofile import Action

DEFAULT_SPOD_NAME = "spod"
OPERATOR_NAMESPACE = "security-profiles-operator"
"""Where the operator runs and where its one ``spod`` object lives."""
DEFAULT_PRIORITY_CLASS_NAME = "system-node-critical"
DEFAULT_SELINUX_TYPE_TAG = "spc_t"
DEFAULT_ALLOWED_SYSTEM_PROFILES = ("container",)

BINDING_WEBHOOK = "binding.spo.io"
"""The name of the binding webhook, as ``webhookOptions[].name`` refers to it."""
RECORDING_WEBHOOK = "recording.spo.io"
"""The name of the recording webhook, as ``webhookOptions[].name`` refers to it."""

# A Kubernetes resource quantity: a signed decimal number with an optional
# binary (Ki..Ei), decimal (n, u, m, k..E) or exponent (e3) suffix.
QUANTITY_PATTERN = (
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
    r"([KMGTPE]i|[numkMGTPE]|[eE][+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+))?$"
)


def _quantity_text(value: Any) -> Any:
    """Accept a bare number (``cpu: 1``) as the API server does, and keep it as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, "g") if isinstance(value, float) else str(value)
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    StringConstraints(pattern=QUANTITY_PATTERN),
    WithJsonSchema({"pattern": QUANTITY_PATTERN, "x-kubernetes-int-or-string": True}),
]
"""A resource quantity (``100m``, ``64Mi``, ``1``): an int-or-string on the wire, text in Python.

Its schema has no type and no ``anyOf`` (Go's CRD had ``anyOf: [integer, string]``
beside the marker): the CRD generator only takes ``X | None`` unions, and
``x-kubernetes-int-or-string`` alone tells the API server that both are fine."""


class SPODState(StrEnum):
    PENDING = "PENDING"
    CREATING = "CREATING"
    UPDATING = "UPDATING"
    RUNNING = "RUNNING"
    ERROR = "ERROR"


class FailurePolicy(StrEnum):
    FAIL = "Fail"
    IGNORE = "Ignore"


class Toleration(Open):
    """A Kubernetes toleration: the daemon's pods may run on nodes with a matching taint."""

    key: str | None = Field(
        default=None,
        description="the taint key to tolerate; empty with operator Exists tolerates every taint",
    )
    operator: str | None = Field(default=None, description="Exists or Equal (the default)")
    value: str | None = Field(
        default=None, description="the taint value to match when the operator is Equal"
    )
    effect: str | None = Field(
        default=None,
        description=(
            "the taint effect to tolerate: NoSchedule, PreferNoSchedule or NoExecute; empty for all"
        ),
    )
    tolerationSeconds: int | None = Field(
        default=None,
        description="for NoExecute: how long the pod stays bound after the taint appears",
    )


class ResourceRequirements(Open):
    """Kubernetes compute resource requirements of a container."""

    limits: dict[str, Quantity] | None = Field(
        default=None, description="the most of each resource the container may use"
    )
    requests: dict[str, Quantity] | None = Field(
        default=None, description="the amount of each resource the container is scheduled with"
    )


class LocalObjectReference(Open):
    """A reference to an object by name in the same namespace."""

    name: str | None = Field(default=None, description="the name of the referenced object")


class NodeSelectorRequirement(Open):
    """One requirement on a node's labels or fields."""

    key: str = Field(description="the label or field key the requirement applies to")
    operator: str = Field(description="In, NotIn, Exists, DoesNotExist, Gt or Lt")
    values: list[str] | None = Field(default=None, description="the values to compare with")


class NodeSelectorTerm(Open):
    """Requirements that must all hold for a node to match."""

    matchExpressions: list[NodeSelectorRequirement] | None = Field(
        default=None, description="requirements on the node's labels"
    )
    matchFields: list[NodeSelectorRequirement] | None = Field(
        default=None, description="requirements on the node's fields"
    )


class NodeSelector(Open):
    """Terms of which at least one must match a node."""

    nodeSelectorTerms: list[NodeSelectorTerm] = Field(description="the terms, or-ed together")


class PreferredSchedulingTerm(Open):
    """A weighted node preference."""

    weight: int = Field(ge=1, le=100, description="the weight of this preference, 1 to 100")
    preference: NodeSelectorTerm = Field(description="the nodes this preference favours")


class NodeAffinity(Open):
    """Which nodes the pods must or should run on."""

    requiredDuringSchedulingIgnoredDuringExecution: NodeSelector | None = Field(
        default=None, description="nodes the pods must run on"
    )
    preferredDuringSchedulingIgnoredDuringExecution: list[PreferredSchedulingTerm] | None = Field(
        default=None, description="nodes the pods should preferably run on"
    )


class PodAffinityTerm(Open):
    """Pods, in some namespaces, whose topology domain a pod should (not) share."""

    labelSelector: LabelSelector | None = Field(
        default=None, description="the pods this term is about"
    )
    namespaceSelector: LabelSelector | None = Field(
        default=None, description="the namespaces of those pods"
    )
    namespaces: list[str] | None = Field(
        default=None, description="the namespaces of those pods, by name"
    )
    topologyKey: str = Field(description="the node label whose value defines a topology domain")


class WeightedPodAffinityTerm(Open):
    """A weighted pod (anti-)affinity preference."""

    weight: int = Field(ge=1, le=100, description="the weight of this preference, 1 to 100")
    podAffinityTerm: PodAffinityTerm = Field(description="the term this weight applies to")


class PodAffinity(Open):
    """Pod affinity or anti-affinity rules."""

    requiredDuringSchedulingIgnoredDuringExecution: list[PodAffinityTerm] | None = Field(
        default=None, description="terms that must hold"
    )
    preferredDuringSchedulingIgnoredDuringExecution: list[WeightedPodAffinityTerm] | None = Field(
        default=None, description="terms that should preferably hold"
    )


class Affinity(Open):
    """Kubernetes scheduling constraints of a pod."""

    nodeAffinity: NodeAffinity | None = Field(default=None, description="node affinity rules")
    podAffinity: PodAffinity | None = Field(default=None, description="pod affinity rules")
    podAntiAffinity: PodAffinity | None = Field(default=None, description="pod anti-affinity rules")


class SelinuxOptions(Wire):
    """SELinux settings of the operator."""

    allowedSystemProfiles: list[str] | None = Field(
        default=None,
        description=(
            "the system policies (already on the nodes) that SelinuxProfiles may inherit from; "
            "when unset, [container]"
        ),
    )


class WebhookOptions(Wire):
    """Overrides for one of the operator's mutating webhooks."""

    name: str = Field(
        min_length=1, description="the webhook to configure: binding.spo.io or recording.spo.io"
    )
    failurePolicy: FailurePolicy | None = Field(
        default=None,
        description="what the API server does when the webhook cannot be reached: Fail or Ignore",
    )
    namespaceSelector: LabelSelector | None = Field(
        default=None, description="replaces the webhook's namespace selector"
    )
    objectSelector: LabelSelector | None = Field(
        default=None, description="replaces the webhook's object selector"
    )


class SPODSpec(Wire):
    """How the daemon on every node runs and which features it has."""

    verbosity: int | None = Field(
        default=None, ge=0, description="the logging verbosity of the daemon"
    )
    enableProfiling: bool | None = Field(
        default=None, description="serve the profiling endpoints of the daemon"
    )
    enableMemoryOptimization: bool | None = Field(
        default=None,
        description=(
            "only watch pods labelled spo.x-k8s.io/enable-recording=true for recording, to keep "
            "the daemon's memory small"
        ),
    )
    enableSelinux: bool | None = Field(
        default=None,
        description=(
            "install SELinux profiles (runs selinuxd next to the daemon); when unset, the "
            "operator's default"
        ),
    )
    selinuxTypeTag: str | None = Field(
        default=None, description="the SELinux type of the daemon's pods; when unset, spc_t"
    )
    enableLogEnricher: bool | None = Field(
        default=None,
        description=(
            "run the log enricher, which adds Kubernetes context to audit log lines and records "
            "from them"
        ),
    )
    enableBpfRecorder: bool | None = Field(default=None, description="run the BPF recorder")
    enableAppArmor: bool | None = Field(default=None, description="enable AppArmor support")
    tolerations: list[Toleration] | None = Field(
        default=None, description="the tolerations of the daemon's pods"
    )
    selinuxOptions: SelinuxOptions | None = Field(
        default=None, description="SELinux settings of the operator"
    )
    hostProcVolumePath: str | None = Field(
        default=None,
        description=(
            "the host path mounted as /proc for the log enricher and the BPF recorder, for nested "
            "setups such as kind"
        ),
    )
    staticWebhookConfig: bool | None = Field(
        default=None,
        description=(
            "the webhook configuration is deployed statically: the operator neither creates nor "
            "updates it"
        ),
    )
    webhookOptions: list[WebhookOptions] | None = Field(
        default=None, description="failure policy and selectors of the operator's webhooks"
    )
    allowedSyscalls: list[str] | None = Field(
        default=None, description="when set, seccomp profiles may only allow these system calls"
    )
    allowedSeccompActions: list[Action] | None = Field(
        default=None, description="when set, seccomp profiles may only use these actions"
    )
    affinity: Affinity | None = Field(default=None, description="the affinity of the daemon's pods")
    imagePullSecrets: list[LocalObjectReference] | None = Field(
        default=None,
        description="secrets in the operator's namespace to pull the daemon's images with",
    )
    daemonResourceRequirements: ResourceRequirements | None = Field(
        default=None,
        description="replaces the default resource requirements of the daemon container",
    )
    priorityClassName: str | None = Field(
        default=None,
        description="the priority class of the daemon's pods; when unset, system-node-critical",
    )
    disableOciArtifactSignatureVerification: bool | None = Field(
        default=None,
        description="do not verify the signatures of base profiles pulled as OCI artifacts",
    )


class SPODStatus(Wire):
    """What was observed: whether the daemon is running."""

    conditions: list[Condition] | None = Field(
        default=None, description="Conditions of the resource."
    )
    state: SPODState | None = Field(
        default=None,
        description="the state of the daemon: PENDING, CREATING, UPDATING, RUNNING or ERROR",
    )
    observedGeneration: int | None = Field(
        default=None, description="the generation Metacontroller last synced"
    )


class SecurityProfilesOperatorDaemon(Resource):
    """SecurityProfilesOperatorDaemon configures the daemon the operator runs on every node."""

    spec: SPODSpec = Field(default_factory=SPODSpec)
    status: SPODStatus | None = None


KIND = Kind(
    kind="SecurityProfilesOperatorDaemon",
    plural="securityprofilesoperatordaemons",
    singular="securityprofilesoperatordaemon",
    model=SecurityProfilesOperatorDaemon,
    versions=(Version("v1alpha1", storage=True),),
    short_names=("spod",),
    columns=(PrinterColumn("State", ".status.state"),),
)


def find_spod(daemons: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The operator's ``spod`` among the daemon objects a hook received, or None."""
    for raw in daemons:
        meta = raw.get("metadata") or {}
        if meta.get("name") == DEFAULT_SPOD_NAME and meta.get("namespace") == OPERATOR_NAMESPACE:
            return raw
    return None
