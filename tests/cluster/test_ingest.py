"""The ingest job on a private cluster: accounting, quarantine, idempotence, formats, exit codes."""
import json
import subprocess
import sys

import pytest

from ingest.pipeline import run_ingest
from ingest.sink import IndexSink
from predator.index_layout import IndexLayout
from predator.quarantine import read_quarantine
from predator.sample import generate, write_sample
from predator.search import open_stores
from predator.settings import Settings

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def records():
    found, _ = generate(60, seed=11)
    return found


@pytest.fixture
def settings(tmp_path, hs_cache_dir) -> Settings:
    return Settings(data_dir=tmp_path / "data", ingest_embed_actors=1, hs_cache_dir=hs_cache_dir)


def ingest(paths, settings):
    with IndexSink.open(settings) as sink:
        return run_ingest(paths, settings, sink)


def indexed_count(settings) -> int:
    keyword, vectors = open_stores(settings, mode="read")
    try:
        assert keyword.count() == vectors.count()
        return keyword.count()
    finally:
        keyword.close()
        vectors.close()


def test_every_row_read_is_indexed_or_quarantined_with_its_reason(ray_cluster, tmp_path, records, settings):
    path = write_sample(tmp_path / "export.csv", records, bad_rows=12, seed=1)
    summary = ingest([path], settings)
    assert (summary.rows_read, summary.rows_indexed, summary.rows_quarantined) == (72, 60, 12)
    assert summary.balanced
    quarantined = read_quarantine(summary.quarantine_path)
    assert len(quarantined) == 12
    assert all(q["source"].endswith("export.csv") and q["line"] > 1 and q["reason"] for q in quarantined)
    reasons = " | ".join(q["reason"] for q in quarantined)
    for expected in ("declaration_id", "date", "not a number", "4-10 digits", "more than 8 digits", "country"):
        assert expected in reasons
    assert indexed_count(settings) == 60


def test_reingesting_the_same_file_replaces_records_instead_of_duplicating(ray_cluster, tmp_path, records, settings):
    path = write_sample(tmp_path / "export.jsonl", records)
    first = ingest([path], settings)
    second = ingest([path], settings)
    assert (first.index_version, second.index_version) == ("v000001", "v000002")
    assert IndexLayout(settings.index_dir).current() == "v000002"
    assert indexed_count(settings) == 60


FORMATS = [("export.xlsx", {}), ("export.parquet", {}), ("export-cp1251.csv", {"encoding": "cp1251"}),
           ("export-canonical.csv", {"style": "canonical"})]


def test_every_supported_format_indexes_every_record(ray_cluster, tmp_path, records, settings):
    shares = [records[i::len(FORMATS)] for i in range(len(FORMATS))]
    paths = [write_sample(tmp_path / name, share, **options) for (name, options), share in zip(FORMATS, shares)]
    summary = ingest(paths, settings)
    assert (summary.rows_read, summary.rows_indexed, summary.rows_quarantined) == (60, 60, 0)
    keyword, vectors = open_stores(settings, mode="read")
    try:
        for share in shares:
            stored = keyword.get(share[0].id)
            assert stored["importer_code"] == share[0].importer_code
            assert stored["hs_code"] == share[0].hs_code
            assert stored["customs_value_usd"] == pytest.approx(share[0].customs_value_usd)
    finally:
        keyword.close()
        vectors.close()


def test_an_unreadable_file_is_quarantined_and_the_live_index_is_kept(ray_cluster, tmp_path, records, settings):
    good = write_sample(tmp_path / "good.jsonl", records)
    ingest([good], settings)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"this is not a spreadsheet")
    summary = ingest([broken], settings)
    assert summary.rows_indexed == 0 and summary.rows_quarantined == 1
    assert "unreadable file" in read_quarantine(summary.quarantine_path)[0]["reason"]
    assert IndexLayout(settings.index_dir).current() == "v000001"
    assert indexed_count(settings) == 60


def test_cli_exits_non_zero_with_a_message_when_nothing_could_be_read(tmp_path):
    path = tmp_path / "nothing.jsonl"
    path.write_text('{"declaration_id": ""}\nnot json at all\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "ingest", str(path), "--data-dir", str(tmp_path / "data"), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "nothing could be read" in done.stderr
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert summary["rows_read"] == 2 and summary["rows_quarantined"] == 2 and summary["balanced"]


def test_cli_rejects_a_missing_path_before_starting_anything(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ingest", str(tmp_path / "missing.csv")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "no such file or folder" in done.stderr
