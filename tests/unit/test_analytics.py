"""Analytics numbers checked against a direct computation over the same documents; the HTTP router."""
import random
from collections import defaultdict
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from predator.analytics import AnalyticsTable, UnknownCompany
from predator.auth import KeyRing, Role
from predator.filters import FilterError, SearchFilters
from serve_apps.analytics import analytics_router

IMPORTERS = ["00012345", "12345678", "23456789", "34567890"]
EXPORTERS = ["Shenzhen Huaxin Co., Ltd.", "Polmex Sp. z o.o.", "Becker GmbH"]


def make_docs(n=300, seed=7):
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        day = date(2024, 1, 1) + timedelta(days=rng.randrange(180))
        hs = rng.choice(["8471300000", "8471410000", "8504400000", "6403990000", "0803100000"])
        importer = rng.choice(IMPORTERS)
        level = rng.choice(["low", "low", "low", "medium", "high"])
        flags = [] if level == "low" else [{"detector": "undervaluation", "score": 0.9 if level == "high" else 0.6,
                                            "reason": f"reason {i}"}]
        docs.append({
            "id": f"UA100000/2024/{i:06d}#1", "declaration_id": f"UA100000/2024/{i:06d}", "line_no": 1,
            "date": day.isoformat(), "month": day.strftime("%Y-%m"), "direction": rng.choice(["import", "export"]),
            "customs_office": rng.choice(["Київська митниця", "Одеська митниця"]),
            "importer_code": importer, "importer_name": f"ТОВ {importer}",
            # The first importer buys only from the first exporter; the others share exporters more widely.
            "exporter_name": EXPORTERS[0] if importer == IMPORTERS[0] else rng.choice(EXPORTERS),
            "hs_code": hs, "hs_chapter": hs[:2], "hs_heading": hs[:4], "goods_description": "goods",
            "origin_country": rng.choice(["CN", "PL", "DE", None]), "trading_country": rng.choice(["CN", "PL"]),
            "dispatch_country": "PL", "net_weight_kg": round(rng.uniform(1, 1000), 2),
            "customs_value_usd": None if i % 37 == 0 else round(rng.uniform(10, 100_000), 2),
            "risk_level": level, "risk_flags": flags,
        })
    return docs


DOCS = make_docs()


@pytest.fixture(scope="module")
def table():
    return AnalyticsTable.from_documents(DOCS)


def matches(d, f: SearchFilters):
    """The search semantics, written out record by record."""
    value = d["customs_value_usd"]
    return all([
        f.date_from is None or d["date"] >= f.date_from.isoformat(),
        f.date_to is None or d["date"] <= f.date_to.isoformat(),
        f.hs_prefix is None or d["hs_code"].startswith(f.hs_prefix),
        not f.origin_countries or d["origin_country"] in f.origin_countries,
        not f.risk_levels or d["risk_level"] in f.risk_levels,
        f.importer_code is None or d["importer_code"] == f.importer_code,
        f.direction is None or d["direction"] == f.direction,
        f.customs_office is None or d["customs_office"] == f.customs_office,
        f.value_min is None or (value is not None and value >= f.value_min),
        f.value_max is None or (value is not None and value <= f.value_max),
    ])


def direct_groups(docs, column):
    groups = defaultdict(lambda: [0, 0.0, 0.0])
    for d in docs:
        if d[column] is None:
            continue
        g = groups[d[column]]
        g[0] += 1
        g[1] += d["customs_value_usd"] or 0.0
        g[2] += d["net_weight_kg"] or 0.0
    return groups


FILTER_CASES = [
    SearchFilters(),
    SearchFilters(date_from=date(2024, 2, 1), date_to=date(2024, 3, 31)),
    SearchFilters(hs_prefix="8471", origin_countries=["CN", "DE"]),
    SearchFilters(value_min=1000, value_max=50_000, risk_levels=["high", "medium"]),
    SearchFilters(importer_code="00012345", direction="import", customs_office="Одеська митниця"),
]


