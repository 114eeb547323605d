"""Diagnostics checks against healthy and broken backends, the status rule, change detection, timeouts."""
import threading
import time

import numpy as np
import pytest

from predator.diagnostics import (
    Check, CheckRunner, CheckSpec, ModelProbe, Report, Result, check_disk, check_event_hub, check_keyword_store,
    check_mlflow, check_vector_store, default_checks, overall_status, status_changes,
)
from predator.index_layout import KEYWORD_DIR, VECTORS_DIR, IndexLayout
from predator.keyword_store import TantivyKeywordStore
from predator.settings import Settings
from predator.vector_store import EdgeVectorStore
from tests.conftest import free_port

DIM = 8


def check(name, status, critical=False):
    return Check(name, status, 1.0, {}, None, critical)


def test_status_rule_critical_only_from_a_critical_check():
    assert overall_status([check("a", "ok"), check("b", "unknown")]) == "healthy"
    assert overall_status([check("a", "ok"), check("hub", "degraded")]) == "degraded"
    # a non-critical check that fails hard only degrades the platform
    assert overall_status([check("a", "ok"), check("mlflow", "critical")]) == "degraded"
    assert overall_status([check("store", "critical", critical=True), check("hub", "degraded")]) == "critical"
    assert overall_status([check("store", "degraded", critical=True)]) == "degraded"
    assert overall_status([]) == "healthy"


def test_status_changes_reports_overall_and_checks_with_reasons():
    first = Report("healthy", "t0", [check("store", "ok", True), check("mlflow", "unknown")])
    changes = status_changes(None, first)
    assert changes == [{"kind": "overall", "name": "overall", "from": None, "to": "healthy"},
                       {"kind": "check", "name": "mlflow", "from": None, "to": "unknown", "reason": None}]
    broken = Check("store", "critical", 2.0, {"reason": "gone"}, "FileNotFoundError: gone", True)
    second = Report("critical", "t1", [broken, check("mlflow", "unknown")])
    assert status_changes(first, second) == [
        {"kind": "overall", "name": "overall", "from": "healthy", "to": "critical"},
        {"kind": "check", "name": "store", "from": "ok", "to": "critical", "reason": "FileNotFoundError: gone"}]
    assert status_changes(second, second) == []


def test_runner_runs_checks_concurrently_and_a_hung_check_fails_on_its_timeout():
    release = threading.Event()
    calls = []

    def hung():
        calls.append(1)
        release.wait(30)
        return Result("ok")

    def slow_ok():
        time.sleep(0.3)
        return Result("ok", {"x": 1})

    def broken():
        raise ConnectionError("refused")

    runner = CheckRunner([CheckSpec("hung", hung, 0.5, critical=True), CheckSpec("slow", slow_ok, 2.0),
                          CheckSpec("broken", broken, 2.0)])
    started = time.monotonic()
    report = runner.run()
    assert time.monotonic() - started < 1.5  # concurrent: bounded by the longest timeout, not the sum
    by = report.by_name()
    assert by["hung"].status == "critical" and "timed out" in by["hung"].error
    assert by["slow"].status == "ok" and by["slow"].detail == {"x": 1} and by["slow"].latency_ms >= 250
    assert by["broken"].status == "degraded" and by["broken"].error == "ConnectionError: refused"
    assert report.status == "critical"
    # still hung: the next run does not start another thread for it
    assert runner.run().by_name()["hung"].status == "critical" and len(calls) == 1
    release.set()
    time.sleep(0.1)
    assert runner.run().by_name()["hung"].status == "ok" and len(calls) == 2


def test_disk_check_degrades_below_the_minimum(tmp_path):
    assert check_disk(Settings(data_dir=tmp_path / "not-yet")).status == "ok"
    low = check_disk(Settings(data_dir=tmp_path, diagnostics_min_free_disk_mb=10**12))
    assert low.status == "degraded" and "MB free" in low.detail["reason"]


@pytest.fixture
def published(tmp_path):
    """A published index version with 3 documents in both embedded stores."""
    settings = Settings(data_dir=tmp_path / "data")
    layout = IndexLayout(settings.index_dir)
    version, path = layout.begin_version()
    keyword = TantivyKeywordStore(path / KEYWORD_DIR)
    docs = [{"id": f"d{i}#1", "goods_description": f"steel pipe {i}"} for i in range(3)]
    keyword.upsert(docs)
    keyword.commit()
    keyword.close()
    vectors = EdgeVectorStore(path / VECTORS_DIR, dim=DIM)
    vectors.upsert([d["id"] for d in docs], np.eye(3, DIM, dtype=np.float32), [{} for _ in docs])
    vectors.close()
    layout.publish(version)
    return settings, version, path


