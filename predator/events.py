"""Platform events: the :class:`Event` record and the publisher every component uses.

Publishing is one line from a driver, task, actor or deployment::

    from predator.events import publish_event
    publish_event("ingest", "progress", {"rows": 5000, "quarantined": 3}, source="ingest")

The call only appends to a bounded in-process buffer and returns; a background thread ships batches to
the event hub. When the hub is down or not created yet, events wait in the buffer (the oldest are
dropped, and counted, once it is full); the caller never blocks on the hub and never sees an exception.
Each event carries an origin ``(publisher id, publisher seq)`` so the hub drops re-sent duplicates:
a batch whose acknowledgement was lost to a hub restart is sent again without appearing twice.

This module never imports Ray: the default transport (:data:`DEFAULT_CONNECTOR`) is loaded by name on
the first flush, and tests pass their own ``connect``.
"""
from __future__ import annotations

import atexit
import importlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from predator.auth import Role

log = logging.getLogger(__name__)

# Minimum role to read a channel; unlisted channels need `viewer`. The issue: "viewers see every
# channel but security".
CHANNEL_MIN_ROLE: dict[str, Role] = {"security": Role.analyst}

# "module:function" returning a `send(batch)` callable; resolved lazily so the core stays Ray-free.
DEFAULT_CONNECTOR = "actors.event_hub:connect_publisher"

Send = Callable[[list[dict]], Any]


@dataclass(frozen=True, slots=True)
class Event:
    """One event. ``seq`` strictly increases per channel and is assigned by the hub."""

    channel: str
    seq: int
    type: str
    ts: float
    source: str = ""
    payload: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"channel": self.channel, "seq": self.seq, "type": self.type, "ts": self.ts,
                "source": self.source, "payload": self.payload}

    @classmethod
    def from_dict(cls, data: dict) -> "Event":
        return cls(data["channel"], int(data["seq"]), data["type"], float(data["ts"]),
                   data.get("source") or "", data.get("payload") or {})


def may_read(role: Role, channel: str) -> bool:
    """Whether a key of ``role`` may read ``channel``."""
    return role >= CHANNEL_MIN_ROLE.get(channel, Role.viewer)


_PLAIN = (str, int, float, bool, type(None))


def jsonable(payload: Any) -> dict:
    """``payload`` as a JSON-safe dict (non-JSON values become strings), so that no batch can fail
    to serialise on its way to the hub or into the journal."""
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        payload = {"value": payload}
    if all(isinstance(k, str) and isinstance(v, _PLAIN) for k, v in payload.items()):
        return payload
    return json.loads(json.dumps(payload, default=str))


class EventPublisher:
    """A bounded, non-blocking queue of events in front of the hub, drained by one daemon thread.

    ``connect()`` returns a ``send(batch)`` callable that returns once the hub has stored the batch
    and raises when it cannot; a failure re-sends the same batch after a backoff (the hub dedups).
    """

    def __init__(self, connect: Callable[[], Send], channels: Iterable[str], buffer_size: int = 10_000,
                 batch_size: int = 500, source: str | None = None, backoff_s: tuple[float, float] = (0.2, 5.0)):
        self._connect = connect
        self._channels = frozenset(channels)
        self._buffer: deque[dict] = deque(maxlen=buffer_size)
        self._batch_size = batch_size
        self._backoff = backoff_s
        self.source = source or f"{socket.gethostname()}/{os.getpid()}"
        self.id = uuid.uuid4().hex[:16]
        self._pseq = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._send: Send | None = None
        self._in_flight = 0
        self.sent = self.dropped = self.invalid = self.failures = 0
        self.hub_up: bool | None = None

    def publish(self, channel: str, type: str, payload: Any = None, source: str | None = None) -> bool:
        """Queue one event; True when queued. Never raises and never waits for the hub."""
        try:
            if channel not in self._channels:
                self.invalid += 1
                log.warning("event on unknown channel %r dropped (type %r)", channel, type)
                return False
            with self._cond:
                self._pseq += 1
                if len(self._buffer) == self._buffer.maxlen:
                    self.dropped += 1  # deque(maxlen) evicts the oldest on append
                self._buffer.append({"channel": channel, "type": str(type), "payload": jsonable(payload),
                                     "source": source or self.source, "ts": time.time(),
                                     "origin": [self.id, self._pseq]})
                self._cond.notify()
            if self._thread is None:
                self._start()
            return True
        except Exception:  # a publisher bug must not take its caller down
            log.exception("event publish failed")
            return False

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far reached the hub; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._buffer or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def stats(self) -> dict:
        return {"id": self.id, "buffered": len(self._buffer), "sent": self.sent, "dropped": self.dropped,
                "invalid": self.invalid, "failures": self.failures, "hub_up": self.hub_up}

    def _start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="event-publisher", daemon=True)
                self._thread.start()

    def _next_batch(self) -> list[dict]:
        with self._cond:
            while not self._buffer:
                self._cond.wait()
            batch = [self._buffer[i] for i in range(min(self._batch_size, len(self._buffer)))]
            self._in_flight = len(batch)
            return batch

    def _acknowledge(self, batch: list[dict]) -> None:
        # Remove by publisher seq, not by count: the deque may have evicted part of the batch meanwhile.
        last = batch[-1]["origin"][1]
        with self._cond:
            while self._buffer and self._buffer[0]["origin"][1] <= last:
                self._buffer.popleft()
            self._in_flight = 0
            self._cond.notify_all()

    def _run(self) -> None:
        delay = self._backoff[0]
        while True:
            batch = self._next_batch()
            try:
                if self._send is None:
                    self._send = self._connect()
                self._send(batch)
            except Exception as err:  # hub down, restarting, not created yet, Ray not initialised
                self._send = None
                self.failures += 1
                if self.hub_up is not False:
                    log.warning("event hub unreachable (%s); buffering", err)
                self.hub_up = False
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()
                time.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            self.sent += len(batch)
            self.hub_up, delay = True, self._backoff[0]
            self._acknowledge(batch)


_default: EventPublisher | None = None
_default_lock = threading.Lock()


def _load_connector(settings) -> Send:
    module, _, name = DEFAULT_CONNECTOR.partition(":")
    return getattr(importlib.import_module(module), name)(settings)


def default_publisher() -> EventPublisher:
    """This process's publisher, built from settings on first use."""
    global _default
    with _default_lock:
        if _default is None:
            from predator.settings import get_settings

            settings = get_settings()
            _default = EventPublisher(lambda: _load_connector(settings), settings.event_channels,
                                      buffer_size=settings.event_publisher_buffer)
            atexit.register(_default.flush, 2.0)
        return _default


def publish_event(channel: str, type: str, payload: Any = None, *, source: str | None = None) -> bool:
    """Publish one event to the hub without waiting; True when queued. Never raises."""
    try:
        return default_publisher().publish(channel, type, payload, source)
    except Exception:
        log.exception("event publisher unavailable")
        return False
