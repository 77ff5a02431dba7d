"""What a workload's SELinux profile may say, checked before anything reaches a node.

Each check answers with a ``ProfileProblem`` that names the offending rule:

- names: profile names, SELinux types, classes and permissions against strict
  patterns, so that nothing the user typed can change the structure of the CIL
  it is written into;
- power: a deny list of types, classes and permissions that no namespaced
  workload profile may grant (the kernel's and the policy's own types, loading
  a policy, switching enforcement, relabelling, raw disks, capabilities such
  as ``sys_admin``, ...), and the daemon's list of system templates a profile
  may inherit;
- attributes: a rule names types, never attributes (an attribute such as
  ``file_type`` or ``domain`` stands for every type in it, the denied ones
  included), except the few of ``DenyList.allowed_attributes``. The policy is
  not at hand here, so a name is told by the reference policy's convention:
  type names end in ``_t``, attribute names do not (true of all 3,796 types
  and 334 attributes of Debian's reference policy 2.20221101; container-selinux
  names its own the same way: ``container_t``, ``container_domain``). The types
  of the profile's own block (``process``, ``socket``, ``self``) and the
  ``process`` type of another profile of the same namespace may be named too;
  entering another domain (``process`` ``transition``) is refused.

A RawSelinuxProfile is CIL text that goes inside the profile's own block. It is
read as the CIL compiler reads it (``cilreader``: a quoted token is a name like
any other, so keywords are recognised quoted or not), and each statement must
be one of ``RAW_STATEMENTS``, each of which can only act inside the block: rules
(``allow``, ``auditallow``, ``dontaudit``) and ``typetransition`` whose source
is a type of the block; ``type`` and ``typeattribute`` declared in it (names
ending in ``_t``: any other may be an attribute the inherited template fills,
and a local one would take the container's type out of it);
``typeattributeset`` of an attribute it declares, listing its own types (no
expressions); ``blockinherit`` of an allowed system template. Everything else
(``block``, ``in``, ``macro``, ``call``, ``optional``, ``typepermissive``,
``sid``, ``filecon``, ``roletype``, ...) is refused. Once wrapped in its block,
the text is read again and must be that one block holding exactly the policy's
tokens (``check_wrapped``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from hooks.api.configmaps import MAX_CONFIGMAP_BYTES
from hooks.api.objectshapes import shown
from hooks.api.problems import ProfileProblem
from hooks.api.selinuxprofile import ALLOW_SELF

INVALID = "InvalidSelinuxProfile"
INVALID_RAW = "InvalidRawSelinuxProfile"
DENIED = "DeniedSelinuxRule"
FORBIDDEN_STATEMENT = "ForbiddenCILStatement"
SYSTEM_NOT_ALLOWED = "SystemProfileNotAllowed"
TOO_LARGE = "ProfileTooLarge"

# The ConfigMap is named "rawselinux-<name>" (the longer prefix), at most 253 characters.
MAX_NAME = 242
MAX_IDENTIFIER = 255
# The block "<name>_<namespace>" is also the module's name and, with ".cil", its file name.
MAX_BLOCK_NAME = 255 - len(".cil")
# A DNS label: a dot would make CIL read a block path. A module name starts with a letter.
_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# A type: CIL symbols joined by dots (another block's type, e.g. "web_team-a.process").
TYPE_PATTERN = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
# The process type of a profile's block: "<name>_<namespace>.process".
_PROFILE_PROCESS = re.compile(
    r"([a-z](?:[-a-z0-9]*[a-z0-9])?)_([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.process"
)
# Classes and permissions of the kernel's policy are lower case words.
WORD_PATTERN = re.compile(r"[a-z][a-z0-9_]*")

SELF = "self"
OWN_TYPES = frozenset({"process", "socket"})
"""The types the container template declares in every block that inherits it."""
TYPE_SUFFIX = "_t"
# Words that make a CIL permission list or attribute set an expression (all, not x, x and y, ...).
OPERATORS = frozenset(
    {"all", "and", "or", "xor", "not", "range", "eq", "neq", "dom", "domby", "incomp"}
)
TRANSITIONS = frozenset({"transition", "dyntransition"})


@dataclass(frozen=True)
class DenyList:
    """Types, classes and permissions no workload profile may grant, and the attributes it may
    name (every other attribute is refused)."""

    types: frozenset[str]
    classes: frozenset[str]
    permissions: frozenset[str]
    allowed_attributes: frozenset[str] = field(default_factory=frozenset)

    def reason_for(self, symbol: str) -> str | None:
        """Why ``symbol`` (any component of a dotted name) is denied, or None."""
        for part in symbol.split("."):
            if part in self.types:
                return f"type {part!r}"
            if part in self.classes:
                return f"class {part!r}"
            if part in self.permissions:
                return f"permission {part!r}"
        return None


DEFAULT_DENY = DenyList(
    types=frozenset(
        {
            # the kernel, the policy and its configuration
            "kernel_t",
            "security_t",
            "policy_config_t",
            "selinux_config_t",
            "default_context_t",
            "file_context_t",
            "semanage_t",
            "semanage_exec_t",
            "semanage_store_t",
            "semanage_var_lib_t",  # an alias of semanage_store_t
            "load_policy_t",
            "load_policy_exec_t",
            "setfiles_t",
            "setfiles_exec_t",
            "restorecon_t",  # an alias of setfiles_t
            "restorecon_exec_t",  # an alias of setfiles_exec_t
            "modules_object_t",
            "kmod_t",
            "kmod_exec_t",
            "boot_t",
            "sysctl_kernel_t",
            "sysctl_modprobe_t",
            "proc_kcore_t",
            "proc_kmsg_t",
            # raw memory and disks
            "memory_device_t",
            "fixed_disk_device_t",
            "removable_device_t",
            "scsi_generic_device_t",
            "lvm_control_t",
            # secrets and audit
            "shadow_t",
            "auditd_t",
            "auditd_log_t",
            "auditd_etc_t",
            "auditctl_t",
            # unconfined and privileged domains, the runtime and init
            "init_t",
            "init_exec_t",
            "initrc_t",
            "unconfined_t",
            "unconfined_service_t",
            "unconfined_execmem_t",
            "ada_t",  # an alias of unconfined_execmem_t
            "sysadm_t",
            "spc_t",
            "container_runtime_t",
            "container_runtime_exec_t",
            # attributes whose members bypass the policy (refused as attributes anyway)
            "unconfined_domain_type",
            "kern_unconfined",
            "selinux_unconfined_type",
            "can_load_policy",
            "can_setenforce",
            "can_setbool",
            "can_relabelto_binary_policy",
            "can_change_object_identity",
            "files_unconfined_type",
            "devices_unconfined_type",
            "filesystem_unconfined_type",
            "storage_unconfined_type",
            "container_runtime_domain",
        }
    ),
    classes=frozenset({"security", "kernel_service", "lockdown"}),
    permissions=frozenset(
        {
            "load_policy",
            "setenforce",
            "setbool",
            "setsecparam",
            "setcheckreqprot",
            "relabelto",
            "module_load",
            # capabilities (capability, capability2, cap_userns, cap2_userns) that own the node
            "sys_admin",
            "sys_ptrace",
            "sys_module",
            "sys_rawio",
            "sys_boot",
            "sys_time",
            "net_admin",
            "dac_read_search",
            "linux_immutable",
            "syslog",
            "bpf",
            "perfmon",
            "checkpoint_restore",
            "audit_control",
            "audit_read",
            "mac_admin",
            "mac_override",
        }
    ),
    allowed_attributes=frozenset({"unreserved_port_type"}),
)
"""The built-in deny list. ``relabelfrom`` is not denied as such: on a sensitive type it is,
because every right on a denied type is. The SecurityProfilesOperatorDaemon of this API
version has no field to extend it."""

"""The statements a RawSelinuxProfile may use: each can only act inside the profile's block."""


