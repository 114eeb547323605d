"""The gateway on Serve with a real WebSocket client: auth, bad input, HTTP catch-up, a hub killed
mid-stream (nothing lost, nothing twice), and a slow client that gets a gap without stalling others."""
import asyncio
import json
import socket
import threading
import time

import httpx
import pytest
import ray
from ray import serve
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from actors.event_hub import get_hub
from predator.auth import ensure_local_keys
from predator.events import default_publisher, publish_event
from predator.settings import get_settings
from serve_apps.events import build_app

pytestmark = pytest.mark.cluster

HISTORY, WINDOW = 300, 16


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gateway(ray_cluster, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("events")
    settings = get_settings(data_dir=data_dir, event_history=HISTORY, ws_window=WINDOW, ws_max_connections=16)
    keys = ensure_local_keys(settings.keys_path, data_dir / "secrets")
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name="events", route_prefix="/ws")
    yield {"url": f"ws://127.0.0.1:{port}/ws/events", "http": f"http://127.0.0.1:{port}/ws", "keys": keys,
           "hub": get_hub(settings)}
    serve.shutdown()


class Client:
    """A WebSocket client that answers pings unless told to be slow."""

    def __init__(self, ws):
        self.ws = ws

    async def recv(self, timeout=10.0, pong=True):
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message["type"] == "ping" and pong:
                await self.ws.send(json.dumps({"type": "pong", "id": message["id"]}))
                continue
            return message

    async def expect(self, type_, **kw):
        message = await self.recv(**kw)
        assert message["type"] == type_, message
        return message

    async def events(self, channel, until_seq, timeout=20.0):
        got = []
        deadline = time.monotonic() + timeout
        while not got or got[-1]["seq"] < until_seq:
            message = await self.recv(timeout=deadline - time.monotonic())
            assert message["type"] == "events", message
            assert {e["channel"] for e in message["events"]} == {channel}
            got.extend(message["events"])
        return got


def publish_direct(hub, channel, n, tag):
    records = [{"channel": channel, "type": "t", "payload": {"tag": tag, "i": i}} for i in range(n)]
    return ray.get(hub.publish_batch.remote(records))


def test_auth_by_header_or_query_and_viewers_never_see_security(gateway):
    async def scenario():
        async with connect(gateway["url"]) as ws:  # no key
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1008 and "API key" in ws.close_reason
        async with connect(gateway["url"] + "?api_key=wrong") as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1008
        viewer = gateway["keys"]["viewer"]
        async with connect(gateway["url"] + f"?api_key={viewer}&channels=jobs,security") as ws:
            client = Client(ws)
            assert (await client.expect("error"))["code"] == "forbidden"
            assert (await client.expect("subscribed"))["channels"] == {"jobs": 0}
        headers = {"Authorization": f"Bearer {gateway['keys']['analyst']}"}
        async with connect(gateway["url"] + "?channels=security", additional_headers=headers) as ws:
            assert "security" in (await Client(ws).expect("subscribed"))["channels"]

    asyncio.run(scenario())


def test_bad_input_gets_error_events_and_the_socket_stays_open(gateway):
    async def scenario():
        url = gateway["url"] + f"?api_key={gateway['keys']['viewer']}&channels=nope&since=-3"
        async with connect(url) as ws:
            client = Client(ws)
            assert (await client.expect("error"))["code"] == "bad_since"
            for raw, code in [("{not json", "bad_json"), ("x" * 5000, "too_large"),
                              (json.dumps({"type": "subscribe", "channels": ["nope"]}), "unknown_channel"),
                              (json.dumps({"type": "subscribe", "channels": ["jobs"], "since": -1}), "bad_since"),
                              (json.dumps({"type": "dance"}), "bad_message"), (json.dumps([1]), "bad_message"),
                              (json.dumps({"type": "pong", "id": 99}), "bad_message")]:
                await ws.send(raw)
                error = await client.expect("error")
                assert error["code"] == code and error["reason"], (raw[:40], error)
            await ws.send(json.dumps({"type": "ping", "id": "x"}))
            assert await client.recv() == {"type": "pong", "id": "x"}
            await ws.send(json.dumps({"type": "subscribe", "channels": ["system"], "since": 0}))
            await client.expect("subscribed")
            seq = publish_direct(gateway["hub"], "system", 1, "ok")[0]
            assert [e["seq"] for e in (await client.expect("events"))["events"]] == [seq]
            await ws.send(json.dumps({"type": "unsubscribe", "channels": ["system"]}))
            assert (await client.expect("unsubscribed"))["channels"] == ["system"]

    asyncio.run(scenario())


