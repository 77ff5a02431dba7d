"""What Metacontroller's spo-pod-usage decorator does for the pods of a namespace, done by hand
for the tests that sync controllers one step at a time (``metacontroller_step``): each pod
labelled with what it uses (``hooks.cluster.podusage``), as a running Metacontroller does on
every pod event."""

from __future__ import annotations

import ssl
from pathlib import Path

import yaml

from tests.helpers.controlplane import ControlPlane
from tests.helpers.metacontroller_step import DecoratorStep

MANIFEST = (
    Path(__file__).resolve().parents[2] / "metacontroller" / "base" / "pod-usage-decorator.yaml"
)


def label_pods(
    plane: ControlPlane, hooks_base: str, namespace: str, *, context: ssl.SSLContext | None = None
) -> list[str]:
    """One decorator sync of every pod of ``namespace``; returns their names."""
    step = DecoratorStep(plane, hooks_base, yaml.safe_load(MANIFEST.read_text()), context=context)
    names = [
        str(p["metadata"]["name"])
        for p in plane.kubectl_json("get", "pods", "-n", namespace)["items"]
    ]
    for name in names:
        step.sync("v1", "Pod", namespace, name)
    return names
