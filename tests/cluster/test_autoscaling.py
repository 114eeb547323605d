"""Serve autoscaling of the search deployment: driven load adds a replica, quiet removes it."""
import os
import tempfile
import threading
import time

import httpx
import pytest

from predator.sample import generate
from tests.cluster.indexed_corpus import index_corpus
from tests.conftest import free_port

pytestmark = pytest.mark.cluster

# The shipped delays (serve_apps/serve_config.yaml) are for production; these keep the test short.
TEST_AUTOSCALING = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2,
                    "upscale_delay_s": 1, "downscale_delay_s": 5, "look_back_period_s": 2, "metrics_interval_s": 0.5}
# Replicas and the proxy's handle push their load every 10 s by default; the autoscaler would lag that much.
FAST_METRICS_ENV = {"RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
                    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5"}


@pytest.fixture(scope="module")
def fast_metrics_cluster():
    """A private cluster whose processes inherit the short metric push intervals."""
    import ray

    from cluster.local import init_private

    saved = {key: os.environ.get(key) for key in FAST_METRICS_ENV}
    os.environ.update(FAST_METRICS_ENV)
    try:
        yield init_private(num_cpus=2, object_store_mb=256,
                           temp_dir=tempfile.mkdtemp(prefix="pa-ray-", dir="/tmp"))
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def app(fast_metrics_cluster, tmp_path_factory, hs_cache_dir):
    """The search app autoscaling between 1 and 2 replicas; yields (search_url, viewer_key, queries)."""
    from ray import serve

    from predator.settings import get_settings
    from serve_apps.search import SearchAPI

    records, _ = generate(200, seed=13)
    root = tmp_path_factory.mktemp("autoscaling")
    settings, keys = index_corpus(root, records, hs_cache_dir=hs_cache_dir)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    deployment = SearchAPI.options(autoscaling_config=TEST_AUTOSCALING)
    serve.run(deployment.bind(get_settings(data_dir=str(settings.data_dir), hs_cache_dir=hs_cache_dir)),
              name="search", route_prefix="/")
    queries = [" ".join(r.goods_description.split()[:4]) for r in records[:50]]
    yield f"http://127.0.0.1:{port}/search", keys["viewer"], queries
    serve.shutdown()


def running_replicas() -> int:
    from ray import serve

    states = serve.status().applications["search"].deployments["SearchAPI"].replica_states
    return states.get("RUNNING", 0)


def wait_for(condition, timeout_s: float) -> float | None:
    """Seconds until ``condition()`` held, or None if it did not within ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.25)
    return None


class Load:
    """``clients`` threads posting searches back to back until stopped; counts answers by status."""

    def __init__(self, url: str, key: str, queries: list[str], clients: int):
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self.threads = [threading.Thread(target=self._client, args=(url, key, queries[i::clients]), daemon=True)
                        for i in range(clients)]

    def _client(self, url, key, queries):
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            while not self.stop.is_set():
                for q in queries:
                    self.statuses.append(client.post(url, json={"q": q, "limit": 10}).status_code)
                    if self.stop.is_set():
                        return

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def test_load_adds_a_replica_and_quiet_removes_it(app):
    url, key, queries = app
    assert wait_for(lambda: running_replicas() == 1, 60) is not None
    with Load(url, key, queries, clients=8) as load:
        scaled_up_after = wait_for(lambda: running_replicas() == 2, 120)
        assert scaled_up_after is not None, "8 concurrent clients did not bring a second replica within 120 s"
        time.sleep(2)  # the new replica takes traffic while the load lasts
    assert load.statuses and set(load.statuses) == {200}
    scaled_down_after = wait_for(lambda: running_replicas() == 1, 60)
    assert scaled_down_after is not None, "the second replica was not removed within 60 s of quiet"
    # Not before the downscale delay: the autoscaler waits that long for the load to stay low.
    assert scaled_down_after >= TEST_AUTOSCALING["downscale_delay_s"] - 1
