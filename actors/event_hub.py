"""The event hub: one named, detached, async Ray actor around :class:`predator.event_log.EventStore`.

It restarts itself when it dies (``max_restarts=-1``); the constructor replays the journal, so the
sequence continues and history survives. Reads and deduplicated batch publishes are retried across a
restart (``max_task_retries``); a plain :meth:`EventHub.publish` is not, since it could store twice.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import ray

from predator.event_log import EventStore
from predator.settings import Settings
from serve_apps.metrics import count_events_published

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 30.0


def journal_dir(settings: Settings) -> Path:
    return (settings.event_journal_dir or settings.data_dir / "events").resolve()


@ray.remote
class EventHub:
    """Channels with per-channel seqs, bounded history, a journal, long-poll reads."""

    def __init__(self, settings: Settings):
        self._store = EventStore.open(
            journal_dir(settings), settings.event_channels, settings.event_history,
            rotate_bytes=int(settings.event_journal_rotate_mb * (1 << 20)),
            keep_segments=settings.event_journal_keep_segments,
            fsync=settings.event_fsync, fsync_interval_s=settings.event_fsync_interval_s)
        self._read_limit = settings.event_read_limit
        self._started = time.time()
        self._restarted = ray.get_runtime_context().was_current_actor_reconstructed
        self._syncer: asyncio.Task | None = None

    @ray.method(max_task_retries=0)
    async def publish(self, channel: str, type: str, payload: dict | None = None, source: str = "",
                      ts: float | None = None) -> int:
        """Store one event; return its seq. ValueError for an unknown channel."""
        self._ensure_syncer()
        seq = self._store.publish(channel, type, payload, source, ts)
        count_events_published([channel])
        return seq

    async def publish_batch(self, records: list[dict]) -> list[int | None]:
        """Store publisher records (see :class:`predator.events.EventPublisher`); seqs, None = dropped."""
        self._ensure_syncer()
        seqs = self._store.publish_batch(records)
        count_events_published(r["channel"] for r, seq in zip(records, seqs) if seq is not None)
        return seqs

    async def read(self, channels: dict[str, int] | list[str], since: int | None = None,
                   timeout: float = 0.0, limit: int | None = None) -> dict:
        """Events after ``since`` (or per-channel cursors ``{channel: since}``), waiting up to
        ``timeout`` s for one; ``since=None`` waits for the next. Returns ``{events, gaps, heads}``."""
        self._ensure_syncer()
        heads = self._store.log.heads()
        if not isinstance(channels, dict):
            channels = {c: heads.get(c, 0) if since is None else since for c in channels}
        result = await self._store.log.wait(channels, timeout, limit or self._read_limit)
        return result.to_dict()

    async def stats(self) -> dict:
        """Per-channel seqs and history, journal size, duplicates dropped, uptime, restart flag."""
        return {**self._store.stats(), "uptime_s": time.time() - self._started, "restarted": self._restarted}

    def _ensure_syncer(self) -> None:
        # __init__ runs outside the event loop, so the fsync timer starts with the first call.
        if self._syncer is None:
            self._syncer = asyncio.get_running_loop().create_task(self._sync_forever())

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self._store.journal.fsync_interval_s)
            self._store.journal.sync_if_due()


def get_hub(settings: Settings):
    """The running hub's handle; ValueError when there is none."""
    return ray.get_actor(settings.event_hub_name, namespace=settings.event_hub_namespace)


def get_or_create_hub(settings: Settings):
    """The hub's handle, creating the detached actor if it does not exist yet."""
    settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
    return EventHub.options(
        name=settings.event_hub_name, namespace=settings.event_hub_namespace, lifetime="detached",
        get_if_exists=True, max_restarts=-1, max_task_retries=-1, num_cpus=0,
        max_concurrency=10_000,  # long polls from every gateway replica wait concurrently
    ).remote(settings)


def connect_publisher(settings: Settings):
    """The transport of :func:`predator.events.publish_event`: a blocking ``send(batch)`` to the hub.

    Raises (and the publisher buffers) when Ray is not initialised here or the hub does not exist.
    """
    if not ray.is_initialized():
        raise ConnectionError("Ray is not initialised in this process")
    hub = get_hub(settings)

    def send(batch: list[dict]) -> None:
        ray.get(hub.publish_batch.remote(batch), timeout=SEND_TIMEOUT_S)

    return send
