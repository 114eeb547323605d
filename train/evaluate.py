"""Held-out accuracy of the base model or of the base model with a LoRA adapter.

``python -m train.evaluate --adapter NAME|PATH|none [--config train/configs/default.yaml] [--limit N]
[--tasks hs_rag,hs_closed] [--out results.json]``

Answers are generated greedily from the chat prompt (every message but the target). Scoring:

- ``hs_closed`` / ``hs_rag``: the first 4-digit code in the output (``0306``, ``03.06``, ``0306.17``,
  ``03 06``) against the gold heading (heading accuracy) and its first two digits (chapter accuracy).
  For ``hs_rag`` also ``first_candidate_rate``: how often the answer is the first candidate listed;
  candidates are shuffled, so a model that reads them scores about 1/k, an echoing one about 1.
- ``declarations`` / ``feedback``: the gold answer appears in the output (case and spacing ignored;
  digit answers also match when the output writes them with dots or spaces). ``declarations`` also
  reports ``citation_accuracy``: the output cites the right record ``[n]``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from train.datasets import DataConfig, EmptyDataset, Example

HS_TASKS = ("hs_closed", "hs_rag")
_HEADING = re.compile(r"(?<!\d)(\d{2})[.\s]?(\d{2})")
_CANDIDATE = re.compile(r"^(\d{4}) — ", re.MULTILINE)
_CITATION = re.compile(r"\[(\d+)\]")


def generate_answers(model, tokenizer, examples: list[Example], max_new_tokens: int = 24,
                     batch_size: int = 8) -> list[str]:
    """Greedy answers to each example's prompt (its messages but the last), in the examples' order.

    Prompts are batched by length with left padding, so each batch pads little and every row's
    generation starts right after its prompt.
    """
    import torch

    prompts = [tokenizer.apply_chat_template(e.messages[:-1], tokenize=False, add_generation_prompt=True)
               for e in examples]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = tokenizer([prompts[i] for i in rows], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            with torch.inference_mode():
                generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                           temperature=None, top_p=None, top_k=None,
                                           pad_token_id=tokenizer.pad_token_id)
            texts = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, text in zip(rows, texts):
                outputs[i] = text.strip()
    finally:
        tokenizer.padding_side = side
    return outputs


def first_heading(text: str) -> str | None:
    """The first 4-digit HS heading written in ``text`` (dots or a space inside allowed), or None."""
    found = _HEADING.search(text or "")
    return found.group(1) + found.group(2) if found else None


def _normal(text: str) -> str:
    return " ".join((text or "").casefold().split())


def contains_answer(output: str, answer: str) -> bool:
    """Whether ``answer`` is in ``output`` (case and spacing ignored; digit answers also with . or space inside)."""
    if not answer.strip():
        return False
    if answer.isdigit():
        return answer in re.sub(r"(?<=\d)[.\s](?=\d)", "", output or "")
    return _normal(answer) in _normal(output)


def score(examples: list[Example], outputs: list[str]) -> dict:
    """Accuracy overall and per task (see the module docstring for what counts as right)."""
    if len(examples) != len(outputs):
        raise ValueError(f"{len(examples)} examples but {len(outputs)} outputs")
    tasks: dict[str, dict] = {}
    right = 0
    for example, output in zip(examples, outputs):
        stats = tasks.setdefault(example.task, {"n": 0, "correct": 0})
        stats["n"] += 1
        if example.task in HS_TASKS:
            correct = _score_hs(example, output, stats)
        else:
            correct = contains_answer(output, example.answer)
            if example.task == "declarations":
                cited = set(_CITATION.findall(example.messages[-1]["content"]))
                stats["cited"] = stats.get("cited", 0) + bool(cited & set(_CITATION.findall(output)))
        stats["correct"] += correct
        right += correct
    return {"n": len(examples), "accuracy": right / len(examples) if examples else 0.0,
            "tasks": {task: _rates(stats) for task, stats in sorted(tasks.items())}}


def _score_hs(example: Example, output: str, stats: dict) -> bool:
    heading = first_heading(output)
    correct = heading == example.answer
    stats["chapter"] = stats.get("chapter", 0) + (heading is not None and heading[:2] == example.answer[:2])
    stats["no_code"] = stats.get("no_code", 0) + (heading is None)
    if example.task == "hs_rag":
        candidates = _CANDIDATE.findall(example.messages[-2]["content"])
        stats["first"] = stats.get("first", 0) + (heading is not None and candidates[:1] == [heading])
        stats["in_candidates"] = stats.get("in_candidates", 0) + (heading in candidates)
    return correct


def _rates(stats: dict) -> dict:
    n = stats["n"]
    names = {"correct": "accuracy", "chapter": "chapter_accuracy", "no_code": "no_code_rate",
             "first": "first_candidate_rate", "in_candidates": "in_candidates_rate", "cited": "citation_accuracy"}
    rates = {names[key]: value / n for key, value in stats.items() if key in names}
    if "chapter" in stats:
        rates["heading_accuracy"] = rates["accuracy"]
    return {"n": n, **rates}


def evaluate(model, tokenizer, examples: list[Example], keep_outputs: bool = False, **generation) -> dict:
    """Generate answers for ``examples`` and score them; adds ``seconds`` and ``cpu_seconds`` (this
    process's CPU time, the steadier figure on a shared machine), and the outputs when asked."""
    started, cpu = time.perf_counter(), time.process_time()
    outputs = generate_answers(model, tokenizer, examples, **generation)
    report = score(examples, outputs)
    report["seconds"] = round(time.perf_counter() - started, 2)
    report["cpu_seconds"] = round(time.process_time() - cpu, 2)
    if keep_outputs:
        report["outputs"] = [{"id": e.id, "answer": e.answer, "output": o} for e, o in zip(examples, outputs)]
    return report


def data_config(path: Path | None) -> DataConfig:
    """The ``data:`` block of a training recipe (YAML), or the defaults without one."""
    if path is None:
        return DataConfig()
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    recipe = yaml.safe_load(path.read_text()) or {}
    return DataConfig(**(recipe.get("data") or {}))


def table(report: dict) -> str:
    """The report as an aligned text table, one row per task."""
    columns = ("n", "accuracy", "chapter_accuracy", "first_candidate_rate", "citation_accuracy")
    lines = [f"{'task':<14}" + "".join(f"{c:>22}" for c in columns)]
    for task, stats in report["tasks"].items():
        cells = [f"{stats[c]:.3f}" if isinstance(stats.get(c), float) else str(stats.get(c, "-")) for c in columns]
        lines.append(f"{task:<14}" + "".join(f"{cell:>22}" for cell in cells))
    lines.append(f"{'overall':<14}{report['n']:>22}{report['accuracy']:>22.3f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", default="none", help="registered adapter name[/version], adapter dir, or none")
    parser.add_argument("--config", type=Path, help="training recipe whose data: block defines the held-out set")
    parser.add_argument("--limit", type=int, help="held-out examples per task (default: the config's cap)")
    parser.add_argument("--tasks", help="comma-separated sources to evaluate (default: the config's)")
    parser.add_argument("--out", type=Path, help="write the report (with every output) as JSON here")
    parser.add_argument("--threads", type=int, help="torch threads (default: settings.torch_threads)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command line: build the held-out set, load base model (+ adapter), print a table, write JSON."""
    from pydantic import ValidationError

    from predator import adapters
    from predator.llm import ModelNotFound, load_model, load_tokenizer, resolve_model
    from predator.settings import get_settings
    from train.datasets import build

    args = parse_args(argv)
    settings = get_settings()
    try:
        cfg = data_config(args.config)
        overrides = {}
        if args.tasks:
            overrides["sources"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
        if args.limit:
            overrides["max_heldout_examples"] = args.limit
        cfg = DataConfig(**{**cfg.model_dump(), **overrides})
        adapter_dir = None
        if args.adapter != "none":
            adapter_dir = adapters.resolve(args.adapter, settings.mlflow_uri, settings.data_dir / "cache" / "adapters")
        source = resolve_model(settings.llm_model)
        bundle = build(cfg, settings, progress=_say, heldout_only=True)
    except (adapters.AdapterNotFound, ModelNotFound, FileNotFoundError, EmptyDataset, ValidationError) as err:
        print(f"evaluate: {err}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads or settings.torch_threads)
    tokenizer = load_tokenizer(source, settings.llm_cache)
    model = load_model(source, settings.llm_cache)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    examples = bundle.heldout
    _say(f"generating {len(examples)} answers with {source.name} + adapter {args.adapter}")
    report = evaluate(model, tokenizer, examples, keep_outputs=True, max_new_tokens=args.max_new_tokens,
                      batch_size=args.batch_size)
    report.update(adapter=args.adapter, model=source.name, threads=torch.get_num_threads(),
                  baselines=bundle.metrics, data=cfg.model_dump())
    print(table(report))
    for name, value in bundle.metrics.items():
        print(f"baseline {name}: {value:.3f}")
    print(f"{report['seconds']:.1f} s ({report['cpu_seconds']:.1f} s CPU) for {report['n']} examples")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def _say(message: str) -> None:
    print(f"evaluate: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
