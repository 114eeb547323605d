"""The search engine: keyword + vector retrieval, fusion, filters, facets, explanations.

Plain Python over the store interfaces; the Serve deployment wraps one :class:`SearchEngine`.

Modes and what ``total`` means:

- empty text: a filtered listing, newest first; ``total`` = records passing the filters.
- ``keyword``: BM25 over the text fields; ``total`` = records matching any query term and the
  filters; pagination is done by the keyword engine, at any depth.
- ``semantic`` / ``hybrid``: each retriever returns its top ``retriever_depth`` (settings) and
  the results are fused; ``total`` = number of fused candidates, and asking for a page beyond
  ``retriever_depth`` is a :class:`QueryError` rather than a silently short page.

Facets count every record matching the filters (and, except in semantic mode, the query terms),
never just the returned page.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from predator.filters import FilterError, SearchFilters
from predator.fusion import FusedHit, rrf, weighted
from predator.keyword_store import FACET_FIELDS, KeywordStore
from predator.vector_store import VectorStore

MODES = ("hybrid", "keyword", "semantic")
FUSIONS = ("rrf", "weighted")


class QueryError(ValueError):
    """A search request that cannot be answered as asked; ``field`` names the culprit."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class SearchQuery:
    """One search request."""

    text: str = ""
    mode: str = "hybrid"
    fusion: str = "rrf"
    semantic_weight: float = 0.5  # weighted fusion only: share of the vector score
    filters: SearchFilters = field(default_factory=SearchFilters)
    offset: int = 0
    limit: int = 10
    facets: list[str] = field(default_factory=list)
    facet_size: int = 10  # values per facet, most frequent first
    highlight: bool = False
    explain: bool = False


@dataclass
class Explanation:
    """Why a hit is where it is: each retriever's rank and score, the fused score, matched terms."""

    keyword_rank: int | None
    keyword_score: float | None
    vector_rank: int | None
    vector_score: float | None
    fused_score: float
    fusion: str | None
    matched_terms: list[str] = field(default_factory=list)


@dataclass
class Hit:
    """One result: the full record, its score, and optional explanation and highlights."""

    id: str
    score: float
    record: dict
    explanation: Explanation | None = None
    highlights: dict[str, str] = field(default_factory=dict)


@dataclass
class SearchResult:
    """A page of results with totals, facets and timing."""

    total: int
    hits: list[Hit]
    facets: dict[str, list[tuple[str, int]]]
    took_ms: float
    mode: str  # hybrid | keyword | semantic | listing (empty text)
    fusion: str | None


