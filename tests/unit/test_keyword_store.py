"""tantivy keyword store (and the OpenSearch backend against osmem-server): upserts, filters, facets,
highlights, matched terms, Ukrainian queries."""
from collections import Counter
from datetime import date

import pytest

from predator.filters import SearchFilters
from predator.keyword_store import OpenSearchKeywordStore, TantivyKeywordStore


def make_doc(n, description, hs_code, day, origin="CN", office="Київська митниця", importer_code="00123456",
             direction="import", value=1000.0, risk="low", importer="ТОВ Альфа", exporter="Acme Ltd",
             trading=None, dispatch=None):
    """A flat declaration document as ingest produces it."""
    return {
        "id": f"UA{n:06d}#1", "declaration_id": f"UA{n:06d}", "line_no": 1, "date": day, "month": day[:7],
        "direction": direction, "customs_office": office, "importer_code": importer_code,
        "importer_name": importer, "exporter_name": exporter, "hs_code": hs_code, "hs_chapter": hs_code[:2],
        "hs_heading": hs_code[:4], "goods_description": description, "trading_country": trading or origin,
        "dispatch_country": dispatch or origin, "origin_country": origin, "origin_country_name": None,
        "trading_country_name": None, "net_weight_kg": 10.0, "gross_weight_kg": 11.0, "quantity": 1.0,
        "unit": "pcs", "invoice_value": value, "currency": "USD", "customs_value_usd": value,
        "unit_price_usd_per_kg": value / 10, "risk_level": risk, "risk_flags": [],
    }


DOCS = [
    make_doc(1, "Ноутбуки портативні Lenovo ThinkPad", "8471300000", "2024-01-15", "CN", value=52000.0),
    make_doc(2, "Laptop computers Dell Latitude, portable", "8471300000", "2024-02-03", "CN", office="Одеська митниця", value=41000.0, risk="high"),
    make_doc(3, "Яблука свіжі сорту Гала", "0808108000", "2024-02-20", "PL", importer_code="00987654", value=8000.0),
    make_doc(4, "Fresh apples Golden Delicious in boxes", "0808108000", "2024-03-05", "PL", office="Львівська митниця", value=7000.0),
    make_doc(5, "Мобільні телефони смартфони Samsung", "8517130000", "2024-03-10", "VN", value=99000.0, risk="medium"),
    make_doc(6, "Frozen shrimps, peeled", "0306171000", "2024-04-01", "EC", office="Одеська митниця", value=15000.0),
    make_doc(7, "Пшениця м'яка, експорт", "1001990000", "2024-04-12", "UA", direction="export", office="Одеська митниця", value=250000.0, trading="EG", dispatch="UA"),
    make_doc(8, "Cotton T-shirts for men", "6109100000", "2024-05-02", "TR", importer_code="00555555", value=3000.0, risk="high"),
    make_doc(9, "Кава смажена в зернах", "0901210000", "2023-12-30", "BR", value=12000.0),
    make_doc(10, "Computer mouse and keyboard sets", "8471607000", "2024-05-20", "CN", office="Львівська митниця", value=2000.0),
]


@pytest.fixture
def store(tmp_path):
    kw = TantivyKeywordStore(tmp_path / "keyword")
    kw.upsert(DOCS)
    kw.commit()
    yield kw
    kw.close()


def ids(hits):
    return [h.id for h in hits]


def test_upsert_same_id_replaces_content_and_keeps_count(store):
    assert store.count() == len(DOCS)
    changed = dict(DOCS[0], goods_description="Планшети Apple iPad")
    store.upsert([changed])
    store.commit()
    assert store.count() == len(DOCS)
    assert store.get(changed["id"])["goods_description"] == "Планшети Apple iPad"
    assert store.search("ноутбуки", None, 10) == []
    assert ids(store.search("планшети", None, 10)) == [changed["id"]]


def test_upsert_twice_in_one_batch_keeps_the_last_version(store):
    first, second = dict(DOCS[2], goods_description="груші"), dict(DOCS[2], goods_description="сливи")
    store.upsert([first, second])
    store.commit()
    assert store.count() == len(DOCS)
    assert store.get(DOCS[2]["id"])["goods_description"] == "сливи"


def test_get_returns_the_full_stored_document_or_none(store):
    assert store.get(DOCS[4]["id"]) == DOCS[4]
    assert store.get("missing#1") is None
    assert set(store.get_many([DOCS[0]["id"], "missing#1"])) == {DOCS[0]["id"]}


def test_english_query_ranks_the_matching_description_first_with_stemming(store):
    hits = store.search("laptop computer", None, 5)
    assert hits[0].id == DOCS[1]["id"]
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert ids(store.search("apple", None, 5)) == [DOCS[3]["id"]]  # "apples" stems to "appl"


