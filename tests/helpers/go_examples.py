"""The Go Security Profiles Operator's examples at v0.8.4 (``examples/`` of its repository),
rebuilt from their field values: every kind but AppArmor.

Our README says the Go operator's manifests work unchanged, so each example must be accepted
by our CRDs and go through our hooks. Names, kinds, API versions and field values are the
examples'; the layout and the wording of the ``description`` annotations are ours. ``olm/``
(Operator Lifecycle Manager objects) and ``pod.yaml`` (a plain Pod that only mentions a
profile in a comment) hold no object of this API and are left out.

Each :class:`Example` is one file of the Go project: its objects, in order, the namespace the
tests put them in, and the status the profile hooks answer for its profiles once a node
installed what it could (``expected``: name -> status).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GROUP = "security-profiles-operator.x-k8s.io"
# The warning the SeccompProfile hook gives profile-complain-block-high-risk: the profile
# lists x86_64 only, and these are syscalls of 32-bit x86 (and other architectures).
HIGH_RISK_OTHER_ARCHES = ("stime", "umount", "vm86old", "vm86")


@dataclass(frozen=True)
class Example:
    file: str  # the file's name in the Go project's examples/
    objects: list[dict[str, Any]]
    expected: dict[str, str] = field(default_factory=dict)  # name -> status after the hooks
    beside: str | None = None  # the example whose namespace this one shares (what it names)

    @property
    def id(self) -> str:
        return self.file.removesuffix(".yaml")

    @property
    def namespace(self) -> str:
        """A namespace of the example's own (names repeat across examples)."""
        return "go-" + (self.beside or self.file).removesuffix(".yaml")[:60]


def _object(
    kind: str, version: str, name: str, spec: dict[str, Any], **meta: Any
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{version}",
        "kind": kind,
        "metadata": {"name": name, **meta},
        "spec": spec,
    }


def seccomp(
    name: str,
    default: str,
    *rules: tuple[str, list[str]],
    arches: list[str] | None = None,
    about: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"defaultAction": default}
    if arches:
        spec["architectures"] = arches
    if rules:
        spec["syscalls"] = [{"action": action, "names": names} for action, names in rules]
    meta = {"annotations": {"description": about}} if about else {}
    return _object("SeccompProfile", "v1beta1", name, spec, **meta)


