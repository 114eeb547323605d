"""The diagnostics app on a private cluster over real HTTP: healthy, a store broken and mended while it
runs (status, reason, events on the ``diagnostics`` channel), Ray's metrics endpoint, and the page in
a real headless Chromium."""
import os
import re
import shutil
import subprocess
import time

import httpx
import numpy as np
import pytest
import ray

from actors.event_hub import get_or_create_hub
from predator.auth import ensure_local_keys
from predator.index_layout import KEYWORD_DIR, VECTORS_DIR, IndexLayout
from predator.keyword_store import TantivyKeywordStore
from predator.settings import Settings
from predator.vector_store import EdgeVectorStore
from tests.conftest import free_port

pytestmark = pytest.mark.cluster

CHROMIUM = "/usr/bin/chromium"
CHECKS = {"keyword_store", "vector_store", "embedding_model", "event_hub", "mlflow", "llm", "disk", "ray_cluster",
          "serve"}


def publish_small_index(settings: Settings, n: int = 5) -> str:
    """A published version with ``n`` documents in both embedded stores (no ingest job: it is not under test)."""
    layout = IndexLayout(settings.index_dir)
    version, path = layout.begin_version()
    keyword = TantivyKeywordStore(path / KEYWORD_DIR)
    docs = [{"id": f"d{i}#1", "goods_description": f"steel pipe {i}"} for i in range(n)]
    keyword.upsert(docs)
    keyword.commit()
    keyword.close()
    vectors = EdgeVectorStore(path / VECTORS_DIR, dim=384)
    vectors.upsert([d["id"] for d in docs], np.eye(n, 384, dtype=np.float32), [{} for _ in docs])
    vectors.close()
    layout.publish(version)
    return version


@pytest.fixture(scope="module")
def app(ray_cluster, tmp_path_factory):
    """The hub and the diagnostics app on a free port; yields (base_url, keys, settings, hub, version)."""
    from ray import serve

    from serve_apps.diagnostics import build_app

    root = tmp_path_factory.mktemp("diagnostics")
    settings = Settings(data_dir=root / "data", diagnostics_interval_s=1.0, diagnostics_min_free_disk_mb=1)
    keys = ensure_local_keys(settings.keys_path, settings.data_dir / "secrets")
    version = publish_small_index(settings)
    hub = get_or_create_hub(settings)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name="diagnostics", route_prefix="/diagnostics")
    yield f"http://127.0.0.1:{port}", keys, settings, hub, version
    serve.shutdown()


def report(app, role="viewer"):
    base, keys, *_ = app
    answer = httpx.get(f"{base}/diagnostics", headers={"Authorization": f"Bearer {keys[role]}"}, timeout=90)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for(app, predicate, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        found = report(app)
        if predicate(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def diagnostics_events(hub) -> list[dict]:
    return ray.get(hub.read.remote({"diagnostics": 0}, timeout=0))["events"]


def test_healthy_with_every_check_and_keys_enforced(app):
    base, *_ = app
    assert httpx.get(f"{base}/diagnostics/healthz").status_code == 200
    assert httpx.get(f"{base}/diagnostics").status_code == 401
    found = wait_for(app, lambda r: r["status"] == "healthy")
    checks = {c["name"]: c for c in found["checks"]}
    assert found["status"] == "healthy", [c for c in found["checks"] if c["status"] not in ("ok", "unknown")]
    assert set(checks) == CHECKS
    assert checks["keyword_store"]["detail"]["documents"] == 5
    assert checks["vector_store"]["detail"]["index_version"] == app[4]
    assert checks["embedding_model"]["detail"]["dim"] == 384
    assert checks["ray_cluster"]["detail"]["cpus"] == 2 and checks["ray_cluster"]["detail"]["nodes_alive"] == 1
    assert checks["serve"]["detail"]["applications"]["diagnostics"]["status"] == "RUNNING"
    assert checks["mlflow"]["status"] == "unknown" and "nothing trained" in checks["mlflow"]["detail"]["reason"]
    assert checks["llm"]["status"] == "ok" and checks["llm"]["detail"]["adapters"] == []
    assert checks["event_hub"]["detail"]["alive"] is True


def test_a_broken_store_turns_critical_with_the_reason_and_is_announced(app):
    _, _, settings, hub, version = app
    wait_for(app, lambda r: r["status"] == "healthy")
    path = IndexLayout(settings.index_dir).path(version)
    moved = path.with_name("moved-away")
    path.rename(moved)
    try:
        broken = wait_for(app, lambda r: r["status"] == "critical")
        checks = {c["name"]: c for c in broken["checks"]}
        assert broken["status"] == "critical"
        assert checks["keyword_store"]["status"] == "critical"
        assert f"published version {version} is missing" in checks["keyword_store"]["error"]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            events = diagnostics_events(hub)
            if any(e["payload"].get("to") == "critical" and e["payload"]["name"] == "keyword_store" for e in events):
                break
            time.sleep(0.5)
        overall = [e for e in events if e["type"] == "status.changed"]
        assert overall and overall[-1]["payload"]["to"] == "critical", events
        store = [e for e in events if e["type"] == "check.changed" and e["payload"]["name"] == "keyword_store"]
        assert store and "is missing" in store[-1]["payload"]["reason"]
    finally:
        moved.rename(path)
    assert wait_for(app, lambda r: r["status"] == "healthy")["status"] == "healthy"


def test_application_metrics_reach_rays_metrics_endpoint(app):
    _, _, _, hub, _ = app
    ray.get(hub.publish.remote("jobs", "metrics.probe", {}))
    port = next(n["MetricsExportPort"] for n in ray.nodes() if n["Alive"])
    wanted = re.compile(r'ray_predator_events_published_total\{[^}]*channel="jobs"')
    # Workers report to the metrics agent every few seconds; on a loaded machine it takes longer.
    deadline, text = time.monotonic() + 90, ""
    while time.monotonic() < deadline:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        if wanted.search(text):
            break
        time.sleep(2)
    assert wanted.search(text), text[-2000:]


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} absent (apt-get install -y chromium)")
def test_the_page_renders_cards_and_the_overall_status_in_chromium(app, tmp_path):
    base, keys, *_ = app
    wait_for(app, lambda r: r["status"] == "healthy")
    page = httpx.get(f"{base}/diagnostics/ui")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "steel" not in page.text and keys["viewer"] not in page.text  # no data, no key in the page itself
    profile = tmp_path / "chromium-profile"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=8000", "--dump-dom",
         f"{base}/diagnostics/ui?key={keys['viewer']}"],
        capture_output=True, text=True, timeout=60).stdout
    shutil.rmtree(profile, ignore_errors=True)
    assert re.search(r'id="overall" data-status="healthy"[^>]*>healthy<', dom), dom[:3000]
    cards = set(re.findall(r'class="card" data-check="([a-z_]+)" data-status="(?:ok|unknown)"', dom))
    assert cards == CHECKS, dom[:3000]
    assert 'data-channel="diagnostics"' in dom  # the live feed shows the diagnostics channel
