"""Ingest throughput end to end vs the raw encode throughput of the same model on the same cores.

    python -m bench.ingest --rows 20000 [--data-dir DIR] [--embed-actors 2] [--out results.json]

Both figures come from the same run. Raw encode: the documents' embedding texts encoded by
``--embed-actors`` processes of one torch thread each (the ingest's actors have one thread each),
model load excluded, on a seeded sample of the texts. End to end: ``run_ingest`` on a private Ray
cluster (read, validate, normalise, embed, write both stores, build the HNSW graph, score risk over all
records, publish), cluster start excluded; also reported without the risk pass.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.stats import markdown_table


def _encode_shard(texts: list[str], max_tokens: int) -> tuple[int, float]:
    from predator.embedder import Embedder

    embedder = Embedder(threads=1, max_tokens=max_tokens)
    embedder.encode(texts[:32])  # warm-up
    started = time.perf_counter()
    embedder.encode(texts)
    return len(texts), time.perf_counter() - started


def raw_encode_rate(texts: list[str], processes: int, max_tokens: int) -> float:
    """Sentences per second of ``processes`` one-thread encoders working on shards in parallel."""
    shards = [texts[i::processes] for i in range(processes)]
    with ProcessPoolExecutor(max_workers=processes) as pool:
        results = list(pool.map(_encode_shard, shards, [max_tokens] * processes))
    return sum(n for n, _ in results) / max(s for _, s in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--embed-actors", type=int, default=2)
    parser.add_argument("--raw-sample", type=int, default=4000, help="texts encoded for the raw baseline")
    parser.add_argument("--data-dir", type=Path, help="keep the index here (default: a temp dir)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from cluster.local import init_private
    from ingest.pipeline import run_ingest
    from ingest.sink import IndexSink
    from predator.embedder import document_text
    from predator.sample import generate, write_sample
    from predator.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    records, _ = generate(args.rows, seed=args.seed)
    sample = write_sample(work / "declarations.csv", records)
    texts = [document_text(r.to_document()) for r in records]

    settings = Settings(data_dir=args.data_dir or work / "data", ingest_embed_actors=args.embed_actors)
    # The rate is per sentence: a seeded sample of the same texts gives it without encoding them all twice.
    sample_texts = random.Random(args.seed).sample(texts, min(len(texts), args.raw_sample))
    raw = raw_encode_rate(sample_texts, args.embed_actors, settings.embedding_max_tokens)
    print(f"raw encode: {raw:.1f} sentences/s with {args.embed_actors} one-thread processes "
          f"({len(sample_texts)} of the texts)", flush=True)

    init_private(num_cpus=2, object_store_mb=1024)
    with IndexSink.open(settings) as sink:
        summary = run_ingest([sample], settings, sink)
    without_risk = summary.rows_read / max(summary.seconds - summary.risk_seconds, 1e-9)
    result = {"rows": args.rows, "embed_actors": args.embed_actors, "cpus": os.cpu_count(),
              "raw_encode_per_s": round(raw, 1), "ingest_rows_per_s": round(summary.rows_per_s, 1),
              "ratio_ingest_to_raw": round(summary.rows_per_s / raw, 3),
              "ingest_rows_per_s_without_risk": round(without_risk, 1),
              "ratio_without_risk_to_raw": round(without_risk / raw, 3),
              "ingest_seconds": round(summary.seconds, 1), "risk_seconds": summary.risk_seconds,
              "risk_share_of_ingest": round(summary.risk_seconds / summary.seconds, 3),
              "rows_indexed": summary.rows_indexed, "rows_quarantined": summary.rows_quarantined,
              "risk_levels": summary.risk_levels}
    print(markdown_table(
        ["rows", "raw encode /s", "ingest rows/s", "ingest / raw", "without risk pass /s", "ratio", "risk s", "ingest s"],
        [[args.rows, result["raw_encode_per_s"], result["ingest_rows_per_s"], result["ratio_ingest_to_raw"],
          result["ingest_rows_per_s_without_risk"], result["ratio_without_risk_to_raw"], result["risk_seconds"],
          result["ingest_seconds"]]]))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
