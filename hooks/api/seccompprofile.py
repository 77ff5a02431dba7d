"""SeccompProfile: v1beta1 (storage) and v1alpha1 (served, same schema)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from hooks.api import nodekinds
from hooks.api.base import Condition, Resource, Wire
from hooks.api.kinds import AGE_COLUMN, STATUS_COLUMN, Kind, PrinterColumn, Version
from hooks.api.profilestate import ProfileState

# The install's own profiles (log-enricher-trace): synced by operator-profile-controller,
# without a finalizer, so that they go with the operator. Only in the operator's namespace
# (the admission policy spo-operator-profiles).
OPERATOR_PROFILE_LABEL = "spo.x-k8s.io/operator-profile"


class Action(StrEnum):
    KILL = "SCMP_ACT_KILL"
    KILL_PROCESS = "SCMP_ACT_KILL_PROCESS"
    KILL_THREAD = "SCMP_ACT_KILL_THREAD"
    TRAP = "SCMP_ACT_TRAP"
    ERRNO = "SCMP_ACT_ERRNO"
    TRACE = "SCMP_ACT_TRACE"
    ALLOW = "SCMP_ACT_ALLOW"
    LOG = "SCMP_ACT_LOG"
    NOTIFY = "SCMP_ACT_NOTIFY"


class Arch(StrEnum):
    NATIVE = "SCMP_ARCH_NATIVE"
    X86 = "SCMP_ARCH_X86"
    X86_64 = "SCMP_ARCH_X86_64"
    X32 = "SCMP_ARCH_X32"
    ARM = "SCMP_ARCH_ARM"
    AARCH64 = "SCMP_ARCH_AARCH64"
    MIPS = "SCMP_ARCH_MIPS"
    MIPS64 = "SCMP_ARCH_MIPS64"
    MIPS64N32 = "SCMP_ARCH_MIPS64N32"
    MIPSEL = "SCMP_ARCH_MIPSEL"
    MIPSEL64 = "SCMP_ARCH_MIPSEL64"
    MIPSEL64N32 = "SCMP_ARCH_MIPSEL64N32"
    PPC = "SCMP_ARCH_PPC"
    PPC64 = "SCMP_ARCH_PPC64"
    PPC64LE = "SCMP_ARCH_PPC64LE"
    S390 = "SCMP_ARCH_S390"
    S390X = "SCMP_ARCH_S390X"
    PARISC = "SCMP_ARCH_PARISC"
    PARISC64 = "SCMP_ARCH_PARISC64"
    RISCV64 = "SCMP_ARCH_RISCV64"


class Flag(StrEnum):
    TSYNC = "SECCOMP_FILTER_FLAG_TSYNC"
    LOG = "SECCOMP_FILTER_FLAG_LOG"
    SPEC_ALLOW = "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
    WAIT_KILLABLE_RECV = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"


class Operator(StrEnum):
    NE = "SCMP_CMP_NE"
    LT = "SCMP_CMP_LT"
    LE = "SCMP_CMP_LE"
    EQ = "SCMP_CMP_EQ"
    GE = "SCMP_CMP_GE"
    GT = "SCMP_CMP_GT"
    MASKED_EQ = "SCMP_CMP_MASKED_EQ"


class Arg(Wire):
    """A condition on one syscall argument."""

    index: int = Field(ge=0, le=5, description="the index for syscall arguments in seccomp")
    value: int | None = Field(
        default=None, ge=0, description="the value for syscall arguments in seccomp"
    )
    valueTwo: int | None = Field(
        default=None, ge=0, description="the second value for syscall arguments in seccomp"
    )
    op: Operator = Field(description="the operator for syscall arguments in seccomp")


class Syscall(Wire):
    """An action for a set of syscalls."""

    names: list[str] = Field(min_length=1, description="the names of the syscalls")
    action: Action = Field(description="the action for seccomp rules")
    errnoRet: int | None = Field(
        default=None,
        ge=0,
        description=(
            "the errno return code to use. Some actions like SCMP_ACT_ERRNO and SCMP_ACT_TRACE "
            "allow to specify the errno code to return"
        ),
    )
    args: list[Arg] | None = Field(
        default=None, max_length=6, description="the specific syscall in seccomp"
    )


class SeccompProfileSpec(Wire):
    """The desired seccomp profile: what runc reads, plus a base profile and a switch."""

    disabled: bool | None = Field(
        default=None,
        description=(
            "whether the profile is disabled: a disabled profile is not installed on any node"
        ),
    )
    baseProfileName: str | None = Field(
        default=None,
        description=(
            "name of base profile (in the same namespace) what will be unioned into this profile"
        ),
    )
    defaultAction: Action = Field(description="the default action for seccomp")
    architectures: list[Arch] | None = Field(
        default=None, description="the architecture used for system calls"
    )
    listenerPath: str | None = Field(
        default=None,
        description="path of UNIX domain socket to contact a seccomp agent for SCMP_ACT_NOTIFY",
    )
    listenerMetadata: str | None = Field(
        default=None, description="opaque data to pass to the seccomp agent"
    )
    syscalls: list[Syscall] | None = Field(default=None, description="match a syscall in seccomp")
    flags: list[Flag] | None = Field(
        default=None, description="list of flags to use with seccomp(2)"
    )


class SeccompProfileStatus(Wire):
    """What was observed: the state across nodes and where the profile lives on a node."""

    conditions: list[Condition] | None = Field(
        default=None, description="Conditions of the resource."
    )
    status: ProfileState | None = Field(
        default=None, description="the state of the profile across nodes"
    )
    path: str | None = Field(default=None, description="the path of the profile file on every node")
    activeWorkloads: list[str] | None = Field(
        default=None, description="pods that use this profile"
    )
    localhostProfile: str | None = Field(
        default=None,
        description=(
            "The path that should be provided to the "
            "`securityContext.seccompProfile.localhostProfile` field of a Pod or container spec"
        ),
    )
    observedGeneration: int | None = Field(
        default=None, description="the generation Metacontroller last synced"
    )


class SeccompProfile(Resource):
    """SeccompProfile is a specification for a seccomp profile, installed on every node."""

    spec: SeccompProfileSpec
    status: SeccompProfileStatus | None = None


KIND = Kind(
    kind="SeccompProfile",
    plural="seccompprofiles",
    singular="seccompprofile",
    model=SeccompProfile,
    versions=(Version("v1beta1", storage=True), Version("v1alpha1")),
    short_names=("sp",),
    configmap_prefix=nodekinds.SECCOMP.configmap_prefix,
    configmap_key=nodekinds.SECCOMP.configmap_key,
    columns=(
        STATUS_COLUMN,
        AGE_COLUMN,
        PrinterColumn("LocalhostProfile", ".status.localhostProfile", priority=10),
    ),
)


def _localhost_folder(namespace: str) -> str:
    return f"operator/{namespace}/"


def localhost_profile(namespace: str, name: str) -> str:
    """What a pod puts in ``seccompProfile.localhostProfile`` for this profile."""
    return f"{_localhost_folder(namespace)}{name}.json"


def profile_of_localhost(path: str, namespace: str) -> str | None:
    """The name of the profile of ``namespace`` whose ``localhost_profile`` is ``path``, if any."""
    folder = _localhost_folder(namespace)
    if not (path.startswith(folder) and path.endswith(".json")):
        return None
    name = path[len(folder) : -len(".json")]
    return name if name and "/" not in name else None
