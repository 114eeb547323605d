"""The hub actor on a private cluster: seqs, long-poll, kill and restart, publisher from tasks/actors."""
import asyncio
import time

import pytest
import ray

from actors.event_hub import get_or_create_hub
from predator.settings import get_settings

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def hub(ray_cluster, tmp_path_factory):
    settings = get_settings(data_dir=tmp_path_factory.mktemp("hub"), event_history=50)
    handle = get_or_create_hub(settings)
    ray.get(handle.stats.remote())
    return handle


def test_publish_returns_increasing_seqs_per_channel(hub):
    first = ray.get(hub.publish.remote("jobs", "started", {"job": "a"}, "test"))
    assert ray.get(hub.publish.remote("jobs", "progress", {"job": "a"})) == first + 1
    result = ray.get(hub.read.remote(["jobs"], first - 1))
    assert [(e["seq"], e["type"]) for e in result["events"]] == [(first, "started"), (first + 1, "progress")]
    with pytest.raises(ValueError, match="unknown channel"):
        ray.get(hub.publish.remote("nope", "x"))


def test_read_is_a_long_poll_that_wakes_on_publish(hub):
    head = ray.get(hub.read.remote(["ingest"]))["heads"]["ingest"]
    waiting = hub.read.remote(["ingest"], None, 10.0)
    time.sleep(0.3)
    start = time.perf_counter()
    ray.get(hub.publish.remote("ingest", "progress", {"rows": 10}))
    result = ray.get(waiting)
    assert time.perf_counter() - start < 1.0
    assert [e["seq"] for e in result["events"]] == [head + 1]
    assert ray.get(hub.read.remote(["ingest"], None, 0.2))["events"] == []  # times out empty


def test_kill_and_restart_continue_the_sequence_with_history(hub):
    seqs = [ray.get(hub.publish.remote("training", "step", {"i": i})) for i in range(5)]
    ray.kill(hub, no_restart=False)
    deadline = time.monotonic() + 30
    while not (stats := ray.get(hub.stats.remote()))["restarted"]:  # ray.kill returns before the death
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert stats["channels"]["training"]["last_seq"] == seqs[-1]
    assert ray.get(hub.publish.remote("training", "step", {"i": 5})) == seqs[-1] + 1
    events = ray.get(hub.read.remote(["training"], 0))["events"]
    assert [e["payload"]["i"] for e in events] == list(range(6))


@ray.remote
def task_publishing(n):
    from predator.events import default_publisher, publish_event

    for i in range(n):
        publish_event("diagnostics", "check", {"i": i}, source="task")
    return default_publisher().flush(10)


@ray.remote(num_cpus=0)
class ActorPublishing:
    async def run(self, n):
        from predator.events import default_publisher, publish_event

        for i in range(n):
            publish_event("copilot", "answer", {"i": i}, source="actor")
        return await asyncio.to_thread(default_publisher().flush, 10)


def test_publisher_helper_from_tasks_and_actors(hub):
    assert ray.get(task_publishing.remote(20))
    assert ray.get(ActorPublishing.remote().run.remote(20))
    result = ray.get(hub.read.remote({"diagnostics": 0, "copilot": 0}))
    by_channel = {c: [e["payload"]["i"] for e in result["events"] if e["channel"] == c]
                  for c in ("diagnostics", "copilot")}
    assert by_channel == {"diagnostics": list(range(20)), "copilot": list(range(20))}
