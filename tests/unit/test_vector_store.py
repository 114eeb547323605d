"""Vector stores: qdrant-edge (embedded) and the Qdrant client code path (local mode), same tests."""
from datetime import date

import numpy as np
import pytest

from predator.filters import SearchFilters
from predator.vector_store import EdgeVectorStore, QdrantVectorStore, payload_for, point_id

DIM = 16


def payload(n, hs_code, day, origin, office, direction="import", value=1000.0, risk="low", importer="00123456"):
    return {
        "id": f"D{n}#1", "date": day, "hs_code": hs_code, "origin_country": origin, "trading_country": origin,
        "dispatch_country": origin, "customs_office": office, "direction": direction, "importer_code": importer,
        "customs_value_usd": value, "risk_level": risk, "goods_description": "ignored by the vector store",
    }


DOCS = [
    payload(1, "8471300000", "2024-01-15", "CN", "Київська митниця", value=52000.0),
    payload(2, "8471300000", "2024-02-03", "CN", "Одеська митниця", value=41000.0, risk="high"),
    payload(3, "0808108000", "2024-02-20", "PL", "Київська митниця", value=8000.0, importer="00987654"),
    payload(4, "0808108000", "2024-03-05", "PL", "Львівська митниця", value=7000.0),
    payload(5, "8517130000", "2024-03-10", "VN", "Київська митниця", value=99000.0, risk="medium"),
    payload(6, "0306171000", "2024-04-01", "EC", "Одеська митниця", value=15000.0),
    payload(7, "1001990000", "2024-04-12", "UA", "Одеська митниця", direction="export", value=250000.0),
    payload(8, "6109100000", "2024-05-02", "TR", "Київська митниця", value=3000.0, risk="high"),
]
IDS = [d["id"] for d in DOCS]


def unit_vectors(n, seed=0):
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


VECTORS = unit_vectors(len(DOCS))


def open_store(backend, path):
    if backend == "edge":
        vs = EdgeVectorStore(path, dim=DIM)
    else:
        vs = QdrantVectorStore.local("declarations", dim=DIM)
    vs.upsert(IDS, VECTORS, DOCS)
    vs.commit()
    return vs


@pytest.fixture(scope="module", params=["edge", "qdrant-local"])
def store(request, tmp_path_factory):
    """One loaded store per backend for the read-only tests (creating a shard costs ~0.5-2 s)."""
    vs = open_store(request.param, tmp_path_factory.mktemp("vectors"))
    yield vs
    vs.close()


@pytest.fixture(params=["edge", "qdrant-local"])
def fresh_store(request, tmp_path):
    """A store of its own for a test that writes."""
    vs = open_store(request.param, tmp_path / "vectors")
    yield vs
    vs.close()


def test_nearest_neighbour_of_a_stored_vector_is_itself_with_ranks(store):
    hits = store.search(VECTORS[3], None, 3)
    assert hits[0].id == IDS[3]
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert store.count() == len(DOCS)


def test_upsert_same_id_replaces_the_vector_and_keeps_the_count(fresh_store):
    new = unit_vectors(1, seed=99)
    fresh_store.upsert([IDS[0]], new, [dict(DOCS[0], origin_country="DE")])
    fresh_store.commit()
    assert fresh_store.count() == len(DOCS)
    assert fresh_store.search(new[0], None, 1)[0].id == IDS[0]
    assert fresh_store.count(SearchFilters(origin_countries=["DE"])) == 1
    assert fresh_store.count(SearchFilters(origin_countries=["CN"])) == 1


@pytest.mark.parametrize(
    "filters, predicate",
    [
        (SearchFilters(date_from=date(2024, 2, 20), date_to=date(2024, 4, 1)), lambda d: "2024-02-20" <= d["date"] <= "2024-04-01"),
        (SearchFilters(hs_prefix="8471"), lambda d: d["hs_code"].startswith("8471")),
        (SearchFilters(hs_prefix="08"), lambda d: d["hs_code"].startswith("08")),
        (SearchFilters(origin_countries=["PL", "VN"]), lambda d: d["origin_country"] in ("PL", "VN")),
        (SearchFilters(trading_countries=["EC"]), lambda d: d["trading_country"] == "EC"),
        (SearchFilters(dispatch_countries=["TR"]), lambda d: d["dispatch_country"] == "TR"),
        (SearchFilters(importer_code="00987654"), lambda d: d["importer_code"] == "00987654"),
        (SearchFilters(direction="export"), lambda d: d["direction"] == "export"),
        (SearchFilters(customs_office="Одеська митниця"), lambda d: d["customs_office"] == "Одеська митниця"),
        (SearchFilters(value_min=8000, value_max=52000), lambda d: 8000 <= d["customs_value_usd"] <= 52000),
        (SearchFilters(risk_levels=["high", "medium"]), lambda d: d["risk_level"] in ("high", "medium")),
        (SearchFilters(hs_prefix="84", risk_levels=["low"]), lambda d: d["hs_code"].startswith("84") and d["risk_level"] == "low"),
    ],
)
def test_each_filter_kind_is_applied_inside_the_engine(store, filters, predicate):
    expected = {d["id"] for d in DOCS if predicate(d)}
    assert expected
    hits = store.search(unit_vectors(1, seed=7)[0], filters, 100)
    assert {h.id for h in hits} == expected
    assert store.count(filters) == len(expected)


def test_a_filter_that_matches_nothing_returns_nothing(store):
    assert store.search(VECTORS[0], SearchFilters(origin_countries=["ZZ"]), 10) == []


def test_vectors_of_the_wrong_shape_are_rejected(store):
    with pytest.raises(ValueError, match="shape"):
        store.upsert(IDS[:2], unit_vectors(3), DOCS[:2])


def test_point_ids_are_deterministic_and_payload_keeps_the_record_id():
    assert point_id("UA1#1") == point_id("UA1#1") != point_id("UA1#2")
    reduced = payload_for("D1#1", DOCS[0])
    assert reduced["doc_id"] == "D1#1" and reduced["date_num"] == 20240115
    assert reduced["hs_prefixes"][:3] == ["84", "847", "8471"]
    assert "goods_description" not in reduced
    assert payload_for("D1#1", reduced) == reduced  # idempotent on a reduced payload


def test_edge_store_reopens_read_only_in_two_handles_after_the_writer_closed(tmp_path):
    writer = EdgeVectorStore(tmp_path / "v", dim=DIM)
    writer.upsert(IDS, VECTORS, DOCS)
    writer.close()  # builds the index and flushes
    first = EdgeVectorStore(tmp_path / "v", dim=DIM, writable=False)
    second = EdgeVectorStore(tmp_path / "v", dim=DIM, writable=False)
    assert first.search(VECTORS[5], None, 1)[0].id == second.search(VECTORS[5], None, 1)[0].id == IDS[5]
    first.close()
    second.close()
    with pytest.raises(FileNotFoundError):
        EdgeVectorStore(tmp_path / "missing", dim=DIM, writable=False)
