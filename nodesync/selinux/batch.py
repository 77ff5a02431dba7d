"""A batched SELinux policy installer: ``semodule`` with several ``-i`` in one transaction.

selinuxd installs one policy per ``semodule`` call, and every call relinks the
whole policy (seconds to tens of seconds), so N profiles cost N relinks. This
installer puts every changed policy into one transaction, one relink. When the
transaction fails, it bisects: each half is tried as a transaction of its own,
down to single policies, so the good policies are installed and every broken
one gets ``semodule``'s own message. One broken policy among N costs about
``2 log2 N`` more transactions, not N.

Modules are installed at priority 350, as selinuxd does, so ``semodule -lfull``
tells ours from the distribution's (priority 100) and from the templates.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PRIORITY = 350
_NOISE = ("libsemanage.add_user: user ", "libsemanage.add_user: user")  # harmless warnings


@dataclass(frozen=True, slots=True)
class InstallResult:
    policy: str
    ok: bool
    message: str  # semodule's output when it failed, else ""


@dataclass
class Stats:
    transactions: int = 0
    failed_transactions: int = 0
    seconds: list[float] = field(default_factory=list)


def clean_output(output: str) -> str:
    """semodule's output without the harmless warnings it prints on success too."""
    lines = [line.rstrip() for line in output.splitlines()]
    return "\n".join(line for line in lines if line and not line.startswith(_NOISE))


class SemoduleInstaller:
    """Installs and removes CIL modules with ``semodule``.

    ``root`` is libsemanage's alternate policy root (``semodule -p``): the store
    is ``<root>/var/lib/selinux/<type>`` and the built policy
    ``<root>/etc/selinux/<type>``; None means the machine's own.
    ``reload=False`` passes ``-n`` (build, but do not load into the kernel).
    """

    def __init__(
        self,
        *,
        semodule: str = "semodule",
        root: Path | str | None = None,
        priority: int = PRIORITY,
        reload: bool = True,
        timeout: float = 600.0,
    ) -> None:
        self.semodule = semodule
        self.root = str(root) if root is not None else None
        self.priority = priority
        self.reload = reload
        self.timeout = timeout
        self.stats = Stats()

    def _command(self, *arguments: str) -> list[str]:
        command = [self.semodule]
        if self.root is not None:
            command += ["-p", self.root]
        if not self.reload:
            command.append("-n")
        return [*command, *arguments]

    def _run(self, *arguments: str) -> tuple[bool, str]:
        command = self._command(*arguments)
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
                env={**os.environ, "LC_ALL": "C"},
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return False, f"{command[0]}: {error}"
        output = clean_output(done.stdout + done.stderr)
        if done.returncode != 0 and not output:
            output = f"semodule exited with status {done.returncode}"
        return done.returncode == 0, output

    def transaction(self, files: Sequence[Path | str]) -> tuple[bool, str]:
        """Install ``files`` (CIL files named ``<policy>.cil``) in one transaction."""
        arguments = ["-X", str(self.priority)]
        for path in files:
            arguments += ["-i", str(path)]
        ok, output = self._run(*arguments)
        self.stats.transactions += 1
        if not ok:
            self.stats.failed_transactions += 1
        return ok, output

    def install(self, files: Mapping[str, Path | str]) -> dict[str, InstallResult]:
        """Install every policy of ``files`` (policy name -> CIL file) that can be installed."""
        results: dict[str, InstallResult] = {}
        if files:
            self._bisect(sorted(files.items()), results)
        return results

    def _bisect(
        self, group: list[tuple[str, Path | str]], results: dict[str, InstallResult]
    ) -> None:
        ok, output = self.transaction([path for _, path in group])
        if ok:
            for policy, _ in group:
                results[policy] = InstallResult(policy, True, "")
            return
        if len(group) == 1:
            policy = group[0][0]
            results[policy] = InstallResult(policy, False, output)
            log.warning("policy %s rejected by semodule: %s", policy, output)
            return
        middle = len(group) // 2
        self._bisect(group[:middle], results)
        self._bisect(group[middle:], results)

    def remove(self, policies: Sequence[str]) -> tuple[bool, str]:
        """Remove ``policies`` (installed at this installer's priority) in one transaction."""
        if not policies:
            return True, ""
        arguments = ["-X", str(self.priority)]
        for policy in policies:
            arguments += ["-r", policy]
        ok, output = self._run(*arguments)
        self.stats.transactions += 1
        return ok, output

    def installed(self) -> set[str]:
        """The modules installed at this installer's priority."""
        ok, output = self._run("-lfull")
        if not ok:
            return set()
        modules: set[str] = set()
        for line in output.splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == str(self.priority):
                modules.add(fields[1])
        return modules
