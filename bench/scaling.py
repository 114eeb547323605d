"""Search throughput with 1 and with 2 Serve replicas, and how long autoscaling takes to add the second.

    python -m bench.scaling --data-dir DIR [--seconds 30] [--concurrency 8] [--out results.json]

DIR must hold a published index (``python -m bench.ingest --rows 100000 --data-dir DIR`` builds one).
One private Ray cluster (2 CPUs), one run, the same queries and the same closed-loop load
(``--concurrency`` clients posting hybrid searches back to back for ``--seconds``):
1. the search deployment pinned at 1 replica, then at 2 replicas: queries/s, p50/p99, the ratio;
2. the deployment redeployed from scratch with the search autoscaling_config of
   ``serve_apps/serve_config.yaml`` (min 1): the time from load start until the second replica is
   RUNNING (Serve routes to a replica from then on), and the throughput in the seconds after.
Serve's metric push intervals are left at their defaults, as in production. Asserts nothing about time.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import httpx
import yaml

from bench.search import body, sample_queries
from bench.stats import markdown_table, summary_ms

SERVE_CONFIG = Path(__file__).resolve().parents[1] / "serve_apps" / "serve_config.yaml"


def shipped_autoscaling() -> dict:
    """The search deployment's autoscaling_config as deployed by ``make run`` and the cluster configs."""
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    app = next(a for a in config["applications"] if a["name"] == "search")
    return next(d for d in app["deployments"] if d["name"] == "SearchAPI")["autoscaling_config"]


def drive(url: str, key: str, queries: list[str], clients: int, seconds: float,
          stop: threading.Event | None = None) -> dict:
    """``clients`` closed-loop clients for ``seconds`` (or until ``stop``); queries/s and latency."""
    stop = stop or threading.Event()
    took: list[float] = []
    failed = [0]

    def client(part: list[str]) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            while not stop.is_set():
                for q in part:
                    started = time.perf_counter()
                    if http.post(url, json=body(q)).status_code == 200:
                        took.append(time.perf_counter() - started)
                    else:
                        failed[0] += 1
                    if stop.is_set():
                        return

    threads = [threading.Thread(target=client, args=(queries[i::clients],), daemon=True) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"qps": round(len(took) / elapsed, 1), "failed": failed[0], **summary_ms(took)}


def running_replicas() -> int:
    from ray import serve

    status = serve.status().applications.get("search")
    return status.deployments["SearchAPI"].replica_states.get("RUNNING", 0) if status else 0


def wait_replicas(count: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while running_replicas() != count:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {count} search replicas not running after {timeout_s:.0f} s")
        time.sleep(0.5)


def deploy(settings, **options) -> None:
    from ray import serve

    from predator.settings import get_settings
    from serve_apps.search import SearchAPI

    serve.run(SearchAPI.options(**options).bind(get_settings(data_dir=str(settings.data_dir))),
              name="search", route_prefix="/")


def time_to_second_replica(url: str, key: str, queries: list[str], clients: int, seconds: float) -> dict:
    """Load from a cold single replica; seconds until the second replica runs, and the load's figures."""
    stop = threading.Event()
    outcome: dict = {}
    load = threading.Thread(target=lambda: outcome.update(drive(url, key, queries, clients, 3600, stop)))
    started = time.monotonic()
    load.start()
    try:
        wait_replicas(2)
        scaled = time.monotonic() - started
        time.sleep(seconds)  # keep the load on so the figures include both replicas serving
    finally:
        stop.set()
        load.join()
    return {"seconds_to_second_replica": round(scaled, 1), "load": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=30, help="length of each measured load phase")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--port", type=int, default=8182)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from predator.auth import ensure_local_keys
    from predator.embedder import Embedder
    from predator.search import SearchEngine
    from predator.settings import Settings

    settings = Settings(data_dir=args.data_dir.resolve())
    key = ensure_local_keys(settings.keys_path, settings.data_dir / "secrets")["viewer"]
    engine = SearchEngine.from_settings(settings, Embedder(threads=1, max_tokens=settings.embedding_max_tokens))
    documents = engine.keyword.count()
    queries = sample_queries(engine, args.queries, args.seed)
    engine.close()

    from ray import serve

    from cluster.local import init_private

    init_private(num_cpus=2, object_store_mb=256)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    url = f"http://127.0.0.1:{args.port}/search"
    fixed = {}
    for replicas in (1, 2):
        deploy(settings, num_replicas=replicas)
        wait_replicas(replicas)
        drive(url, key, queries, args.concurrency, 5)  # warm-up: models loaded, caches filled
        fixed[replicas] = drive(url, key, queries, args.concurrency, args.seconds)
        print(f"{replicas} replica(s): {fixed[replicas]}", flush=True)
    serve.delete("search")

    autoscaling = shipped_autoscaling()
    deploy(settings, autoscaling_config=autoscaling)
    wait_replicas(1)
    drive(url, key, queries[:20], 1, 3)  # warm the single replica, far below the scale-up target
    scaling = time_to_second_replica(url, key, queries, args.concurrency, args.seconds)
    serve.shutdown()

    ratio = round(fixed[2]["qps"] / fixed[1]["qps"], 2)
    result = {"documents": documents, "concurrency": args.concurrency, "seconds": args.seconds,
              "one_replica": fixed[1], "two_replicas": fixed[2], "qps_ratio_2_over_1": ratio,
              "autoscaling_config": autoscaling, **scaling}
    print(markdown_table(
        ["replicas", "queries/s", "p50 ms", "p99 ms", "failed"],
        [[n, fixed[n]["qps"], fixed[n]["p50_ms"], fixed[n]["p99_ms"], fixed[n]["failed"]] for n in (1, 2)]))
    print(f"2/1 throughput ratio {ratio}; autoscaling {autoscaling}: second replica running "
          f"{scaling['seconds_to_second_replica']} s after load start")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
