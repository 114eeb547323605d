"""The search application over real HTTP through Ray Serve on a private cluster."""
from collections import Counter
from urllib.parse import quote

import httpx
import pytest

from ingest.pipeline import run_ingest
from ingest.sink import IndexSink
from predator.sample import generate, write_sample
from tests.cluster.indexed_corpus import index_corpus
from tests.conftest import free_port

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def corpus():
    records, _ = generate(300, seed=5)
    return records


@pytest.fixture(scope="module")
def app(ray_cluster, tmp_path_factory, corpus, hs_cache_dir):
    """Ingest the corpus, deploy the search app on a free port; yield (base_url, keys, settings)."""
    from ray import serve

    from serve_apps.search import build_app

    root = tmp_path_factory.mktemp("search-app")
    settings, keys = index_corpus(root, corpus, hs_cache_dir=hs_cache_dir)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"data_dir": str(settings.data_dir), "hs_cache_dir": hs_cache_dir}),
              name="search", route_prefix="/")
    yield f"http://127.0.0.1:{port}", keys, settings
    serve.shutdown()


def post(app, path, body, role="viewer"):
    base, keys, _ = app
    return httpx.post(base + path, json=body, headers={"Authorization": f"Bearer {keys[role]}"}, timeout=60)


def get(app, path, role="viewer"):
    base, keys, _ = app
    return httpx.get(base + path, headers={"Authorization": f"Bearer {keys[role]}"}, timeout=60)


