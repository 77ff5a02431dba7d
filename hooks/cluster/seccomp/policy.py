"""The cluster's seccomp policy, from the SecurityProfilesOperatorDaemon: which syscalls a
profile may let through and which actions it may use.

A syscall is let through by ALLOW, LOG, TRACE or NOTIFY: by a rule naming it,
or by a default action that lets everything unnamed through. Unlike a broken
profile, a profile that breaks the policy must not stay on the nodes, so the
controller removes its ConfigMap.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from hooks.api import spod as spod_api
from hooks.api.base import Object
from hooks.api.problems import ProfileProblem
from hooks.api.seccompprofile import Action, SeccompProfileSpec

DISALLOWED_SYSCALLS = "DisallowedSyscalls"
DISALLOWED_ACTION = "DisallowedSeccompAction"
LETS_THROUGH = (Action.ALLOW, Action.LOG, Action.TRACE, Action.NOTIFY)
_SHOWN = 20


@dataclass(frozen=True)
class Policy:
    allowed_syscalls: frozenset[str] | None = None  # None: any syscall
    allowed_actions: frozenset[Action] | None = None  # None: any action


def from_daemons(daemons: list[Object]) -> Policy:
    """The policy of the ``spod`` object among ``daemons``; no (readable) spod means no policy."""
    raw = spod_api.find_spod(daemons)
    if raw is None:
        return Policy()
    try:
        spec = spod_api.SecurityProfilesOperatorDaemon.model_validate(raw).spec
    except ValidationError:
        return Policy()
    if spec is None:
        return Policy()
    return Policy(
        allowed_syscalls=None if spec.allowedSyscalls is None else frozenset(spec.allowedSyscalls),
        allowed_actions=None
        if spec.allowedSeccompActions is None
        else frozenset(spec.allowedSeccompActions),
    )


def check(spec: SeccompProfileSpec, policy: Policy) -> None:
    """Raise ProfileProblem when the (merged) profile breaks the policy."""
    if policy.allowed_actions is not None:
        used = [spec.defaultAction] + [rule.action for rule in spec.syscalls or []]
        refused = sorted({action.value for action in used if action not in policy.allowed_actions})
        if refused:
            allowed = ", ".join(sorted(a.value for a in policy.allowed_actions)) or "none"
            raise ProfileProblem(
                DISALLOWED_ACTION,
                f"spec: the operator allows only the seccomp actions {allowed}; this profile "
                f"uses {', '.join(refused)}",
            )
    if policy.allowed_syscalls is None:
        return
    if spec.defaultAction in LETS_THROUGH:
        raise ProfileProblem(
            DISALLOWED_SYSCALLS,
            f"spec.defaultAction: {spec.defaultAction.value} lets every syscall through, but "
            "the operator allows "
            f"only {len(policy.allowed_syscalls)} (allowedSyscalls)",
        )
    through = {
        name for rule in spec.syscalls or [] if rule.action in LETS_THROUGH for name in rule.names
    }
    refused_names = sorted(through - policy.allowed_syscalls)
    if refused_names:
        shown = ", ".join(refused_names[:_SHOWN]) + (
            f" and {len(refused_names) - _SHOWN} more" if len(refused_names) > _SHOWN else ""
        )
        raise ProfileProblem(
            DISALLOWED_SYSCALLS,
            f"spec.syscalls: {len(refused_names)} syscalls are not in the operator's "
            f"allowedSyscalls: {shown}",
        )
