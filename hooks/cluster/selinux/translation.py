"""SelinuxProfile and RawSelinuxProfile to the CIL that selinuxd installs on the nodes.

Both become one CIL block named ``<name>_<namespace>``, whose ``process`` type
is what a pod runs as (``status.usage``, ``<name>_<namespace>.process``). The
shape is the one the Go operator and udica write::

    (block web_team-a
        (blockinherit container)
        (typepermissive process)
        (allow process http_port_t ( tcp_socket ( name_bind )))
    )

- ``container`` declares ``process``; it is inherited only when nothing else
  is, because every other template (udica's ``net_container``,
  ``log_container``, ...) and every inherited SelinuxProfile brings it
  already, and a second copy declares ``process`` twice, which libsepol 3.4
  (Debian 12) refuses. Otherwise the system templates and the inherited
  profiles' blocks, in the order given, once each. (Inheriting two of them
  still brings ``container`` twice: such a policy fails on those nodes, and
  the status says so.);
- ``@self`` is the block's own ``process`` (the Go operator wrote the
  qualified ``<name>_<namespace>.process``, which is the same type in the
  profile's own block; ``process`` stays right when the block is inherited);
- allow rules are grouped by type and class, sorted, and their permissions
  de-duplicated and sorted, so the same profile always gives the same bytes.

A RawSelinuxProfile's text is put inside the block as written (trimmed,
indented, trailing blanks dropped) once it has been checked not to leave it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hooks.api import rawselinuxrules as rawrules
from hooks.api import selinuxrules as validation
from hooks.api.rawselinuxprofile import RawSelinuxProfile
from hooks.api.selinuxprofile import ALLOW_SELF, SelinuxProfile, SelinuxProfileSpec, policy_name
from hooks.api.selinuxrules import DEFAULT_DENY, DenyList
from hooks.api.spod import DEFAULT_ALLOWED_SYSTEM_PROFILES
from hooks.cluster.selinux import inheritance
from hooks.cluster.selinux.inheritance import Inherited

PROCESS = "process"
BASE_TEMPLATE = "container"
INDENT = "    "

AllowRule = tuple[str, str, tuple[str, ...]]
"""One CIL allow rule of the block's process: target type, class, permissions."""


def allow_rules(allow: Mapping[str, Mapping[str, Sequence[str]]] | None) -> list[AllowRule]:
    """The allow rules of ``spec.allow``: ``@self`` made ``process``, merged, sorted,
    de-duplicated."""
    merged: dict[tuple[str, str], set[str]] = {}
    for target, classes in (allow or {}).items():
        resolved = PROCESS if target == ALLOW_SELF else target
        for cls, perms in classes.items():
            merged.setdefault((resolved, cls), set()).update(perms)
    return [
        (target, cls, tuple(sorted(perms)))
        for (target, cls), perms in sorted(merged.items())
        if perms
    ]


def selinux_cil(name: str, namespace: str, spec: SelinuxProfileSpec, inherited: Inherited) -> str:
    """The CIL block of a SelinuxProfile whose ``inherit`` resolved to ``inherited`` (no checks)."""
    inherits: list[str] = []
    for block in [t for t in inherited.templates if t != BASE_TEMPLATE] + list(inherited.blocks):
        if block not in inherits:
            inherits.append(block)
    inherits = inherits or [BASE_TEMPLATE]
    body = [f"(blockinherit {block})" for block in inherits]
    if spec.permissive:
        body.append(f"(typepermissive {PROCESS})")
    body += [
        f"(allow {PROCESS} {target} ( {cls} ( {' '.join(perms)} )))"
        for target, cls, perms in allow_rules(spec.allow)
    ]
    return _block(name, namespace, body)


def raw_cil(name: str, namespace: str, policy: str) -> str:
    """The CIL block of a RawSelinuxProfile (no checks: see ``rawselinuxrules.check_raw_policy``).

    Lines are split at line feeds only: CIL ends a comment at a line feed or a
    carriage return, and nothing else may turn commented text into code.
    """
    return _block(
        name, namespace, [line.rstrip(" \t\r") for line in policy.strip(" \t\r\n").split("\n")]
    )


def _block(name: str, namespace: str, body: list[str]) -> str:
    lines = [f"(block {policy_name(name, namespace)}"]
    lines += [f"{INDENT}{line}" if line else "" for line in body]
    lines.append(")")
    return "\n".join(lines) + "\n"


def translate(
    profile: SelinuxProfile | RawSelinuxProfile,
    *,
    siblings: Mapping[str, SelinuxProfile] | None = None,
    allowed_system_profiles: Sequence[str] = DEFAULT_ALLOWED_SYSTEM_PROFILES,
    deny: DenyList = DEFAULT_DENY,
) -> str:
    """The checked CIL of a profile, or ProfileProblem saying what is wrong with it.

    ``siblings`` are the SelinuxProfiles of the profile's namespace by name
    (only a SelinuxProfile that inherits another one needs them).
    ``disabled`` is not looked at: whether to install is the caller's decision.
    """
    if isinstance(profile, RawSelinuxProfile):
        validation.check_name(profile.name, profile.namespace, validation.INVALID_RAW)
        policy = profile.spec.policy or ""
        rawrules.check_raw_policy(policy, allowed_system_profiles, deny, profile.namespace)
        cil = raw_cil(profile.name, profile.namespace, policy)
        rawrules.check_wrapped(cil, policy_name(profile.name, profile.namespace), policy)
    else:
        validation.check_name(profile.name, profile.namespace)
        validation.check_allow(profile.spec.allow, deny, profile.namespace)
        inherited = inheritance.resolve(profile, siblings or {}, allowed_system_profiles)
        cil = selinux_cil(profile.name, profile.namespace, profile.spec, inherited)
    validation.check_size(cil)
    return cil
