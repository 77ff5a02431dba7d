"""What the SecurityProfilesOperatorDaemon says about SELinux: on or off, and the allowed templates.

The daemon object (``security-profiles-operator/spod``) reaches a hook as a
related object. Without it the defaults hold: SELinux is off (``enableSelinux``
unset), and the only system template a profile may inherit is ``container``.
Only the two fields read here are looked at, so a daemon object with some other
field this version cannot read does not turn SELinux off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hooks.api.base import Object
from hooks.api.spod import (
    DEFAULT_ALLOWED_SYSTEM_PROFILES,
    DEFAULT_SPOD_NAME,
    OPERATOR_NAMESPACE,
    find_spod,
)

SPOD_REF = f"{OPERATOR_NAMESPACE}/{DEFAULT_SPOD_NAME}"


@dataclass(frozen=True)
class SelinuxSettings:
    enabled: bool = False
    allowed_system_profiles: tuple[str, ...] = DEFAULT_ALLOWED_SYSTEM_PROFILES
    found: bool = False

    def disabled_message(self) -> str:
        if not self.found:
            return (
                f"SELinux is disabled: there is no SecurityProfilesOperatorDaemon {SPOD_REF}, so "
                "the policy is not installed"
            )
        return (
            f"SELinux is disabled: spec.enableSelinux of SecurityProfilesOperatorDaemon {SPOD_REF} "
            "is not true, so the policy is not installed"
        )


def from_daemons(daemons: list[Object]) -> SelinuxSettings:
    """The settings of the ``spod`` object among ``daemons`` (the defaults when it is not there)."""
    raw = find_spod(daemons)
    if raw is None:
        return SelinuxSettings()
    spec: Any = raw.get("spec") or {}
    options: Any = spec.get("selinuxOptions") if isinstance(spec, dict) else None
    allowed: Any = options.get("allowedSystemProfiles") if isinstance(options, dict) else None
    return SelinuxSettings(
        enabled=isinstance(spec, dict) and spec.get("enableSelinux") is True,
        allowed_system_profiles=(
            tuple(str(name) for name in allowed)
            if isinstance(allowed, list)
            else DEFAULT_ALLOWED_SYSTEM_PROFILES
        ),
        found=True,
    )
