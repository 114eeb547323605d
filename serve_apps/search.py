"""The search application: a FastAPI ingress deployment over one :class:`LiveIndex` per replica.

Routes (all but ``/healthz`` need an API key; see ``docs/SECURITY.md``):
``POST /search``, ``GET /records/{id}``, ``POST /hs/suggest``, ``GET /index``, ``GET /readyz``,
``POST /admin/reload``, the analytics routes (``/analytics/...``) and event catch-up (``GET /events``).
OpenAPI at ``/docs``.
"""

import asyncio
from dataclasses import asdict
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from ray import serve

from predator.auth import KeyRing, Principal, Role
from predator.embedder import Embedder
from predator.events import publish_event
from predator.hs_suggest import HsSuggester
from predator.live_index import IndexNotReady, LiveIndex
from predator.search import QueryError, SearchQuery
from predator.settings import Settings, get_settings
from serve_apps.analytics import analytics_router
from serve_apps.events import events_router
from serve_apps.metrics import RequestMetrics
from serve_apps.search_models import (
    Filters, HsSuggestion, HsSuggestRequest, HsSuggestResponse, IndexStats, SearchRequest, SearchResponse,
)
from serve_apps.security import require

api = FastAPI(
    title="Predator Analytics search",
    description="Hybrid search over customs declarations. Send `Authorization: Bearer <key>`.",
    version="0.1.0",
)


@api.exception_handler(QueryError)
async def query_error(_: Request, err: QueryError) -> JSONResponse:
    return JSONResponse(status_code=400, content={"detail": {"field": err.field, "reason": err.reason}})


@api.exception_handler(IndexNotReady)
async def not_ready(_: Request, err: IndexNotReady) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(err)})


# Before the ingress decorator: Serve takes the app's routes when it wraps the class.
api.include_router(analytics_router(lambda: api.state.live_index.table()))
api.include_router(events_router())
api.add_middleware(RequestMetrics)  # latency and count per route template and status


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=32)
@serve.ingress(api)
class SearchAPI:
    """One replica: the embedder, the HS suggester and the live index, loaded once."""

    def __init__(self, settings: Settings):
        self.settings = settings
        api.state.keyring = KeyRing.load(settings.keys_path)
        self.embedder = Embedder(settings.embedding_model, threads=settings.torch_threads,
                                 max_tokens=settings.embedding_max_tokens)
        self.suggester = HsSuggester.build(self.embedder, cache_dir=settings.hs_cache_dir or settings.data_dir / "cache")
        self.index = LiveIndex(settings, self.embedder)
        api.state.settings = settings
        api.state.live_index = self.index

    @api.get("/healthz", tags=["ops"])
    def healthz(self) -> dict[str, str]:
        """Liveness: the replica answers. No key needed."""
        return {"status": "ok"}

    @api.get("/readyz", tags=["ops"])
    def readyz(self, _: Principal = Depends(require(Role.viewer))) -> dict[str, Any]:
        """Readiness: the index is published and open, the models are loaded."""
        engine = self.index.engine()
        return {"status": "ready", "index_version": self.index.version, "documents": engine.keyword.count()}

    @api.post("/search", response_model=SearchResponse, tags=["search"])
    async def search(self, body: SearchRequest, _: Principal = Depends(require(Role.viewer))) -> SearchResponse:
        """Hybrid, keyword or semantic search with filters, facets, highlights and explanations."""
        query = SearchQuery(text=body.q, mode=body.mode, fusion=body.fusion, semantic_weight=body.semantic_weight,
                            filters=body.filters.to_core(), offset=body.offset, limit=body.limit,
                            facets=list(body.facets), facet_size=body.facet_size, highlight=body.highlight, explain=body.explain)
        # The engine is CPU-bound Python; run it off the event loop so the replica keeps answering.
        result = await asyncio.to_thread(lambda: self.index.engine().search(query))
        return SearchResponse(
            total=result.total, offset=body.offset, limit=body.limit, mode=result.mode, fusion=result.fusion or "none",
            took_ms=round(result.took_ms, 3), index_version=self.index.version,
            hits=[{"id": h.id, "score": h.score, "record": h.record, "highlights": h.highlights,
                   "explanation": asdict(h.explanation) if h.explanation else None} for h in result.hits],
            facets={name: [{"value": v, "count": n} for v, n in buckets] for name, buckets in result.facets.items()},
        )

    async def retrieve(self, text: str, filters: dict | None = None, limit: int = 5,
                       ids: list[str] | None = None) -> list[dict]:
        """For other deployments through a handle (the copilot): the records named by ``ids`` that exist,
        then the best hybrid hits for ``text`` under ``filters`` (a :class:`Filters` dict); ``limit`` in all."""
        query = SearchQuery(text=text, filters=Filters(**(filters or {})).to_core(), limit=limit)

        def run() -> list[dict]:
            engine = self.index.engine()
            named = engine.keyword.get_many(list(ids or []))
            found = {i: named[i] for i in ids or [] if i in named}
            for hit in engine.search(query).hits:
                found.setdefault(hit.id, hit.record)
            return list(found.values())[:limit]

        return await asyncio.to_thread(run)

    @api.get("/records/{record_id:path}", tags=["search"])
    def record(self, record_id: str, _: Principal = Depends(require(Role.viewer))) -> dict[str, Any]:
        """One declaration line by id (``{declaration_id}#{line_no}``; send ``#`` as ``%23``)."""
        found = self.index.engine().get(record_id)
        if found is None:
            raise HTTPException(404, f"no record with id {record_id!r}")
        return found

    @api.post("/hs/suggest", response_model=HsSuggestResponse, tags=["search"])
    async def suggest(self, body: HsSuggestRequest, _: Principal = Depends(require(Role.viewer))) -> HsSuggestResponse:
        """The most likely HS headings for a goods description."""
        if len(body.description) > self.settings.max_query_chars:
            raise QueryError("description", f"longer than {self.settings.max_query_chars} characters")
        if not body.description.strip():
            raise QueryError("description", "is blank")
        loop = asyncio.get_running_loop()
        started = loop.time()
        found = await asyncio.to_thread(self.suggester.suggest, body.description, limit=body.limit, mode=body.mode,
                                        fusion=body.fusion, semantic_weight=body.semantic_weight,
                                        rrf_k=self.settings.rrf_k)
        return HsSuggestResponse(suggestions=[HsSuggestion(**asdict(s)) for s in found],
                                 took_ms=round((loop.time() - started) * 1000, 3))

    @api.get("/index", response_model=IndexStats, tags=["ops"])
    def index_stats(self, _: Principal = Depends(require(Role.viewer))) -> IndexStats:
        """What this replica serves: document count, index version, backends and model."""
        engine = self.index.engine()
        return IndexStats(documents=engine.keyword.count(), index_version=self.index.version,
                          keyword_backend=self.settings.keyword_backend, vector_backend=self.settings.vector_backend,
                          embedding_model=self.embedder.model_name, embedding_dim=self.embedder.dim)

    @api.post("/admin/reload", tags=["ops"])
    def reload(self, principal: Principal = Depends(require(Role.admin))) -> dict[str, Any]:
        """Switch this replica to the newest published index version now (it also does so by itself)."""
        version = self.index.reload()
        publish_event("security", "admin.reload", {"principal": principal.name, "index_version": version},
                      source="search")
        return {"index_version": version}


def build_app(args: dict | None = None):
    """Serve application builder (``import_path: serve_apps.search:build_app``); ``args`` override settings."""
    return SearchAPI.bind(get_settings(**(args or {})))
