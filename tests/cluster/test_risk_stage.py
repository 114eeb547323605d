"""Risk statistics and scoring on Ray Data equal the plain-Python result."""
import json

import pytest

from ingest.risk_stage import compute_stats, score_dataset
from predator.risk import RiskScorer, RiskStats
from tests.unit.test_risk import doc, importer_world, priced_heading

pytestmark = pytest.mark.cluster


def documents():
    return importer_world() + priced_heading(start=1000) + [doc(5000, price=0.42)]


def test_stats_per_block_merge_to_the_stats_of_all(ray_cluster):
    import ray.data

    docs = documents()
    ds = ray.data.from_items(docs, override_num_blocks=4)
    assert compute_stats(ds) == RiskStats.from_documents(docs)


def test_score_dataset_rows_and_json_column(ray_cluster):
    import ray.data

    docs = documents()
    stats = RiskStats.from_documents(docs)
    expected = {d["id"]: result for d, result in zip(docs, RiskScorer(stats).score(docs))}
    rows = score_dataset(ray.data.from_items(docs, override_num_blocks=3), stats).take_all()
    assert {r["id"]: (r["risk_level"], list(r["risk_flags"])) for r in rows} == expected

    items = [{"status": "ok", "doc": json.dumps(d)} for d in docs] + [{"status": "quarantined", "doc": ""}]
    out = score_dataset(ray.data.from_items(items, override_num_blocks=3), stats, doc_column="doc").take_all()
    scored = {json.loads(r["doc"])["id"]: json.loads(r["doc"]) for r in out if r["doc"]}
    assert {i: (d["risk_level"], d["risk_flags"]) for i, d in scored.items()} == expected
    assert sum(1 for r in out if not r["doc"]) == 1
