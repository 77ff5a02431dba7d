"""ProfileRecording v1alpha1: record a profile from the pods a selector matches.

As in the Go operator: no short names, one printer column (``PodSelector``,
shown with ``-o wide``), ``mergeStrategy`` defaults to ``none`` and the
recorder enum is ``logs`` and ``bpf`` (the BPF recorder exists since v0.4).
The schema accepts ``bpf`` so that manifests written for Go still apply; a
controller that cannot record with it should say so in a condition.

Where we chose: ``kind`` accepts SeccompProfile and SelinuxProfile (v0.8 also
listed AppArmorProfile, a kind this operator does not serve), and the status
adds ``conditions`` and ``observedGeneration`` to Go's ``activeWorkloads``.

The label selector lives here because this is the kind whose spec is one; the
SecurityProfilesOperatorDaemon's webhook options reuse it.

Label, annotation and finalizer keys below are the Go operator's, checked
against its source: recorded profiles carry ``PROFILE_TO_RECORDING_LABEL``
(Go's ProfileToRecordingLabel, ``spo.x-k8s.io/recording-id``), per-container
partial profiles carry ``PROFILE_TO_CONTAINER_LABEL`` and ``PROFILE_PARTIAL_LABEL``,
and the recording webhook marks each recorded container with an annotation
``<prefix><container name>``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from hooks.api import seccompprofile, selinuxprofile
from hooks.api.base import Condition, Open, Resource, Wire
from hooks.api.kinds import Kind, PrinterColumn, Version

# Labels on recorded profiles.
PROFILE_TO_RECORDING_LABEL = "spo.x-k8s.io/recording-id"
"""The name of the ProfileRecording that produced a profile."""
PROFILE_TO_CONTAINER_LABEL = "spo.x-k8s.io/container-id"
"""The name of the container a (partial) recorded profile came from."""
PROFILE_PARTIAL_LABEL = "spo.x-k8s.io/partial"
"""Present on a per-replica profile that still has to be merged (mergeStrategy containers); it is
never installed."""

# Labels that turn recording on.
ENABLE_RECORDING_LABEL = "spo.x-k8s.io/enable-recording"
"""On a namespace (any value): the recording webhook looks at its pods. On a pod (``true``): the
pod is cached by the recorder when the daemon runs with enableMemoryOptimization."""

# Finalizers on a ProfileRecording.
RECORDING_FINALIZER = "active-seccomp-profile-recording-lock"
"""Held while pods selected by the recording are running."""
RECORDING_HAS_UNMERGED_PROFILES = "spo.x-k8s.io/has-unmerged-profiles"
"""Held until the partial profiles of a merging recording have been merged."""

# Annotation prefixes the recording webhook puts on a pod, one per recorded container.
SECCOMP_RECORD_LOGS_ANNOTATION = "io.containers.trace-logs/"
SECCOMP_RECORD_BPF_ANNOTATION = "io.containers.trace-bpf/"
SELINUX_RECORD_LOGS_ANNOTATION = "io.containers.trace-avcs/"

LOG_ENRICHER_PROFILE = "log-enricher-trace"
# The Ready condition's reason while a recording with mergeStrategy containers waits
# for the log enricher to merge its partial profiles.
WAITING_FOR_MERGE = "WaitingForMerge"
"""The seccomp profile (in the operator's namespace) that a container recorded from the logs runs
under."""


class LabelSelectorRequirement(Open):
    """One requirement of a label selector: a key, an operator and values."""

    key: str = Field(description="the label key the requirement applies to")
    operator: str = Field(
        description="how the key relates to the values: In, NotIn, Exists or DoesNotExist"
    )
    values: list[str] | None = Field(
        default=None, description="the values to compare with; empty for Exists and DoesNotExist"
    )


class LabelSelector(Open):
    """A Kubernetes label selector; an empty selector matches everything."""

    matchLabels: dict[str, str] | None = Field(
        default=None, description="labels that must all be present with exactly these values"
    )
    matchExpressions: list[LabelSelectorRequirement] | None = Field(
        default=None, description="requirements that must all hold"
    )


class RecordingKind(StrEnum):
    SECCOMP_PROFILE = seccompprofile.KIND.kind
    SELINUX_PROFILE = selinuxprofile.KIND.kind


class Recorder(StrEnum):
    LOGS = "logs"
    BPF = "bpf"


class MergeStrategy(StrEnum):
    NONE = "none"
    CONTAINERS = "containers"


class ProfileRecordingSpec(Wire):
    """What to record, from which pods and containers, and how to combine the results."""

    kind: RecordingKind = Field(description="the kind of profile to record")
    recorder: Recorder = Field(
        description=(
            "where the recording comes from: logs (the audit log, through the log enricher) or bpf"
        )
    )
    mergeStrategy: MergeStrategy = Field(
        default=MergeStrategy.NONE,
        description=(
            "whether to merge what the replicas of a workload recorded into one profile per "
            "container (containers) or keep one profile per replica (none)"
        ),
    )
    podSelector: LabelSelector = Field(
        description=(
            "the pods to record, in the recording's namespace; an empty selector matches every pod"
        )
    )
    containers: list[str] | None = Field(
        default=None,
        description=(
            "the names of the containers to record; when unset, every container of a selected pod"
        ),
    )
    disableProfileAfterRecording: bool | None = Field(
        default=None,
        description=(
            "create the recorded profiles disabled, so that they are not installed until enabled"
        ),
    )


class ProfileRecordingStatus(Wire):
    """What was observed: the pods being recorded."""

    activeWorkloads: list[str] | None = Field(
        default=None, description="pods currently being recorded"
    )
    conditions: list[Condition] | None = Field(
        default=None, description="Conditions of the resource."
    )
    observedGeneration: int | None = Field(
        default=None, description="the generation Metacontroller last synced"
    )


class ProfileRecording(Resource):
    """ProfileRecording records security profiles from the pods it selects."""

    spec: ProfileRecordingSpec
    status: ProfileRecordingStatus | None = None


KIND = Kind(
    kind="ProfileRecording",
    plural="profilerecordings",
    singular="profilerecording",
    model=ProfileRecording,
    versions=(Version("v1alpha1", storage=True),),
    short_names=(),
    columns=(PrinterColumn("PodSelector", ".spec.podSelector", priority=10),),
)