def check_name(name: str, namespace: str, reason: str = INVALID) -> None:
    """The profile's name and namespace make a valid CIL block name and a valid ConfigMap name."""
    if len(name) > MAX_NAME:
        raise ProfileProblem(
            reason, f"metadata.name: at most {MAX_NAME} characters, got {len(name)}"
        )
    if not _NAME.fullmatch(name):
        raise ProfileProblem(
            reason,
            f"metadata.name: {shown(name)} must start with a letter and be lower case letters, "
            "digits and '-' "
            f"(no '.': the SELinux block and module are named <name>_<namespace>)",
        )
    if not _NAMESPACE.fullmatch(namespace):
        raise ProfileProblem(
            reason, f"metadata.namespace: {shown(namespace)} is not a valid namespace name"
        )
    block = f"{name}_{namespace}"
    if len(block) > MAX_BLOCK_NAME:
        raise ProfileProblem(
            reason,
            f"metadata.name: the SELinux module {block!r} would be longer than "
            f"{MAX_BLOCK_NAME} characters",
        )


# Rules on types, shared by SelinuxProfile and RawSelinuxProfile ------------------------------


def target_problem(
    name: str, own: frozenset[str], namespace: str | None, deny: DenyList = DEFAULT_DENY
) -> str | None:
    """Why a rule may not name ``name`` as its target (a message; the reason is DENIED), or None.

    ``own`` are the names of the profile's own block; ``namespace`` the profile's (None: a
    profile type of any namespace may be named).
    """
    denied = next((part for part in name.split(".") if part in deny.types), None)
    if denied:
        return (
            f"type {denied!r} is on the deny list: no workload profile may be granted rights on it"
        )
    if name == SELF or name in own:
        return None
    if "." in name.removeprefix("."):
        profile = _PROFILE_PROCESS.fullmatch(name)
        if profile is None or (namespace is not None and profile.group(2) != namespace):
            where = "of this namespace " if namespace is not None else ""
            return (
                f"{name!r} names a type inside another block: only the process type of a profile "
                f"{where}(<name>_<namespace>.process) may be named"
            )
        return None
    plain = name.removeprefix(".")
    if plain.endswith(TYPE_SUFFIX) or plain in deny.allowed_attributes:
        return None
    allowed = ", ".join(sorted(deny.allowed_attributes)) or "none"
    return (
        f"{plain!r} is an attribute, not a type (type names end in {TYPE_SUFFIX!r}): a rule on an "
        f"attribute reaches every type in it; the attributes a profile may name are: {allowed}"
    )


