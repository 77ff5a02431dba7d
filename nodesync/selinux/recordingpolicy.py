"""The operator's own SELinux policy: ``selinuxrecording``, the type a recorded container runs as.

The recording webhook gives every container it records for a SelinuxProfile
the SELinux type ``selinuxrecording.process`` (the Go operator's name, so that
its recordings keep working). That type is a container like any translated
SelinuxProfile (its block inherits the ``container`` template) and is
permissive: whatever it is denied is logged as an AVC and allowed, and the
recorder turns those AVCs into allow rules.

It comes from no ConfigMap: nodesync installs it wherever it installs SELinux
policies (``selinux_sync.SelinuxSync`` adds it to every convergence), never
removes it, and reports no node status for it. Fixed data, kept here so that
it ships with the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

RECORDING_POLICY = "selinuxrecording"  # module name, CIL block name and file name (.cil)
RECORDING_TYPE = f"{RECORDING_POLICY}.process"

RECORDING_CIL = f"""\
(block {RECORDING_POLICY}
    (blockinherit container)
    (typepermissive process)
)
"""

# Policy name -> CIL bytes. A profile's policy is always named ``<profile>_<namespace>``,
# with an underscore, so it can never take one of these names.
OPERATOR_POLICIES: Mapping[str, bytes] = MappingProxyType(
    {RECORDING_POLICY: RECORDING_CIL.encode()}
)
