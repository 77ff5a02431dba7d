"""``mergeStrategy: containers``, end to end: two replicas recorded apart, merged into one profile.

Each step is done by the real component (see test_recording_e2e for the path of one recording):

1. two replica pods made from ``generateName: web-`` go through the API server and its
   recording webhook; each one's container runs under runc, at the same time, in its own
   cgroup with its own container id, each with a different workload (sh builtins, then a
   short sleep so that the processes outlive the reading of their records);
2. both pods Succeed: ``spo log-enricher`` creates one *partial* SeccompProfile per replica,
   ``web-work-<suffix>``, labelled ``spo.x-k8s.io/partial``, each with what its own
   container did and not what the other one did;
3. the recording is deleted while the ProfileRecording controller's finalizer holds it; its
   finalize hook (driven by hand, as Metacontroller would) says ``WaitingForMerge``; the log
   enricher's merge loop then creates ``web-work``, allowing the union, and deletes the
   partials; the next finalize lets the recording go;
4. the merged profile, built on the runc base profile, goes through the SeccompProfile hook
   to the bytes a node installs: both workloads run under it, a command neither ran does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hooks.api.profilerecording import WAITING_FOR_MERGE
from tests.helpers.auditd import auditd_running
from tests.helpers.controlplane import ControlPlane
from tests.helpers.nodesync_process import eventually
from tests.helpers.recording_env import (
    CONTAINER,
    CONTAINER_LABEL,
    DEADLINE,
    PARTIAL_LABEL,
    RECORDING_LABEL,
    RECORDINGS,
    SLEEPS,
    LogEnricher,
    RecordedContainer,
    allowed,
    controller_step,
    enricher_kubeconfig,
    on_runc_base,
    profiles_of,
    recorded_pod,
    recording,
    recording_webhook,
    started,
    trusting,
)
from tests.helpers.runc_bundle import Bundle, find_busybox, find_runc
from tests.helpers.webhook_server import WebhookServer

pytestmark = [pytest.mark.e2e, pytest.mark.node]

NS = "record-merge-e2e"
NAME = "web"  # the recording, and its pods' app label and generateName prefix
# Two replicas doing different things with sh builtins; each ends with a sleep that outlives
# the reading of its records (an exited process cannot be mapped to its container any more).
CHDIR = ["/bin/sh", "-c", "cd /tmp && echo changed; sleep 2"]
UMASK = ["/bin/sh", "-c", "umask 077 && echo masked; sleep 2"]


@pytest.fixture(scope="module")
def webhook(
    installed: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookServer]:
    recordings = [recording(NS, NAME, NAME, mergeStrategy="containers")]
    with recording_webhook(
        installed, tmp_path_factory.mktemp("record-merge-webhook"), NS, recordings
    ) as server:
        yield server


def test_replicas_recorded_apart_are_merged_into_one_profile_that_runs_both(
    installed: ControlPlane, webhook: WebhookServer, tmp_path: Path
) -> None:
    plane = installed
    runc, busybox = find_runc(), find_busybox()
    kubelet = tmp_path / "kubelet"
    step = controller_step(plane, webhook, "profilerecording-controller")
    with auditd_running():
        agent = started(
            LogEnricher(
                enricher_kubeconfig(plane),
                kubelet,
                tmp_path / "enricher.log",
                ["--merge-interval", "1"],
            )
        )
        try:
            # 1. two replicas through the webhook, each in its own container, at the same time
            replicas = [
                RecordedContainer(
                    plane,
                    NS,
                    recorded_pod(f"{NAME}-", NAME, generate=True),
                    Bundle(tmp_path / f"bundle-{i}", runc, busybox),
                    kubelet,
                )
                for i in range(2)
            ]
            chdir, umask = replicas
            assert chdir.name != umask.name and all(
                r.name.startswith(f"{NAME}-") for r in replicas
            ), [r.name for r in replicas]
            for replica in replicas:
                key = f"io.containers.trace-logs/{CONTAINER}"
                assert replica.annotations.get(key, "").startswith(f"{NAME}_{CONTAINER}_"), (
                    replica.annotations
                )
            chdir.start(CHDIR)
            umask.start(UMASK)
            for replica, said in ((chdir, "changed\n"), (umask, "masked\n")):
                run = replica.wait()
                assert (run.returncode, run.stdout) == (0, said), run

                def told(name: str = replica.name) -> None:
                    names = agent.syscalls(name)
                    assert names & SLEEPS, f"the enricher told of {name} only {sorted(names)}"

                eventually(
                    f"the enricher tells what {replica.name} did", told, agent, timeout=DEADLINE
                )

            # 2. both Succeed: one partial profile per replica
            for replica in replicas:
                replica.succeeded()
            suffixes = {r.name: r.name.removeprefix(f"{NAME}-") for r in replicas}
            partial_names = {f"{NAME}-{CONTAINER}-{suffixes[r.name]}" for r in replicas}

            def both_partials() -> dict[str, dict[str, Any]]:
                found = profiles_of(plane, NS, NAME)
                assert set(found) == partial_names, f"recorded so far: {sorted(found)}"
                return found

            # (and nothing merged while the recording lives, though the merge loop runs every
            # second)
            partials = eventually(
                "both partial profiles exist", both_partials, agent, timeout=DEADLINE
            )
            for name, profile in partials.items():
                labels = profile["metadata"]["labels"]
                assert labels == {
                    RECORDING_LABEL: NAME,
                    CONTAINER_LABEL: CONTAINER,
                    PARTIAL_LABEL: "true",
                }, (name, labels)
                assert profile["spec"]["defaultAction"] == "SCMP_ACT_ERRNO"
                assert "disabled" not in profile["spec"]
            of_chdir = set(allowed(partials[f"{NAME}-{CONTAINER}-{suffixes[chdir.name]}"]))
            of_umask = set(allowed(partials[f"{NAME}-{CONTAINER}-{suffixes[umask.name]}"]))
            # each replica's profile has what its own container did, not what the other one did
            assert "chdir" in of_chdir and "umask" not in of_chdir, sorted(of_chdir)
            assert "umask" in of_umask and "chdir" not in of_umask, sorted(of_umask)

            # 3. the recording is deleted; its finalize waits for the merge, which the enricher does
            with trusting(webhook):
                step.add_finalizer(NS, NAME)
                plane.kubectl("delete", RECORDINGS, NAME, "-n", NS, "--wait=false")

                def waiting_for_merge() -> dict[str, Any]:
                    answer = step.sync(NS, NAME)
                    assert answer.get("finalized") is not True, "finalized before the merge"
                    [condition] = answer["status"]["conditions"]
                    assert condition["reason"] == WAITING_FOR_MERGE, condition
                    return dict(condition)

                condition = eventually(
                    "the recording waits for the merge", waiting_for_merge, agent, timeout=DEADLINE
                )
                assert CONTAINER in str(condition["message"]), condition

                def merged_alone() -> dict[str, Any]:
                    found = profiles_of(plane, NS, NAME)
                    assert set(found) == {f"{NAME}-{CONTAINER}"}, (
                        f"profiles of the recording: {sorted(found)}"
                    )
                    return found[f"{NAME}-{CONTAINER}"]

                merged = eventually(
                    "the partials are merged, then deleted", merged_alone, agent, timeout=DEADLINE
                )
                answer = step.sync(NS, NAME)
                assert answer["finalized"] is True, answer
        finally:
            agent.stop(30)

    gone = plane.kubectl("get", RECORDINGS, NAME, "-n", NS, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr, (gone.stdout, gone.stderr)
    assert merged["metadata"]["labels"] == {RECORDING_LABEL: NAME, CONTAINER_LABEL: CONTAINER}
    spec = merged["spec"]
    assert spec["defaultAction"] == "SCMP_ACT_ERRNO" and spec["architectures"] == [
        "SCMP_ARCH_X86_64"
    ]
    names = allowed(merged)
    assert names == sorted(of_chdir | of_umask), (
        "the merged profile is not the union of the partials"
    )
    created = [
        r
        for r in agent.records()
        if str(r.get("msg", "")).startswith(f"merged 2 partial profiles of container {CONTAINER}")
    ]
    assert created, "the enricher did not say it merged"

    # 4. the merged profile runs both workloads, and nothing else
    installed_profile = on_runc_base(plane, webhook, NS, f"{NAME}-{CONTAINER}")
    bundle = Bundle(tmp_path / "bundle-merged", runc, busybox)
    for workload, said in ((CHDIR, "changed\n"), (UMASK, "masked\n")):
        again = bundle.run(workload, installed_profile)
        assert (again.returncode, again.stdout) == (0, said), again
    refused = bundle.run(["/bin/sh", "-c", "mkdir /tmp/never-recorded"], installed_profile)
    assert refused.returncode != 0 and "Operation not permitted" in refused.stderr, refused
