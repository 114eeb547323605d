"""The ingest job's single writer: upserts documents and vectors, then publishes the index version.

With the embedded stores it writes into a fresh copy of the live version and publishes it only
when everything is committed: a failed ingest leaves the live index untouched, and search replicas
switch to the new version atomically. Server backends (OpenSearch, a Qdrant server) are written live.
"""
from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from ingest.risk_stage import rescore_stores
from predator.index_layout import LIVE, IndexLayout, records_path
from predator.search import open_stores, uses_index_layout
from predator.settings import Settings


class IndexSink:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.layout = IndexLayout(settings.index_dir) if uses_index_layout(settings) else None
        self.version: str | None = None
        self.stores = None
        self.written = 0
        self.risk_levels: dict[str, int] = {}
        self.risk_seconds = 0.0

    @classmethod
    @contextmanager
    def open(cls, settings: Settings) -> Iterator["IndexSink"]:
        """A sink that is aborted (its unpublished version removed) if the block raises."""
        sink = cls(settings)
        try:
            yield sink
        except BaseException:
            sink.abort()
            raise

    def _ensure_open(self, dim: int) -> None:
        if self.stores is not None:
            return
        if self.layout is not None:
            self.version, _ = self.layout.begin_version()
        self.stores = open_stores(self.settings, version=self.version, mode="write", dim=dim)

    def upsert(self, docs: list[dict], vectors: np.ndarray) -> None:
        """Write one batch; a record id already present is replaced, never duplicated."""
        self._ensure_open(vectors.shape[1])
        keyword, vector_store = self.stores
        keyword.upsert(docs)
        vector_store.upsert([d["id"] for d in docs], vectors, docs)
        self.written += len(docs)

    def finish(self) -> str | None:
        """Commit, score risk over all records, write the records table, publish; return the version.

        Server backends are written live: their version is ``"live"``.
        """
        if self.stores is None:
            return self.layout.current() if self.layout else LIVE
        keyword, vector_store = self.stores
        keyword.commit()
        vector_store.commit()
        if self.settings.risk_scoring:
            started = time.monotonic()
            outcome = rescore_stores(keyword, vector_store, self.settings)
            self.risk_seconds = time.monotonic() - started
            keyword.commit()
            vector_store.commit()
            self.risk_levels = outcome.levels
            self._write_records(outcome.documents)
        keyword.close()
        vector_store.close()
        self.stores = None
        if self.layout is None:
            return LIVE
        self.layout.publish(self.version)
        self.layout.prune(keep=self.settings.index_keep_versions)
        return self.version

    def _write_records(self, documents: list[dict]) -> None:
        """The version's records as one Parquet table: what the analytics endpoints aggregate."""
        import pandas as pd

        path = records_path(self.settings.index_dir, self.version or LIVE)
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame.from_records(documents).to_parquet(path, index=False)

    def abort(self) -> None:
        """Drop what was written to an unpublished version; the live version is untouched."""
        if self.stores is not None:
            for store in self.stores:
                store.close()
            self.stores = None
        if self.layout is not None and self.version and self.layout.current() != self.version:
            shutil.rmtree(self.layout.path(self.version), ignore_errors=True)
