"""Sample generator: deterministic, realistic, with labels that point at real records."""
import datetime as dt
import json
from collections import Counter, defaultdict

import pytest

from predator.__main__ import main
from predator.nomenclature import load_nomenclature
from predator.sample import DAYS, START, generate, labels_path, write_sample


@pytest.fixture(scope="module")
def sample():
    return generate(3000, seed=42, anomaly_rate=0.06)


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path):
    paths = []
    for name, seed in (("a", 9), ("b", 9), ("c", 10)):
        main(["sample", "--rows", "500", "--seed", str(seed), "--out", str(tmp_path / f"{name}.csv")])
        paths.append(tmp_path / f"{name}.csv")
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert labels_path(paths[0]).read_bytes() == labels_path(paths[1]).read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_generates_exactly_the_requested_rows_with_unique_ids(sample):
    records, _ = sample
    assert len(records) == 3000
    assert len({r.id for r in records}) == 3000
    assert records == sorted(records, key=lambda r: r.date)


def test_every_label_points_at_an_existing_record(sample):
    records, labels = sample
    ids = {r.id for r in records}
    assert labels and all(label["id"] in ids for label in labels)
    assert len({label["id"] for label in labels}) == len(labels)
    counts = Counter(label["anomaly"] for label in labels)
    assert set(counts) == {"undervaluation", "misclassification", "new_mass_importer"}
    assert sum(counts.values()) == round(3000 * 0.06)


def test_records_are_valid_canonical_declarations(sample):
    records, _ = sample
    nomenclature = load_nomenclature()
    end = START + dt.timedelta(days=DAYS - 1)
    for r in records:
        assert len(r.importer_code) == 8 and r.importer_code.isdigit()
        assert len(r.hs_code) == 10 and r.hs_code[:6] in nomenclature.subheadings
        assert START <= r.date <= end
        assert r.net_weight_kg > 0 and r.gross_weight_kg >= r.net_weight_kg
        assert r.customs_value_usd > 0 and r.invoice_value > 0 and r.currency in {"USD", "EUR", "PLN", "CNY"}
        assert r.direction in {"import", "export"}
    assert sum(r.importer_code.startswith("0") for r in records) > 0  # leading zeros occur
    assert len({r.customs_office for r in records}) >= 15
    assert any("країна виробництва" in r.goods_description for r in records)  # some descriptions in Ukrainian


def test_undervalued_lines_are_70_to_95_percent_below_the_heading_norm(sample):
    records, labels = sample
    by_id = {r.id: r for r in records}
    for label in (l for l in labels if l["anomaly"] == "undervaluation"):
        record, detail = by_id[label["id"]], label["detail"]
        ratio = record.unit_price_usd_per_kg / detail["normal_unit_price_usd_per_kg"]
        assert 0.04 <= ratio <= 0.31, label
        assert record.hs_heading == detail["heading"]


def test_misclassified_lines_are_declared_under_another_chapter(sample):
    records, labels = sample
    by_id = {r.id: r for r in records}
    for label in (l for l in labels if l["anomaly"] == "misclassification"):
        record, detail = by_id[label["id"]], label["detail"]
        assert record.hs_heading == detail["declared_heading"]
        assert detail["true_heading"][:2] != record.hs_chapter


def test_new_mass_importers_appear_late_and_declare_heavily_within_two_weeks(sample):
    records, labels = sample
    labelled = {l["id"] for l in labels if l["anomaly"] == "new_mass_importer"}
    lines = defaultdict(list)
    for r in records:
        lines[r.importer_code].append(r)
    codes = {r.importer_code for r in records if r.id in labelled}
    end = START + dt.timedelta(days=DAYS - 1)
    median_weight = sorted(r.net_weight_kg for r in records)[len(records) // 2]
    for code in codes:
        own = lines[code]
        assert all(r.id in labelled for r in own)  # every line of such a company is labelled
        first, last = min(r.date for r in own), max(r.date for r in own)
        assert (end - first).days <= 21 and (last - first).days <= 14
        assert len(own) >= 10
        assert sorted(r.net_weight_kg for r in own)[len(own) // 2] > median_weight


def test_write_sample_writes_the_labels_sidecar(tmp_path, sample):
    records, labels = sample
    path = write_sample(tmp_path / "s.jsonl", records, labels)
    sidecar = [json.loads(line) for line in labels_path(path).read_text(encoding="utf-8").splitlines()]
    assert sidecar == labels
    assert labels_path(path).name == "s.jsonl.labels.jsonl"


def test_cli_appends_bad_rows_and_rejects_bad_arguments(tmp_path, capsys):
    out = tmp_path / "demo.parquet"
    assert main(["sample", "--rows", "50", "--seed", "1", "--out", str(out), "--bad-rows", "6"]) == 0
    assert "50 records and 6 broken rows" in capsys.readouterr().out
    assert main(["sample", "--rows", "5", "--out", str(tmp_path / "x.txt")]) == 2
    assert "unknown format" in capsys.readouterr().err


def test_zero_anomaly_rate_gives_no_labels():
    records, labels = generate(200, seed=1, anomaly_rate=0)
    assert len(records) == 200 and labels == []


def test_nomenclature_has_every_level_and_resolves_national_codes():
    n = load_nomenclature()
    assert (len(n.chapters), len(n.headings), len(n.subheadings)) == (97, 1229, 5613)
    assert n.title("8471300000") == n.subheadings["847130"]
    assert n.title("8471.99") == n.headings["8471"]  # unknown subheading falls back to its heading
    assert n.title("84") == n.chapters["84"] and n.title("0000") is None
    assert n.heading_of("8471300000") == "8471" and n.heading_of("0000") is None
    assert "847130" in n.subheadings_of("8471") and all(c.startswith("8471") for c in n.subheadings_of("8471"))
