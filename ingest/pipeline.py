"""The ingest pipeline on Ray Data.

read + validate + normalise (tasks, one per file, streaming) -> embed (actor pool) -> index (driver).

The driver is the only writer of the stores: embedded engines (tantivy, Qdrant edge) take one writer,
and a server backend gains nothing from more. Every row read leaves the pipeline either as a document
or as a quarantine record, so the summary's counts always balance.
"""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ingest.summary import IngestSummary
from predator.embedder import Embedder, document_text
from predator.normalise import Rejection, normalise_row
from predator.quarantine import QuarantineWriter
from predator.readers import ReaderError, read_rows
from predator.settings import Settings
from serve_apps.metrics import count_ingest_rows

OK, QUARANTINED = "ok", "quarantined"
_QUOTED = re.compile(r"'[^']*'")


def reason_kind(reason: str) -> str:
    """A reason with its quoted values blanked, so the summary groups like with like."""
    return _QUOTED.sub("'…'", reason)


def read_file(item: dict) -> Iterator[dict]:
    """One file in, one output row per row read: a normalised document or a quarantine record."""
    path = item["path"]
    try:
        rows = read_rows(Path(path))
        for raw in rows:
            yield _classify(raw)
    except ReaderError as err:
        # A file that cannot be opened at all is one quarantined entry with line 0.
        yield _quarantined(path, 0, f"unreadable file: {err}", {})


def _classify(raw) -> dict:
    result = normalise_row(raw)
    if isinstance(result, Rejection):
        return _quarantined(result.source, result.line, result.reason, result.row)
    doc = result.to_document()
    return {"status": OK, "source": raw.source, "line": raw.line, "doc": json.dumps(doc, ensure_ascii=False),
            "text": document_text(doc), "reason": "", "row": ""}


def _quarantined(source: str, line: int, reason: str, row: dict) -> dict:
    return {"status": QUARANTINED, "source": str(source), "line": int(line), "doc": "", "text": "",
            "reason": reason, "row": json.dumps(row, ensure_ascii=False, default=str)}


class EmbedBatch:
    """Actor-pool stage: embeds the documents of a batch; quarantined rows get a zero vector."""

    def __init__(self, model_path: str | None, threads: int, batch_size: int, max_tokens: int):
        self.embedder = Embedder(model_path, threads=threads, batch_size=batch_size, max_tokens=max_tokens)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = batch["status"] == OK
        vectors = np.zeros((len(ok), self.embedder.dim), dtype=np.float32)
        if ok.any():
            vectors[ok] = self.embedder.encode([str(t) for t in batch["text"][ok]])
        batch["vector"] = vectors
        return batch


def build_dataset(paths: list[Path], settings: Settings):
    """The lazy Ray Dataset of classified, embedded rows."""
    import ray.data

    # Small blocks let embedding start while a large file is still being read (streaming).
    ray.data.DataContext.get_current().target_max_block_size = settings.ingest_block_bytes
    files = ray.data.from_items([{"path": str(p)} for p in paths], override_num_blocks=max(1, len(paths)))
    rows = files.flat_map(read_file)
    return rows.map_batches(
        EmbedBatch,
        fn_constructor_kwargs={"model_path": settings.embedding_model, "threads": settings.torch_threads,
                               "batch_size": settings.embedding_batch_size,
                               "max_tokens": settings.embedding_max_tokens},
        batch_size=settings.embedding_batch_size * 4,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=settings.ingest_embed_actors),
        num_cpus=1,
    )


def run_ingest(paths: list[Path], settings: Settings, writer, on_progress: Callable[[IngestSummary], None] | None = None,
               progress_every: int = 2000) -> IngestSummary:
    """Run the pipeline into ``writer`` (an :class:`ingest.sink.IndexSink`); return the counted summary.

    Needs a connected Ray cluster (``ray.init`` done by the caller).
    """
    summary = IngestSummary(files=[str(p) for p in paths])
    started = time.monotonic()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    quarantine_path = settings.quarantine_dir / f"quarantine-{stamp}.jsonl"
    reasons: Counter[str] = Counter()
    next_report = progress_every
    with QuarantineWriter(quarantine_path) as quarantine:
        for batch in build_dataset(paths, settings).iter_batches(batch_size=settings.ingest_batch_size,
                                                                 batch_format="numpy"):
            ok = batch["status"] == OK
            docs = [json.loads(d) for d in batch["doc"][ok]]
            if docs:
                writer.upsert(docs, batch["vector"][ok])
            for i in np.flatnonzero(~ok):
                reason = str(batch["reason"][i])
                quarantine.write(Rejection(source=str(batch["source"][i]), line=int(batch["line"][i]),
                                           reason=reason, row=json.loads(batch["row"][i])))
                reasons[reason_kind(reason)] += 1
            summary.rows_read += len(ok)
            summary.rows_indexed += len(docs)
            summary.rows_quarantined += int((~ok).sum())
            count_ingest_rows(indexed=len(docs), quarantined=int((~ok).sum()))
            summary.seconds = time.monotonic() - started
            if on_progress and summary.rows_read >= next_report:
                next_report += progress_every
                on_progress(summary)
    summary.index_version = writer.finish()
    summary.risk_levels = writer.risk_levels
    summary.risk_seconds = round(writer.risk_seconds, 2)
    summary.seconds = time.monotonic() - started
    summary.reasons = dict(reasons)
    summary.quarantine_path = str(quarantine_path) if summary.rows_quarantined else None
    if not summary.rows_quarantined:
        quarantine_path.unlink(missing_ok=True)
    return summary