@pytest.mark.parametrize("filters", FILTER_CASES)
@pytest.mark.parametrize("group_by", ["month", "hs_chapter", "origin_country", "importer_code", "customs_office"])
def test_aggregate_matches_direct_computation(table, filters, group_by):
    selected = [d for d in DOCS if matches(d, filters)]
    result = table.aggregate(group_by, "customs_value_usd", filters)
    assert result.totals.count == len(selected)
    assert result.totals.customs_value_usd == pytest.approx(sum(d["customs_value_usd"] or 0 for d in selected))
    assert result.totals.net_weight_kg == pytest.approx(sum(d["net_weight_kg"] for d in selected))
    expected = direct_groups(selected, group_by)
    assert {b.key: (b.count, pytest.approx(b.customs_value_usd), pytest.approx(b.net_weight_kg))
            for b in result.buckets} == {k: tuple(v) for k, v in expected.items()}
    keys = [b.key for b in result.buckets]
    if group_by == "month":
        assert keys == sorted(keys)
    else:
        values = [b.customs_value_usd for b in result.buckets]
        assert values == sorted(values, reverse=True)


def test_aggregate_limit_reports_the_rest(table):
    result = table.aggregate("hs_heading", "count", limit=2)
    assert len(result.buckets) == 2 and result.other_buckets == 2  # 4 headings in all
    assert [b.count for b in result.buckets] == sorted((b.count for b in table.aggregate("hs_heading").buckets),
                                                       reverse=True)[:2]


def test_bad_filters_and_arguments_raise(table):
    with pytest.raises(FilterError):
        table.totals(SearchFilters(date_from=date(2024, 5, 1), date_to=date(2024, 1, 1)))
    with pytest.raises(ValueError, match="group_by"):
        table.aggregate("colour")


def test_top_importers_by_value_and_risk(table):
    value = defaultdict(float)
    high = defaultdict(int)
    for d in DOCS:
        value[d["importer_code"]] += d["customs_value_usd"] or 0
        high[d["importer_code"]] += d["risk_level"] == "high"
    by_value = table.top_importers("value", limit=4)
    assert [r.importer_code for r in by_value] == sorted(value, key=value.get, reverse=True)
    assert by_value[0].customs_value_usd == pytest.approx(max(value.values()))
    by_risk = table.top_importers("risk", limit=2)
    assert [r.high for r in by_risk] == sorted(high.values(), reverse=True)[:2]


def test_company_profile(table):
    code = IMPORTERS[0]
    mine = [d for d in DOCS if d["importer_code"] == code]
    profile = table.company_profile(code)
    assert profile.totals.count == len(mine)
    assert profile.first_date == min(d["date"] for d in mine) and profile.last_date == max(d["date"] for d in mine)
    assert sum(b.count for b in profile.by_month) == len(mine)
    assert {b.key for b in profile.headings} == {d["hs_heading"] for d in mine}
    assert profile.risk_levels == {level: sum(d["risk_level"] == level for d in mine)
                                   for level in {d["risk_level"] for d in mine}}
    assert profile.flags_by_detector == {"undervaluation": sum(bool(d["risk_flags"]) for d in mine)}
    assert profile.flagged_records[0].flags[0]["reason"].startswith("reason")
    related = {r.importer_code: r.shared_exporters for r in profile.related_companies}
    assert related == {c: [EXPORTERS[0]] for c in IMPORTERS[1:]
                       if any(d["importer_code"] == c and d["exporter_name"] == EXPORTERS[0] for d in DOCS)}
    with pytest.raises(UnknownCompany):
        table.company_profile("99999999")


