"""Record the syscalls of a container with an SCMP_ACT_LOG profile and auditd's audit.log.

Used to make ``examples/base-profiles/runc-v<version>.yaml``:

    auditd      # as root: starts the daemon, logs to /var/log/audit/audit.log
    out=examples/base-profiles/runc-v1.1.5.yaml
    .venv/bin/python -m tests.helpers.runc_recording base --runs 20 > $out
    .venv/bin/python -m tests.helpers.runc_recording workload -- /bin/sh -c 'echo hi'

``base`` runs a container whose workload is a 132-byte program that only calls
exit_group, so every syscall logged for the ``runc:[2:INIT]`` process is one
runc needs to start a container (up to and including the execve of the workload).
``workload`` prints the syscalls the workload itself makes after its execve.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.runc_bundle import Bundle, find_busybox, find_runc

AUDIT_LOG = Path("/var/log/audit/audit.log")
LOG_PROFILE = {"defaultAction": "SCMP_ACT_LOG"}
RUNC_INIT = "runc:[2:INIT]"
_RECORD = re.compile(
    r'type=SECCOMP .*? pid=(\d+) .*?comm="([^"]*)" .*?syscall=(\d+) .*?code=0x7ffc0000'
)


@dataclass(frozen=True)
class Logged:
    pid: int
    comm: str
    syscall: int


def syscall_name(number: int) -> str:
    library = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
    library.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    library.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    pointer = library.seccomp_syscall_resolve_num_arch(0, number)  # SCMP_ARCH_NATIVE
    if not pointer:
        return f"syscall-{number}"
    name = ctypes.string_at(pointer).decode()
    ctypes.CDLL(None).free(ctypes.c_void_p(pointer))
    return name


def logged_since(offset: int) -> list[Logged]:
    with AUDIT_LOG.open(errors="replace") as log:
        log.seek(offset)
        return [
            Logged(int(m.group(1)), m.group(2), int(m.group(3)))
            for m in map(_RECORD.search, log)
            if m is not None
        ]


def record(bundle: Bundle, args: list[str]) -> tuple[set[str], set[str]]:
    """(syscalls of runc's init, syscalls of the workload) of one run."""
    if not AUDIT_LOG.exists():
        raise SystemExit(f"{AUDIT_LOG} is missing: start auditd first (as root: auditd)")
    offset = AUDIT_LOG.stat().st_size
    run = bundle.run(args, LOG_PROFILE)
    if run.returncode != 0:
        raise SystemExit(f"the container failed: {run.stderr}")
    time.sleep(0.5)  # auditd writes asynchronously
    records = logged_since(offset)
    pids = {r.pid for r in records if r.comm == RUNC_INIT}
    ours = [r for r in records if r.pid in pids]
    runtime = {syscall_name(r.syscall) for r in ours if r.comm == RUNC_INIT}
    workload = {syscall_name(r.syscall) for r in ours if r.comm != RUNC_INIT}
    return runtime, workload


def runc_version() -> str:
    out = subprocess.run(["runc", "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"runc version (\d+\.\d+\.\d+)", out)
    return match.group(1) if match else "unknown"


def base_profile_yaml(version: str, syscalls: set[str]) -> str:
    names = "\n".join(f"        - {name}" for name in sorted(syscalls))
    return f"""\
apiVersion: security-profiles-operator.x-k8s.io/v1beta1
kind: SeccompProfile
metadata:
  name: runc-v{version}
  namespace: security-profiles-operator
spec:
  defaultAction: SCMP_ACT_ERRNO
  architectures:
    - SCMP_ARCH_X86_64
  syscalls:
    - action: SCMP_ACT_ALLOW
      names:
{names}
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("what", choices=["base", "workload"])
    parser.add_argument("--runs", type=int, default=10)
    argv = sys.argv[1:]
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    options = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    options.args = command or ["/bin/exit0"]
    with tempfile.TemporaryDirectory() as folder:
        bundle = Bundle(Path(folder) / "bundle", find_runc(), find_busybox())
        runtime: set[str] = set()
        workload: set[str] = set()
        args = options.args if options.what == "workload" else ["/bin/exit0"]
        for _ in range(options.runs):
            more_runtime, more_workload = record(bundle, args)
            runtime |= more_runtime
            workload |= more_workload
    if options.what == "base":
        sys.stdout.write(base_profile_yaml(runc_version(), runtime))
    else:
        sys.stdout.write("\n".join(sorted(workload)) + "\n")
    return 0


if __name__ == "__main__" and os.environ.get("PYTEST_CURRENT_TEST") is None:
    sys.exit(main())