def test_ukrainian_query_matches_cyrillic_case_insensitively(store):
    assert ids(store.search("ЯБЛУКА", None, 5)) == [DOCS[2]["id"]]
    hits = store.search("смартфони Samsung", None, 5)
    assert hits[0].id == DOCS[4]["id"]


def test_highlights_and_matched_terms_show_the_query_terms_in_the_hit(store):
    hit = store.search("ноутбуки lenovo", None, 5)[0]
    assert hit.matched_terms == ["ноутбуки", "lenovo"]
    assert hit.highlights["goods_description"] == "<em>Ноутбуки</em> портативні <em>Lenovo</em> ThinkPad"
    hit = store.search("Одеська shrimps", None, 5)[0]
    assert hit.id == DOCS[5]["id"]
    assert set(hit.matched_terms) == {"одеська", "shrimp"}
    assert hit.highlights["customs_office"] == "<em>Одеська</em> митниця"


def test_search_text_with_query_syntax_characters_is_taken_literally(store):
    assert ids(store.search('laptop AND (dell OR "x" [ ]', None, 5))[0] == DOCS[1]["id"]


@pytest.mark.parametrize(
    "filters, predicate",
    [
        (SearchFilters(date_from=date(2024, 3, 1), date_to=date(2024, 4, 30)), lambda d: "2024-03-01" <= d["date"] <= "2024-04-30"),
        (SearchFilters(date_to=date(2024, 1, 31)), lambda d: d["date"] <= "2024-01-31"),
        (SearchFilters(hs_prefix="8471"), lambda d: d["hs_code"].startswith("8471")),
        (SearchFilters(hs_prefix="847130"), lambda d: d["hs_code"].startswith("847130")),
        (SearchFilters(origin_countries=["CN", "PL"]), lambda d: d["origin_country"] in ("CN", "PL")),
        (SearchFilters(trading_countries=["EG"]), lambda d: d["trading_country"] == "EG"),
        (SearchFilters(dispatch_countries=["UA"]), lambda d: d["dispatch_country"] == "UA"),
        (SearchFilters(importer_code="00987654"), lambda d: d["importer_code"] == "00987654"),
        (SearchFilters(direction="export"), lambda d: d["direction"] == "export"),
        (SearchFilters(customs_office="Одеська митниця"), lambda d: d["customs_office"] == "Одеська митниця"),
        (SearchFilters(value_min=10000, value_max=60000), lambda d: 10000 <= d["customs_value_usd"] <= 60000),
        (SearchFilters(value_min=50000), lambda d: d["customs_value_usd"] >= 50000),
        (SearchFilters(risk_levels=["high", "medium"]), lambda d: d["risk_level"] in ("high", "medium")),
        (SearchFilters(hs_prefix="84", origin_countries=["CN"], risk_levels=["low"]),
         lambda d: d["hs_code"].startswith("84") and d["origin_country"] == "CN" and d["risk_level"] == "low"),
    ],
)
def test_each_filter_kind_selects_exactly_the_matching_records(store, filters, predicate):
    expected = {d["id"] for d in DOCS if predicate(d)}
    assert expected, "the test data must exercise the filter"
    assert set(ids(store.search("", filters, 100))) == expected
    assert store.count(filters) == len(expected)


def test_filters_combine_with_text_without_changing_scores(store):
    plain = store.search("computer", None, 10)
    filtered = store.search("computer", SearchFilters(hs_prefix="8471"), 10)
    assert ids(filtered) == ids(plain)
    assert [h.score for h in filtered] == pytest.approx([h.score for h in plain])
    only_lviv = store.search("computer", SearchFilters(customs_office="Львівська митниця"), 10)
    assert ids(only_lviv) == [DOCS[9]["id"]]


def test_empty_text_lists_filtered_records_newest_first_with_offset(store):
    listing = store.search("", None, 100)
    dates = [store.get(h.id)["date"] for h in listing]
    assert dates == sorted((d["date"] for d in DOCS), reverse=True)
    assert ids(store.search("", None, 3, offset=2)) == ids(listing)[2:5]


def test_facets_equal_a_direct_count_over_all_matching_records(store):
    filters = SearchFilters(date_from=date(2024, 1, 1))
    facets = store.facets(None, filters, ["hs_chapter", "origin_country", "customs_office", "month"], size=50)
    matching = [d for d in DOCS if d["date"] >= "2024-01-01"]
    for name in ("hs_chapter", "origin_country", "customs_office", "month"):
        assert dict(facets[name]) == dict(Counter(d[name] for d in matching)), name
    text_facets = store.facets("computer laptop", None, ["hs_chapter"])
    assert dict(text_facets["hs_chapter"]) == {"84": 2}  # ноутбуки is Ukrainian: not a keyword match


