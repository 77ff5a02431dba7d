"""Every kind of the API, in one list: the tables of kinds elsewhere derive from it.

To add a profile kind: its model and ``KIND`` in a module of ``hooks.api``, then
``KINDS`` here (see docs/architecture.md for the rest of the way).
"""

from __future__ import annotations

from hooks.api import (
    nodestatus,
    profilebinding,
    profilerecording,
    rawselinuxprofile,
    seccompprofile,
    selinuxprofile,
    spod,
)
from hooks.api.kinds import Kind

KINDS: tuple[Kind, ...] = (
    seccompprofile.KIND,
    selinuxprofile.KIND,
    rawselinuxprofile.KIND,
    profilebinding.KIND,
    profilerecording.KIND,
    spod.KIND,
    nodestatus.KIND,
)
# The kinds a node installs, carried there by a ConfigMap.
NODE_KINDS: tuple[Kind, ...] = tuple(kind for kind in KINDS if kind.configmap_prefix)
# The kinds a node installs as SELinux policies (CIL).
SELINUX_KINDS: tuple[Kind, ...] = (selinuxprofile.KIND, rawselinuxprofile.KIND)
# The kinds a ProfileRecording records (its ``spec.kind``).
RECORDED_KINDS: tuple[Kind, ...] = tuple(
    kind for kind in KINDS if kind.kind in {k.value for k in profilerecording.RecordingKind}
)

_BY_NAME = {kind.kind: kind for kind in KINDS}
_BY_PLURAL = {kind.plural: kind for kind in KINDS}


def kind_named(name: str) -> Kind:
    """The kind called ``name`` (``SeccompProfile``); KeyError for any other."""
    return _BY_NAME[name]


def kind_of_plural(plural: str) -> Kind:
    """The kind whose resource is ``plural`` (``seccompprofiles``); KeyError for any other."""
    return _BY_PLURAL[plural]