def test_from_parquet_gives_the_same_numbers(tmp_path, table):
    path = tmp_path / "records.parquet"
    pq.write_table(pa.Table.from_pylist(DOCS), path)
    loaded = AnalyticsTable.from_parquet(path)
    filters = SearchFilters(risk_levels=["high"], hs_prefix="85")
    assert loaded.totals(filters) == table.totals(filters)
    assert loaded.company_profile(IMPORTERS[1]) == table.company_profile(IMPORTERS[1])


# --------------------------------------------------------------------- HTTP


@pytest.fixture(scope="module")
def client(table):
    app = FastAPI()
    ring = KeyRing({})
    ring.add("viewer-key", "viewer", Role.viewer)
    app.state.keyring = ring
    app.include_router(analytics_router(lambda: table))
    return TestClient(app, headers={"Authorization": "Bearer viewer-key"})


def test_router_needs_a_key(table):
    app = FastAPI()
    app.state.keyring = KeyRing({})
    app.include_router(analytics_router(lambda: table))
    response = TestClient(app).get("/analytics/top-importers")
    assert response.status_code == 401


def test_router_aggregate_matches_the_table(client, table):
    body = {"filters": {"hs_prefix": "8471", "importer_code": "12345"}, "group_by": "month", "metric": "count"}
    response = client.post("/analytics/aggregate", json=body)
    assert response.status_code == 200, response.text
    expected = table.aggregate("month", "count", SearchFilters(hs_prefix="8471", importer_code="00012345"))
    data = response.json()
    assert data["totals"]["count"] == expected.totals.count > 0
    assert [b["key"] for b in data["buckets"]] == [b.key for b in expected.buckets]


@pytest.mark.parametrize("body, status, reason", [
    ({"filters": {"date_from": "2024-05-01", "date_to": "2024-01-01"}, "group_by": "month"}, 400, "date_from"),
    ({"filters": {"hs_prefix": "84a"}, "group_by": "month"}, 400, "hs_prefix"),
    ({"filters": {"importer_code": "123456789"}, "group_by": "month"}, 400, "importer_code"),
    ({"filters": {"origin_countries": ["Atlantis"]}, "group_by": "month"}, 400, "origin_countries"),
    ({"group_by": "colour"}, 422, "group_by"),
    ({"group_by": "month", "filters": {"value_min": -1}}, 422, "value_min"),
])
def test_router_bad_input_is_4xx_with_a_reason(client, body, status, reason):
    response = client.post("/analytics/aggregate", json=body)
    assert response.status_code == status
    assert reason in response.text


def test_router_top_importers(client, table):
    response = client.get("/analytics/top-importers", params={"by": "risk", "limit": 2})
    assert response.status_code == 200
    assert [r["importer_code"] for r in response.json()["importers"]] == [
        r.importer_code for r in table.top_importers("risk", 2)]
    filtered = client.post("/analytics/top-importers", json={"by": "value", "filters": {"risk_levels": ["high"]}})
    assert filtered.status_code == 200
    assert filtered.json()["importers"][0]["high"] > 0
    assert client.get("/analytics/top-importers", params={"by": "size"}).status_code == 422


def test_router_company_profile(client):
    response = client.get("/analytics/companies/12345")  # leading zeros dropped by a spreadsheet
    assert response.status_code == 200
    profile = response.json()
    assert profile["importer_code"] == "00012345"
    assert profile["related_companies"] and profile["flagged_records"][0]["flags"][0]["detector"] == "undervaluation"
    unknown = client.get("/analytics/companies/99999999")
    assert unknown.status_code == 404 and "99999999" in unknown.json()["detail"]
    malformed = client.get("/analytics/companies/12ab")
    assert malformed.status_code == 422 and "ЄДРПОУ" in malformed.json()["detail"]


def test_router_before_any_ingest_is_503():
    app = FastAPI()
    ring = KeyRing({})
    ring.add("k", "viewer", Role.viewer)
    app.state.keyring = ring
    app.include_router(analytics_router(lambda: None))
    response = TestClient(app, headers={"Authorization": "Bearer k"}).get("/analytics/top-importers")
    assert response.status_code == 503
