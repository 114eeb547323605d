"""SearchEngine end to end on ~50 hand-made declarations (English and Ukrainian) with the real
embedder, tantivy and qdrant-edge in a versioned index layout; and the layout itself."""
from collections import Counter
from datetime import date

import pytest

from predator.embedder import Embedder, document_text
from predator.filters import SearchFilters
from predator.index_layout import IndexLayout
from predator.search import QueryError, SearchEngine, SearchQuery, open_stores
from predator.settings import Settings

# (description, hs_code, origin, date, office, customs_value_usd, risk_level)
ROWS = [
    ("Laptop computers Dell Latitude 5440, portable", "8471300000", "CN", "2024-01-10", "Київська митниця", 41000, "low"),
    ("Ноутбуки портативні Lenovo ThinkPad", "8471300000", "CN", "2024-01-22", "Київська митниця", 52000, "high"),
    ("Desktop computer system units", "8471500000", "TW", "2024-02-02", "Одеська митниця", 18000, "low"),
    ("Комп'ютерні миші та клавіатури", "8471607000", "CN", "2024-02-14", "Львівська митниця", 2500, "low"),
    ("Mobile phones Samsung Galaxy smartphones", "8517130000", "VN", "2024-01-05", "Київська митниця", 99000, "medium"),
    ("Мобільні телефони Apple iPhone 15", "8517130000", "CN", "2024-03-03", "Київська митниця", 150000, "high"),
    ("Television sets LED 55 inch", "8528721000", "PL", "2024-03-18", "Волинська митниця", 30000, "low"),
    ("Телевізори рідкокристалічні Philips", "8528721000", "HU", "2024-04-01", "Закарпатська митниця", 27000, "low"),
    ("Fresh apples Golden Delicious in boxes", "0808108000", "PL", "2024-02-20", "Волинська митниця", 7000, "low"),
    ("Яблука свіжі сорту Гала", "0808108000", "PL", "2024-03-01", "Львівська митниця", 8000, "low"),
    ("Fresh bananas Cavendish", "0803901000", "EC", "2024-01-30", "Одеська митниця", 21000, "low"),
    ("Банани свіжі з Еквадору", "0803901000", "EC", "2024-04-15", "Одеська митниця", 19000, "medium"),
    ("Frozen shrimps, peeled, vannamei", "0306171000", "EC", "2024-02-11", "Одеська митниця", 15000, "low"),
    ("Креветки морожені неочищені", "0306171000", "IN", "2024-05-02", "Одеська митниця", 16000, "low"),
    ("Roasted coffee beans Arabica", "0901210000", "BR", "2024-01-12", "Київська митниця", 12000, "low"),
    ("Кава смажена в зернах Робуста", "0901210000", "VN", "2024-03-25", "Київська митниця", 11000, "low"),
    ("Black tea in packets", "0902300000", "LK", "2024-02-27", "Одеська митниця", 6000, "low"),
    ("Чай зелений листовий", "0902100000", "CN", "2024-04-20", "Київська митниця", 5000, "low"),
    ("Red wine in bottles, Bordeaux", "2204210000", "FR", "2024-01-17", "Київська митниця", 25000, "low"),
    ("Вино ігристе Просекко", "2204109000", "IT", "2024-05-11", "Львівська митниця", 14000, "low"),
    ("Cotton T-shirts for men", "6109100000", "TR", "2024-02-05", "Одеська митниця", 3000, "high"),
    ("Футболки бавовняні жіночі", "6109100000", "BD", "2024-03-14", "Одеська митниця", 2800, "medium"),
    ("Men's leather shoes", "6403990000", "IT", "2024-04-08", "Львівська митниця", 9000, "low"),
    ("Взуття спортивне кросівки Nike", "6404110000", "VN", "2024-05-19", "Київська митниця", 22000, "high"),
    ("New pneumatic rubber tires for passenger cars", "4011100000", "DE", "2024-01-25", "Волинська митниця", 33000, "low"),
    ("Шини пневматичні для легкових автомобілів", "4011100000", "PL", "2024-04-27", "Волинська митниця", 31000, "low"),
    ("Passenger cars with petrol engine, used", "8703239000", "DE", "2024-02-18", "Волинська митниця", 12000, "high"),
    ("Легкові автомобілі електричні Tesla", "8703800000", "US", "2024-05-06", "Одеська митниця", 45000, "medium"),
    ("Wheat for export, milling quality", "1001990000", "UA", "2024-03-09", "Одеська митниця", 250000, "low"),
    ("Пшениця м'яка третього класу", "1001990000", "UA", "2024-04-30", "Одеська митниця", 240000, "low"),
    ("Sunflower oil crude in bulk", "1512111000", "UA", "2024-02-23", "Одеська митниця", 180000, "low"),
    ("Олія соняшникова рафінована", "1512199000", "UA", "2024-05-14", "Одеська митниця", 90000, "low"),
    ("Portland cement in bags", "2523290000", "TR", "2024-01-08", "Одеська митниця", 8000, "low"),
    ("Цемент портландський", "2523290000", "BY", "2024-03-21", "Волинська митниця", 7500, "medium"),
    ("Steel pipes seamless for oil wells", "7304291000", "CN", "2024-02-09", "Одеська митниця", 60000, "low"),
    ("Труби сталеві зварні", "7306309000", "TR", "2024-04-11", "Одеська митниця", 58000, "low"),
    ("Paracetamol tablets 500 mg", "3004900000", "IN", "2024-01-28", "Київська митниця", 14000, "low"),
    ("Лікарські засоби вакцини від грипу", "3002410000", "FR", "2024-05-22", "Київська митниця", 200000, "low"),
    ("Children's toys plastic construction sets", "9503007000", "CN", "2024-03-06", "Одеська митниця", 4000, "high"),
    ("Іграшки дитячі м'які", "9503004100", "CN", "2024-05-09", "Одеська митниця", 3500, "medium"),
    ("Wooden office desks and chairs", "9403300000", "PL", "2024-02-16", "Львівська митниця", 11000, "low"),
    ("Меблі кухонні дерев'яні", "9403400000", "PL", "2024-04-18", "Львівська митниця", 13000, "low"),
    ("Solar panels photovoltaic modules", "8541430000", "CN", "2024-03-12", "Київська митниця", 85000, "medium"),
    ("Сонячні панелі фотоелектричні", "8541430000", "CN", "2024-05-28", "Київська митниця", 79000, "high"),
    ("Lithium-ion batteries for electric vehicles", "8507600000", "KR", "2024-01-19", "Київська митниця", 120000, "low"),
    ("Акумулятори літій-іонні", "8507600000", "CN", "2024-04-05", "Київська митниця", 64000, "low"),
    ("Chocolate bars with hazelnuts", "1806329000", "DE", "2024-02-29", "Волинська митниця", 9500, "low"),
    ("Шоколад молочний в плитках", "1806329000", "PL", "2024-05-03", "Волинська митниця", 8700, "low"),
    ("Printing paper A4 in reams", "4802569000", "FI", "2024-03-27", "Львівська митниця", 6500, "low"),
    ("Папір офісний для принтерів", "4802569000", "AT", "2024-05-16", "Львівська митниця", 6100, "low"),
]


