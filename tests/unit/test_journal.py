"""Journal: append and replay, rotation with headers, retention, torn tails, fsync policy."""
import json

import pytest

from predator import journal as journal_mod
from predator.journal import Journal


def lines(*records):
    return [json.dumps(r) for r in records]


def test_append_then_replay_in_order(tmp_path):
    j = Journal(tmp_path, header=lambda: {"checkpoint": 0})
    j.append(lines({"n": 1}, {"n": 2}))
    j.append(lines({"n": 3}))
    j.close()
    assert list(Journal(tmp_path).replay()) == [{"checkpoint": 0}, {"n": 1}, {"n": 2}, {"n": 3}]


def test_rotation_starts_segments_with_the_header_and_keeps_the_newest(tmp_path):
    count = iter(range(100))
    j = Journal(tmp_path, rotate_bytes=100, keep_segments=3, header=lambda: {"h": next(count)})
    for i in range(30):
        j.append(lines({"n": i, "pad": "x" * 20}))
    j.close()
    segments = j.segments()
    assert len(segments) == 3 and segments[-1].name > segments[0].name
    for path in segments:
        assert "h" in json.loads(path.read_text().splitlines()[0])
    replayed = [r["n"] for r in Journal(tmp_path).replay() if "n" in r]
    assert replayed == list(range(replayed[0], 30))  # a contiguous tail


def test_torn_tail_is_skipped_and_cut_off_on_reopen(tmp_path):
    j = Journal(tmp_path)
    j.append(lines({"n": 1}))
    j.close()
    path = j.segments()[-1]
    with path.open("ab") as f:
        f.write(b'{"n": 2, "half')  # a crash mid-write
    again = Journal(tmp_path)
    assert [r for r in again.replay() if "n" in r] == [{"n": 1}]
    again.append(lines({"n": 3}))
    again.close()
    assert [r for r in Journal(tmp_path).replay() if "n" in r] == [{"n": 1}, {"n": 3}]


def test_corrupt_lines_are_counted_not_fatal(tmp_path):
    (tmp_path / "events-00000001.jsonl").write_text('{"n": 1}\nnot json\n{"n": 2}\n')
    j = Journal(tmp_path)
    assert list(j.replay()) == [{"n": 1}, {"n": 2}] and j.corrupt_lines == 1


@pytest.mark.parametrize("policy, interval, expected", [("always", 1.0, 3), ("never", 1.0, 0),
                                                        ("interval", 3600, 0), ("interval", 0, 3)])
def test_fsync_policy(tmp_path, monkeypatch, policy, interval, expected):
    calls = []
    monkeypatch.setattr(journal_mod.os, "fsync", lambda fd: calls.append(fd))
    j = Journal(tmp_path, fsync=policy, fsync_interval_s=interval)
    for i in range(3):
        j.append(lines({"n": i}))
    assert len(calls) == expected


def test_unknown_policy_is_refused(tmp_path):
    with pytest.raises(ValueError):
        Journal(tmp_path, fsync="sometimes")
