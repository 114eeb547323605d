"""Copilot: latency through Ray Serve vs in-process generation, and answer quality on known answers.

    python -m bench.copilot [--rows 1000] [--data-dir DIR] [--latency 8] [--records 10] [--adapter NAME]
                            [--out bench/results/copilot.json]

Builds (first run only) an index of ``--rows`` generated declarations in DIR, starts a private cluster
and deploys the search and copilot applications.

1. Latency, same run, same prompts: each question is asked through Serve over HTTP (streaming; time to
   the first token event as the client sees it, and tokens/s after it), then the very same prompt (the
   context records Serve used, the same template) is generated in-process with the same model and
   thread count. Greedy decoding, so both produce the same tokens. Medians and the Serve/in-process ratios.
2. Quality: for ``--records`` sampled declarations, three questions with a known answer each (its HS
   code, its country of origin, its importer), asked through Serve. Exact match = the answer holds the
   known value (the HS code's digits; the origin's ISO code or English name; the importer's ЄДРПОУ code
   or name). Citation precision = citations of the asked-about record / all citations made (including
   those removed for pointing outside the context). For the base model, and for ``--adapter`` if given.
Prints the figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.stats import markdown_table


def build_index(settings, rows: int, seed: int) -> list:
    """Generated declarations, ingested into ``settings.data_dir`` unless already there."""
    from ingest.pipeline import run_ingest
    from ingest.sink import IndexSink
    from predator.sample import generate, write_sample

    records, _ = generate(rows, seed=seed)
    marker = settings.data_dir / "BENCH_COPILOT_ROWS"
    if not marker.exists() or marker.read_text() != f"{rows} {seed}":
        export = settings.data_dir / "bench-copilot.csv"
        export.parent.mkdir(parents=True, exist_ok=True)
        with IndexSink.open(settings) as sink:
            run_ingest([write_sample(export, records)], settings, sink)
        marker.write_text(f"{rows} {seed}")
    return records


def stream_chat(url: str, key: str, body: dict) -> tuple[float | None, list[float], dict]:
    """(seconds to the first token event, arrival times of token events, final event) of one request."""
    started = time.perf_counter()
    arrivals, final, event = [], {}, None
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=300,
                      headers={"Authorization": f"Bearer {key}"}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "token":
                arrivals.append(time.perf_counter() - started)
            elif line.startswith("data: ") and event == "final":
                final = json.loads(line.removeprefix("data: "))
    return (arrivals[0] if arrivals else None), arrivals, final


def serve_rate(final: dict, first_s: float, arrivals: list[float]) -> float:
    """Tokens/s after the first token event (events may carry several tokens: count tokens, not events)."""
    tokens = final["usage"]["completion_tokens"]
    span = arrivals[-1] - first_s if arrivals else 0
    return (tokens - 1) / span if tokens > 1 and span > 0 else 0.0


def in_process(generator, settings, final: dict, question: str, max_tokens: int):
    """The same prompt as Serve built (its context records, the same template), generated in-process."""
    from predator.copilot.generation import GenerationRequest
    from predator.copilot.prompt import Message, context_records, fit_prompt

    records = [c["record"] for c in final["context"]]
    context = context_records(records, settings.copilot_context_fields, settings.copilot_context_text_chars)
    prompt = fit_prompt(generator.tokenizer, [Message("user", question)], context, settings.llm_max_input_tokens)
    return generator.generate(GenerationRequest(prompt.input_ids, max_new_tokens=max_tokens)), len(prompt.input_ids)


def latency(url: str, key: str, generator, settings, questions: list[str], max_tokens: int) -> dict:
    rows = []
    for question in questions:
        first_s, arrivals, final = stream_chat(url, key, {"messages": [{"role": "user", "content": question}],
                                                          "max_tokens": max_tokens})
        local, prompt_tokens = in_process(generator, settings, final, question, max_tokens)
        rows.append({"prompt_tokens": prompt_tokens, "serve_prompt_tokens": final["usage"]["prompt_tokens"],
                     "serve_ttft_s": first_s, "serve_tokens_per_s": serve_rate(final, first_s, arrivals),
                     "serve_retrieve_ms": final["timings"]["retrieve_ms"],
                     "local_ttft_s": local.first_token_s, "local_tokens_per_s": local.tokens_per_s,
                     "same_tokens": local.completion_tokens == final["usage"]["completion_tokens"]})
        print(f"  prompt {prompt_tokens} tokens: Serve {first_s:.2f} s / {rows[-1]['serve_tokens_per_s']:.1f} tok/s, "
              f"in-process {local.first_token_s:.2f} s / {local.tokens_per_s:.1f} tok/s", flush=True)
    median = {k: round(statistics.median(r[k] for r in rows), 3) for k in
              ("prompt_tokens", "serve_ttft_s", "serve_tokens_per_s", "serve_retrieve_ms", "local_ttft_s",
               "local_tokens_per_s")}
    median["ttft_ratio"] = round(median["serve_ttft_s"] / median["local_ttft_s"], 3)
    median["tokens_per_s_ratio"] = round(median["serve_tokens_per_s"] / median["local_tokens_per_s"], 3)
    median["same_tokens"] = sum(r["same_tokens"] for r in rows)
    return {"questions": len(rows), "median": median, "runs": rows}


def question_set(records: list, count: int, seed: int) -> list[dict]:
    """Three questions with known answers for each of ``count`` sampled declarations."""
    from predator.countries import country_name

    chosen = random.Random(seed).sample(records, count)
    out = []
    for r in chosen:
        out.append({"kind": "hs_code", "id": r.id, "question": f"What is the HS code of {r.id}?",
                    "answers": [r.hs_code]})
        origin = [r.origin_country, country_name(r.origin_country)] if r.origin_country else []
        out.append({"kind": "origin", "id": r.id, "question": f"Which country is the origin of the goods in {r.id}?",
                    "answers": [a for a in origin if a]})
        out.append({"kind": "importer", "id": r.id, "question": f"Who is the importer of {r.id}?",
                    "answers": [r.importer_code, r.importer_name]})
    return out


def exact_match(answer: str, known: list[str]) -> bool:
    """The answer holds a known value: codes as whole tokens (case-sensitive), names case-insensitively."""
    for value in known:
        if len(value) <= 3 or value.isdigit():
            if re.search(rf"(?<![\w]){re.escape(value)}(?![\w])", answer):
                return True
        elif value.lower() in answer.lower():
            return True
    return False


def quality(url: str, key: str, items: list[dict], adapter: str | None, max_tokens: int) -> dict:
    by_kind: dict[str, list[bool]] = {}
    on_target = made = cited_target = 0
    for item in items:
        body = {"messages": [{"role": "user", "content": item["question"]}], "max_tokens": max_tokens}
        if adapter:
            body["adapter"] = adapter
        answer = httpx.post(url, json=body, timeout=300, headers={"Authorization": f"Bearer {key}"})
        answer.raise_for_status()
        result = answer.json()
        by_kind.setdefault(item["kind"], []).append(exact_match(result["answer"], item["answers"]))
        cited = [c["record_id"] for c in result["citations"]]
        on_target += cited.count(item["id"])
        made += len(cited) + result["citations_removed"]
        cited_target += item["id"] in cited
    accuracy = {kind: round(sum(v) / len(v), 3) for kind, v in by_kind.items()}
    accuracy["all"] = round(sum(sum(v) for v in by_kind.values()) / len(items), 3)
    return {"adapter": adapter, "questions": len(items), "exact_match": accuracy,
            "citation_precision": round(on_target / made, 3) if made else None,
            "citations_made": made, "answers_citing_the_record": round(cited_target / len(items), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--data-dir", type=Path, help="keep the index here (default: a temp dir)")
    parser.add_argument("--latency", type=int, default=8, help="questions timed through Serve and in-process")
    parser.add_argument("--latency-tokens", type=int, default=64)
    parser.add_argument("--records", type=int, default=10, help="declarations in the quality set (3 questions each)")
    parser.add_argument("--answer-tokens", type=int, default=48)
    parser.add_argument("--adapter", help="also measure quality with this adapter (name or name/version)")
    parser.add_argument("--port", type=int, default=8182)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from ray import serve

    from cluster.local import init_private
    from predator.auth import ensure_local_keys
    from predator.copilot.generation import Generator
    from predator.settings import Settings
    from serve_apps.copilot import build_app as build_copilot
    from serve_apps.search import build_app as build_search

    data_dir = (args.data_dir or Path(tempfile.mkdtemp(prefix="bench-copilot-")) / "data").resolve()
    settings = Settings(data_dir=data_dir)
    keys = ensure_local_keys(settings.keys_path, settings.data_dir / "secrets")
    init_private(num_cpus=2, object_store_mb=256)
    records = build_index(settings, args.rows, args.seed)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(build_search({"data_dir": str(data_dir)}), name="search", route_prefix="/")
    serve.run(build_copilot({"data_dir": str(data_dir)}), name="copilot", route_prefix="/copilot")
    url = f"http://127.0.0.1:{args.port}/copilot/chat"
    generator = Generator.from_settings(settings)

    items = question_set(records, args.records, args.seed)
    warm = items[0]["question"]
    stream_chat(url, keys["viewer"], {"messages": [{"role": "user", "content": warm}], "max_tokens": 4})
    print(f"latency: {args.latency} questions, {args.latency_tokens} tokens, greedy", flush=True)
    timed = latency(url, keys["viewer"], generator, settings,
                    [item["question"] for item in items[: args.latency]], args.latency_tokens)
    generator.close()
    print("quality:", flush=True)
    scores = [quality(url, keys["viewer"], items, None, args.answer_tokens)]
    if args.adapter:
        scores.append(quality(url, keys["viewer"], items, args.adapter, args.answer_tokens))
    serve.shutdown()

    m = timed["median"]
    print(markdown_table(["path", "time to first token s (p50)", "tokens/s (p50)"],
                         [["in-process generate", m["local_ttft_s"], m["local_tokens_per_s"]],
                          ["Ray Serve, HTTP streaming", m["serve_ttft_s"], m["serve_tokens_per_s"]]]))
    print(f"Serve / in-process: time to first token x{m['ttft_ratio']}, tokens/s x{m['tokens_per_s_ratio']}; "
          f"prompt {m['prompt_tokens']} tokens; same tokens in {m['same_tokens']}/{timed['questions']}")
    print(markdown_table(["model", "exact match (all)", "HS code", "origin", "importer", "citation precision",
                          "answers citing the record"],
                         [[s["adapter"] or "base", s["exact_match"]["all"], s["exact_match"].get("hs_code"),
                           s["exact_match"].get("origin"), s["exact_match"].get("importer"),
                           s["citation_precision"], s["answers_citing_the_record"]] for s in scores]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": args.rows, "latency": timed, "quality": scores}, indent=1))


if __name__ == "__main__":
    main()
