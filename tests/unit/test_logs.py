"""Log lines: JSON for machines, one short line of text for a person at a terminal."""

from __future__ import annotations

import io
import json
import logging

import pytest

from hooks import logs


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "profile %s rejected", ("p",), None
    )
    record.__dict__.update(extra)
    return record


def test_text_line_names_the_object_and_the_reason() -> None:
    extra = {**logs.about(namespace="default", name="web"), "reason": "InvalidSeccompProfile"}
    line = logs.TextFormatter().format(_record(**extra))
    assert line == "warning default/web: profile p rejected (reason=InvalidSeccompProfile)"


def test_json_line_carries_the_same_fields() -> None:
    extra = {**logs.about(namespace="default", name="web"), "reason": "InvalidSeccompProfile"}
    line = json.loads(logs.JSONFormatter({"node": "n1"}).format(_record(**extra)))
    assert (line["namespace"], line["name"], line["reason"], line["node"]) == (
        "default",
        "web",
        "InvalidSeccompProfile",
        "n1",
    )
    assert line["msg"] == "profile p rejected"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "formatter"),
    [(_Terminal(), logs.TextFormatter), (io.StringIO(), logs.JSONFormatter)],
)
def test_configure_writes_text_to_a_terminal_and_json_elsewhere(
    monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, formatter: type[logging.Formatter]
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    monkeypatch.setattr("sys.stderr", stream)
    try:
        logs.configure("INFO")
        assert isinstance(root.handlers[0].formatter, formatter)
    finally:
        root.handlers[:], level = saved[0], saved[1]
        root.setLevel(level)
