"""EventLog and EventStore without Ray: ordering, history bounds, gaps, waiting, replay, dedup."""
import asyncio

import pytest

from predator.event_log import EventLog, EventStore, Gap
from predator.events import Event

CHANNELS = ["jobs", "ingest", "security"]


def ev(channel, seq):
    return Event(channel, seq, "t", float(seq), "test", {"n": seq})


def store(tmp_path, capacity=5, **kw):
    return EventStore.open(tmp_path / "j", CHANNELS, capacity, **kw)


def test_seqs_increase_per_channel_and_reads_are_ordered(tmp_path):
    s = store(tmp_path, capacity=100)
    seqs = [s.publish(c, "t", {"i": i}) for i, c in enumerate(["jobs", "ingest", "jobs", "jobs", "ingest"])]
    assert seqs == [1, 1, 2, 3, 2]
    result = s.log.read({"jobs": 0, "ingest": 1}, limit=10)
    assert [(e.channel, e.seq) for e in result.events] == [("jobs", 1), ("jobs", 2), ("jobs", 3), ("ingest", 2)]
    assert result.gaps == [] and result.heads == {"jobs": 3, "ingest": 2, "security": 0}


def test_history_is_bounded_and_readers_behind_get_a_gap():
    log = EventLog(CHANNELS, capacity=5)
    log.add(ev("jobs", i) for i in range(1, 13))
    assert log.stats()["jobs"] == {"last_seq": 12, "first_held": 8, "held": 5, "appended": 12}
    result = log.read({"jobs": 3}, limit=100)
    assert result.gaps == [Gap("jobs", 4, 7)]
    assert [e.seq for e in result.events] == [8, 9, 10, 11, 12]
    assert not log.read({"jobs": 7}, limit=100).gaps  # 8.. all held
    assert [e.seq for e in log.read({"jobs": 9}, limit=2).events] == [10, 11]
    assert not log.read({"jobs": 12}, limit=100)


def test_reset_and_jumps_report_what_is_missing():
    log = EventLog(CHANNELS, capacity=10)
    log.add([ev("jobs", 1), ev("jobs", 2), ev("jobs", 6)])  # a mirror that lost 3..5
    assert log.read({"jobs": 0}, 10).gaps == [Gap("jobs", 1, 5)]
    log.reset("ingest", 40)
    result = log.read({"ingest": 10}, 10)
    assert result.gaps == [Gap("ingest", 11, 40)] and not result.events
    assert log.add([ev("jobs", 6)]) == 0  # duplicates are ignored


def test_bad_reads_raise():
    log = EventLog(CHANNELS, capacity=3)
    with pytest.raises(ValueError, match="unknown channel"):
        log.read({"nope": 0}, 10)
    with pytest.raises(ValueError, match=">= 0"):
        log.read({"jobs": -1}, 10)


def test_wait_wakes_on_append_and_times_out():
    async def scenario():
        log = EventLog(CHANNELS, capacity=10)
        waiter = asyncio.create_task(log.wait({"jobs": 0}, timeout=5, limit=10))
        await asyncio.sleep(0.01)
        log.add([ev("ingest", 1)])  # another channel: keeps waiting
        await asyncio.sleep(0.01)
        assert not waiter.done()
        log.add([ev("jobs", 1)])
        result = await asyncio.wait_for(waiter, 1)
        assert [e.seq for e in result.events] == [1]
        empty = await log.wait({"jobs": 1}, timeout=0.05, limit=10)
        assert not empty and not log._watchers

    asyncio.run(scenario())


def test_restart_replays_history_and_continues_the_sequence(tmp_path):
    s = store(tmp_path, capacity=3)
    for i in range(7):
        s.publish("jobs", "progress", {"i": i})
    s.publish("security", "login")
    s.close()
    again = store(tmp_path, capacity=3)
    assert again.log.heads() == {"jobs": 7, "ingest": 0, "security": 1}
    assert [e.payload["i"] for e in again.log.read({"jobs": 0}, 10).events] == [4, 5, 6]
    assert again.publish("jobs", "progress") == 8


def test_resent_batches_are_stored_once(tmp_path):
    s = store(tmp_path)
    batch = [{"channel": "jobs", "type": "t", "payload": {}, "origin": ["pub", i]} for i in (1, 2)]
    assert s.publish_batch(batch) == [1, 2]
    assert s.publish_batch(batch + [{"channel": "jobs", "type": "t", "origin": ["pub", 3]}]) == [None, None, 3]
    s.close()
    again = store(tmp_path)  # dedup survives a restart too
    assert again.publish_batch(batch) == [None, None]
    assert again.stats()["duplicates"] == 2


def test_invalid_records_are_rejected_without_failing_the_batch(tmp_path):
    s = store(tmp_path)
    seqs = s.publish_batch([{"channel": "nope", "type": "t"}, {"channel": "jobs"},
                            {"channel": "jobs", "type": "t", "payload": {"when": object()}}])
    assert seqs == [None, None, 1] and s.rejected == 2
    with pytest.raises(ValueError):
        s.publish("nope", "t")


def test_checkpoints_keep_seqs_after_old_segments_are_deleted(tmp_path):
    s = store(tmp_path, capacity=2, rotate_bytes=400, keep_segments=2)
    s.publish("security", "audit")
    for i in range(40):
        s.publish("jobs", "progress", {"i": i})
    s.close()
    assert len(s.journal.segments()) == 2
    again = store(tmp_path, capacity=2)
    assert again.log.heads()["security"] == 1 and again.log.heads()["jobs"] == 40
    assert again.publish("security", "audit") == 2
    assert [e.seq for e in again.log.read({"jobs": 0}, 10).events] == [39, 40]