def test_count_with_text_counts_every_match_not_a_page(store):
    assert store.count(None, "митниця") == len(DOCS)
    assert len(store.search("митниця", None, 3)) == 3


def test_unknown_facet_is_rejected(store):
    with pytest.raises(ValueError, match="unknown facet"):
        store.facets(None, None, ["importer_name"])


def test_a_read_only_store_sees_committed_data_and_refuses_writes(tmp_path, store):
    reader = TantivyKeywordStore(tmp_path / "keyword", writable=False)
    assert reader.count() == len(DOCS)
    with pytest.raises(RuntimeError):
        reader.upsert(DOCS[:1])
    with pytest.raises(FileNotFoundError):
        TantivyKeywordStore(tmp_path / "nowhere", writable=False)


# -- OpenSearch backend against osmem-server (in-memory OpenSearch API) ---------------------------

@pytest.fixture(scope="module")
def osmem():
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False, addr="127.0.0.1:0")  # a free loopback port
    yield server
    server.close()  # stops the process this fixture started (its PID is server.pid)


@pytest.fixture
def os_store(osmem, request):
    index = f"decl-{request.node.name.lower().replace('[', '-').replace(']', '')[:40]}"
    kw = OpenSearchKeywordStore(osmem.url, index)
    kw.upsert(DOCS)
    kw.commit()
    yield kw
    kw.client.indices.delete(index=index)
    kw.close()


def test_opensearch_upsert_is_idempotent_and_get_returns_the_document(os_store):
    os_store.upsert([dict(DOCS[0], goods_description="Планшети Apple iPad")])
    os_store.commit()
    assert os_store.count() == len(DOCS)
    assert os_store.get(DOCS[0]["id"])["goods_description"] == "Планшети Apple iPad"
    assert os_store.get(DOCS[1]["id"]) == DOCS[1]
    assert os_store.get("missing#1") is None


def test_opensearch_query_highlights_and_matched_terms(os_store):
    hits = os_store.search("яблука", None, 5)
    assert ids(hits) == [DOCS[2]["id"]]
    assert hits[0].highlights["goods_description"] == "<em>Яблука</em> свіжі сорту Гала"
    assert hits[0].matched_terms == ["яблука"]
    assert os_store.search("laptop computers", None, 5)[0].id == DOCS[1]["id"]


@pytest.mark.parametrize(
    "filters, predicate",
    [
        (SearchFilters(date_from=date(2024, 3, 1), date_to=date(2024, 4, 30)), lambda d: "2024-03-01" <= d["date"] <= "2024-04-30"),
        (SearchFilters(hs_prefix="8471"), lambda d: d["hs_code"].startswith("8471")),
        (SearchFilters(origin_countries=["CN", "PL"]), lambda d: d["origin_country"] in ("CN", "PL")),
        (SearchFilters(direction="export"), lambda d: d["direction"] == "export"),
        (SearchFilters(customs_office="Одеська митниця"), lambda d: d["customs_office"] == "Одеська митниця"),
        (SearchFilters(value_min=10000, value_max=60000), lambda d: 10000 <= d["customs_value_usd"] <= 60000),
        (SearchFilters(risk_levels=["high"]), lambda d: d["risk_level"] == "high"),
        (SearchFilters(importer_code="00987654"), lambda d: d["importer_code"] == "00987654"),
    ],
)
def test_opensearch_filters_select_exactly_the_matching_records(os_store, filters, predicate):
    expected = {d["id"] for d in DOCS if predicate(d)}
    assert set(ids(os_store.search("", filters, 100))) == expected
    assert os_store.count(filters) == len(expected)


def test_opensearch_facets_equal_a_direct_count_and_listing_is_newest_first(os_store):
    facets = os_store.facets(None, None, ["hs_chapter", "origin_country", "customs_office", "month"], size=50)
    for name in ("hs_chapter", "origin_country", "customs_office", "month"):
        assert dict(facets[name]) == dict(Counter(d[name] for d in DOCS)), name
    listing = os_store.search("", None, 3)
    assert [os_store.get(h.id)["date"] for h in listing] == sorted((d["date"] for d in DOCS), reverse=True)[:3]


def test_annotate_marks_terms_for_any_given_record_and_nothing_for_a_non_match(store, os_store):
    for kw in (store, os_store):
        notes = kw.annotate("свіжі яблука", [DOCS[2]["id"], DOCS[0]["id"]])
        assert set(notes[DOCS[2]["id"]][0]) == {"яблука", "свіжі"}
        assert notes[DOCS[2]["id"]][1]["goods_description"] == "<em>Яблука</em> <em>свіжі</em> сорту Гала"
        assert notes.get(DOCS[0]["id"], ([], {})) == ([], {})
