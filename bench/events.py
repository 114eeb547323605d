"""Benchmark: the event hub behind the WebSocket gateway against Redis pub/sub, in one run.

For 1, 10 and 50 subscribers:
- paced: ``--rate`` events/s for ``--seconds`` s; latency from publish to receipt by every subscriber
  (p50/p99, one clock: publisher and subscribers are in this process);
- burst: ``--burst`` events as fast as the publisher takes them; publish calls/s on the caller's side
  and events/s delivered to every subscriber.
The hub path is the real one: ``publish_event`` -> hub actor (journaled) -> gateway replica ->
Serve proxy -> WebSocket. Redis gets the same load through ``PUBLISH`` on a redis-server this script
starts on 127.0.0.1 (a free port, no persistence) and stops by its PID. Without redis-server installed,
the Redis half is skipped with a message.

    python -m bench.events [--rate 1000 --seconds 5 --burst 3000 --subscribers 1,10,50 --out results.json]
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass

CHANNEL = "system"


@dataclass
class Result:
    system: str
    subscribers: int
    rate: int
    p50_ms: float
    p99_ms: float
    received: int
    expected: int
    publish_calls_per_s: float
    delivered_per_s: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def paced(publish, rate: int, seconds: float) -> int:
    """Call ``publish(i)`` ``rate`` times a second in 10 ms ticks; return how many were published."""
    per_tick, tick = max(1, rate // 100), 0.01
    start, count = time.perf_counter(), 0
    while count < rate * seconds:
        for _ in range(per_tick):
            publish(count)
            count += 1
        sleep = start + (count / rate) - time.perf_counter()
        if sleep > 0:
            time.sleep(min(sleep, tick))
    return count


class Subscribers:
    """Latencies and counts of the events with ``payload.run == run`` seen by every subscriber."""

    def __init__(self, n: int):
        self.latencies: list[float] = []
        self.unexpected: list[dict] = []  # gaps or errors: the history was too small for the load
        self.counts = [0] * n
        self.done = asyncio.Event()
        self.expected = 0
        self.run = ""

    def start(self, run: str, expected: int) -> None:
        self.latencies, self.counts = [], [0] * len(self.counts)
        self.run, self.expected = run, expected
        self.done.clear()

    def seen(self, index: int, payload: dict, sent_ts: float) -> None:
        if payload.get("run") != self.run:
            return
        self.latencies.append(time.time() - sent_ts)
        self.counts[index] += 1
        if min(self.counts) >= self.expected:
            self.done.set()


async def measure(subs: Subscribers, name: str, n: int, publish, rate: int, seconds: float,
                  burst: int) -> Result:
    """One paced phase and one burst phase against already connected subscribers."""
    subs.start(f"warmup-{n}", rate // 2)  # half a second, not measured: connections, caches, JIT-free paths
    await asyncio.to_thread(paced, lambda i: publish(subs.run, i), rate, 0.5)
    await wait_done(subs, 10)
    expected = int(rate * seconds)
    subs.start(f"paced-{n}", expected)
    await asyncio.to_thread(paced, lambda i: publish(subs.run, i), rate, seconds)
    await wait_done(subs, 10)
    lat = [x * 1000 for x in subs.latencies]
    received = sum(subs.counts)

    subs.start(f"burst-{n}", burst)
    start = time.perf_counter()

    def burst_publish() -> float:
        for i in range(burst):
            publish(subs.run, i)
        return time.perf_counter() - start

    publish_s = await asyncio.to_thread(burst_publish)
    await wait_done(subs, 60)
    if subs.unexpected:
        print(f"  {len(subs.unexpected)} gap/error messages, first: {subs.unexpected[0]}")
    delivered_s = time.perf_counter() - start
    return Result(name, n, rate, round(percentile(lat, 0.5), 2), round(percentile(lat, 0.99), 2),
                  received, expected * n, round(burst / publish_s), round(min(subs.counts) / delivered_s))


async def wait_done(subs: Subscribers, timeout: float) -> None:
    try:
        await asyncio.wait_for(subs.done.wait(), timeout)
    except TimeoutError:
        print(f"  timeout: subscribers saw {min(subs.counts)}..{max(subs.counts)} of {subs.expected}")


# --- the hub through the gateway -----------------------------------------------------------------

async def hub_clients(url: str, n: int, subs: Subscribers) -> list[asyncio.Task]:
    from websockets.asyncio.client import connect

    async def client(index: int, ready: asyncio.Event):
        async with connect(url, max_size=None) as ws:
            async for raw in ws:
                message = json.loads(raw)
                kind = message["type"]
                if kind == "events":
                    for event in message["events"]:
                        subs.seen(index, event["payload"], event["ts"])
                elif kind == "ping":
                    await ws.send(json.dumps({"type": "pong", "id": message["id"]}))
                elif kind == "subscribed":
                    ready.set()
                elif kind in ("gap", "error"):
                    subs.unexpected.append(message)

    readies = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(client(i, r)) for i, r in enumerate(readies)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    return tasks


async def bench_hub(counts: list[int], rate: int, seconds: float, burst: int) -> list[Result]:
    from ray import serve

    from cluster.local import init_private
    from predator.auth import ensure_local_keys
    from predator.events import default_publisher, publish_event
    from predator.settings import get_settings
    from serve_apps.events import build_app

    data_dir = tempfile.mkdtemp(prefix="pa-bench-events-")
    init_private(num_cpus=2, object_store_mb=256, temp_dir=tempfile.mkdtemp(prefix="pa-ray-bench-", dir="/tmp"))
    # The driver's publisher and the hub must agree on settings: both read them from the environment.
    os.environ["PREDATOR_DATA_DIR"] = data_dir
    # A history that holds a whole burst: this measures delivery, not how gaps are reported.
    settings = get_settings(event_history=max(1000, 2 * burst))
    key = ensure_local_keys(settings.keys_path, settings.data_dir / "secrets")["viewer"]
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name="events", route_prefix="/")
    url = f"ws://127.0.0.1:{port}/ws/events?channels={CHANNEL}&api_key={key}"

    def publish(run, i):
        publish_event(CHANNEL, "bench", {"run": run, "i": i}, source="bench")

    results = []
    try:
        for n in counts:
            subs = Subscribers(n)
            tasks = await hub_clients(url, n, subs)
            results.append(await measure(subs, "hub+ws", n, publish, rate, seconds, burst))
            print(" ", results[-1])
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        print("  publisher:", default_publisher().stats())
    finally:
        serve.shutdown()
        import ray

        ray.shutdown()
        shutil.rmtree(data_dir, ignore_errors=True)
    return results


# --- Redis pub/sub ---------------------------------------------------------------------------------

class RedisServer:
    """A throwaway redis-server on 127.0.0.1, no persistence, stopped by PID."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pa-bench-redis-")
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready(self, redis_mod) -> None:
        client = redis_mod.Redis(host="127.0.0.1", port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis_mod.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


async def bench_redis(counts: list[int], rate: int, seconds: float, burst: int) -> list[Result]:
    import redis
    import redis.asyncio as aredis

    server = RedisServer()
    results = []
    try:
        server.wait_ready(redis)
        publisher = redis.Redis(host="127.0.0.1", port=server.port)
        lock = threading.Lock()  # one connection, used from the paced and burst threads in turn

        def publish(run, i):
            with lock:
                publisher.publish(CHANNEL, json.dumps({"run": run, "i": i, "ts": time.time()}))

        for n in counts:
            subs = Subscribers(n)
            clients = [aredis.Redis(host="127.0.0.1", port=server.port) for _ in range(n)]

            async def listen(index, pubsub):
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        payload = json.loads(message["data"])
                        subs.seen(index, payload, payload["ts"])

            pubsubs = []
            for client in clients:
                pubsub = client.pubsub()
                await pubsub.subscribe(CHANNEL)
                pubsubs.append(pubsub)
            tasks = [asyncio.create_task(listen(i, p)) for i, p in enumerate(pubsubs)]
            results.append(await measure(subs, "redis", n, publish, rate, seconds, burst))
            print(" ", results[-1])
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for pubsub, client in zip(pubsubs, clients):
                await pubsub.aclose()
                await client.aclose()
    finally:
        server.stop()
    return results


def table(results: list[Result]) -> str:
    rows = ["subs  system   p50 ms   p99 ms  received/expected  publish calls/s  delivered ev/s per sub"]
    for r in results:
        rows.append(f"{r.subscribers:>4}  {r.system:<7} {r.p50_ms:>7} {r.p99_ms:>8}  {r.received:>8}/{r.expected:<8}"
                    f"  {r.publish_calls_per_s:>15} {r.delivered_per_s:>23}")
    by = {(r.system, r.subscribers): r for r in results}
    ratios = []
    for n in sorted({r.subscribers for r in results}):
        hub, red = by.get(("hub+ws", n)), by.get(("redis", n))
        if hub and red:
            ratios.append(f"{n:>4}  hub/redis: p50 x{hub.p50_ms / red.p50_ms:.1f}, p99 x{hub.p99_ms / red.p99_ms:.1f}, "
                          f"publish calls/s x{hub.publish_calls_per_s / red.publish_calls_per_s:.2f}, "
                          f"delivered/s x{hub.delivered_per_s / red.delivered_per_s:.2f}")
    return "\n".join(rows + ([""] + ratios if ratios else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--burst", type=int, default=3000)
    parser.add_argument("--subscribers", default="1,10,50")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    counts = [int(x) for x in args.subscribers.split(",")]

    print(f"hub + WebSocket gateway: {args.rate} ev/s for {args.seconds} s, burst {args.burst}")
    results = asyncio.run(bench_hub(counts, args.rate, args.seconds, args.burst))
    if shutil.which("redis-server") and importlib.util.find_spec("redis"):
        print("Redis pub/sub, same load")
        results += asyncio.run(bench_redis(counts, args.rate, args.seconds, args.burst))
    else:
        print("redis-server or the redis package missing (apt-get install -y redis-server; "
              "pip install -e '.[bench]'): Redis half skipped")
    print()
    print(table(results))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "results": [asdict(r) for r in results]}, f, indent=1)
        print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
