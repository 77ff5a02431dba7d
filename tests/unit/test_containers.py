"""Container ids from /proc/<pid>/cgroup in every layout, the pid cache, and the pod index."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodesync.enricher.containers import (
    ContainerRef,
    ContainerResolver,
    Lookup,
    Unknown,
    container_id_of_cgroup,
    container_index,
    pod_uid_of_cgroup,
    read_cgroup,
    strip_runtime,
)

CID = "b469ca5b54e01e7724b7a990f01d54f571dd7669b87851a87bd8b849c438c580"
UID = "a201f46d-151a-4701-8f24-314bea77df79"
UID_ = UID.replace("-", "_")
V1_HOST_LINES = (
    "11:devices:/user.slice\n1:name=systemd:/user.slice/user-1000.slice/session-2.scope\n"
)

LAYOUTS = {
    # cgroup v2, cgroupfs driver: containerd, and runc driven by hand the same way
    "v2 cgroupfs containerd": f"0::/kubepods/burstable/pod{UID}/{CID}\n",
    "v2 cgroupfs guaranteed": f"0::/kubepods/pod{UID}/{CID}\n",
    "v2 cgroupfs crio": f"0::/kubepods/besteffort/pod{UID}/crio-{CID}\n",
    # cgroup v2, systemd driver
    "v2 systemd containerd": (
        "0::/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope\n"
    ),
    "v2 systemd crio": (
        "0::/kubepods.slice/kubepods-besteffort.slice/"
        f"kubepods-besteffort-pod{UID_}.slice/crio-{CID}.scope\n"
    ),
    "v2 systemd crio nested": (
        f"0::/kubepods.slice/kubepods-pod{UID_}.slice/crio-{CID}.scope/container\n"
    ),
    "v2 systemd docker": f"0::/kubepods.slice/kubepods-pod{UID_}.slice/docker-{CID}.scope\n",
    "v2 private cgroup namespace": (
        f"0::/../../kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope\n"
    ),
    # cgroup v1: one line per hierarchy
    "v1 cgroupfs containerd": (
        f"12:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}\n"
        f"11:memory:/kubepods/burstable/pod{UID}/{CID}\n"
        f"1:name=systemd:/kubepods/burstable/pod{UID}/{CID}\n"
    ),
    "v1 cgroupfs crio": f"4:net_cls,net_prio:/kubepods/besteffort/pod{UID}/crio-{CID}\n",
    "v1 systemd containerd": (
        "10:pids:/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope\n"
        "1:name=systemd:/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope\n"
    ),
    # hybrid: the v2 line is the host's, a v1 hierarchy has the container
    "hybrid": f"{V1_HOST_LINES}5:memory:/kubepods/besteffort/pod{UID}/{CID}\n0::/\n",
    "plain runc systemd": f"0::/system.slice/runc-{CID}.scope\n",
    "podman": f"0::/machine.slice/libpod-{CID}.scope/container\n",
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_yields_the_container_id(layout: str) -> None:
    assert container_id_of_cgroup(LAYOUTS[layout]) == CID


@pytest.mark.parametrize(
    "layout",
    [name for name in sorted(LAYOUTS) if "pod" in LAYOUTS[name] and "kubepods" in LAYOUTS[name]],
)
def test_pod_uid_in_kubelet_layouts(layout: str) -> None:
    assert pod_uid_of_cgroup(LAYOUTS[layout]) == UID


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0::/\n",
        "0::/init.scope\n",
        "0::/system.slice/crio.service\n",
        "0::/system.slice/containerd.service\n",
        V1_HOST_LINES,
        f"0::/kubepods/burstable/pod{UID}\n",  # the pod's cgroup itself, no container
        f"0::/system.slice/crio-conmon-{CID}.scope\n",  # CRI-O's monitor is not the container
        f"0::/kubepods/pod{UID}/{CID[:-1]}\n",  # 63 digits
        f"0::/kubepods/pod{UID}/{CID.upper()}\n",  # ids are lower-case hex
        "garbage without colons\n",
    ],
)
def test_host_processes_have_no_container(text: str) -> None:
    assert container_id_of_cgroup(text) is None


def test_innermost_container_wins() -> None:
    inner = "f" * 64
    assert container_id_of_cgroup(f"0::/kubepods/pod{UID}/{CID}/docker-{inner}.scope\n") == inner


def test_read_cgroup_with_a_proc_root_and_vanished_pids(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text(LAYOUTS["v2 cgroupfs containerd"])
    assert read_cgroup(42, tmp_path) == LAYOUTS["v2 cgroupfs containerd"]
    assert read_cgroup(43, tmp_path) is None
    assert read_cgroup(1, "/proc") is not None  # the real /proc: init is always there


def test_resolver_caches_until_ttl_and_does_not_cache_vanished_pids() -> None:
    now = [0.0]
    texts: dict[int, str | None] = {1: LAYOUTS["v2 systemd crio"], 2: "0::/init.scope\n", 3: None}
    calls: list[int] = []

    def read(pid: int) -> str | None:
        calls.append(pid)
        return texts[pid]

    resolver = ContainerResolver(read=read, ttl=10.0, clock=lambda: now[0])
    assert resolver.lookup(1) == Lookup(CID)
    assert resolver.lookup(1) == Lookup(CID)
    assert resolver.lookup(2) == Lookup(None, Unknown.HOST)
    assert resolver.lookup(3) == Lookup(None, Unknown.VANISHED)
    assert resolver.lookup(3) == Lookup(None, Unknown.VANISHED)
    assert calls == [1, 2, 3, 3]
    # pid 1 reused by another container after the TTL
    texts[1] = LAYOUTS["v2 cgroupfs crio"].replace(CID, "e" * 64)
    now[0] = 10.5
    assert resolver.container_id(1) == "e" * 64
    assert calls[-1] == 1 and resolver.reads == 5


def test_resolver_cache_is_bounded() -> None:
    resolver = ContainerResolver(read=lambda pid: f"0::/kubepods/pod{UID}/{pid:064x}\n", size=3)
    for pid in range(10):
        resolver.lookup(pid)
    assert resolver.reads == 10
    resolver.lookup(9)  # still cached
    resolver.lookup(0)  # evicted
    assert resolver.reads == 11


def test_strip_runtime() -> None:
    assert strip_runtime(f"containerd://{CID}") == CID
    assert strip_runtime(f"cri-o://{CID}") == CID
    assert strip_runtime(f"docker://{CID}") == CID
    assert strip_runtime(CID) == CID


def test_container_index_from_pod_statuses() -> None:
    other = "c" * 64
    init = "d" * 64
    pods = [
        {
            "metadata": {"namespace": "shop", "name": "web-1"},
            "status": {
                "containerStatuses": [
                    {"name": "nginx", "containerID": f"containerd://{CID}"},
                    {"name": "sidecar", "containerID": f"cri-o://{other}"},
                    {"name": "starting"},  # no id yet
                ],
                "initContainerStatuses": [{"name": "setup", "containerID": f"containerd://{init}"}],
            },
        },
        {"metadata": {"namespace": "shop", "name": "pending"}, "status": {}},
        {"metadata": {"namespace": "x", "name": "no-status"}},
    ]
    assert container_index(pods) == {
        CID: ContainerRef("shop", "web-1", "nginx"),
        other: ContainerRef("shop", "web-1", "sidecar"),
        init: ContainerRef("shop", "web-1", "setup"),
    }
