"""The kinds a node installs, as a node knows them: each one's name and the name prefix and
data key of the ConfigMap that carries a profile of it (hooks/api/configmaps.py).

No model here: nodesync's process reads only these names, and loads no pydantic. Each kind's
``Kind`` (its model's module) takes its prefix and key from here; the registry keeps the
list of every kind, and tests/unit/test_nodekinds.py checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NodeKind:
    kind: str
    configmap_prefix: str
    configmap_key: str


SECCOMP = NodeKind("SeccompProfile", "seccomp", "profile.json")
SELINUX = NodeKind("SelinuxProfile", "selinux", "policy.cil")
RAW_SELINUX = NodeKind("RawSelinuxProfile", "rawselinux", "policy.cil")

NODE_KINDS: tuple[NodeKind, ...] = (SECCOMP, SELINUX, RAW_SELINUX)
# The kinds a node installs as SELinux policies (CIL).
SELINUX_KINDS: tuple[NodeKind, ...] = (SELINUX, RAW_SELINUX)