class SearchEngine:
    """Hybrid search over one keyword store and one vector store."""

    def __init__(
        self,
        keyword: KeywordStore,
        vectors: VectorStore,
        embedder,
        retriever_depth: int = 100,
        rrf_k: int = 60,
        max_page_size: int = 100,
        max_query_chars: int = 512,
        hs_suggester=None,
        hs_cache_dir=None,
    ):
        self.keyword = keyword
        self.vectors = vectors
        self.embedder = embedder
        self.retriever_depth = retriever_depth
        self.rrf_k = rrf_k
        self.max_page_size = max_page_size
        self.max_query_chars = max_query_chars
        self._hs = hs_suggester
        self._hs_cache_dir = hs_cache_dir

    @classmethod
    def from_settings(cls, settings, embedder, version: str | None = None) -> "SearchEngine":
        """An engine on the stores the settings name (the published index version by default)."""
        keyword, vectors = open_stores(settings, version=version, mode="read", dim=embedder.dim)
        return cls(
            keyword,
            vectors,
            embedder,
            retriever_depth=settings.retriever_depth,
            rrf_k=settings.rrf_k,
            max_page_size=settings.max_page_size,
            max_query_chars=settings.max_query_chars,
            hs_cache_dir=settings.hs_cache_dir or settings.data_dir / "cache",
        )

    # -- search ---------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResult:
        """Run one search request; bad requests raise :class:`QueryError` or ``FilterError``."""
        started = time.perf_counter()
        self.validate(query)
        text = query.text.strip()
        if not text:
            hits, fusion, mode = self._listing(query), None, "listing"
            total = self.keyword.count(query.filters)
        elif query.mode == "keyword":
            hits, fusion, mode = self._keyword_page(query, text), None, "keyword"
            total = self.keyword.count(query.filters, text)
        else:
            fused, fusion, mode = self._fused(query, text), query.fusion, query.mode
            total = len(fused)
            hits = fused[query.offset : query.offset + query.limit]
        page = self._hits(hits, text, query, fusion)
        facet_text = None if mode in ("semantic", "listing") else text
        facets = self.keyword.facets(facet_text, query.filters, query.facets, query.facet_size) if query.facets else {}
        took_ms = (time.perf_counter() - started) * 1000
        return SearchResult(total, page, facets, took_ms, mode, fusion)

    def validate(self, query: SearchQuery) -> None:
        """Reject a request the engine cannot answer honestly (the API maps this to a 4xx)."""
        if query.mode not in MODES:
            raise QueryError("mode", f"must be one of {', '.join(MODES)}, got {query.mode!r}")
        if query.fusion not in FUSIONS:
            raise QueryError("fusion", f"must be one of {', '.join(FUSIONS)}, got {query.fusion!r}")
        if not 0.0 <= query.semantic_weight <= 1.0:
            raise QueryError("semantic_weight", f"must be between 0 and 1, got {query.semantic_weight}")
        if len(query.text) > self.max_query_chars:
            raise QueryError("text", f"longer than {self.max_query_chars} characters")
        if query.offset < 0:
            raise QueryError("offset", "must be >= 0")
        if not 1 <= query.limit <= self.max_page_size:
            raise QueryError("limit", f"must be between 1 and {self.max_page_size}, got {query.limit}")
        fused = query.text.strip() and query.mode != "keyword"
        if fused and query.offset + query.limit > self.retriever_depth:
            raise QueryError(
                "offset",
                f"{query.mode} search ranks the top {self.retriever_depth} candidates; offset + limit = "
                f"{query.offset + query.limit} is beyond them (narrow the filters or use keyword mode)",
            )
        if not 1 <= query.facet_size <= 1000:
            raise QueryError("facet_size", f"must be between 1 and 1000, got {query.facet_size}")
        unknown = [name for name in query.facets if name not in FACET_FIELDS]
        if unknown:
            raise QueryError("facets", f"unknown {unknown}; choose from {sorted(FACET_FIELDS)}")
        try:
            query.filters.validate()
        except FilterError as error:
            raise QueryError(f"filters.{error.field}", error.reason) from error

    def _listing(self, query: SearchQuery) -> list[FusedHit]:
        found = self.keyword.search("", query.filters, query.limit, offset=query.offset, annotate=False)
        return [FusedHit(h.id, 0.0) for h in found]

    def _keyword_page(self, query: SearchQuery, text: str) -> list[FusedHit]:
        found = self.keyword.search(text, query.filters, query.limit, offset=query.offset, annotate=False)
        return [FusedHit(h.id, h.score, {"keyword": h.rank}, {"keyword": h.score}) for h in found]

    def _fused(self, query: SearchQuery, text: str) -> list[FusedHit]:
        depth = self.retriever_depth
        vector = self.embedder.encode([text])[0]
        semantic = self.vectors.search(vector, query.filters, depth)
        if query.mode == "semantic":
            return [FusedHit(h.id, h.score, {"vector": h.rank}, {"vector": h.score}) for h in semantic]
        lexical = self.keyword.search(text, query.filters, depth, annotate=False)
        scores = {"keyword": {h.id: h.score for h in lexical}, "vector": {h.id: h.score for h in semantic}}
        if query.fusion == "weighted":
            weights = {"keyword": 1.0 - query.semantic_weight, "vector": query.semantic_weight}
            return weighted(scores, weights)
        rankings = {"keyword": [h.id for h in lexical], "vector": [h.id for h in semantic]}
        return rrf(rankings, k=self.rrf_k, raw_scores=scores)

    def _hits(self, fused: list[FusedHit], text: str, query: SearchQuery, fusion: str | None) -> list[Hit]:
        ids = [h.id for h in fused]
        records = self.keyword.get_many(ids)
        notes = self.keyword.annotate(text, ids) if text and (query.highlight or query.explain) else {}
        hits = []
        for item in fused:
            matched, highlights = notes.get(item.id, ([], {}))
            explanation = None
            if query.explain:
                explanation = Explanation(
                    keyword_rank=item.ranks.get("keyword"),
                    keyword_score=item.scores.get("keyword"),
                    vector_rank=item.ranks.get("vector"),
                    vector_score=item.scores.get("vector"),
                    fused_score=item.score,
                    fusion=fusion,
                    matched_terms=matched,
                )
            record = records.get(item.id, {"id": item.id})  # a vector without its record: show the id
            hits.append(Hit(item.id, item.score, record, explanation, highlights if query.highlight else {}))
        return hits

    # -- lookups --------------------------------------------------------------------------

    def get(self, doc_id: str) -> dict | None:
        """One record by id, or None."""
        return self.keyword.get(doc_id)

    def suggest_hs(self, description: str, limit: int = 5, mode: str = "hybrid", fusion: str | None = None):
        """Most likely HS headings for a goods description (see ``predator.hs_suggest``).

        ``fusion`` None uses the suggester's default, tuned on the nomenclature validation split.
        """
        from predator.hs_suggest import DEFAULT_FUSION, HsSuggester

        if self._hs is None:  # built on first use: ~7k texts, embeddings cached on disk
            self._hs = HsSuggester.build(self.embedder, cache_dir=self._hs_cache_dir)
        return self._hs.suggest(description, limit=limit, mode=mode, fusion=fusion or DEFAULT_FUSION, rrf_k=self.rrf_k)

    def close(self) -> None:
        """Release both stores."""
        self.keyword.close()
        self.vectors.close()


