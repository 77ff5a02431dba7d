"""nodesync builds what it writes with no model (its process loads no pydantic, which would
cost every node about a third of nodesync's memory): these tests tie what it builds, and the
names it reads, to the API's models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hooks.api import nodekinds, nodestatuslabels, registry
from hooks.api.nodestatus import KIND as NODE_STATUS
from hooks.api.nodestatus import SecurityProfileNodeStatus
from hooks.api.profilestate import ProfileState
from nodesync.nodeio import reports
from nodesync.nodeio.outcomes import Outcome
from nodesync.nodeio.sources import Owner

ROOT = Path(__file__).resolve().parents[2]
OWNER = Owner(
    apiVersion="security-profiles-operator.x-k8s.io/v1beta1",
    kind="SeccompProfile",
    name="p",
    uid="0b7d3f6e-1c2a-4e1b-9a4f-2d6c8e0f1a2b",
)


def outcome(state: ProfileState, message: str | None, owner: Owner | None) -> Outcome:
    return Outcome(
        namespace="team-a",
        name="p" * 200,  # long enough to hash the object name and the profile-id label
        kind="SeccompProfile",
        state=state,
        message=message,
        changed=True,
        reason="SavedSeccompProfile",
        owner=owner,
    )


@pytest.mark.parametrize(
    "made",
    [
        outcome(ProfileState.INSTALLED, None, OWNER),
        outcome(ProfileState.ERROR, "cannot write the file: no space", OWNER),
        outcome(ProfileState.PENDING, None, None),
        outcome(ProfileState.TERMINATING, "", Owner("", "", "", "")),
    ],
)
def test_a_node_status_is_what_the_model_makes_of_it(made: Outcome) -> None:
    node = "node-" + "n" * 80  # longer than a label value
    built = reports.desired(made, node)
    assert SecurityProfileNodeStatus.model_validate(built).to_wire() == built
    assert (
        built["apiVersion"] == f"security-profiles-operator.x-k8s.io/{NODE_STATUS.storage_version}"
    )
    assert built["kind"] == NODE_STATUS.kind
    assert ("ownerReferences" in built["metadata"]) is (made.owner is OWNER)


def test_the_node_kinds_are_the_registrys() -> None:
    def facts(kinds: tuple[object, ...]) -> list[tuple[str, str, str]]:
        return [
            (k.kind, k.configmap_prefix, k.configmap_key)  # type: ignore[attr-defined]
            for k in kinds
        ]

    assert facts(nodekinds.NODE_KINDS) == facts(registry.NODE_KINDS)
    assert facts(nodekinds.SELINUX_KINDS) == facts(registry.SELINUX_KINDS)
    assert NODE_STATUS.kind == nodestatuslabels.KIND
    assert NODE_STATUS.storage_version == nodestatuslabels.STORAGE_VERSION


def test_spo_nodesync_loads_no_pydantic() -> None:
    """What ``spo nodesync`` imports to parse its command line and to run, in a fresh
    interpreter."""
    check = (
        "import sys\n"
        "from hooks.command import cli\n"
        "argv = ['--log-level', 'INFO', 'nodesync', '--node-name', 'n']\n"
        "cli.parser(cli._command_of(argv)).parse_args(argv)\n"
        "import nodesync.command.nodesync\n"
        "from nodesync.nodeio.requesting import KubernetesCluster\n"
        "from nodesync.nodeio.watching import Watcher\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0].startswith('pydantic')))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", check],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def test_the_other_commands_still_get_their_arguments() -> None:
    from hooks.command import cli

    argv = ["record", "-o", "f.yaml", "--", "true"]
    assert cli.parser(cli._command_of(argv)).parse_args(argv).output == "f.yaml"
    argv = ["log-enricher", "--state-dir", "/state"]
    assert cli.parser(cli._command_of(argv)).parse_args(argv).state_dir == "/state"
