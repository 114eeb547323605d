"""Hybrid search latency through Ray Serve over HTTP vs the same engine in-process, same run.

    python -m bench.search --data-dir DIR [--queries 300] [--concurrency 8] [--out results.json]

DIR must hold a published index (``python -m bench.ingest --rows 100000 --data-dir DIR`` builds one).
The same queries (goods-description fragments sampled from the index) run three ways:
in-process ``SearchEngine.search``; one HTTP client against the Serve app (p50/p99); ``--concurrency``
clients against it (queries/s). Prints medians and the ratio; asserts nothing about time.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.stats import markdown_table, summary_ms


def sample_queries(engine, count: int, seed: int) -> list[str]:
    """Fragments (2-5 words) of goods descriptions drawn from the indexed records."""
    rng = random.Random(seed)
    listing = engine.keyword.search("", None, 1000, annotate=False)
    records = engine.keyword.get_many([h.id for h in listing])
    texts = [r["goods_description"].split() for r in records.values() if r.get("goods_description")]
    queries = []
    while len(queries) < count:
        words = rng.choice(texts)
        start = rng.randrange(max(1, len(words) - 2))
        queries.append(" ".join(words[start:start + rng.randint(2, 5)]))
    return queries


def body(q: str) -> dict:
    return {"q": q, "mode": "hybrid", "fusion": "rrf", "limit": 10}


def time_in_process(engine, queries: list[str]) -> list[float]:
    from predator.search import SearchQuery

    took = []
    for q in queries:
        started = time.perf_counter()
        engine.search(SearchQuery(text=q, highlight=True, explain=True))
        took.append(time.perf_counter() - started)
    return took


def time_http(url: str, key: str, queries: list[str]) -> list[float]:
    took = []
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for q in queries:
            started = time.perf_counter()
            client.post(url, json=body(q)).raise_for_status()
            took.append(time.perf_counter() - started)
    return took


def throughput(url: str, key: str, queries: list[str], concurrency: int) -> float:
    def worker(part: list[str]) -> int:
        time_http(url, key, part)
        return len(part)

    parts = [queries[i::concurrency] for i in range(concurrency)]
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        done = sum(pool.map(worker, parts))
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--port", type=int, default=8181)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from predator.auth import ensure_local_keys
    from predator.embedder import Embedder
    from predator.search import SearchEngine
    from predator.settings import Settings

    settings = Settings(data_dir=args.data_dir.resolve())
    keys = ensure_local_keys(settings.keys_path, settings.data_dir / "secrets")
    embedder = Embedder(threads=settings.torch_threads, max_tokens=settings.embedding_max_tokens)
    engine = SearchEngine.from_settings(settings, embedder)
    documents = engine.keyword.count()
    queries = sample_queries(engine, args.queries, args.seed)
    time_in_process(engine, queries[:20])  # warm-up
    local = summary_ms(time_in_process(engine, queries))
    engine.close()
    del embedder
    print(f"in-process over {documents} documents: {local}", flush=True)

    from ray import serve

    from cluster.local import init_private
    from serve_apps.search import build_app

    init_private(num_cpus=2, object_store_mb=256)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(build_app({"data_dir": str(settings.data_dir)}), name="search", route_prefix="/")
    url = f"http://127.0.0.1:{args.port}/search"
    time_http(url, keys["viewer"], queries[:20])  # warm-up
    served = summary_ms(time_http(url, keys["viewer"], queries))
    qps = throughput(url, keys["viewer"], queries, args.concurrency)
    serve.shutdown()

    result = {"documents": documents, "queries": len(queries), "in_process": local, "serve_http": served,
              "p50_ratio": round(served["p50_ms"] / local["p50_ms"], 2),
              "p50_added_ms": round(served["p50_ms"] - local["p50_ms"], 2),
              "qps_concurrency": args.concurrency, "qps": round(qps, 1)}
    print(markdown_table(
        ["path", "p50 ms", "p99 ms"],
        [["in-process", local["p50_ms"], local["p99_ms"]], ["Serve over HTTP", served["p50_ms"], served["p99_ms"]]]))
    print(f"p50 ratio {result['p50_ratio']}, added {result['p50_added_ms']} ms; "
          f"{result['qps']} queries/s at concurrency {args.concurrency}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
