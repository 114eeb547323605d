"""The publisher helper without Ray: never blocks, never raises, buffers boundedly, re-sends safely."""
import atexit
import threading
import time

import pytest

from predator import events
from predator.event_log import EventStore
from predator.events import EventPublisher, jsonable

CHANNELS = ["jobs", "ingest"]


class FakeHub:
    """A hub that can be down, slow, or lose acknowledgements."""

    def __init__(self, store):
        self.store = store
        self.up = threading.Event()
        self.up.set()
        self.lose_next_ack = False
        self.gate = threading.Event()
        self.gate.set()

    def connect(self):
        if not self.up.is_set():
            raise ConnectionError("hub down")
        return self.send

    def send(self, batch):
        self.gate.wait()
        if not self.up.is_set():
            raise ConnectionError("hub died")
        self.store.publish_batch(batch)
        if self.lose_next_ack:
            self.lose_next_ack = False
            raise TimeoutError("ack lost")


@pytest.fixture
def hub(tmp_path):
    return FakeHub(EventStore.open(tmp_path, CHANNELS, capacity=1000))


def publisher(hub, **kw):
    return EventPublisher(hub.connect, CHANNELS, backoff_s=(0.01, 0.05), **kw)


def seqs_of(hub, channel="jobs"):
    return [e.payload["i"] for e in hub.store.log.read({channel: 0}, 10_000).events]


def test_publish_does_not_wait_for_a_stuck_hub(hub):
    hub.gate.clear()  # every send blocks
    pub = publisher(hub)
    start = time.perf_counter()
    for i in range(1000):
        assert pub.publish("jobs", "progress", {"i": i})
    assert time.perf_counter() - start < 2.0  # the hub never answers: any bound shows we did not wait
    hub.gate.set()
    assert pub.flush(5)
    assert seqs_of(hub) == list(range(1000))


def test_buffers_while_down_drops_oldest_beyond_the_bound_then_delivers(hub):
    hub.up.clear()
    pub = publisher(hub, buffer_size=50)
    for i in range(80):
        pub.publish("jobs", "progress", {"i": i})
    time.sleep(0.1)
    assert pub.stats()["dropped"] == 30 and pub.stats()["buffered"] == 50 and pub.hub_up is False
    hub.up.set()
    assert pub.flush(5)
    assert seqs_of(hub) == list(range(30, 80)) and pub.hub_up is True


def test_a_lost_acknowledgement_does_not_duplicate(hub):
    pub = publisher(hub)
    hub.lose_next_ack = True
    for i in range(10):
        pub.publish("jobs", "progress", {"i": i})
    assert pub.flush(5)
    assert seqs_of(hub) == list(range(10)) and hub.store.origins.duplicates > 0


def test_bad_input_and_broken_transport_never_raise(hub):
    def broken():
        raise RuntimeError("no transport at all")

    pub = EventPublisher(broken, CHANNELS, backoff_s=(0.01, 0.05))
    assert pub.publish("nope", "x") is False and pub.invalid == 1
    assert pub.publish("jobs", "x", {"obj": object(), "n": 1}) is True
    assert not pub.flush(0.1)  # nothing can be delivered, but nobody crashed
    assert pub.stats()["failures"] >= 1


def test_payloads_become_json_safe():
    assert jsonable(None) == {}
    assert jsonable(5) == {"value": 5}
    plain = {"a": 1, "b": "x"}
    assert jsonable(plain) is plain
    assert jsonable({"p": {1, 2}.__class__.__name__, "when": time.gmtime(0)})["p"] == "set"


def test_publish_event_without_ray_returns_at_once(monkeypatch):
    monkeypatch.setattr(events, "_default", None)
    monkeypatch.setattr(events, "DEFAULT_CONNECTOR", "predator.events:_no_such_connector")
    pub = events.default_publisher()  # loads settings once
    atexit.unregister(pub.flush)  # it can never deliver here: do not wait for it at exit
    start = time.perf_counter()
    assert events.publish_event("jobs", "started", {"rows": 1}, source="test") is True
    assert events.publish_event("nope", "started") is False
    assert time.perf_counter() - start < 0.5
    assert pub.stats()["invalid"] == 1
