"""Quality of HS heading suggestion, measured on the nomenclature itself with a held-out split.

Queries are subheading descriptions; the one relevant answer is their heading. A subheading's own
text is one of the texts that represent its heading, so every query subheading is held out of the
index it is evaluated on:

- test split: ``--test-fraction`` of the subheadings (seeded); reported, never tuned on. Its index
  holds the headings and all other subheadings.
- validation split: ``--val-fraction`` of the remaining subheadings; the RRF ``k`` and the weight of
  weighted fusion are chosen on it, with an index that also leaves out the validation subheadings.

Run:  python -m bench.retrieval --out bench/results/hs_suggest.json
Prints a markdown table (Acc@1, MRR@10, nDCG@10 per method) and writes the figures as JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

from predator.embedder import Embedder
from predator.hs_suggest import HsSuggester, cached_embeddings, nomenclature_texts

RRF_KS = (5, 10, 20, 40, 60, 100)
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))


def split(codes: list[str], test_fraction: float, val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded (test, validation) subheading codes; validation is drawn from what test leaves."""
    shuffled = sorted(codes)
    random.Random(seed).shuffle(shuffled)
    n_test = round(len(shuffled) * test_fraction)
    rest = shuffled[n_test:]
    n_val = round(len(rest) * val_fraction)
    return shuffled[:n_test], rest[:n_val]


def metrics(ranked: list[list[str]], relevant: list[str]) -> dict[str, float]:
    """Acc@1, MRR@10 and nDCG@10 with one relevant heading per query."""
    acc = mrr = ndcg = 0.0
    for headings, answer in zip(ranked, relevant):
        top = headings[:10]
        if answer in top:
            rank = top.index(answer) + 1
            acc += rank == 1
            mrr += 1.0 / rank
            ndcg += 1.0 / math.log2(rank + 1)
    n = len(relevant) or 1
    return {"acc@1": acc / n, "mrr@10": mrr / n, "ndcg@10": ndcg / n}


def evaluate(suggester: HsSuggester, queries: list[tuple[str, str, object]], methods: dict) -> dict[str, dict]:
    """Score every method on (text, heading, vector) queries; retrieval is done once per query."""
    candidates = [suggester.heading_scores(text, vector) for text, _, vector in queries]
    relevant = [heading for _, heading, _ in queries]
    results = {}
    for name, (mode, fusion, params) in methods.items():
        ranked = [[s.heading for s in suggester.rank(c, mode, fusion, **params)[:10]] for c in candidates]
        results[name] = metrics(ranked, relevant)
    return results


def tune(suggester: HsSuggester, queries) -> dict:
    """Best RRF k and semantic weight by MRR@10 on the validation queries."""
    methods = {f"rrf k={k}": ("hybrid", "rrf", {"rrf_k": k}) for k in RRF_KS}
    methods |= {f"weighted w={w}": ("hybrid", "weighted", {"semantic_weight": w}) for w in WEIGHTS}
    scores = evaluate(suggester, queries, methods)
    best_k = max(RRF_KS, key=lambda k: (scores[f"rrf k={k}"]["mrr@10"], -abs(k - 60)))
    best_w = max(WEIGHTS, key=lambda w: (scores[f"weighted w={w}"]["mrr@10"], -abs(w - 0.5)))
    return {"rrf_k": best_k, "semantic_weight": best_w, "validation": scores}


def run(args) -> dict:
    """Build the split indexes, tune on validation, report on test."""
    started = time.perf_counter()
    embedder = Embedder(threads=args.threads)
    texts, _ = nomenclature_texts()
    vectors = cached_embeddings(embedder, [t.text for t in texts], args.cache_dir)
    subheadings = [t for t in texts if t.source != "heading"]
    test_codes, val_codes = split([t.source for t in subheadings], args.test_fraction, args.val_fraction, args.seed)
    row = {t.source: i for i, t in enumerate(texts) if t.source != "heading"}

    def queries(codes):
        return [(texts[row[c]].text, texts[row[c]].heading, vectors[row[c]]) for c in codes]

    val_index = HsSuggester.build(embedder, cache_dir=args.cache_dir, exclude=set(test_codes) | set(val_codes))
    tuned = tune(val_index, queries(val_codes))

    test_index = HsSuggester.build(embedder, cache_dir=args.cache_dir, exclude=set(test_codes))
    methods = {
        "keyword (BM25)": ("keyword", "rrf", {}),
        "semantic (MiniLM)": ("semantic", "rrf", {}),
        "hybrid RRF k=60": ("hybrid", "rrf", {"rrf_k": 60}),
        f"hybrid RRF k={tuned['rrf_k']} (tuned)": ("hybrid", "rrf", {"rrf_k": tuned["rrf_k"]}),
        "hybrid weighted w=0.5": ("hybrid", "weighted", {"semantic_weight": 0.5}),
        f"hybrid weighted w={tuned['semantic_weight']} (tuned)": (
            "hybrid", "weighted", {"semantic_weight": tuned["semantic_weight"]}),
    }
    test = evaluate(test_index, queries(test_codes), methods)
    return {
        "model": embedder.model_name,
        "seed": args.seed,
        "subheadings": len(subheadings),
        "test_queries": len(test_codes),
        "validation_queries": len(val_codes),
        "indexed_texts_test": len(test_index.texts),
        "tuned_on_validation": {"rrf_k": tuned["rrf_k"], "semantic_weight": tuned["semantic_weight"]},
        "validation": tuned["validation"],
        "test": test,
        "seconds": round(time.perf_counter() - started, 1),
    }


def markdown(report: dict) -> str:
    """The test-split table in markdown."""
    lines = [
        f"HS heading suggestion, {report['test_queries']} held-out subheadings as queries "
        f"(seed {report['seed']}; tuned on {report['validation_queries']} validation queries: "
        f"RRF k={report['tuned_on_validation']['rrf_k']}, weight={report['tuned_on_validation']['semantic_weight']})",
        "",
        "| method | Acc@1 | MRR@10 | nDCG@10 |",
        "|---|---:|---:|---:|",
    ]
    for name, m in report["test"].items():
        lines.append(f"| {name} | {m['acc@1']:.3f} | {m['mrr@10']:.3f} | {m['ndcg@10']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/cache"), help="nomenclature embedding cache")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(markdown(report))


if __name__ == "__main__":
    main()
