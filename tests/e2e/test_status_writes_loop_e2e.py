"""The profile controllers set ``parentResource.ignoreStatusChanges``: Metacontroller's own status
write is not followed by another sync of the profile (one sync a profile fewer), while every
change of what the hooks read (spec, labels, annotations, deletion) still syncs it. Against the
real API server with the emulated Metacontroller loop, which filters parent updates as
Metacontroller's ``updateParentObject`` does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooks.api import GROUP
from tests.helpers.controlplane import ControlPlane
from tests.helpers.metacontroller_common import api_for
from tests.helpers.metacontroller_loop import Metacontroller
from tests.helpers.recording_env import until as eventually

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent.parent
BASE = REPO / "metacontroller" / "base"
NS = "status-writes-e2e"
PROFILES = f"seccompprofiles.{GROUP}"
CONTROLLER = "seccompprofile-controller"
SECCOMP = yaml.safe_load((BASE / f"{CONTROLLER}.yaml").read_text())


def test_profile_controllers_ignore_their_status_writes() -> None:
    for name in ("seccompprofile-controller", "selinuxprofile-controller"):
        for manifest in yaml.safe_load_all((BASE / f"{name}.yaml").read_text()):
            parent = manifest["spec"]["parentResource"]
            assert parent["ignoreStatusChanges"] is True, manifest["metadata"]["name"]


def _message(plane: ControlPlane, name: str) -> Any:
    got = json.loads(plane.kubectl("get", PROFILES, name, "-n", NS, "-o", "json").stdout)
    [ready] = (got.get("status") or {}).get("conditions") or [{}]
    return ready.get("message")


def test_a_status_write_is_not_synced_a_change_of_the_profile_is(
    installed: ControlPlane, hook_server: str
) -> None:
    plane = installed
    plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    try:
        with Metacontroller(api_for(plane), hook_server, [SECCOMP], workers=2) as loop:
            plane.apply(
                {
                    "apiVersion": f"{GROUP}/v1beta1",
                    "kind": "SeccompProfile",
                    "metadata": {"name": "p", "namespace": NS},
                    "spec": {"defaultAction": "SCMP_ACT_LOG"},
                }
            )

            def answered() -> None:
                assert _message(plane, "p") not in (None, "forged"), _message(plane, "p")

            eventually("the profile's status written", answered)
            loop.wait_idle()
            answer = _message(plane, "p")
            before = loop.sync_count(CONTROLLER, f"{NS}/p")

            # a status write alone (what Metacontroller's own is): no sync
            forged = {
                "type": "Ready",
                "status": "False",
                "reason": "Pending",
                "message": "forged",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
            patch = {"status": {"conditions": [forged]}}
            plane.kubectl(
                "patch", PROFILES, "p", "-n", NS, "--subresource=status", "--type=merge",
                "-p", json.dumps(patch),
            )  # fmt: skip
            assert _message(plane, "p") == "forged"
            loop.wait_idle()
            assert loop.sync_count(CONTROLLER, f"{NS}/p") == before

            # an annotation is a change of the profile: synced, and the answer written again
            plane.kubectl("annotate", PROFILES, "p", "-n", NS, "example.com/touched=1")
            eventually("the profile synced again", answered)
            loop.wait_idle()
            assert loop.sync_count(CONTROLLER, f"{NS}/p") > before
            assert _message(plane, "p") == answer
            loop.raise_errors(NS)
    finally:
        plane.kubectl("delete", "namespace", NS, "--wait=false", check=False)