def make_doc(n, row):
    description, hs_code, origin, day, office, value, risk = row
    return {
        "id": f"UA24{n:04d}#1", "declaration_id": f"UA24{n:04d}", "line_no": 1, "date": day, "month": day[:7],
        "direction": "export" if origin == "UA" else "import", "customs_office": office,
        "importer_code": f"{(n % 5) + 10000000:08d}", "importer_name": f"ТОВ Імпортер {n % 5}",
        "exporter_name": "Global Trade Ltd", "hs_code": hs_code, "hs_chapter": hs_code[:2],
        "hs_heading": hs_code[:4], "goods_description": description, "trading_country": origin,
        "dispatch_country": origin, "origin_country": origin, "origin_country_name": None,
        "trading_country_name": None, "net_weight_kg": 100.0, "gross_weight_kg": 110.0, "quantity": 10.0,
        "unit": "pcs", "invoice_value": float(value), "currency": "USD", "customs_value_usd": float(value),
        "unit_price_usd_per_kg": value / 100, "risk_level": risk, "risk_flags": [],
    }


DOCS = [make_doc(n, row) for n, row in enumerate(ROWS)]
BY_DESCRIPTION = {d["goods_description"]: d["id"] for d in DOCS}
DEPTH = 30


@pytest.fixture(scope="module")
def embedder():
    return Embedder(threads=1)


