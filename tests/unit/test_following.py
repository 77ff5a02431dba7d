"""Following a log like tail -F: complete lines, rotation, truncation, restart at the saved
offset."""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from nodesync.enricher.following import Follower, _may_hold_longer
from nodesync.enricher.state import Position, StateFile


def append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def lines_of(first: int, last: int) -> list[str]:
    return [f"line {n} " + "x" * (n % 37) for n in range(first, last)]


def text_of(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def drain(follower: Follower, rounds: int = 5) -> list[str]:
    """Everything available now (a few empty polls in a row mean nothing more)."""
    got: list[str] = []
    empty = 0
    while empty < rounds:
        batch = follower.poll()
        if batch:
            got.extend(batch)
            empty = 0
        else:
            empty += 1
    follower.commit()
    return got


def test_fresh_start_begins_at_the_end(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text(text_of(lines_of(0, 5)))
    follower = Follower(log)
    assert drain(follower) == []
    append(log, text_of(lines_of(5, 8)))
    assert drain(follower) == lines_of(5, 8)
    follower.close()


def test_only_complete_lines_are_delivered(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text("old\nhalf-writ")  # a fresh start in the middle of a line: that line is next
    follower = Follower(log)
    assert drain(follower) == []
    append(log, "ten\nsecond")
    assert drain(follower) == ["half-written"]
    append(log, " part\n")
    assert drain(follower) == ["second part"]
    follower.close()


def test_a_file_that_appears_later_is_read_from_its_beginning(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    follower = Follower(log)
    assert follower.poll() == []
    log.write_text("first\nsecond\n")
    assert drain(follower) == ["first", "second"]
    follower.close()


def test_rotation_by_rename_finishes_the_old_file_first(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text("")
    follower = Follower(log, rotation_grace=0.0)
    append(log, text_of(lines_of(0, 3)))
    assert drain(follower) == lines_of(0, 3)
    append(log, text_of(lines_of(3, 5)))  # not read yet when the file is renamed
    log.rename(tmp_path / "audit.log.1")
    append(tmp_path / "audit.log.1", text_of(lines_of(5, 6)))  # the writer had not reopened yet
    assert drain(follower) == lines_of(3, 6)  # the path is missing: keep reading the old file
    log.write_text(text_of(lines_of(6, 9)))
    assert drain(follower) == lines_of(6, 9)
    assert follower.rotations == 1
    follower.close()


def test_files_rotated_twice_between_two_reads_are_all_read_in_order(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text("")
    follower = Follower(log, rotation_grace=0.0)
    append(log, "a1\n")
    assert drain(follower) == ["a1"]
    append(log, "a2\n")
    log.rename(tmp_path / "audit.log.2")
    log.write_text("b1\nb2\n")
    log.rename(tmp_path / "audit.log.1")
    log.write_text("c1\n")
    assert drain(follower) == ["a2", "b1", "b2", "c1"]
    append(log, "c2\n")
    assert drain(follower) == ["c2"]
    follower.close()


def test_rotation_by_copytruncate(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text("")
    follower = Follower(log)
    append(log, text_of(lines_of(0, 4)))
    assert drain(follower) == lines_of(0, 4)
    shutil.copyfile(log, tmp_path / "audit.log.1")
    with log.open("r+") as file:
        file.truncate(0)
    append(log, "a\n")
    assert drain(follower) == ["a"]
    assert follower.truncations == 1
    follower.close()


def test_truncated_and_regrown_past_the_offset_is_noticed(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text("")
    follower = Follower(log)
    append(log, "short\n")
    assert drain(follower) == ["short"]
    with log.open("r+") as file:
        file.truncate(0)
    append(log, text_of(lines_of(0, 10)))  # longer than what was read before the poll sees it
    assert drain(follower) == lines_of(0, 10)
    assert follower.truncations == 1
    follower.close()


def test_restart_resumes_at_the_saved_offset(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    state = StateFile(tmp_path / "state" / "offset.json")
    log.write_text(text_of(lines_of(0, 3)))
    first = Follower(log, state)
    assert drain(first) == []
    append(log, text_of(lines_of(3, 6)))
    assert drain(first) == lines_of(3, 6)
    first.checkpoint()
    first.close()
    (saved,) = state.load()
    assert saved.offset == log.stat().st_size
    assert saved.inode == log.stat().st_ino
    append(log, text_of(lines_of(6, 9)))  # written while nodesync was down
    second = Follower(log, state)
    assert drain(second) == lines_of(6, 9)
    second.close()


def test_a_batch_not_consumed_is_delivered_again_after_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    state = StateFile(tmp_path / "offset.json")
    log.write_text("")
    first = Follower(log, state)
    assert first.poll() == []
    first.checkpoint()
    append(log, "one\ntwo\n")
    assert first.poll() == ["one", "two"]
    first.checkpoint()  # not committed: the caller has not finished with it
    first.close()
    second = Follower(log, state)
    assert drain(second) == ["one", "two"]
    second.close()


def test_restart_after_a_rotation_while_stopped_reads_the_rest_of_the_old_file(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.log"
    state = StateFile(tmp_path / "offset.json")
    log.write_text("")
    first = Follower(log, state)
    append(log, text_of(lines_of(0, 2)))
    assert drain(first) == lines_of(0, 2)
    first.checkpoint()
    first.close()
    append(log, text_of(lines_of(2, 4)))
    log.rename(tmp_path / "audit.log.1")
    log.write_text(text_of(lines_of(4, 6)))
    second = Follower(log, state, rotation_grace=0.0)
    assert drain(second) == lines_of(2, 6)
    second.close()


def test_restart_when_the_old_file_is_gone_reads_the_new_one_from_its_beginning(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.log"
    state = StateFile(tmp_path / "offset.json")
    log.write_text("x\n")
    first = Follower(log, state)
    drain(first)
    append(log, "y\n")
    assert drain(first) == ["y"]
    first.checkpoint()
    first.close()
    log.rename(tmp_path / "gone")
    (tmp_path / "gone").unlink()
    log.write_text("new\n")
    second = Follower(log, state)
    assert drain(second) == ["new"]
    second.close()


def test_restart_on_a_file_replaced_in_place_starts_over(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    state = StateFile(tmp_path / "offset.json")
    log.write_text("")
    first = Follower(log, state)
    append(log, "aaaa\nbbbb\n")
    assert drain(first) == ["aaaa", "bbbb"]
    first.checkpoint()
    first.close()
    with log.open("r+") as file:  # same inode, other content, longer than the offset
        file.truncate(0)
        file.write("cccc\ndddd\neeee\n")
    second = Follower(log, state)
    assert drain(second) == ["cccc", "dddd", "eeee"]
    second.close()


def test_state_file_is_replaced_atomically_and_tolerates_garbage(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "offset.json")
    assert state.load() == ()
    state.save([Position(1, 2, 3, "0a"), Position(1, 5, 0, "")])
    assert state.load() == (Position(1, 2, 3, "0a"), Position(1, 5, 0, ""))
    assert [p.name for p in tmp_path.iterdir()] == ["offset.json"]  # no temporary left
    (tmp_path / "offset.json").write_text("{not json")
    assert state.load() == ()


class Writer(threading.Thread):
    """Appends numbered lines in uneven pieces, rotating the file every ``every`` lines."""

    def __init__(
        self, path: Path, count: int, every: int, mode: str, caught_up: threading.Event
    ) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.count = count
        self.every = every
        self.mode = mode
        self.caught_up = caught_up
        self.rotated = 0

    def run(self) -> None:
        rng = random.Random(7)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        for n in range(self.count):
            data = f"record {n} {'z' * rng.randrange(0, 120)}\n".encode()
            cut = rng.randrange(0, len(data))
            os.write(fd, data[:cut])  # a reader may see half a line
            os.write(fd, data[cut:])
            if n % self.every == self.every - 1:
                self.rotated += 1
                if self.mode == "rename":
                    os.rename(self.path, f"{self.path}.{self.rotated}")
                    os.close(fd)
                    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                else:
                    # copytruncate, once the reader has read everything (else copytruncate
                    # loses lines)
                    self.caught_up.clear()
                    self.caught_up.wait(30)
                    shutil.copyfile(self.path, f"{self.path}.1")
                    os.ftruncate(fd, 0)
        os.close(fd)


def follow_while_writing(tmp_path: Path, mode: str, restart_every: int) -> list[str]:
    log = tmp_path / "audit.log"
    log.write_text("")
    state = StateFile(tmp_path / "offset.json")
    count = 3000
    caught_up = threading.Event()
    writer = Writer(log, count, 250, mode, caught_up)
    got: list[str] = []
    follower = Follower(log, state, poll_interval=0.001, chunk_size=4096, rotation_grace=0.05)
    follower.poll()  # the fresh start is before the first line
    writer.start()
    polls = 0
    while writer.is_alive():
        polls += 1
        batch = follower.poll()
        got.extend(batch)
        if not batch:
            time.sleep(0.0002)  # let the writer run
            if mode == "copytruncate":
                follower.commit()
                position = follower.position
                if position is not None and position.offset == log.stat().st_size:
                    caught_up.set()
        if restart_every and polls % restart_every == 0:  # nodesync restarts
            follower.commit()
            follower.checkpoint()
            follower.close()
            follower = Follower(
                log, state, poll_interval=0.001, chunk_size=4096, rotation_grace=0.05
            )
    writer.join(30)
    got.extend(drain(follower))
    follower.close()
    assert writer.rotated == count // 250
    return got


def expected_records(count: int) -> list[int]:
    return list(range(count))


def numbers(got: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in got]


def test_no_loss_no_repeat_with_rename_rotation_under_concurrent_appends(tmp_path: Path) -> None:
    got = follow_while_writing(tmp_path, "rename", restart_every=0)
    assert numbers(got) == expected_records(3000)
    assert all(line.startswith("record ") for line in got)


def test_no_loss_no_repeat_with_copytruncate_under_concurrent_appends(tmp_path: Path) -> None:
    got = follow_while_writing(tmp_path, "copytruncate", restart_every=0)
    assert numbers(got) == expected_records(3000)


def test_no_loss_no_repeat_across_restarts_under_concurrent_appends(tmp_path: Path) -> None:
    """After a restart, files rotated while stopped are ordered by their times; files written
    and renamed within one tick of the file system's clock (a few ms here, never so for
    auditd's megabytes) tie, so only the order within each file is certain."""
    got = numbers(follow_while_writing(tmp_path, "rename", restart_every=97))
    assert sorted(got) == expected_records(3000)  # none lost, none repeated
    for rotated in range(0, 3000, 250):  # each file in order
        within = [n for n in got if rotated <= n < rotated + 250]
        assert within == list(range(rotated, rotated + 250))


def test_batches_stop_on_the_event_and_save_the_position(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text("before\n")
    state = StateFile(tmp_path / "offset.json")
    stop = threading.Event()
    follower = Follower(log, state, poll_interval=0.01)
    got: list[str] = []
    append_later = threading.Timer(0.1, append, (log, "after 1\nafter 2\n"))
    append_later.start()
    for batch in follower.batches(stop):
        got.extend(batch)
        if len(got) >= 2:
            stop.set()
    append_later.join()
    assert got == ["after 1", "after 2"]
    (saved,) = state.load()
    assert saved.offset == log.stat().st_size


@given(st.lists(st.integers(0, 300), max_size=30), st.integers(1, 120))
def test_a_line_longer_than_the_cap_is_always_looked_for(lengths: list[int], cap: int) -> None:
    """The cheap test of a batch (a find per half cap) never misses a line over the cap."""
    text = "\n".join("x" * length for length in lengths)
    if max(lengths, default=0) > cap:
        assert _may_hold_longer(text, cap)


def test_poll_text_is_poll_s_lines_joined(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text("")
    by_lines = Follower(log, chunk_size=64, max_line=40)
    by_text = Follower(log, chunk_size=64, max_line=40)
    rng = random.Random(5)
    with log.open("a") as file:
        for _ in range(200):
            file.write("y" * rng.choice([0, 1, 10, 39, 40, 41, 90]) + rng.choice(["\n", ""]))
    lines: list[str] = []
    texts: list[str] = []
    for _ in range(400):
        lines += by_lines.poll()
        text = by_text.poll_text()
        if text is not None:
            texts.append(text)
    assert lines and "\n".join(texts).split("\n") == lines
    assert by_text.long_lines == by_lines.long_lines > 0
    assert by_text.poll_text() is None
    by_lines.close()
    by_text.close()