def test_store_checks_count_documents_on_the_published_version(published):
    settings, version, _ = published
    for result in (check_keyword_store(settings), check_vector_store(settings, dim=DIM)):
        assert result.status == "ok", result
        assert result.detail["index_version"] == version and result.detail["documents"] == 3


def test_store_checks_are_critical_with_the_reason_when_the_index_is_gone(tmp_path, published):
    settings, version, path = published
    path.rename(tmp_path / "moved-away")
    for result in (check_keyword_store(settings), check_vector_store(settings, dim=DIM)):
        assert result.status == "critical"
        assert f"published version {version} is missing" in result.error
    missing = Settings(data_dir=tmp_path / "nowhere")
    result = check_keyword_store(missing)
    assert result.status == "critical" and "does not exist" in result.detail["reason"]


def test_keyword_store_on_a_closed_opensearch_port_is_critical(tmp_path):
    settings = Settings(data_dir=tmp_path, keyword_backend="opensearch", opensearch_url=f"http://127.0.0.1:{free_port()}")
    result = check_keyword_store(settings)
    assert result.status == "critical" and result.detail["backend"] == "opensearch" and result.error


def test_qdrant_local_mode_is_not_opened():
    result = check_vector_store(Settings(vector_backend="qdrant", qdrant_url=None))
    assert result.status == "unknown" and "one process" in result.detail["reason"]


class FakeModel:
    model_name, dim = "fake", DIM

    def encode(self, texts):
        return np.ones((len(texts), DIM), dtype=np.float32)


def test_model_probe_loads_once_and_reports_the_dimension():
    loads = []
    probe = ModelProbe(lambda: loads.append(1) or FakeModel())
    for _ in range(2):
        result = probe.check()
        assert result.status == "ok" and result.detail["dim"] == DIM and result.detail["loaded"] is True
    assert len(loads) == 1


def test_the_packaged_embedding_model_is_loadable(tmp_path):
    result = ModelProbe.from_settings(Settings(data_dir=tmp_path)).check()
    assert result.status == "ok" and result.detail["dim"] == 384


def test_a_missing_model_fails_the_critical_check(tmp_path):
    settings = Settings(data_dir=tmp_path, embedding_model=str(tmp_path / "no-model"))
    specs = {s.name: s for s in default_checks(settings, hub_stats=dict)}
    report = CheckRunner([specs["embedding_model"]]).run()
    assert report.checks[0].status == "critical" and report.checks[0].error
    assert report.status == "critical"


def test_event_hub_alive_and_absent():
    stats = {"channels": {"jobs": {"last_seq": 7}, "diagnostics": {"last_seq": 2}}, "uptime_s": 3.21, "restarted": False}
    alive = check_event_hub(lambda: stats, publisher=lambda: {"buffered": 0, "dropped": 0})
    assert alive.status == "ok" and alive.detail["last_seq"] == {"jobs": 7, "diagnostics": 2}
    assert alive.detail["publisher_buffered"] == 0

    def absent():
        raise ValueError("Failed to look up actor with name 'event_hub'")

    down = check_event_hub(absent)
    assert down.status == "degraded" and down.detail["alive"] is False and "ValueError" in down.error


def test_mlflow_untrained_unreachable_and_sqlite(tmp_path):
    assert check_mlflow(Settings(data_dir=tmp_path)).status == "unknown"
    closed = check_mlflow(Settings(mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}"))
    assert closed.status == "degraded" and "unreachable" in closed.detail["reason"]
    db = tmp_path / "mlflow.db"
    assert check_mlflow(Settings(mlflow_tracking_uri=f"sqlite:///{db}")).status == "unknown"
    db.write_bytes(b"")
    assert check_mlflow(Settings(mlflow_tracking_uri=f"sqlite:///{db}")).status == "ok"


def test_mlflow_server_answering_health_is_ok():
    import http.server

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = check_mlflow(Settings(mlflow_tracking_uri=f"http://127.0.0.1:{server.server_port}"))
        assert result.status == "ok"
    finally:
        server.shutdown()
        server.server_close()


def test_llm_check_names_the_model_and_a_missing_path_degrades(tmp_path, llm_cache_dir):
    from predator.diagnostics import check_llm

    found = check_llm(Settings(data_dir=tmp_path, llm_cache_dir=llm_cache_dir))
    assert found.status == "ok"
    assert found.detail["model"].startswith("SmolLM2-135M-Instruct") and found.detail["adapters"] == []
    missing = check_llm(Settings(data_dir=tmp_path, llm_model=str(tmp_path / "no-model")))
    assert missing.status == "degraded" and "does not exist" in missing.detail["reason"]