def permission_problem(
    cls: str, perm: str, target: str, own: frozenset[str], deny: DenyList = DEFAULT_DENY
) -> str | None:
    """Why ``perm`` of ``cls`` on ``target`` may not be granted (a message), or None."""
    if perm in OPERATORS:
        return (
            f"{perm!r} makes the permissions an expression (all, not, and, or, xor): "
            "list the permissions one by one"
        )
    if perm in deny.permissions:
        return f"permission {perm!r} is on the deny list: no workload profile may be granted it"
    if cls == "process" and perm in TRANSITIONS and target != SELF and target not in own:
        return (
            f"permission {perm!r} of class 'process' on {target!r}: entering another domain gives "
            "the container its rights; only the profile's own types may be entered"
        )
    return None


def check_allow(
    allow: dict[str, dict[str, list[str]]] | None,
    deny: DenyList = DEFAULT_DENY,
    namespace: str | None = None,
) -> None:
    """Every type, class and permission of ``spec.allow`` is well-formed and not denied.

    ``namespace`` is the profile's: another profile's process type may be named only in it
    (None: in any namespace).
    """
    allow = allow or {}
    for target in sorted(allow):
        classes = allow[target]
        where = f"spec.allow[{target}]"
        resolved = "process" if target == ALLOW_SELF else target
        if target != ALLOW_SELF:
            _check_symbol(where, "type", target, TYPE_PATTERN)
            problem = target_problem(target, OWN_TYPES, namespace, deny)
            if problem:
                raise ProfileProblem(DENIED, f"{where}: {problem}")
        for cls in sorted(classes):
            perms = classes[cls]
            at = f"{where}[{cls}]"
            _check_symbol(at, "class", cls, WORD_PATTERN)
            if cls in deny.classes:
                raise ProfileProblem(
                    DENIED,
                    f"{at}: class {cls!r} is on the deny list: no workload profile may be "
                    "granted it",
                )
            if not perms:
                raise ProfileProblem(INVALID, f"{at}: at least one permission is required")
            for perm in sorted(set(perms)):
                _check_symbol(at, "permission", perm, WORD_PATTERN)
                problem = permission_problem(cls, perm, resolved, OWN_TYPES, deny)
                if problem:
                    raise ProfileProblem(DENIED, f"{at}: {problem}")


def _check_symbol(where: str, what: str, value: str, pattern: re.Pattern[str]) -> None:
    if len(value) > MAX_IDENTIFIER or not pattern.fullmatch(value):
        raise ProfileProblem(
            INVALID, f"{where}: {what} {value!r} is not a valid SELinux {what} name"
        )


def check_system_template(where: str, template: str, allowed: Sequence[str]) -> None:
    """``template`` is one of the daemon's allowed system profiles."""
    if template not in allowed:
        listed = ", ".join(allowed) or "none"
        raise ProfileProblem(
            SYSTEM_NOT_ALLOWED,
            f"{where}: system profile {template!r} is not in the SecurityProfilesOperatorDaemon's "
            f"selinuxOptions.allowedSystemProfiles ({listed})",
        )


# RawSelinuxProfile ---------------------------------------------------------------------------


def check_size(cil: str) -> None:
    size = len(cil.encode())
    if size > MAX_CONFIGMAP_BYTES:
        raise ProfileProblem(
            TOO_LARGE,
            f"spec: the policy is {size} bytes, more than a ConfigMap can hold "
            f"({MAX_CONFIGMAP_BYTES})",
        )