def uses_index_layout(settings) -> bool:
    """Whether any chosen store is embedded, and so lives in versioned directories (index_layout)."""
    return settings.keyword_backend == "tantivy" or settings.vector_backend == "qdrant-edge" or not settings.qdrant_url


def open_stores(settings, version: str | None = None, mode: str = "read", dim: int = 384):
    """Open the (KeywordStore, VectorStore) pair the settings choose.

    Embedded backends live in an index version (``predator.index_layout``): ``mode="read"`` opens
    ``version`` or the published one; ``mode="write"`` needs the version from ``begin_version()``
    (publish it after ``commit()``/``close()``). Server backends ignore versions and write live.
    """
    from predator.index_layout import IndexLayout

    if mode not in ("read", "write"):
        raise ValueError(f"mode must be 'read' or 'write', got {mode!r}")
    writable = mode == "write"
    layout = IndexLayout(settings.index_dir)
    embedded = uses_index_layout(settings)
    path = None
    if embedded:
        version = version or (None if writable else layout.current())
        if version is None:
            reason = "write mode needs a version from IndexLayout.begin_version()" if writable else "nothing published"
            raise FileNotFoundError(f"no index version under {layout.root}: {reason}")
        path = layout.path(version)

    return open_keyword_store(settings, path, writable), open_vector_store(settings, path, writable, dim)


def open_keyword_store(settings, path: Path | None, writable: bool = False):
    """The keyword store the settings choose; ``path`` is the index version's directory (embedded only)."""
    from predator.index_layout import KEYWORD_DIR
    from predator.keyword_store import OpenSearchKeywordStore, TantivyKeywordStore

    if settings.keyword_backend == "opensearch":
        return OpenSearchKeywordStore(settings.opensearch_url, settings.opensearch_index, create=writable)
    return TantivyKeywordStore(path / KEYWORD_DIR, writable=writable)


def open_vector_store(settings, path: Path | None, writable: bool = False, dim: int = 384):
    """The vector store the settings choose; ``path`` is the index version's directory (embedded only)."""
    from predator.index_layout import VECTORS_DIR
    from predator.vector_store import EdgeVectorStore, QdrantVectorStore

    if settings.vector_backend == "qdrant-edge":
        return EdgeVectorStore(path / VECTORS_DIR, dim=dim, writable=writable)
    if settings.qdrant_url:
        return QdrantVectorStore.connect(settings.qdrant_url, settings.qdrant_collection, dim)
    # "qdrant" without a URL: client local mode inside the version (one process only)
    return QdrantVectorStore.local(settings.qdrant_collection, dim, path=path / VECTORS_DIR)
