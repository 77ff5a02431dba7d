"""Install profiles the way a node does: ConfigMap YAML fed to the real ``python -m nodesync``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from hooks.api.configmaps import configmap_metadata
from tests.helpers.owners import owned

REPO = Path(__file__).parents[2]

NAMESPACE = "node-tests"


def configmap_yaml(namespace: str, name: str, profile: dict[str, Any]) -> dict[str, Any]:
    metadata = configmap_metadata("SeccompProfile", namespace, name)
    return owned(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {"profile.json": json.dumps(profile, indent=2)},
        }
    )


class Installer:
    """Runs the real ``python -m nodesync --from-dir ... --once`` on a folder of ConfigMaps."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "configmaps"
        self.kubelet_dir = root / "kubelet"
        self.folder.mkdir(parents=True)

    def install(
        self, profiles: dict[str, dict[str, Any]], namespace: str = NAMESPACE
    ) -> dict[str, Any]:
        documents = [configmap_yaml(namespace, name, body) for name, body in profiles.items()]
        (self.folder / "profiles.yaml").write_text(yaml.safe_dump_all(documents))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "nodesync",
                "--from-dir",
                str(self.folder),
                "--kubelet-dir",
                str(self.kubelet_dir),
                "--once",
                "--metrics-bind",
                "",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stderr
        summary: dict[str, Any] = json.loads(done.stdout)
        return summary