def test_http_catch_up_with_limits_gaps_and_roles(gateway):
    seqs = publish_direct(gateway["hub"], "diagnostics", HISTORY + 10, "http")
    viewer = {"Authorization": f"Bearer {gateway['keys']['viewer']}"}
    url = gateway["http"] + "/events"
    with httpx.Client(timeout=10) as http:
        assert http.get(url, params={"channel": "diagnostics"}).status_code == 401
        page = http.get(url, params={"channel": "diagnostics", "since": seqs[-1] - 3, "limit": 2}, headers=viewer)
        body = page.json()
        assert page.status_code == 200 and [e["seq"] for e in body["events"]] == seqs[-3:-1]
        assert body["gap"] is None and body["head"] == seqs[-1]
        behind = http.get(url, params={"channel": "diagnostics", "since": 0, "limit": 5}, headers=viewer).json()
        assert behind["gap"] == {"channel": "diagnostics", "first": 1, "last": 10}  # HISTORY + 10 published
        assert behind["events"][0]["seq"] == 11
        assert http.get(url, params={"channel": "security"}, headers=viewer).status_code == 403
        assert http.get(url, params={"channel": "nope"}, headers=viewer).status_code == 404
        assert http.get(url, params={"channel": "jobs", "since": -1}, headers=viewer).status_code == 422
        stats = http.get(gateway["http"] + "/events/stats", headers=viewer).json()
        assert stats["hub"]["channels"]["diagnostics"]["last_seq"] == seqs[-1]


def test_hub_killed_mid_stream_client_reconnects_and_gets_everything_once_in_order(gateway):
    total = 150
    hub = gateway["hub"]
    url = gateway["url"] + f"?api_key={gateway['keys']['viewer']}&channels=jobs"

    def produce():
        for i in range(total):
            publish_event("jobs", "progress", {"i": i}, source="test")
            if i == 50:
                ray.kill(hub, no_restart=False)
            time.sleep(0.01)

    async def scenario():
        async with connect(url) as ws:
            client = Client(ws)
            start = (await client.expect("subscribed"))["channels"]["jobs"]
            producer = threading.Thread(target=produce)
            producer.start()
            first = await client.events("jobs", start + 80)
        # Reconnect with the last seq seen, as a client does after any drop.
        async with connect(url + f"&since={first[-1]['seq']}") as ws:
            client = Client(ws)
            await client.expect("subscribed")
            rest = await client.events("jobs", start + total, timeout=40)
        await asyncio.to_thread(producer.join)
        return start, first + rest

    start, received = asyncio.run(scenario())
    assert default_publisher().flush(10)
    assert [e["seq"] for e in received] == list(range(start + 1, start + total + 1))
    assert [e["payload"]["i"] for e in received] == list(range(total))
    assert ray.get(hub.stats.remote())["restarted"] is True


def test_slow_client_gets_a_gap_and_does_not_stall_the_others(gateway):
    url = gateway["url"] + f"?api_key={gateway['keys']['viewer']}&channels=ingest"
    total = 3 * HISTORY

    async def scenario():
        async with connect(url) as fast_ws, connect(url) as slow_ws:
            fast, slow = Client(fast_ws), Client(slow_ws)
            start = (await fast.expect("subscribed"))["channels"]["ingest"]
            await slow.expect("subscribed")

            def produce():  # bursts smaller than the history, as the publisher sends them
                for _ in range(total // 100):
                    publish_direct(gateway["hub"], "ingest", 100, "slow")
                    time.sleep(0.05)

            producer = asyncio.create_task(asyncio.to_thread(produce))
            fast_events = await fast.events("ingest", start + total, timeout=15)  # slow one reads nothing
            await producer
            slow_messages = []
            while not slow_messages or slow_messages[-1].get("events", [{}])[-1].get("seq") != start + total:
                slow_messages.append(await slow.recv())
            return start, fast_events, slow_messages

    start, fast_events, slow_messages = asyncio.run(scenario())
    assert [e["seq"] for e in fast_events] == list(range(start + 1, start + total + 1))
    gaps = [m for m in slow_messages if m["type"] == "gap"]
    seqs = [e["seq"] for m in slow_messages if m["type"] == "events" for e in m["events"]]
    assert len(gaps) == 1 and gaps[0]["channel"] == "ingest"
    # What the slow client got plus the gap is every seq, once, in order.
    assert sorted(seqs + list(range(gaps[0]["from"], gaps[0]["to"] + 1))) == list(range(start + 1, start + total + 1))
    assert seqs == sorted(seqs) and len(seqs) < total
