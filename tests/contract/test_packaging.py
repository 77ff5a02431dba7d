"""What can be checked of the image and the README without a container engine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile_installs_like_the_readme_and_runs_spo_as_non_root() -> None:
    steps = _instructions()
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert re.search(r"python3 -m venv \S+ && \S+/pip install (--no-cache-dir )?\.", runs)
    readme = (ROOT / "README.md").read_text()
    assert "python3 -m venv .venv && .venv/bin/pip install ." in readme
    entrypoint = [json.loads(rest) for word, rest in steps if word == "ENTRYPOINT"]
    assert entrypoint == [["spo"]]
    user = [rest for word, rest in steps if word == "USER"][-1]
    assert user.split(":")[0] not in ("0", "root")
    copied = {rest.split()[0] for word, rest in steps if word == "COPY"}
    assert {"hooks", "nodesync", "pyproject.toml"} <= copied


def test_manifests_run_the_image_entry_point() -> None:
    hooks = (ROOT / "metacontroller" / "base" / "hooks.yaml").read_text()
    assert 'command: ["spo", "hooks"' in hooks


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    assert command in readme
    assert command in (ROOT / ".ci" / "run").read_text()


def test_spo_help_names_every_subcommand() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hooks.command.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for sub in ("hooks", "nodesync", "render", "crds"):
        assert sub in out.stdout
    for sub in ("hooks", "nodesync", "render", "crds"):
        sub_help = subprocess.run(
            [sys.executable, "-m", "hooks.command.cli", sub, "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "usage: spo " + sub in sub_help.stdout
