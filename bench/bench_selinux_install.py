"""Benchmark: installing 1, 5 and 20 SELinux policies on a node, selinuxd-style vs batched.

Both installers use the real ``semodule`` on a private copy of Debian's
reference-policy store (``semodule -p``) holding the container shim and udica's
templates (see tests/helpers/selinux_env.py), and every policy is a realistic
``(blockinherit container)`` profile.

- ``selinuxd``: nodesync writes the N files into the drop directory; the
  selinuxd stand-in (tests/helpers/selinuxd_double.py: one ``semodule -i`` per
  policy, as selinuxd does) installs them; timed until nodesync's ``SelinuxSync``
  reports every policy Installed through the status API. (selinuxd itself cannot
  be built here: the Go module proxy refuses github.com/containers/selinuxd.)
- ``batch``: ``SelinuxSync`` with ``BatchBackend``: one ``semodule`` transaction.

Prints one JSON object: seconds per (installer, N), and each time divided by the
same installer's time for one policy (the baseline of this run). Target: batched
20 policies under 3x one.

Run: .venv/bin/python -m bench.bench_selinux_install [--counts 1,5,20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from hooks.api.profilestate import ProfileState
from nodesync.selinux.batch import SemoduleInstaller
from nodesync.selinux.dropdir import DropDir
from nodesync.selinux.selinuxd import SelinuxdClient
from nodesync.selinux.sync import (
    BatchBackend,
    SelinuxdBackend,
    SelinuxSync,
)
from tests.helpers.selinux_env import copy_store, find_semodule, install_base
from tests.helpers.selinuxd_double import SelinuxdDouble

POLICY = """\
(block {name}
  (blockinherit container)
  (allow process http_port_t (tcp_socket (name_bind)))
  (allow process self (tcp_socket (create bind listen accept)))
)
"""


def configmaps(count: int, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "kind": "ConfigMap",
            "metadata": {
                "name": f"selinux-{tag}{i}",
                "namespace": "bench",
                "labels": {"spo.x-k8s.io/profile-kind": "SelinuxProfile"},
                "annotations": {"spo.x-k8s.io/profile-name": f"{tag}{i}"},
                "ownerReferences": [
                    {
                        "apiVersion": "security-profiles-operator.x-k8s.io/v1alpha2",
                        "kind": "SelinuxProfile",
                        "name": f"{tag}{i}",
                        "uid": f"uid-{tag}{i}",
                        "controller": True,
                    }
                ],
            },
            "data": {"policy.cil": POLICY.format(name=f"{tag}{i}_bench")},
        }
        for i in range(count)
    ]


def fresh(base: Path, work: Path) -> Path:
    root = work / "root"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(base, root, symlinks=True)
    return root


def run_selinuxd(semodule: str, root: Path, work: Path, count: int) -> float:
    drop = work / f"selinux.d-{count}"
    installer = SemoduleInstaller(semodule=semodule, root=root, reload=False)
    with SelinuxdDouble(work / f"selinuxd-{count}.sock", drop, installer, interval=0.01) as d:
        client = SelinuxdClient(str(d.socket_path))
        while not client.ready():
            time.sleep(0.01)
        sync = SelinuxSync(DropDir(drop), SelinuxdBackend(client))
        start = time.perf_counter()
        sync.converge(configmaps(count, "d"))
        while not sync.settled():
            time.sleep(0.02)
            sync.poll()
        elapsed = time.perf_counter() - start
    assert all(o.state is ProfileState.INSTALLED for o in sync.outcomes()), sync.outcomes()
    return elapsed


def run_batch(semodule: str, root: Path, work: Path, count: int) -> float:
    installer = SemoduleInstaller(semodule=semodule, root=root, reload=False)
    sync = SelinuxSync(DropDir(work / f"drop-{count}"), BatchBackend(installer))
    start = time.perf_counter()
    outcomes = sync.converge(configmaps(count, "b"))
    elapsed = time.perf_counter() - start
    assert all(o.state is ProfileState.INSTALLED for o in outcomes), outcomes
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,5,20")
    counts = [int(c) for c in parser.parse_args().counts.split(",")]
    semodule = find_semodule()
    with tempfile.TemporaryDirectory(prefix="bench-selinux-") as tmp:
        work = Path(tmp)
        base = copy_store(work / "base")
        install_base(base, semodule, work / "base-modules")
        results: dict[str, dict[str, float]] = {"selinuxd": {}, "batch": {}}
        for count in counts:
            results["selinuxd"][str(count)] = run_selinuxd(semodule, fresh(base, work), work, count)
            results["batch"][str(count)] = run_batch(semodule, fresh(base, work), work, count)
        one = str(counts[0])
        ratios = {
            name: {n: round(t / times[one], 2) for n, t in times.items()}
            for name, times in results.items()
        }
        last = str(counts[-1])
        report = {
            "seconds": {k: {n: round(t, 2) for n, t in v.items()} for k, v in results.items()},
            "ratio_to_one": ratios,
            "batch_vs_selinuxd_at_max": round(
                results["batch"][last] / results["selinuxd"][last], 3
            ),
            "target_batch_max_under_3x_one": ratios["batch"][last] < 3.0,
        }
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