@pytest.fixture(scope="module")
def settings(tmp_path_factory, embedder):
    """An index version built as the ingest job would: begin, upsert both stores, commit, publish."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), retriever_depth=DEPTH, _env_file=None)
    layout = IndexLayout(settings.index_dir)
    version, _ = layout.begin_version()
    keyword, vectors = open_stores(settings, version, mode="write", dim=embedder.dim)
    keyword.upsert(DOCS)
    keyword.commit()
    vectors.upsert([d["id"] for d in DOCS], embedder.encode([document_text(d) for d in DOCS]), DOCS)
    vectors.close()
    keyword.close()
    layout.publish(version)
    return settings


@pytest.fixture(scope="module")
def engine(settings, embedder):
    engine = SearchEngine.from_settings(settings, embedder)
    yield engine
    engine.close()


def first(engine, text, **kwargs):
    return engine.search(SearchQuery(text=text, **kwargs)).hits[0].record["goods_description"]


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "semantic"])
def test_english_query_finds_the_obvious_declaration_first_in_every_mode(engine, mode):
    assert first(engine, "frozen shrimps", mode=mode) == "Frozen shrimps, peeled, vannamei"
    assert first(engine, "solar panels", mode=mode) == "Solar panels photovoltaic modules"


@pytest.mark.parametrize("mode", ["hybrid", "keyword"])
def test_ukrainian_query_finds_the_ukrainian_declaration_first(engine, mode):
    assert first(engine, "яблука", mode=mode) == "Яблука свіжі сорту Гала"
    assert first(engine, "шини пневматичні", mode=mode) == "Шини пневматичні для легкових автомобілів"


def test_semantic_mode_finds_a_paraphrase_with_no_shared_word(engine):
    assert first(engine, "car tyres", mode="semantic") == "New pneumatic rubber tires for passenger cars"
    assert first(engine, "notebook pc", mode="semantic").startswith("Laptop computers")
    assert first(engine, "car tyres", mode="hybrid") == "New pneumatic rubber tires for passenger cars"


def test_hybrid_explanation_shows_both_retrievers_fused_score_and_matched_terms(engine):
    result = engine.search(SearchQuery(text="frozen shrimps", explain=True, highlight=True))
    top = result.hits[0]
    assert (result.mode, result.fusion) == ("hybrid", "rrf")
    assert top.explanation.keyword_rank == 1 and top.explanation.vector_rank == 1
    assert top.explanation.keyword_score > 0 and 0 < top.explanation.vector_score <= 1
    assert top.explanation.fused_score == pytest.approx(top.score) == pytest.approx(2 / 61)
    assert top.explanation.matched_terms == ["frozen", "shrimp"]
    assert top.highlights["goods_description"].startswith("<em>Frozen</em> <em>shrimps</em>")


def test_weighted_fusion_at_the_extremes_follows_one_retriever(engine):
    semantic = [h.id for h in engine.search(SearchQuery(text="fresh fruit", mode="semantic", limit=5)).hits]
    all_vector = engine.search(SearchQuery(text="fresh fruit", fusion="weighted", semantic_weight=1.0, limit=5))
    assert [h.id for h in all_vector.hits] == semantic
    keyword = [h.id for h in engine.search(SearchQuery(text="fresh fruit", mode="keyword", limit=5)).hits]
    all_keyword = engine.search(SearchQuery(text="fresh fruit", fusion="weighted", semantic_weight=0.0, limit=5))
    assert len(keyword) == 2  # the rest of the page are vector-only hits, fused score 0
    assert [h.id for h in all_keyword.hits][:2] == keyword
    assert [h.score for h in all_keyword.hits][2:] == [0.0] * 3
    assert all_keyword.fusion == "weighted"


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "semantic"])
def test_filters_hold_for_every_hit_in_every_mode(engine, mode):
    filters = SearchFilters(origin_countries=["CN", "VN"], date_from=date(2024, 1, 6))
    result = engine.search(SearchQuery(text="computer phone", mode=mode, filters=filters, limit=30))
    assert result.hits
    for hit in result.hits:
        assert hit.record["origin_country"] in ("CN", "VN") and hit.record["date"] >= "2024-01-06"
    if mode == "keyword":  # the VN phones of 2024-01-05 match the text but not the date
        assert [h.record["goods_description"] for h in result.hits] == ["Laptop computers Dell Latitude 5440, portable"]


def test_empty_text_with_filters_is_a_listing_newest_first(engine):
    filters = SearchFilters(customs_office="Одеська митниця")
    result = engine.search(SearchQuery(text="  ", filters=filters, limit=5, offset=1))
    expected = sorted((d for d in DOCS if d["customs_office"] == "Одеська митниця"), key=lambda d: d["date"], reverse=True)
    assert result.mode == "listing" and result.total == len(expected)
    assert [h.id for h in result.hits] == [d["id"] for d in expected[1:6]]


def test_facets_count_all_matching_records_not_the_page(engine):
    names = ["hs_chapter", "origin_country", "customs_office", "month"]
    result = engine.search(SearchQuery(text="", limit=1, facets=names, facet_size=100))
    for name in names:
        assert dict(result.facets[name]) == dict(Counter(d[name] for d in DOCS)), name
    top = engine.search(SearchQuery(text="", limit=1, facets=["customs_office"], facet_size=1)).facets
    assert top["customs_office"] == [("Одеська митниця", 18)]
    keyword = engine.search(SearchQuery(text="fresh", mode="keyword", limit=1, facets=["hs_chapter"]))
    assert dict(keyword.facets["hs_chapter"]) == {"08": 2} and keyword.total == 2


def test_pages_follow_each_other_and_paging_past_the_retriever_depth_is_an_error(engine):
    whole = [h.id for h in engine.search(SearchQuery(text="fresh", limit=20)).hits]
    second = [h.id for h in engine.search(SearchQuery(text="fresh", offset=10, limit=10)).hits]
    assert second == whole[10:20]
    with pytest.raises(QueryError) as caught:
        engine.search(SearchQuery(text="fresh", offset=DEPTH - 5, limit=10))
    assert caught.value.field == "offset" and str(DEPTH) in caught.value.reason
    deep = engine.search(SearchQuery(text="митниця", mode="keyword", offset=DEPTH, limit=10))
    assert len(deep.hits) == 10  # keyword mode pages in the engine, at any depth


@pytest.mark.parametrize(
    "query, field",
    [
        (SearchQuery(text="x", mode="fuzzy"), "mode"),
        (SearchQuery(text="x", fusion="max"), "fusion"),
        (SearchQuery(text="x", semantic_weight=1.5), "semantic_weight"),
        (SearchQuery(text="x", limit=0), "limit"),
        (SearchQuery(text="x", limit=1000), "limit"),
        (SearchQuery(text="x", facets=["importer_name"]), "facets"),
        (SearchQuery(text="x" * 600), "text"),
        (SearchQuery(text="x", filters=SearchFilters(hs_prefix="84a")), "filters.hs_prefix"),
    ],
)
def test_bad_requests_raise_query_error_naming_the_field(engine, query, field):
    with pytest.raises(QueryError) as caught:
        engine.search(query)
    assert caught.value.field == field


def test_get_returns_the_stored_record(engine):
    assert engine.get(DOCS[7]["id"]) == DOCS[7]
    assert engine.get("nope#1") is None


def test_suggest_hs_delegates_to_the_suggester(settings, embedder):
    class Suggester:
        def suggest(self, description, limit, mode, fusion, rrf_k):
            return [(description, limit, mode, fusion, rrf_k)]

    engine = SearchEngine(None, None, embedder, hs_suggester=Suggester(), rrf_k=20)
    assert engine.suggest_hs("apples", limit=3) == [("apples", 3, "hybrid", "weighted", 20)]
    assert engine.suggest_hs("apples", mode="keyword", fusion="rrf")[0][2:4] == ("keyword", "rrf")


# -- index layout -------------------------------------------------------------------------------

def test_layout_begin_copies_current_publish_switches_and_old_version_is_untouched(tmp_path, embedder):
    settings = Settings(data_dir=tmp_path, _env_file=None)
    layout = IndexLayout(settings.index_dir)
    assert layout.current() is None and layout.versions() == []
    with pytest.raises(FileNotFoundError):
        open_stores(settings, mode="read")

    v1, _ = layout.begin_version()
    keyword, vectors = open_stores(settings, v1, mode="write", dim=embedder.dim)
    keyword.upsert(DOCS[:3]), keyword.commit(), keyword.close()
    vectors.upsert([d["id"] for d in DOCS[:3]], embedder.encode([document_text(d) for d in DOCS[:3]]), DOCS[:3])
    vectors.close()
    layout.publish(v1)
    assert layout.current() == v1

    v2, path2 = layout.begin_version()  # copy-on-write: starts with v1's records
    assert v2 > v1 and layout.current() == v1
    keyword, vectors = open_stores(settings, v2, mode="write", dim=embedder.dim)
    assert keyword.count() == 3 and vectors.count() == 3
    keyword.upsert([dict(DOCS[0], goods_description="changed")] + DOCS[3:5]), keyword.commit(), keyword.close()
    vectors.upsert([d["id"] for d in DOCS[3:5]], embedder.encode(["a", "b"]), DOCS[3:5])
    vectors.close()

    reader_keyword, reader_vectors = open_stores(settings, mode="read", dim=embedder.dim)  # still v1
    assert reader_keyword.count() == 3 and reader_vectors.count() == 3
    assert reader_keyword.get(DOCS[0]["id"])["goods_description"] == DOCS[0]["goods_description"]
    reader_vectors.close()

    layout.publish(v2)
    assert layout.current() == v2  # what a replica polls to notice the new version
    keyword, vectors = open_stores(settings, mode="read", dim=embedder.dim)
    assert keyword.count() == 5 and vectors.count() == 5
    assert keyword.get(DOCS[0]["id"])["goods_description"] == "changed"
    vectors.close()


def test_layout_prune_keeps_the_newest_published_and_anything_newer(tmp_path):
    layout = IndexLayout(tmp_path / "index")
    for _ in range(4):
        version, path = layout.begin_version()
        (path / "keyword").mkdir(exist_ok=True)
        layout.publish(version)
    in_progress, _ = layout.begin_version()
    assert layout.prune(keep=2) == ["v000001", "v000002"]
    assert layout.versions() == ["v000003", "v000004", in_progress]
    assert layout.current() == "v000004"
    with pytest.raises(ValueError):
        layout.prune(keep=0)
    with pytest.raises(FileNotFoundError):
        layout.publish("v000099")


def test_open_stores_write_mode_needs_a_version(tmp_path):
    with pytest.raises(FileNotFoundError, match="begin_version"):
        open_stores(Settings(data_dir=tmp_path, _env_file=None), mode="write")


def test_scale_out_backends_opensearch_and_qdrant_client_serve_the_same_engine(tmp_path, embedder):
    """The server code paths: OpenSearch (osmem-server stands in) and the Qdrant client (local mode)."""
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    try:
        settings = Settings(
            data_dir=tmp_path, keyword_backend="opensearch", opensearch_url=server.url,
            vector_backend="qdrant", qdrant_url=None, _env_file=None,
        )
        version, _ = IndexLayout(settings.index_dir).begin_version()  # local mode lives in a version
        keyword, vectors = open_stores(settings, version, mode="write", dim=embedder.dim)
        keyword.upsert(DOCS)
        keyword.commit()
        vectors.upsert([d["id"] for d in DOCS], embedder.encode([document_text(d) for d in DOCS]), DOCS)
        engine = SearchEngine(keyword, vectors, embedder, retriever_depth=DEPTH)
        result = engine.search(SearchQuery(text="frozen shrimps", explain=True, facets=["hs_chapter"]))
        assert result.hits[0].record["goods_description"] == "Frozen shrimps, peeled, vannamei"
        assert result.hits[0].explanation.matched_terms == ["frozen", "shrimps"]
        assert dict(result.facets["hs_chapter"]) == {"03": 1}
        listing = engine.search(SearchQuery(filters=SearchFilters(origin_countries=["EC"]), limit=5))
        assert listing.total == 3
        engine.close()
    finally:
        server.close()  # the server process this test started
