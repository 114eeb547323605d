"""Risk scoring on Ray Data: statistics per block combined into one :class:`RiskStats`, then scoring.

Thin on purpose: the detectors live in :mod:`predator.risk`. Two shapes of dataset are accepted:
rows that *are* documents (``ray.data.read_parquet(records.parquet)``), or rows that carry a document
as JSON in one column (``doc_column="doc"``, as the ingest pipeline's rows do). Rows whose JSON column
is empty (quarantined rows) are passed through untouched.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Iterator

import pyarrow as pa

from predator.risk import RiskConfig, RiskScorer, RiskStats, SuggestMany, heading_title, suggester_fn

FLAG_TYPE = pa.list_(pa.struct([("detector", pa.string()), ("score", pa.float64()), ("reason", pa.string())]))


def _documents(batch: pa.Table, doc_column: str | None) -> list[dict | None]:
    if doc_column is None:
        return batch.to_pylist()
    return [json.loads(text) if text else None for text in batch.column(doc_column).to_pylist()]


def _partial_stats(batch: pa.Table, doc_column: str | None) -> pa.Table:
    docs = [d for d in _documents(batch, doc_column) if d]
    return pa.table({"stats": [json.dumps(RiskStats.from_documents(docs).to_dict())]})


def compute_stats(ds, doc_column: str | None = None) -> RiskStats:
    """:class:`RiskStats` of a whole Ray Dataset: one partial per block (in parallel), merged on the driver."""
    partials = ds.map_batches(_partial_stats, fn_kwargs={"doc_column": doc_column}, batch_format="pyarrow",
                              batch_size=None)
    stats = RiskStats()
    for row in partials.iter_rows():
        stats.merge(RiskStats.from_dict(json.loads(row["stats"])))
    return stats


class ScoreBatch:
    """Map-batches stage: sets ``risk_level`` and ``risk_flags`` on every document of a batch."""

    def __init__(self, stats: dict, config: RiskConfig, doc_column: str | None,
                 suggest_factory: Callable[[], SuggestMany] | None):
        suggest = suggest_factory() if suggest_factory else None
        self.scorer = RiskScorer(RiskStats.from_dict(stats), config, suggest, titles=heading_title)
        self.doc_column = doc_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        docs = _documents(batch, self.doc_column)
        present = [d for d in docs if d]
        self.scorer.apply(present)
        if self.doc_column is not None:
            texts = [json.dumps(d, ensure_ascii=False) if d else "" for d in docs]
            index = batch.schema.get_field_index(self.doc_column)
            return batch.set_column(index, self.doc_column, pa.array(texts, pa.string()))
        # An explicit type: a block whose records all lack flags must still concatenate with the others.
        batch = batch.drop_columns([c for c in ("risk_level", "risk_flags") if c in batch.column_names])
        batch = batch.append_column("risk_level", pa.array([d["risk_level"] for d in docs], pa.string()))
        return batch.append_column("risk_flags", pa.array([d["risk_flags"] for d in docs], FLAG_TYPE))


def score_dataset(ds, stats: RiskStats, config: RiskConfig | None = None, doc_column: str | None = None,
                  suggest_factory: Callable[[], SuggestMany] | None = None, actors: int = 1):
    """The lazy dataset with every document scored against ``stats``.

    ``suggest_factory`` builds the HS suggestion callable inside each scoring actor (for example
    ``lambda: suggester_fn(HsSuggester.build(Embedder()))``); without it misclassification is off.
    """
    kwargs = {"stats": stats.to_dict(), "config": config or RiskConfig(), "doc_column": doc_column,
              "suggest_factory": suggest_factory}
    import ray.data

    # Actors, not tasks: the suggester (an embedding model and the nomenclature index) loads once each.
    pool = ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, actors if suggest_factory else 1))
    return ds.map_batches(ScoreBatch, fn_constructor_kwargs=kwargs, batch_format="pyarrow", compute=pool)


def rescore_all(docs: Iterable[dict], suggester=None, stats: RiskStats | None = None,
                config: RiskConfig | None = None, batch_size: int = 1024) -> Iterator[tuple[str, str, list[dict]]]:
    """``(id, risk_level, risk_flags)`` for every document, against the statistics of all of them.

    Call it after an ingest, over every record of the new index version (``records.parquet``), so that
    records scored earlier see the statistics the new data changed. ``stats`` defaults to the
    statistics of ``docs`` themselves (then ``docs`` is read into memory once: two passes are needed).
    ``suggester`` is an ``HsSuggester`` (or anything with its ``suggest``); None turns misclassification off.
    """
    config = config or RiskConfig()
    if stats is None:
        docs = list(docs)
        stats = RiskStats.from_documents(docs)
    suggest = suggester_fn(suggester, config) if suggester is not None else None
    scorer = RiskScorer(stats, config, suggest, titles=heading_title)
    batch: list[dict] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= batch_size:
            yield from _scored(scorer, batch)
            batch = []
    yield from _scored(scorer, batch)


def _scored(scorer: RiskScorer, batch: list[dict]) -> Iterator[tuple[str, str, list[dict]]]:
    for doc, (level, flags) in zip(batch, scorer.score(batch)):
        yield doc["id"], level, flags


@dataclass
class RiskOutcome:
    """What a rescoring pass found: every scored document, the level counts, how many changed."""

    documents: list[dict]
    levels: dict[str, int]
    changed: int


def _packaged_suggester(model_path: str | None, cache_dir: str, mode: str) -> SuggestMany:
    from predator.embedder import Embedder
    from predator.hs_suggest import HsSuggester

    # Keyword mode needs no model: skip loading it and embedding the nomenclature.
    embedder = None if mode == "keyword" else Embedder(model_path)
    return suggester_fn(HsSuggester.build(embedder, cache_dir=cache_dir))


def rescore_stores(keyword, vectors, settings, config: RiskConfig | None = None) -> RiskOutcome:
    """Score every record in the stores against the statistics of all of them, and write back changes.

    Runs inside the ingest job after the new records are committed, so records ingested earlier are
    re-judged against the statistics the new data changed. Statistics and scoring run on Ray Data;
    the stores are written by the caller's process, their only writer.
    """
    import ray.data

    docs = list(keyword.documents())
    if not docs:
        return RiskOutcome([], {}, 0)
    ds = ray.data.from_items([{"doc": json.dumps(d, ensure_ascii=False)} for d in docs])
    stats = compute_stats(ds, doc_column="doc")
    config = config or RiskConfig.load()
    cache_dir = str(settings.hs_cache_dir or settings.data_dir / "cache")
    factory = partial(_packaged_suggester, settings.embedding_model, cache_dir, config.misclass_mode)
    scored = score_dataset(ds, stats, config, doc_column="doc", suggest_factory=factory)
    before = {d["id"]: (d.get("risk_level"), d.get("risk_flags")) for d in docs}
    documents, changed = [], []
    for row in scored.iter_rows():
        doc = json.loads(row["doc"])
        documents.append(doc)
        if (doc["risk_level"], doc["risk_flags"]) != before[doc["id"]]:
            changed.append(doc)
    keyword.upsert(changed)
    for level in {d["risk_level"] for d in changed}:
        vectors.set_payload([d["id"] for d in changed if d["risk_level"] == level], {"risk_level": level})
    return RiskOutcome(documents, dict(Counter(d["risk_level"] for d in documents)), len(changed))
