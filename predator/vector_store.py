"""Vector stores: Qdrant's embedded engine (qdrant-edge, default) and a Qdrant server, one interface.

Choice of the embedded engine, by measurement (384-dim unit vectors, top-100, one busy core of a
2-core machine, p50 / p95):

=====================================  ==============  ==============  ==============  ==============
store                                  10k, no filter  10k, filtered   100k, no filter 100k, filtered
=====================================  ==============  ==============  ==============  ==============
qdrant-edge-py 0.9 ``EdgeShard`` HNSW  0.41 / 0.70 ms  0.47 / 0.63 ms  1.04 / 1.40 ms  1.05 / 1.51 ms
qdrant-client 1.20 local mode          8.3 / 9.3 ms    92 / 112 ms     (brute force: not worth running)
=====================================  ==============  ==============  ==============  ==============

(filtered = a keyword payload condition matching ~1 % of points.) Upserting: edge 10k in 0.3-0.4 s
and 100k in 4.3 s, plus ``optimize()`` to build the HNSW graph: 2.4-3.5 s at 10k, about 120 s at
100k (random vectors, niced, on a shared core); local mode took 12 s to upsert 10k. So the
embedded default is qdrant-edge; local mode stays as the test stand-in of the server code path.

Sharing a store directory between processes (checked by hand, two processes on one directory):

- qdrant-client local mode: the second ``QdrantClient(path=...)`` fails with "Storage folder ... is
  already accessed by another instance of Qdrant client" - one process per directory, full stop.
- qdrant-edge with its WAL on (the default): the second ``EdgeShard.load`` fails with
  "failed to open WAL ...: Can't init WAL: Kind(WouldBlock)" - an exclusive lock.
- qdrant-edge with ``wal_enabled=False`` (what this module creates): several processes load and
  search the same directory at once. A writer in another process can load it too, but readers keep
  the state they loaded (a reader did not see 10 points the writer upserted and flushed) and a
  writer's optimizer rewrites segment files under them. So: readers only ever open a *published*
  index version that no writer touches (see ``predator.index_layout``); writers work on a copy.
  Without a WAL, updates are durable once ``flush()`` returns: :meth:`EdgeVectorStore.commit`.

The scale-out backend is a Qdrant server through ``QdrantClient(url=...)``; its code path is the
same class with a local-mode client (``QdrantClient(":memory:")``) in tests.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from predator.filters import SearchFilters, date_number, hs_prefixes

_ID_NAMESPACE = uuid.UUID("5b0f8a1e-3c1d-4b7a-9a57-5f0d3c6e2a11")
KEYWORD_PAYLOAD = (
    "hs_prefixes", "origin_country", "trading_country", "dispatch_country", "importer_code",
    "direction", "customs_office", "risk_level",
)
_MIN_HNSW_EF = 128  # recall at top-100 needs ef above the limit


@dataclass
class VectorHit:
    """One nearest neighbour: cosine similarity and 1-based rank."""

    id: str
    score: float
    rank: int


class VectorStore(Protocol):
    """What the search engine needs from a vector engine."""

    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None: ...

    def commit(self) -> None: ...

    def search(self, vector: np.ndarray, filters: SearchFilters | None, limit: int) -> list[VectorHit]: ...

    def count(self, filters: SearchFilters | None = None) -> int: ...

    def set_payload(self, ids: list[str], payload: dict) -> None: ...

    def close(self) -> None: ...


def point_id(doc_id: str) -> str:
    """Deterministic point UUID of a record id: re-upserting a record replaces its point."""
    return str(uuid.uuid5(_ID_NAMESPACE, doc_id))


def payload_for(doc_id: str, doc: dict) -> dict:
    """The filterable payload of a record (a full document or an already reduced payload)."""
    payload = {
        "doc_id": doc_id,
        "date_num": doc.get("date_num") or date_number(doc.get("date")),
        "hs_prefixes": doc.get("hs_prefixes") or hs_prefixes(doc.get("hs_code")),
        "customs_value_usd": doc.get("customs_value_usd"),
    }
    for key in KEYWORD_PAYLOAD[1:]:
        payload[key] = doc.get(key)
    return {key: value for key, value in payload.items() if value not in (None, "", [])}


def filter_conditions(filters: SearchFilters | None) -> list[tuple]:
    """Backend-neutral conditions: ("value", key, v), ("any", key, [v...]), ("range", key, low, high)."""
    if filters is None:
        return []
    out: list[tuple] = []
    if filters.date_from or filters.date_to:
        out.append(("range", "date_num", filters.date_from_num, filters.date_to_num))
    if filters.hs_prefix:
        out.append(("value", "hs_prefixes", filters.hs_prefix))
    for key, values in (
        ("origin_country", filters.origin_countries),
        ("trading_country", filters.trading_countries),
        ("dispatch_country", filters.dispatch_countries),
        ("risk_level", filters.risk_levels),
    ):
        if values:
            out.append(("any", key, list(values)))
    for key, value in (
        ("importer_code", filters.importer_code),
        ("direction", filters.direction),
        ("customs_office", filters.customs_office),
    ):
        if value:
            out.append(("value", key, value))
    if filters.value_min is not None or filters.value_max is not None:
        out.append(("range", "customs_value_usd", filters.value_min, filters.value_max))
    return out


def _as_rows(vectors: np.ndarray, n: int, dim: int) -> np.ndarray:
    rows = np.asarray(vectors, dtype=np.float32)
    if rows.shape != (n, dim):
        raise ValueError(f"expected vectors of shape ({n}, {dim}), got {rows.shape}")
    return rows


# --------------------------------------------------------------------------------------------
# qdrant-edge (embedded)
# --------------------------------------------------------------------------------------------


class EdgeVectorStore:
    """Qdrant's embedded engine on a directory: HNSW, payload indexes, no server.

    ``writable=False`` loads an existing shard for searching only (several processes may do so).
    A writable store creates the shard when the directory is empty, and builds the HNSW graph on
    :meth:`close` (``optimize``), so a published version is fully indexed.
    """

    def __init__(self, path: str | Path, dim: int, writable: bool = True):
        import qdrant_edge as qe

        self._qe = qe
        self.dim = dim
        self.writable = writable
        path = Path(path)
        if (path / "edge_config.json").exists():
            self.shard = qe.EdgeShard.load(str(path))
        elif writable:
            self.shard = qe.EdgeShard.create(str(path), self._config(dim))
            self._create_payload_indexes()
        else:
            raise FileNotFoundError(f"no vector store at {path}")

    def _config(self, dim: int):
        qe = self._qe
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            max_search_threads=1,  # one core per replica; scale with replicas
            wal_enabled=False,  # a WAL locks the directory to one process (see module doc)
        )

    def _create_payload_indexes(self) -> None:
        qe = self._qe
        for key in KEYWORD_PAYLOAD:
            self.shard.update(qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Keyword))
        self.shard.update(qe.UpdateOperation.create_field_index("date_num", qe.PayloadSchemaType.Integer))
        self.shard.update(qe.UpdateOperation.create_field_index("customs_value_usd", qe.PayloadSchemaType.Float))

    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:
        """Insert or replace points by record id."""
        qe = self._qe
        rows = _as_rows(vectors, len(ids), self.dim)
        points = [
            qe.Point(id=point_id(doc_id), vector=row.tolist(), payload=payload_for(doc_id, payload))
            for doc_id, row, payload in zip(ids, rows, payloads, strict=True)
        ]
        if points:
            self.shard.update(qe.UpdateOperation.upsert_points(points))

    def set_payload(self, ids: list[str], payload: dict) -> None:
        """Set the same payload keys on many points (e.g. a new risk level) without their vectors."""
        if ids:
            self.shard.update(self._qe.UpdateOperation.set_payload([point_id(i) for i in ids], payload))

    def commit(self) -> None:
        """Flush to disk (without a WAL, upserts are durable only after this)."""
        self.shard.flush()

    def search(self, vector: np.ndarray, filters: SearchFilters | None, limit: int) -> list[VectorHit]:
        """Top ``limit`` by cosine similarity among the points passing ``filters``."""
        qe = self._qe
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
            filter=self._filter(filters),
            with_payload=["doc_id"],
            params=qe.SearchParams(hnsw_ef=max(_MIN_HNSW_EF, limit)),
        )
        points = self.shard.query(request)
        return [VectorHit(p.payload["doc_id"], float(p.score), rank) for rank, p in enumerate(points, start=1)]

    def count(self, filters: SearchFilters | None = None) -> int:
        """Exact number of points passing ``filters``."""
        return int(self.shard.count(self._qe.CountRequest(exact=True, filter=self._filter(filters))))

    def close(self) -> None:
        """Build the HNSW index (writable stores), flush, and release the shard."""
        if self.writable:
            self.shard.optimize()
            self.shard.flush()
        self.shard.close()

    def _filter(self, filters: SearchFilters | None):
        qe = self._qe
        must = []
        for kind, key, *args in filter_conditions(filters):
            if kind == "value":
                must.append(qe.FieldCondition(key=key, match=qe.MatchValue(args[0])))
            elif kind == "any":
                must.append(qe.FieldCondition(key=key, match=qe.MatchAny(args[0])))
            else:
                low, high = (None if v is None else float(v) for v in args)
                must.append(qe.FieldCondition(key=key, range=qe.RangeFloat(gte=low, lte=high)))
        return qe.Filter(must=must) if must else None


# --------------------------------------------------------------------------------------------
# Qdrant server (scale-out) through qdrant-client
# --------------------------------------------------------------------------------------------


class QdrantVectorStore:
    """A Qdrant collection through ``qdrant-client``: a server by URL, or local mode in tests."""

    def __init__(self, client, collection: str, dim: int, remote: bool = True):
        from qdrant_client import models

        self._m = models
        self.client = client
        self.collection = collection
        self.dim = dim
        # Local mode has no payload indexes and searches by brute force (it warns about both).
        self.remote = remote
        if not client.collection_exists(collection):
            client.create_collection(
                collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
            )
            if remote:
                self._create_payload_indexes()

    @classmethod
    def connect(cls, url: str, collection: str, dim: int) -> "QdrantVectorStore":
        """A store on a Qdrant server."""
        from qdrant_client import QdrantClient

        return cls(QdrantClient(url=url), collection, dim)

    @classmethod
    def local(cls, collection: str, dim: int, path: str | None = None) -> "QdrantVectorStore":
        """A store in qdrant-client local mode (in memory, or one process on ``path``)."""
        from qdrant_client import QdrantClient

        client = QdrantClient(path=str(path)) if path else QdrantClient(":memory:")
        return cls(client, collection, dim, remote=False)

    def _create_payload_indexes(self) -> None:
        schema = self._m.PayloadSchemaType
        for key in KEYWORD_PAYLOAD:
            self.client.create_payload_index(self.collection, key, field_schema=schema.KEYWORD)
        self.client.create_payload_index(self.collection, "date_num", field_schema=schema.INTEGER)
        self.client.create_payload_index(self.collection, "customs_value_usd", field_schema=schema.FLOAT)

    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:
        """Insert or replace points by record id (waits until applied)."""
        m = self._m
        rows = _as_rows(vectors, len(ids), self.dim)
        points = [
            m.PointStruct(id=point_id(doc_id), vector=row.tolist(), payload=payload_for(doc_id, payload))
            for doc_id, row, payload in zip(ids, rows, payloads, strict=True)
        ]
        if points:
            self.client.upsert(self.collection, points=points, wait=True)

    def set_payload(self, ids: list[str], payload: dict) -> None:
        """Set the same payload keys on many points (e.g. a new risk level) without their vectors."""
        if ids:
            self.client.set_payload(self.collection, payload=payload, points=[point_id(i) for i in ids], wait=True)

    def commit(self) -> None:
        """Nothing to do: upserts are applied when ``upsert`` returns (``wait=True``)."""

    def search(self, vector: np.ndarray, filters: SearchFilters | None, limit: int) -> list[VectorHit]:
        """Top ``limit`` by cosine similarity among the points passing ``filters``."""
        response = self.client.query_points(
            self.collection,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            query_filter=self._filter(filters),
            limit=limit,
            with_payload=["doc_id"],
            search_params=self._m.SearchParams(hnsw_ef=max(_MIN_HNSW_EF, limit)) if self.remote else None,
        )
        return [VectorHit(p.payload["doc_id"], float(p.score), rank) for rank, p in enumerate(response.points, start=1)]

    def count(self, filters: SearchFilters | None = None) -> int:
        """Exact number of points passing ``filters``."""
        return int(self.client.count(self.collection, count_filter=self._filter(filters), exact=True).count)

    def close(self) -> None:
        """Close the client."""
        self.client.close()

    def _filter(self, filters: SearchFilters | None):
        m = self._m
        must = []
        for kind, key, *args in filter_conditions(filters):
            if kind == "value":
                must.append(m.FieldCondition(key=key, match=m.MatchValue(value=args[0])))
            elif kind == "any":
                must.append(m.FieldCondition(key=key, match=m.MatchAny(any=args[0])))
            else:
                must.append(m.FieldCondition(key=key, range=m.Range(gte=args[0], lte=args[1])))
        return m.Filter(must=must) if must else None
