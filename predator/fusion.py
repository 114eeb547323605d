"""Fusion of ranked lists from several retrievers (pure functions).

Two methods, selectable per request:

- :func:`rrf`: reciprocal rank fusion, ``sum(1 / (k + rank))`` over the retrievers that found a
  document (ranks start at 1). Needs no score calibration.
- :func:`weighted`: a convex combination of per-retriever normalised scores. A document a
  retriever did not return gets 0 from it. Weights must be non-negative and are normalised to sum
  to 1 (so ``{"keyword": 1, "vector": 3}`` means 25 % / 75 %); all-zero weights are rejected.

Ties are broken deterministically: by fused score, then by the best rank in any retriever, then by id.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FusedHit:
    """One fused result, with what each retriever said about it (for explanations)."""

    id: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)  # retriever -> 1-based rank
    scores: dict[str, float] = field(default_factory=dict)  # retriever -> raw score


def rrf(
    rankings: dict[str, list[str]],
    k: int = 60,
    raw_scores: dict[str, dict[str, float]] | None = None,
) -> list[FusedHit]:
    """Reciprocal rank fusion of ``{retriever: [id, ...best first]}``.

    ``raw_scores`` (optional, ``{retriever: {id: score}}``) is only carried into the hits for
    explanations; it does not influence the order. A repeated id in one list counts at its best rank.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    raw_scores = raw_scores or {}
    hits: dict[str, FusedHit] = {}
    for name, ids in rankings.items():
        for rank, doc_id in enumerate(ids, start=1):
            hit = hits.setdefault(doc_id, FusedHit(doc_id, 0.0))
            if name in hit.ranks:
                continue
            hit.ranks[name] = rank
            hit.score += 1.0 / (k + rank)
            if doc_id in raw_scores.get(name, {}):
                hit.scores[name] = raw_scores[name][doc_id]
    return _sorted(hits.values())


def weighted(
    scores: dict[str, dict[str, float]],
    weights: dict[str, float],
    normalise: str = "minmax",
) -> list[FusedHit]:
    """Convex combination of normalised scores ``{retriever: {id: score}}``.

    ``normalise``: ``"minmax"`` maps each retriever's scores to [0, 1] (all-equal scores map to 1),
    ``"max"`` divides by the largest score, ``"none"`` uses raw scores. Every retriever in
    ``scores`` needs a weight.
    """
    missing = set(scores) - set(weights)
    if missing:
        raise ValueError(f"no weight for retriever(s): {', '.join(sorted(missing))}")
    shares = normalise_weights({name: weights[name] for name in scores})
    hits: dict[str, FusedHit] = {}
    for name, by_id in scores.items():
        ranked = sorted(by_id.items(), key=lambda item: (-item[1], item[0]))
        normed = _normalise(by_id, normalise)
        for rank, (doc_id, raw) in enumerate(ranked, start=1):
            hit = hits.setdefault(doc_id, FusedHit(doc_id, 0.0))
            hit.ranks[name] = rank
            hit.scores[name] = raw
            hit.score += shares[name] * normed[doc_id]
    return _sorted(hits.values())


def normalise_weights(weights: dict[str, float]) -> dict[str, float]:
    """Scale non-negative weights to sum to 1; reject negative, non-finite or all-zero weights."""
    for name, weight in weights.items():
        if not (weight >= 0 and weight != float("inf")):
            raise ValueError(f"weight for {name!r} must be a finite number >= 0, got {weight}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("at least one weight must be positive")
    return {name: weight / total for name, weight in weights.items()}


def _normalise(by_id: dict[str, float], method: str) -> dict[str, float]:
    if method == "none" or not by_id:
        return dict(by_id)
    values = by_id.values()
    if method == "minmax":
        low, high = min(values), max(values)
        if high == low:  # one hit, or all tied: each is as good as the best
            return {doc_id: 1.0 for doc_id in by_id}
        return {doc_id: (score - low) / (high - low) for doc_id, score in by_id.items()}
    if method == "max":
        high = max(values)
        if high <= 0:
            raise ValueError("'max' normalisation needs a positive top score")
        return {doc_id: score / high for doc_id, score in by_id.items()}
    raise ValueError(f"unknown normalisation {method!r}: use 'minmax', 'max' or 'none'")


def _sorted(hits) -> list[FusedHit]:
    return sorted(hits, key=lambda h: (-h.score, min(h.ranks.values(), default=0), h.id))
