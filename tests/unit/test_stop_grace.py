"""SIGTERM stops the node agents after their grace (changes seen meanwhile are applied); SIGINT
and a second SIGTERM stop them at once."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from nodesync.command.running import stop_on_signals


@pytest.fixture
def handlers() -> Iterator[None]:
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def _signal(number: int) -> None:
    os.kill(os.getpid(), number)
    time.sleep(0.01)  # the handler runs in the main thread between bytecodes


def test_sigterm_stops_after_the_grace(handlers: None) -> None:
    stop, interrupted = threading.Event(), threading.Event()
    stop_on_signals(stop, interrupted.set, grace=0.3)
    _signal(signal.SIGTERM)
    assert not stop.is_set() and not interrupted.is_set()
    assert stop.wait(2.0) and interrupted.is_set()


def test_a_second_sigterm_stops_at_once(handlers: None) -> None:
    stop = threading.Event()
    stop_on_signals(stop, grace=30.0)
    _signal(signal.SIGTERM)
    assert not stop.is_set()
    _signal(signal.SIGTERM)
    assert stop.is_set()


def test_sigint_stops_at_once(handlers: None) -> None:
    stop = threading.Event()
    stop_on_signals(stop, grace=30.0)
    _signal(signal.SIGINT)
    assert stop.is_set()


def test_no_grace_stops_at_once(handlers: None) -> None:
    stop = threading.Event()
    stop_on_signals(stop)
    _signal(signal.SIGTERM)
    assert stop.is_set()
