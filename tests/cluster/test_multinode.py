"""Two Ray nodes on loopback: search replicas spread over both, and losing a node leaves search serving."""
import os
import tempfile
import time

import httpx
import pytest

from predator.sample import generate
from tests.cluster.indexed_corpus import index_corpus
from tests.conftest import free_port

pytestmark = pytest.mark.cluster

REPLICA_CLASS = "ServeReplica:search:SearchAPI"


@pytest.fixture(scope="module")
def two_nodes():
    """A head and a worker node (one CPU, 128 MB object store each) made by Ray's cluster utilities.

    Both nodes' processes are tracked by their ``Node`` objects, so shutting down ends exactly them.
    """
    from cluster.local import LOOPBACK, prepare_env

    prepare_env()
    import ray
    from ray._common.utils import get_ray_address_file
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    ray_constants.ENABLE_RAY_CLUSTER = False  # loopback even if ray was imported before prepare_env
    node_args = {"num_cpus": 1, "object_store_memory": 128 * 1024 * 1024, "node_ip_address": LOOPBACK}
    address_file = get_ray_address_file(None)
    had_address_file = os.path.exists(address_file)
    cluster = Cluster(initialize_head=True, connect=True, head_node_args={
        **node_args, "include_dashboard": False, "temp_dir": tempfile.mkdtemp(prefix="pa-mn-", dir="/tmp")})
    worker = cluster.add_node(**node_args)
    cluster.wait_for_nodes()
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()
    # Cluster() records its address as the machine's "current cluster"; leave no pointer to a dead one.
    if not had_address_file and os.path.exists(address_file):
        os.remove(address_file)


@pytest.fixture(scope="module")
def corpus():
    records, _ = generate(200, seed=11)
    return records


@pytest.fixture(scope="module")
def app(two_nodes, tmp_path_factory, corpus, hs_cache_dir):
    """The search app with two replicas, at most one per node; yields (base_url, viewer_key)."""
    from ray import serve

    from predator.settings import get_settings
    from serve_apps.search import SearchAPI

    root = tmp_path_factory.mktemp("multinode")
    settings, keys = index_corpus(root, corpus, hs_cache_dir=hs_cache_dir)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    deployment = SearchAPI.options(num_replicas=2, max_replicas_per_node=1)
    serve.run(deployment.bind(get_settings(data_dir=str(settings.data_dir), hs_cache_dir=hs_cache_dir)),
              name="search", route_prefix="/")
    yield f"http://127.0.0.1:{port}", keys["viewer"]
    serve.shutdown()


def replica_nodes() -> dict[str, str]:
    """Live search replicas: actor id -> node id."""
    import ray

    return {actor_id: info["Address"]["NodeID"] for actor_id, info in ray._private.state.actors().items()
            if info["ActorClassName"] == REPLICA_CLASS and info["State"] == "ALIVE"}


def finds_its_own_record(app, record) -> bool:
    base, key = app
    answer = httpx.post(base + "/search", json={"q": record.goods_description, "limit": 10},
                        headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return answer.status_code == 200 and record.id in [hit["id"] for hit in answer.json()["hits"]]


def targets(corpus, count=10):
    return [r for r in corpus if len(r.goods_description.split()) >= 4][:count]


def test_the_two_replicas_run_on_different_nodes(app, two_nodes):
    import ray

    cluster, worker = two_nodes
    placed = replica_nodes()
    assert len(placed) == 2
    assert set(placed.values()) == {cluster.head_node.node_id, worker.node_id}
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2


def test_search_answers_stay_correct_across_both_replicas(app, corpus):
    # 40 requests over two replicas: the router sends some to each; every answer must hold the record.
    for record in targets(corpus) * 4:
        assert finds_its_own_record(app, record), record.id


def test_removing_the_worker_node_leaves_the_app_serving(app, two_nodes, corpus):
    cluster, worker = two_nodes
    lost = [actor for actor, node in replica_nodes().items() if node == worker.node_id]
    assert len(lost) == 1
    cluster.remove_node(worker)
    # Requests routed to the dead replica may fail until Serve notices; then all go to the survivor.
    deadline = time.monotonic() + 60
    streak = 0
    while streak < 20 and time.monotonic() < deadline:
        streak = streak + 1 if finds_its_own_record(app, targets(corpus)[streak % 10]) else 0
    assert streak >= 20, "the app did not serve 20 correct answers in a row after the node was removed"
    survivors = replica_nodes()
    assert lost[0] not in survivors
    assert set(survivors.values()) == {cluster.head_node.node_id}
