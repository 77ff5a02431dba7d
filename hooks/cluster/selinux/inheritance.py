"""Resolving a SelinuxProfile's ``inherit``: system templates, and profiles of its namespace.

A system template must be in the daemon's allowed list. An inherited
SelinuxProfile must exist in the same namespace and be enabled (a disabled one
is not installed, so its block is not on the nodes), and so must every profile
it inherits in turn; profiles that inherit each other in a circle are refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hooks.api.problems import ProfileProblem
from hooks.api.selinuxprofile import DEFAULT_INHERIT, PolicyKind, SelinuxProfile, policy_name
from hooks.api.selinuxrules import check_system_template

NOT_FOUND = "InheritedProfileNotFound"
DISABLED = "InheritedProfileDisabled"
CYCLE = "InheritCycle"
TOO_DEEP = "InheritTooDeep"
MAX_DEPTH = 32


@dataclass(frozen=True)
class Inherited:
    """What a profile's block inherits: system templates and the blocks of other profiles."""

    templates: tuple[str, ...]
    blocks: tuple[str, ...]


def resolve(
    profile: SelinuxProfile, siblings: Mapping[str, SelinuxProfile], allowed: Sequence[str]
) -> Inherited:
    """The templates and profile blocks of ``profile.spec.inherit``, in the order given, once each.

    ``siblings`` are the SelinuxProfiles of the profile's namespace, by name.
    """
    templates: list[str] = []
    profiles: list[str] = []
    for index, ref in enumerate(profile.spec.inherit or DEFAULT_INHERIT):
        where = f"spec.inherit[{index}]"
        if ref.kind is PolicyKind.SYSTEM:
            check_system_template(where, ref.name, allowed)
            if ref.name not in templates:
                templates.append(ref.name)
        else:
            _Walk(profile, siblings, where).visit(ref.name, [profile.name])
            if ref.name not in profiles:
                profiles.append(ref.name)
    return Inherited(
        tuple(templates), tuple(policy_name(name, profile.namespace) for name in profiles)
    )


class _Walk:
    """A depth-first walk of the profiles inherited from one ``inherit`` entry."""

    def __init__(
        self, profile: SelinuxProfile, siblings: Mapping[str, SelinuxProfile], where: str
    ) -> None:
        self.namespace = profile.namespace
        self.siblings = siblings
        self.where = where
        self.done: set[str] = set()

    def visit(self, name: str, path: list[str]) -> None:
        if name in path:
            loop = " -> ".join([*path[path.index(name) :], name])
            raise ProfileProblem(
                CYCLE, f"{self.where}: SelinuxProfiles inherit from each other in a cycle: {loop}"
            )
        if name in self.done:
            return
        if len(path) > MAX_DEPTH:
            raise ProfileProblem(
                TOO_DEEP,
                f"{self.where}: more than {MAX_DEPTH} levels of inherited SelinuxProfiles "
                f"({' -> '.join(path[:3])} -> ...)",
            )
        via = f" (inherited by {path[-1]!r})" if len(path) > 1 else ""
        sibling = self.siblings.get(name)
        if sibling is None:
            raise ProfileProblem(
                NOT_FOUND,
                f"{self.where}: SelinuxProfile {name!r}{via} not found in namespace "
                f"{self.namespace!r}",
            )
        if sibling.spec.disabled:
            raise ProfileProblem(
                DISABLED,
                f"{self.where}: SelinuxProfile {name!r}{via} is disabled: it is not installed, "
                "so it cannot be inherited",
            )
        for ref in sibling.spec.inherit or ():
            if ref.kind is PolicyKind.SELINUX_PROFILE:
                self.visit(ref.name, [*path, name])
        self.done.add(name)