def recording(
    name: str, kind: str, recorder: str, containers: list[str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "kind": kind,
        "recorder": recorder,
        "podSelector": {"matchLabels": {"app": "alpine"}},
    }
    if containers:
        spec["containers"] = containers
    return _object("ProfileRecording", "v1alpha1", name, spec)


X86_64 = ["SCMP_ARCH_X86_64"]
ALLOW, ERRNO, LOG = "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_LOG"
QUIET = ["exit", "exit_group", "futex", "nanosleep"]  # allowed by several examples
HIGH_RISK = [
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "personality",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "_sysctl",
    "sysfs",
    "umount2",
    "umount",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86old",
    "vm86",
]
CRUN_V1_15 = [
    "access",
    "arch_prctl",
    "brk",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "close",
    "close_range",
    "dup2",
    "execve",
    "exit_group",
    "fchdir",
    "fchown",
    "fstatfs",
    "getcwd",
    "getegid",
    "geteuid",
    "getgid",
    "getuid",
    "ioctl",
    "lseek",
    "mkdirat",
    "mknodat",
    "mmap",
    "mount",
    "mprotect",
    "nanosleep",
    "newfstatat",
    "openat",
    "openat2",
    "pivot_root",
    "prctl",
    "pselect6",
    "read",
    "readlink",
    "rt_sigaction",
    "rt_sigprocmask",
    "set_tid_address",
    "setgroups",
    "sethostname",
    "setns",
    "setresgid",
    "setresuid",
    "setsid",
    "statfs",
    "statx",
    "symlinkat",
    "umask",
    "umount2",
    "unshare",
    "write",
]
RUNC_V1_1_12 = [
    "arch_prctl",
    "brk",
    "capget",
    "capset",
    "chdir",
    "clone",
    "close",
    "dup3",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "execve",
    "exit_group",
    "faccessat2",
    "fchdir",
    "fchmodat",
    "fchownat",
    "fcntl",
    "fstat",
    "fstatfs",
    "futex",
    "getcwd",
    "getdents64",
    "getpid",
    "getppid",
    "getrlimit",
    "gettid",
    "getuid",
    "keyctl",
    "madvise",
    "mkdirat",
    "mknodat",
    "mmap",
    "mount",
    "mprotect",
    "munmap",
    "nanosleep",
    "newfstatat",
    "openat",
    "openat2",
    "pipe2",
    "pivot_root",
    "prctl",
    "pread64",
    "read",
    "readlinkat",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_getaffinity",
    "sched_yield",
    "seccomp",
    "set_robust_list",
    "set_tid_address",
    "setgid",
    "setgroups",
    "sethostname",
    "setsid",
    "setuid",
    "sigaltstack",
    "statfs",
    "symlinkat",
    "tgkill",
    "umask",
    "umount2",
    "unlinkat",
    "unshare",
    "utimensat",
    "write",
]
ERRORLOGGER_ALLOW = {
    "var_log_t": {
        "dir": [
            "open",
            "read",
            "getattr",
            "lock",
            "search",
            "ioctl",
            "add_name",
            "remove_name",
            "write",
        ],
        "file": ["getattr", "read", "write", "append", "ioctl", "lock", "map", "open", "create"],
        "sock_file": ["getattr", "read", "write", "append", "open"],
    }
}


def _cil_allow(target: str, klass: str, permissions: list[str]) -> str:
    return f"(allow process {target} ( {klass} ( {' '.join(permissions)} )))"


# The Go example's CIL: the errorlogger rules, one allow per class (a trailing space after
# each line in the original, kept: the reader must not care).
ERRORLOGGER_CIL = "(blockinherit container)\n" + "".join(
    _cil_allow("var_log_t", klass, perms) + " \n"
    for klass, perms in ERRORLOGGER_ALLOW["var_log_t"].items()
)

PENDING, INSTALLED = "Pending", "Installed"

EXAMPLES: tuple[Example, ...] = (
    Example(
        "baseprofile-crun.yaml",
        [seccomp("crun-v1.15", ERRNO, (ALLOW, CRUN_V1_15), arches=X86_64)],
        {"crun-v1.15": INSTALLED},
    ),
    Example(
        "baseprofile-runc.yaml",
        [seccomp("runc-v1.1.12", ERRNO, (ALLOW, RUNC_V1_1_12), arches=X86_64)],
        {"runc-v1.1.12": INSTALLED},
    ),
    Example(
        "config.yaml",
        [
            {
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "SecurityProfilesOperatorDaemon",
                "metadata": {"name": "spod", "namespace": "security-profiles-operator"},
                "spec": {
                    "enableSelinux": False,
                    "enableLogEnricher": False,
                    "enableAppArmor": False,
                },
            }
        ],
    ),
    Example(
        "profilebinding.yaml",
        [
            _object(
                "ProfileBinding",
                "v1alpha1",
                "profile-binding",
                {
                    "profileRef": {"kind": "SeccompProfile", "name": "profile-allow-unsafe"},
                    "image": "nginx:1.19.1",
                },
            )
        ],
        beside="seccompprofile.yaml",  # it binds profile-allow-unsafe of that example
    ),
    Example(
        "profilerecording-seccomp-bpf-specific-container.yaml",
        [recording("test-recording", "SeccompProfile", "bpf", ["nginx"])],
    ),
    Example(
        "profilerecording-seccomp-bpf.yaml",
        [recording("test-recording", "SeccompProfile", "bpf")],
    ),
    Example(
        "profilerecording-seccomp-logs.yaml",
        [recording("test-recording", "SeccompProfile", "logs")],
    ),
    Example(
        "profilerecording-seccomp-specific-container-logs.yaml",
        [recording("test-recording", "SeccompProfile", "logs", ["nginx"])],
    ),
    Example(
        "profilerecording-selinux-logs.yaml",
        [recording("test-selinux-recording", "SelinuxProfile", "logs")],
    ),
    Example(
        "rawselinuxprofile.yaml",
        [_object("RawSelinuxProfile", "v1alpha2", "errorlogger", {"policy": ERRORLOGGER_CIL})],
        {"errorlogger": PENDING},  # SELinux is off in the spod: Pending, SelinuxDisabled
    ),
    Example(
        "seccompprofile-allowed-syscalls-change.yaml",
        [
            seccomp(
                "profile-allowed-syscalls",
                ERRNO,
                (ALLOW, QUIET),
                arches=X86_64,
                about="four syscalls allowed",
            )
        ],
        {"profile-allowed-syscalls": INSTALLED},
    ),
    Example(
        "seccompprofile-allowed-syscalls-validation.yaml",
        [
            seccomp(
                "profile-allowed-syscalls",
                ERRNO,
                (ALLOW, QUIET),
                arches=X86_64,
                about="four syscalls allowed",
            ),
            seccomp(
                "profile-denied-syscalls",
                ERRNO,
                (ALLOW, [*QUIET, "bpf"]),
                (ERRNO, ["acct", "add_key"]),
                arches=X86_64,
                about="allows one syscall more than the spod may allow",
            ),
            seccomp("profile-allow-all-syscalls", ALLOW, about="allows everything"),
            seccomp("profile-block-all-syscalls", ERRNO, about="refuses everything"),
        ],
        {
            "profile-allowed-syscalls": INSTALLED,
            "profile-denied-syscalls": INSTALLED,
            "profile-allow-all-syscalls": INSTALLED,
            "profile-block-all-syscalls": INSTALLED,
        },
    ),
    Example(
        "seccompprofile.yaml",
        [
            seccomp("profile-block-all", ERRNO, about="refuses everything"),
            seccomp("profile-complain-unsafe", LOG, about="logs everything, refuses nothing"),
            seccomp("profile-allow-unsafe", ALLOW, about="allows everything"),
            seccomp(
                "profile-complain-block-high-risk",
                LOG,
                (ALLOW, QUIET),
                (ERRNO, HIGH_RISK),
                arches=X86_64,
                about="logs everything, refuses the risky syscalls",
            ),
        ],
        {
            "profile-block-all": INSTALLED,
            "profile-complain-unsafe": INSTALLED,
            "profile-allow-unsafe": INSTALLED,
            "profile-complain-block-high-risk": INSTALLED,
        },
    ),
    Example(
        "selinuxprofile.yaml",
        [
            _object(
                "SelinuxProfile",
                "v1alpha2",
                "errorlogger",
                {"inherit": [{"name": "container"}], "allow": ERRORLOGGER_ALLOW},
            )
        ],
        {"errorlogger": PENDING},
    ),
)

# What the allowed-syscalls examples are for in the Go project: a spod that allows only these.
ALLOWED_SYSCALLS_SPOD = {
    "apiVersion": f"{GROUP}/v1alpha1",
    "kind": "SecurityProfilesOperatorDaemon",
    "metadata": {"name": "spod", "namespace": "security-profiles-operator"},
    "spec": {"allowedSyscalls": QUIET},
}


def in_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``obj`` placed in ``namespace`` (the examples name none, but the spod's)."""
    meta = obj["metadata"]
    if "namespace" in meta:
        return obj
    return {**obj, "metadata": {**meta, "namespace": namespace}}
