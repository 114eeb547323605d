"""Per-channel event sequences with bounded history, gap reports and async waiting; plain Python.

:class:`EventLog` is the in-memory part, used by the hub and mirrored by every gateway replica.
:class:`EventStore` is the hub's whole state: the log plus the journal plus dedup of re-sent events.
A reader keeps a cursor per channel: the last ``seq`` it has. Reading returns the events after it; when
the history no longer holds some of them the reader gets a :class:`Gap` with the range it missed.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from predator.events import Event
from predator.journal import FsyncPolicy, Journal


@dataclass(frozen=True, slots=True)
class Gap:
    """Seqs ``first``..``last`` (inclusive) of ``channel`` are no longer held."""

    channel: str
    first: int
    last: int

    def to_dict(self) -> dict:
        return {"type": "gap", "channel": self.channel, "from": self.first, "to": self.last}


@dataclass
class ReadResult:
    events: list[Event] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    heads: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.events or self.gaps)

    def to_dict(self) -> dict:
        return {"events": [e.to_dict() for e in self.events], "gaps": [g.to_dict() for g in self.gaps],
                "heads": self.heads}

    @classmethod
    def from_dict(cls, data: dict) -> "ReadResult":
        return cls([Event.from_dict(e) for e in data["events"]],
                   [Gap(g["channel"], g["from"], g["to"]) for g in data["gaps"]], data["heads"])


class ChannelLog:
    """The newest ``capacity`` events of one channel in a ring indexed by ``seq % capacity``."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._ring: list[Event | None] = [None] * capacity
        self.last = 0    # newest seq ever assigned
        self._floor = 0  # nothing at or below this seq is held (after a reset)
        self.appended = 0

    @property
    def first_held(self) -> int:
        return max(self._floor + 1, self.last - self.capacity + 1)

    def __len__(self) -> int:
        return self.last - self.first_held + 1

    def add(self, event: Event) -> bool:
        """Hold ``event`` (its seq kept). False for a seq already passed; a jump ahead resets first."""
        if event.seq <= self.last:
            return False
        if event.seq != self.last + 1:
            self.reset(event.seq - 1)
        self._ring[event.seq % self.capacity] = event
        self.last = event.seq
        self.appended += 1
        return True

    def reset(self, last: int) -> None:
        """Forget everything and continue after ``last``: readers behind it get a gap."""
        self._ring = [None] * self.capacity
        self.last = self._floor = last

    def after(self, since: int, limit: int) -> tuple[Gap | None, list[Event]]:
        start = since + 1
        gap = None
        if start < self.first_held and start <= self.last:
            gap = (start, self.first_held - 1)
            start = self.first_held
        stop = min(self.last, start + limit - 1)
        return gap, [self._ring[seq % self.capacity] for seq in range(start, stop + 1)]


class EventLog:
    """Channels of bounded history; readers wait on :meth:`wait` or :meth:`watch`."""

    def __init__(self, channels: Iterable[str], capacity: int):
        self._channels = {name: ChannelLog(capacity) for name in channels}
        self._watchers: set[asyncio.Event] = set()

    @property
    def channels(self) -> list[str]:
        return list(self._channels)

    def channel(self, name: str) -> ChannelLog:
        try:
            return self._channels[name]
        except KeyError:
            raise ValueError(f"unknown channel {name!r}; channels: {', '.join(self._channels)}") from None

    def heads(self) -> dict[str, int]:
        return {name: log.last for name, log in self._channels.items()}

    def next_seq(self, channel: str) -> int:
        return self.channel(channel).last + 1

    def add(self, events: Iterable[Event]) -> int:
        """Hold events whose seq is already assigned (replay, mirrors); return how many were new."""
        added = sum(self.channel(e.channel).add(e) for e in events)
        if added:
            self._notify()
        return added

    def reset(self, channel: str, last: int) -> None:
        self.channel(channel).reset(last)
        self._notify()

    def read(self, cursors: Mapping[str, int], limit: int) -> ReadResult:
        """Events after each cursor (at most ``limit`` per channel) and the gaps before them."""
        result = ReadResult(heads=self.heads())
        for name, since in cursors.items():
            if since < 0:
                raise ValueError(f"since must be >= 0, got {since}")
            gap, events = self.channel(name).after(since, limit)
            if gap:
                result.gaps.append(Gap(name, *gap))
            result.events.extend(events)
        return result

    async def wait(self, cursors: Mapping[str, int], timeout: float, limit: int) -> ReadResult:
        """:meth:`read`, waiting up to ``timeout`` s for something to read (a long poll)."""
        result = self.read(cursors, limit)
        if result or timeout <= 0:
            return result
        wake = self.watch()
        try:
            async with asyncio.timeout(timeout):
                while not result:
                    await wake.wait()
                    wake.clear()
                    result = self.read(cursors, limit)
        except TimeoutError:
            pass
        finally:
            self.unwatch(wake)
        return result

    def watch(self) -> asyncio.Event:
        """An event set on every change (cleared by its owner); :meth:`unwatch` it when done."""
        wake = asyncio.Event()
        self._watchers.add(wake)
        return wake

    def unwatch(self, wake: asyncio.Event) -> None:
        self._watchers.discard(wake)

    def stats(self) -> dict:
        return {name: {"last_seq": log.last, "first_held": log.first_held, "held": len(log),
                       "appended": log.appended} for name, log in self._channels.items()}

    def _notify(self) -> None:
        for wake in self._watchers:
            wake.set()


