"""Precision and recall of the risk detectors against the sample generator's labels, and their cost.

    python -m bench.risk --runs 20000:1 20000:2 20000:3 100000:4 --out bench/risk.json

For each ``rows:seed`` run: generate the sample (default anomaly rate), compute :class:`RiskStats` over
all records, score every record at the default thresholds (``predator/risk.yaml``) with the real
``HsSuggester``, and compare each detector's flags with the labels of its anomaly kind. Prints a
markdown table; ``--out`` writes the numbers as JSON. Cost is reported per 100k records, next to the
cost of the ingest's embedding stage measured on the same machine (``--embed-sample`` documents).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from predator.embedder import Embedder, document_text
from predator.hs_suggest import HsSuggester
from predator.risk import DETECTORS, RiskConfig, RiskScorer, RiskStats, heading_title, suggester_fn
from predator.sample import generate

PER = 100_000


def evaluate(rows: int, seed: int, config: RiskConfig, suggester: HsSuggester) -> dict:
    """One run: per-detector precision/recall and timings."""
    records, labels = generate(rows, seed=seed)
    docs = [r.to_document() for r in records]
    started = time.perf_counter()
    stats = RiskStats.from_documents(docs)
    stats_s = time.perf_counter() - started
    scorer = RiskScorer(stats, config, suggester_fn(suggester, config), titles=heading_title)
    started = time.perf_counter()
    results = scorer.score(docs)
    score_s = time.perf_counter() - started
    flagged = {name: set() for name in DETECTORS}
    for doc, (_, flags) in zip(docs, results):
        for f in flags:
            flagged[f["detector"]].add(doc["id"])
    truth = {name: {label["id"] for label in labels if label["anomaly"] == name} for name in DETECTORS}
    return {
        "rows": rows, "seed": seed,
        "detectors": {name: _quality(flagged[name], truth[name]) for name in DETECTORS},
        "stats_s": round(stats_s, 2), "score_s": round(score_s, 2),
        "per_100k_s": round((stats_s + score_s) * PER / rows, 1),
        "levels": _levels(results),
    }


def _quality(predicted: set[str], actual: set[str]) -> dict:
    hits = len(predicted & actual)
    return {"labelled": len(actual), "flagged": len(predicted), "true_positives": hits,
            "precision": round(hits / len(predicted), 3) if predicted else None,
            "recall": round(hits / len(actual), 3) if actual else None}


def _levels(results) -> dict:
    counts: dict[str, int] = {}
    for level, _ in results:
        counts[level] = counts.get(level, 0) + 1
    return counts


def embedding_rate(embedder: Embedder, n: int) -> float:
    """Documents per second of the ingest's embedding stage (the text it embeds), on this machine."""
    records, _ = generate(n, seed=99)
    texts = [document_text(r.to_document()) for r in records]
    started = time.perf_counter()
    embedder.encode(texts)
    return n / (time.perf_counter() - started)


def markdown(report: dict) -> str:
    lines = ["| rows | seed | detector | labelled | flagged | precision | recall |",
             "|---:|---:|---|---:|---:|---:|---:|"]
    for run in report["runs"]:
        for name, q in run["detectors"].items():
            lines.append(f"| {run['rows']:,} | {run['seed']} | {name} | {q['labelled']} | {q['flagged']} "
                         f"| {q['precision']} | {q['recall']} |")
    lines += ["", "| rows | seed | stats s | scoring s | risk s per 100k | levels |", "|---:|---:|---:|---:|---:|---|"]
    for run in report["runs"]:
        lines.append(f"| {run['rows']:,} | {run['seed']} | {run['stats_s']} | {run['score_s']} | {run['per_100k_s']} "
                     f"| {run['levels']} |")
    if report.get("embed_docs_per_s"):
        embed_100k = PER / report["embed_docs_per_s"]
        risk_100k = sum(r["per_100k_s"] for r in report["runs"]) / len(report["runs"])
        lines += ["", f"Ingest embedding stage on this machine: {report['embed_docs_per_s']:.0f} documents/s, "
                      f"{embed_100k:.0f} s per 100k; risk scoring (mean {risk_100k:.1f} s per 100k) is "
                      f"{100 * risk_100k / (risk_100k + embed_100k):.0f}% of embedding + risk."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["20000:1", "20000:2", "20000:3", "100000:4"],
                        help="rows:seed pairs")
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/cache"),
                        help="nomenclature embeddings cache of the HS suggester")
    parser.add_argument("--embed-sample", type=int, default=500,
                        help="documents embedded to measure the ingest's embedding rate (0: skip)")
    args = parser.parse_args(argv)
    config = RiskConfig.load()
    embedder = Embedder(threads=1)
    suggester = HsSuggester.build(embedder, cache_dir=args.cache_dir)
    report = {"config": config.__dict__, "runs": []}
    for run in args.runs:
        rows, seed = (int(x) for x in run.split(":"))
        report["runs"].append(evaluate(rows, seed, config, suggester))
        print(json.dumps(report["runs"][-1]), flush=True)
    if args.embed_sample:
        report["embed_docs_per_s"] = round(embedding_rate(embedder, args.embed_sample), 1)
    print(markdown(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
