"""What a workload's SELinux profile may say, checked before anything reaches a node.

Two kinds of checks, each answered with a ``ProfileProblem`` that names the
offending rule:

- names: profile names, SELinux types, classes and permissions against strict
  patterns, so that nothing the user typed can change the structure of the CIL
  it is written into;
- power: a deny list of types, classes and permissions that no namespaced
  workload profile may grant (the kernel's and the policy's own types, loading
  a policy, switching enforcement, relabelling, ...), and the daemon's list of
  system templates a profile may inherit.

A RawSelinuxProfile is CIL text that goes inside the profile's own block. It is
read with the same lexical rules as the CIL compiler (comments end at a line
feed or a carriage return, strings do not span lines) and must not leave that
block: balanced parentheses, no NUL, only the CIL's symbol characters, and no
statement that acts on the whole policy (``block``, ``in``, ``class``, ``role``,
``user``, ``sid``, ``typepermissive``, ``filecon``, ``neverallow``, ...). The
deny list applies to every symbol of the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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
_TYPE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
# Classes and permissions of the kernel's policy are lower case words.
_WORD = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class DenyList:
    """Types, classes and permissions no workload profile may grant."""

    types: frozenset[str]
    classes: frozenset[str]
    permissions: frozenset[str]

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
            "load_policy_t",
            "load_policy_exec_t",
            "setfiles_t",
            "setfiles_exec_t",
            "modules_object_t",
            "kmod_t",
            "kmod_exec_t",
            "boot_t",
            "sysctl_kernel_t",
            "sysctl_modprobe_t",
            "proc_kcore_t",
            "proc_kmsg_t",
            "memory_device_t",
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
            "sysadm_t",
            "spc_t",
            "container_runtime_t",
            "container_runtime_exec_t",
            # attributes whose members bypass the policy
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
            "mac_admin",
            "mac_override",
            "sys_module",
            "sys_rawio",
            "sys_boot",
            "module_load",
            "audit_control",
        }
    ),
)
"""The built-in deny list. ``relabelfrom`` is not denied as such: on a sensitive type it is,
because every right on a denied type is. The SecurityProfilesOperatorDaemon of this API
version has no field to extend it."""

# Statements that act on the whole policy, or that could carry such statements, are refused
# in a RawSelinuxProfile. With every statement that holds other statements refused (block,
# in, optional, macro, booleanif, tunableif), a statement can only sit directly in the block.
RESTRICTED_STATEMENTS = frozenset(
    {
        "block", "blockabstract", "in", "optional", "macro", "call",
        "booleanif", "tunableif", "tunable",
        "class", "classorder", "classcommon", "common", "classmap", "classmapping",
        "classpermissionset",
        "sid", "sidorder", "sidcontext", "context",
        "role", "roletype", "roleallow", "roleattribute", "roleattributeset", "rolebounds",
        "roletransition",
        "user", "userrole", "userattribute", "userattributeset", "userbounds", "userlevel",
        "userprefix",
        "userrange", "selinuxuser", "selinuxuserdefault",
        "mls", "sensitivity", "sensitivityorder", "sensitivityalias", "sensitivityaliasactual",
        "sensitivitycategory", "category", "categoryorder", "categoryalias", "categoryaliasactual",
        "dominance", "level", "levelrange", "rangetransition",
        "typepermissive", "neverallow", "neverallowx", "deny",
        "constrain", "mlsconstrain", "validatetrans", "mlsvalidatetrans",
        "defaultuser", "defaultrole", "defaulttype", "defaultrange",
        "filecon", "fsuse", "genfscon", "portcon", "netifcon", "nodecon", "ibpkeycon",
        "ibendportcon",
        "iomemcon", "ioportcon", "pcidevicecon", "pirqcon", "devicetreecon",
        "policycap", "handleunknown", "<src_info>",
    }
)  # fmt: skip

# The CIL compiler's symbol characters; anything else outside comments and strings is refused.
_SYMBOL_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789[].@=/*-_$%+!|&^:~`#{}'<>?,"
)
_BLANKS = " \t"
_LINE_ENDS = "\n\r"


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


def check_allow(
    allow: dict[str, dict[str, list[str]]] | None, deny: DenyList = DEFAULT_DENY
) -> None:
    """Every type, class and permission of ``spec.allow`` is well-formed and not denied."""
    allow = allow or {}
    for target in sorted(allow):
        classes = allow[target]
        where = f"spec.allow[{target}]"
        if target != ALLOW_SELF:
            _check_symbol(where, "type", target, _TYPE)
            denied = next((part for part in target.split(".") if part in deny.types), None)
            if denied:
                raise ProfileProblem(
                    DENIED,
                    f"{where}: type {denied!r} is on the deny list: no workload profile may be "
                    "granted rights on it",
                )
        for cls in sorted(classes):
            perms = classes[cls]
            at = f"{where}[{cls}]"
            _check_symbol(at, "class", cls, _WORD)
            if cls in deny.classes:
                raise ProfileProblem(
                    DENIED,
                    f"{at}: class {cls!r} is on the deny list: no workload profile may be "
                    "granted it",
                )
            if not perms:
                raise ProfileProblem(INVALID, f"{at}: at least one permission is required")
            for perm in sorted(set(perms)):
                _check_symbol(at, "permission", perm, _WORD)
                if perm in deny.permissions:
                    raise ProfileProblem(
                        DENIED,
                        f"{at}: permission {perm!r} is on the deny list: no workload profile "
                        "may be granted it",
                    )


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


def check_raw_policy(
    policy: str | None, allowed: Sequence[str], deny: DenyList = DEFAULT_DENY
) -> None:
    """The CIL of a RawSelinuxProfile stays inside its block and grants nothing denied.

    ``blockinherit`` may name an allowed system template and nothing else: a block
    name cannot tell a system template (``net_container``) from a profile of a
    namespace called ``container``.
    """
    if policy is None or not policy.strip():
        raise ProfileProblem(INVALID_RAW, "spec.policy: required, and not only white space")
    if "\x00" in policy:
        raise ProfileProblem(INVALID_RAW, "spec.policy: must not contain NUL characters")
    try:
        policy.encode()
    except UnicodeEncodeError as error:
        raise ProfileProblem(INVALID_RAW, "spec.policy: must be valid UTF-8") from error
    if ";;*" in policy:
        raise ProfileProblem(INVALID_RAW, "spec.policy: ';;*' line marks are not allowed")
    depth = 0
    expect_head = False
    statement: list[str] = []
    for symbol, line in _tokens(policy):
        where = f"spec.policy line {line}"
        if symbol == "(":
            depth += 1
            expect_head = True
            if depth == 1:
                statement = []
            continue
        if symbol == ")":
            depth -= 1
            if depth < 0:
                raise ProfileProblem(
                    INVALID_RAW, f"{where}: unmatched ')' would close the profile's block"
                )
            if depth == 0:
                _check_statement(where, statement, allowed)
            expect_head = False
            continue
        if depth == 0:
            raise ProfileProblem(INVALID_RAW, f"{where}: {symbol!r} outside of a statement")
        if expect_head and depth == 1 and symbol.lower() in RESTRICTED_STATEMENTS:
            raise ProfileProblem(
                FORBIDDEN_STATEMENT,
                f"{where}: the {symbol!r} statement acts on the whole policy and is not "
                "allowed in a RawSelinuxProfile",
            )
        if depth == 1:
            statement.append(symbol)
        expect_head = False
        if not symbol.startswith('"'):
            denied = deny.reason_for(symbol)
            if denied:
                raise ProfileProblem(
                    DENIED,
                    f"{where}: {denied} is on the deny list: no workload profile may grant it",
                )
    if depth:
        raise ProfileProblem(
            INVALID_RAW, f"spec.policy: unbalanced parentheses, {depth} '(' not closed"
        )


def _check_statement(where: str, statement: list[str], allowed: Sequence[str]) -> None:
    if not statement or statement[0] != "blockinherit":
        return
    target = statement[1] if len(statement) == 2 else ""
    if not target:
        raise ProfileProblem(INVALID_RAW, f"{where}: blockinherit takes one block name")
    check_system_template(f"{where}: blockinherit", target, allowed)


def _tokens(policy: str) -> Iterator[tuple[str, int]]:
    """``(``, ``)``, symbols and quoted strings with their line, as the CIL compiler reads them."""
    index, line, end = 0, 1, len(policy)
    while index < end:
        char = policy[index]
        if char == "\n":
            line += 1
            index += 1
        elif char in _BLANKS or char == "\r":
            index += 1
        elif char == ";":
            while index < end and policy[index] not in _LINE_ENDS:
                index += 1
        elif char in "()":
            yield char, line
            index += 1
        elif char == '"':
            close = index + 1
            while close < end and policy[close] not in '"\n':
                close += 1
            if close == end or policy[close] != '"':
                raise ProfileProblem(INVALID_RAW, f"spec.policy line {line}: unterminated string")
            yield policy[index : close + 1], line
            index = close + 1
        elif char in _SYMBOL_CHARS:
            start = index
            while index < end and policy[index] in _SYMBOL_CHARS:
                index += 1
            yield policy[start:index], line
        else:
            raise ProfileProblem(
                INVALID_RAW,
                f"spec.policy line {line}: character {char!r} is not allowed outside comments "
                "and strings",
            )


def check_size(cil: str) -> None:
    size = len(cil.encode())
    if size > MAX_CONFIGMAP_BYTES:
        raise ProfileProblem(
            TOO_LARGE,
            f"spec: the policy is {size} bytes, more than a ConfigMap can hold "
            f"({MAX_CONFIGMAP_BYTES})",
        )
