"""Whether the node's kernel has seccomp, read from /proc (as the kubelet's runtime would need
it)."""

from __future__ import annotations

from pathlib import Path


def seccomp_supported(proc: Path = Path("/proc")) -> bool:
    """True when the kernel was built with seccomp filters.

    A kernel with CONFIG_SECCOMP shows a ``Seccomp:`` field in every
    ``/proc/<pid>/status``; with CONFIG_SECCOMP_FILTER it also has
    ``/proc/sys/kernel/seccomp/actions_avail`` (Linux >= 4.14) or, on older
    kernels, at least the ``Seccomp:`` field. Both are required when present.
    """
    try:
        status = (proc / "self" / "status").read_text()
    except OSError:
        try:
            status = (proc / "1" / "status").read_text()
        except OSError:
            return False
    if not any(line.startswith("Seccomp:") for line in status.splitlines()):
        return False
    actions = proc / "sys" / "kernel" / "seccomp" / "actions_avail"
    if (proc / "sys" / "kernel").is_dir() and actions.parent.is_dir():
        try:
            available = actions.read_text().split()
        except OSError:
            return False
        return "errno" in available and "allow" in available
    return True
