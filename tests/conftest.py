"""Shared fixtures. Cluster tests are marked ``cluster`` and share one private Ray cluster per module."""
import os
import tempfile

# Ray reads this when first imported: keep every Ray component on loopback.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

TEST_NUM_CPUS = 2


@pytest.fixture(scope="module")
def ray_cluster():
    """A private Ray cluster for one test module: loopback, own temp dir, 2 CPUs, capped object store."""
    import ray

    from cluster.local import init_private

    temp_dir = tempfile.mkdtemp(prefix="pa-ray-", dir="/tmp")
    context = init_private(num_cpus=TEST_NUM_CPUS, object_store_mb=256, temp_dir=temp_dir)
    yield context
    ray.shutdown()


@pytest.fixture(scope="session")
def hs_cache_dir():
    """Nomenclature embeddings shared by every test (built once, ~7k texts)."""
    path = os.path.join(tempfile.gettempdir(), "predator-test-hs-cache")
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def llm_cache_dir():
    """The default LLM converted from GGUF once (about 20 s), shared by every test that loads it."""
    path = os.path.join(tempfile.gettempdir(), "predator-test-llm-cache")
    os.makedirs(path, exist_ok=True)
    return path


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