class OriginTracker:
    """Newest publisher seq seen per publisher, for the newest ``max_publishers`` publishers."""

    def __init__(self, max_publishers: int = 4096):
        self._last: OrderedDict[str, int] = OrderedDict()
        self._max = max_publishers
        self.duplicates = 0

    def is_new(self, origin: list | None) -> bool:
        if not origin:
            return True
        publisher, pseq = origin
        if pseq <= self._last.get(publisher, 0):
            self.duplicates += 1
            return False
        return True

    def record(self, origin: list | None) -> None:
        if not origin:
            return
        publisher, pseq = origin
        self._last[publisher] = max(pseq, self._last.get(publisher, 0))
        self._last.move_to_end(publisher)
        while len(self._last) > self._max:
            self._last.popitem(last=False)

    def snapshot(self) -> dict[str, int]:
        return dict(self._last)


def _dumps(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)


class EventStore:
    """The hub's state. An event is journaled before anyone can read it, and its seq is never reused.

    Journal records are events (plus their ``origin``) and, at the start of each segment, a checkpoint
    ``{"checkpoint": {"heads": ..., "origins": ...}}`` so retained segments replay on their own.
    """

    def __init__(self, log: EventLog, journal: Journal, origins: OriginTracker | None = None):
        self.log = log
        self.journal = journal
        self.origins = origins or OriginTracker()
        self.rejected = 0
        journal.header = self._checkpoint
        self._replay()

    @classmethod
    def open(cls, directory: Path, channels: Iterable[str], capacity: int, rotate_bytes: int = 8 << 20,
             keep_segments: int = 4, fsync: FsyncPolicy = "interval", fsync_interval_s: float = 1.0):
        """Open (or create) the store in ``directory`` and replay its journal."""
        journal = Journal(directory, rotate_bytes, keep_segments, fsync, fsync_interval_s)
        return cls(EventLog(channels, capacity), journal)

    def publish(self, channel: str, type: str, payload: dict | None = None, source: str = "",
                ts: float | None = None) -> int:
        """Store one event and return its seq. Raises ValueError for an unknown channel."""
        self.log.channel(channel)
        (seq,) = self.publish_batch([{"channel": channel, "type": type, "payload": payload,
                                      "source": source, "ts": ts}])
        return seq

    def publish_batch(self, records: list[dict]) -> list[int | None]:
        """Store records ``{channel, type, payload, source, ts, origin}``; per record its seq, or None
        for a duplicate (origin already seen) or an invalid record (counted in ``rejected``)."""
        seqs: list[int | None] = []
        events: list[Event] = []
        lines: list[str] = []
        next_seq: dict[str, int] = {}
        for record in records:
            channel, origin = record.get("channel"), record.get("origin")
            if channel not in self.log.channels or not record.get("type"):
                self.rejected += 1
                seqs.append(None)
                continue
            if not self.origins.is_new(origin):
                seqs.append(None)
                continue
            seq = next_seq.get(channel) or self.log.next_seq(channel)
            next_seq[channel] = seq + 1
            line = _dumps({"channel": channel, "seq": seq, "type": str(record["type"]),
                           "ts": record.get("ts") or time.time(), "source": record.get("source") or "",
                           "payload": record.get("payload") or {}, "origin": origin})
            # The event readers get is the journaled one, so a replay gives back exactly the same.
            events.append(Event.from_dict(json.loads(line)))
            lines.append(line)
            self.origins.record(origin)
            seqs.append(seq)
        self.journal.append(lines)
        self.log.add(events)
        return seqs

    def stats(self) -> dict:
        return {"channels": self.log.stats(), "journal": self.journal.stats(),
                "duplicates": self.origins.duplicates, "rejected": self.rejected}

    def close(self) -> None:
        self.journal.close()

    def _checkpoint(self) -> dict:
        return {"checkpoint": {"heads": self.log.heads(), "origins": self.origins.snapshot()}}

    def _replay(self) -> None:
        for record in self.journal.replay():
            if "checkpoint" in record:
                self._apply_checkpoint(record["checkpoint"])
            elif record.get("channel") in self.log.channels:
                self.log.add([Event.from_dict(record)])
                self.origins.record(record.get("origin"))

    def _apply_checkpoint(self, checkpoint: dict) -> None:
        for channel, last in checkpoint.get("heads", {}).items():
            if channel in self.log.channels and last > self.log.channel(channel).last:
                self.log.reset(channel, last)
        for publisher, pseq in checkpoint.get("origins", {}).items():
            self.origins.record([publisher, pseq])
