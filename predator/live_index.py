"""The search engine on the published index version, reopened when a newer version is published.

A search replica holds one :class:`LiveIndex`. Each request asks it for the engine; at most every
``check_interval_s`` it re-reads the tiny ``CURRENT`` file of the index layout and, when an ingest
has published a newer version, opens an engine on it. The previous engine stays open until the next
switch, so requests still running on it finish on a consistent snapshot.
"""
from __future__ import annotations

import threading
import time

from predator.analytics import AnalyticsTable
from predator.index_layout import LIVE, IndexLayout, records_path
from predator.search import SearchEngine, uses_index_layout
from predator.settings import Settings


class IndexNotReady(RuntimeError):
    """No index has been published yet: ingest something first."""


class LiveIndex:
    def __init__(self, settings: Settings, embedder, check_interval_s: float = 1.0):
        self.settings = settings
        self.embedder = embedder
        self.check_interval_s = check_interval_s
        self.layout = IndexLayout(settings.index_dir) if uses_index_layout(settings) else None
        self._lock = threading.Lock()
        self._engine: SearchEngine | None = None
        self._retired: SearchEngine | None = None
        self._version: str | None = None
        self._checked_at = 0.0
        self._table: tuple[str, AnalyticsTable] | None = None

    @property
    def version(self) -> str | None:
        return self._version

    def published_version(self) -> str | None:
        return self.layout.current() if self.layout else LIVE

    def engine(self) -> SearchEngine:
        """The engine on the newest published version; raises :class:`IndexNotReady` before any."""
        now = time.monotonic()
        if self._engine is None or now - self._checked_at >= self.check_interval_s:
            self._refresh(now)
        if self._engine is None:
            raise IndexNotReady(f"no index published under {self.settings.index_dir}: run the ingest job first")
        return self._engine

    def table(self) -> AnalyticsTable | None:
        """The records table of the served version (analytics), loaded once per version; None if absent."""
        self.engine()
        version = self._version
        if self._table is None or self._table[0] != version:
            path = records_path(self.settings.index_dir, version)
            if not path.exists():
                return None
            self._table = (version, AnalyticsTable.from_parquet(path))
        return self._table[1]

    def reload(self) -> str | None:
        """Check for a newer version now; returns the version served afterwards."""
        self._refresh(time.monotonic())
        return self._version

    def _refresh(self, now: float) -> None:
        with self._lock:
            self._checked_at = now
            published = self.published_version()
            if published is None or (published == self._version and self._engine is not None):
                return
            engine = SearchEngine.from_settings(self.settings, self.embedder,
                                                version=None if published == LIVE else published)
            if self._retired is not None:
                self._retired.close()
            self._retired, self._engine, self._version = self._engine, engine, published