def test_liveness_needs_no_key_but_search_does(app):
    base, _, _ = app
    assert httpx.get(base + "/healthz").status_code == 200
    missing = httpx.post(base + "/search", json={"q": "laptop"})
    assert missing.status_code == 401 and "missing API key" in missing.json()["detail"], missing.text
    wrong = httpx.post(base + "/search", json={"q": "laptop"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "unknown API key" in wrong.json()["detail"]


def test_a_viewer_may_search_but_not_reload_the_index(app):
    assert post(app, "/search", {"q": "steel"}).status_code == 200
    denied = post(app, "/admin/reload", {}, role="viewer")
    assert denied.status_code == 403 and "admin" in denied.json()["detail"]
    assert post(app, "/admin/reload", {}, role="admin").status_code == 200


def test_hybrid_search_finds_a_record_by_its_description_and_explains_it(app, corpus):
    target = next(r for r in corpus if len(r.goods_description.split()) >= 4)
    found = post(app, "/search", {"q": target.goods_description, "limit": 10, "explain": True}).json()
    ids = [hit["id"] for hit in found["hits"]]
    assert target.id in ids
    hit = found["hits"][ids.index(target.id)]
    explanation = hit["explanation"]
    assert explanation["fused_score"] == pytest.approx(hit["score"])
    assert explanation["keyword_rank"] is not None or explanation["vector_rank"] is not None
    assert found["mode"] == "hybrid" and found["fusion"] == "rrf"


@pytest.mark.parametrize("mode,fusion", [("keyword", "rrf"), ("semantic", "rrf"), ("hybrid", "weighted")])
def test_every_mode_and_fusion_answers(app, corpus, mode, fusion):
    word = corpus[0].goods_description.split()[0]
    found = post(app, "/search", {"q": word, "mode": mode, "fusion": fusion, "limit": 5}).json()
    assert found["hits"] and found["mode"] == mode


def test_filters_narrow_the_listing_and_its_total_matches_a_direct_count(app, corpus):
    chapter = Counter(r.hs_code[:2] for r in corpus).most_common(1)[0][0]
    found = post(app, "/search", {"q": "", "filters": {"hs_prefix": chapter}, "limit": 100}).json()
    expected = sum(r.hs_code.startswith(chapter) for r in corpus)
    assert found["total"] == expected
    assert all(hit["record"]["hs_code"].startswith(chapter) for hit in found["hits"])


def test_facets_count_every_matching_record_not_just_the_page(app, corpus):
    found = post(app, "/search", {"q": "", "limit": 1, "facets": ["origin_country", "month"], "facet_size": 100}).json()
    by_country = {b["value"]: b["count"] for b in found["facets"]["origin_country"]}
    expected = Counter(r.origin_country for r in corpus if r.origin_country)
    for country, count in expected.most_common(3):
        assert by_country[country] == count
    assert sum(b["count"] for b in found["facets"]["month"]) == len(corpus)


def test_importer_filter_accepts_a_code_that_lost_its_leading_zeros(app, corpus):
    padded = next((r.importer_code for r in corpus if r.importer_code.startswith("0")), None)
    if padded is None:
        pytest.skip("no zero-led code in this corpus")
    found = post(app, "/search", {"filters": {"importer_code": padded.lstrip("0")}, "limit": 100}).json()
    assert found["total"] == sum(r.importer_code == padded for r in corpus)


@pytest.mark.parametrize("body,status,needle", [
    ({"filters": {"hs_prefix": "84a"}}, 400, "hs_prefix"),
    ({"filters": {"date_from": "2024-05-01", "date_to": "2024-01-01"}}, 400, "date_from"),
    ({"filters": {"colour": "red"}}, 422, "colour"),
    ({"limit": 0}, 422, "limit"),
    ({"limit": 1000}, 400, "limit"),
    ({"q": "x" * 5000}, 400, "longer than"),
    ({"q": "steel", "offset": 500}, 400, "offset"),
    ({"mode": "magic"}, 422, "mode"),
])
def test_bad_input_gets_a_4xx_with_a_reason(app, body, status, needle):
    answer = post(app, "/search", body)
    assert answer.status_code == status
    assert needle in answer.text


def test_a_record_is_found_by_its_id_and_an_unknown_id_is_404(app, corpus):
    record = corpus[3]
    found = get(app, "/records/" + quote(record.id, safe=""))
    assert found.status_code == 200 and found.json()["id"] == record.id
    missing = get(app, "/records/" + quote("UA000000/1999/000000#1", safe=""))
    assert missing.status_code == 404 and "no record" in missing.json()["detail"]


def test_hs_suggestion_names_the_heading_of_a_plain_description(app):
    answer = post(app, "/hs/suggest", {"description": "portable laptop computer", "limit": 5})
    assert answer.status_code == 200
    headings = [s["heading"] for s in answer.json()["suggestions"]]
    assert "8471" in headings
    assert post(app, "/hs/suggest", {"description": "   "}).status_code == 400


def test_risk_levels_partition_the_records_and_flags_carry_reasons(app, corpus):
    pages = {level: post(app, "/search", {"filters": {"risk_levels": [level]}, "limit": 100}).json()
             for level in ("low", "medium", "high")}
    assert sum(page["total"] for page in pages.values()) == len(corpus)
    for level, page in pages.items():
        assert all(hit["record"]["risk_level"] == level for hit in page["hits"])
        if level != "low":
            assert all(flag["reason"] for hit in page["hits"] for flag in hit["record"]["risk_flags"])


def test_analytics_counts_match_a_direct_count_over_the_same_records(app, corpus):
    answer = post(app, "/analytics/aggregate", {"group_by": "hs_chapter", "limit": 500})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {b["key"]: b["count"] for b in body["buckets"]} == dict(Counter(r.hs_code[:2] for r in corpus))
    assert body["totals"]["count"] == len(corpus)
    assert body["totals"]["customs_value_usd"] == pytest.approx(sum(r.customs_value_usd or 0 for r in corpus))


def test_a_company_profile_is_found_by_its_code_and_an_unknown_one_is_404(app, corpus):
    code = corpus[0].importer_code
    profile = get(app, f"/analytics/companies/{code}")
    assert profile.status_code == 200
    assert profile.json()["totals"]["count"] == sum(r.importer_code == code for r in corpus)
    assert get(app, "/analytics/companies/99999999").status_code == 404


def test_the_app_serves_a_newly_published_version_without_a_redeploy(app, corpus, tmp_path):
    _, _, settings = app
    before = get(app, "/index").json()
    extra, _ = generate(20, seed=99)
    extra = [r for r in extra if r.id not in {c.id for c in corpus}]
    with IndexSink.open(settings) as sink:
        run_ingest([write_sample(tmp_path / "more.jsonl", extra)], settings, sink)
    post(app, "/admin/reload", {}, role="admin")
    after = get(app, "/index").json()
    assert after["index_version"] != before["index_version"]
    assert after["documents"] == before["documents"] + len(extra)
