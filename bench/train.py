"""Training benchmarks: Ray Train overhead, and whether the adapter is any use.

    python -m bench.train throughput [--steps 20] [--config train/configs/default.yaml] [--set k=v ...]
    python -m bench.train usefulness [--config train/configs/default.yaml] [--set k=v ...]

``throughput``: tokens/s of the same recipe (model, data, batch, threads) trained by a plain PyTorch loop
in this process, then by Ray Train with one worker, then with two, all in one run. Steady state is the
median of the per-window rates after the first window (model load, cluster and worker start excluded);
end to end divides all tokens by the wall time of ``fit`` (start-up included). Ratios are to the plain loop.

``usefulness``: runs the recipe as the job does (evaluation before and after on the held-out split) and
prints held-out accuracy of the base model and of the adapter for each task, closed-book (hs_closed) and
retrieval-augmented (hs_rag) included.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.stats import markdown_table

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "train" / "configs" / "default.yaml"
RESULTS = Path(__file__).resolve().parent / "results"


def plain_loop(prepared, settings, steps: int, log_every: int) -> dict:
    """The baseline: ``train.loop`` driven directly, one process, the recipe's threads and batches."""
    import torch

    from train.loop import AnswerLoss, collate, encode, length_grouped, make_optimizer, train_step
    from train.model import build

    cfg = prepared.cfg
    torch.set_num_threads(cfg.scaling.torch_threads)
    model, tokenizer, _ = build(cfg.model, cfg.lora, settings.llm_model, settings.llm_cache, cfg.optim.seed)
    optimizer, scheduler = make_optimizer(model, cfg.optim.learning_rate, cfg.optim.weight_decay,
                                          cfg.optim.warmup_steps, steps)
    loss_fn = AnswerLoss(model)
    encoded = (encode(e.messages, tokenizer, cfg.optim.max_seq_len) for e in prepared.bundle.train)
    batches = (collate(b, tokenizer.pad_token_id)
               for b in length_grouped(encoded, cfg.optim.batch_size, cfg.optim.length_group, cfg.optim.seed))
    rates, tokens, window_tokens = [], 0, 0
    started = window_start = time.perf_counter()
    for step in range(1, steps + 1):
        group = [next(batches) for _ in range(cfg.optim.grad_accum)]
        result = train_step(loss_fn, group, optimizer, scheduler, cfg.optim.max_grad_norm, torch.device("cpu"),
                            cfg.optim.precision)
        tokens += result["tokens"]
        window_tokens += result["tokens"]
        if step % log_every == 0:
            rates.append(window_tokens / (time.perf_counter() - window_start))
            window_start, window_tokens = time.perf_counter(), 0
    return {"tokens": tokens, "wall_s": time.perf_counter() - started, "window_rates": rates}


def ray_train(prepared, settings, steps: int, workers: int) -> dict:
    """The job's own path (TorchTrainer, Ray Data, MLflow) for ``steps`` steps, without evaluation."""
    from mlflow import MlflowClient

    from train.config import TrainConfig
    from train.job import Prepared, run

    cfg = TrainConfig.model_validate({
        **prepared.cfg.model_dump(mode="json"),
        "adapter_name": None, "run_name": f"bench-{workers}w",
        "optim": {**prepared.cfg.optim.model_dump(mode="json"), "max_steps": steps},
        "scaling": {**prepared.cfg.scaling.model_dump(mode="json"), "min_workers": workers, "max_workers": workers},
        "eval": {**prepared.cfg.eval.model_dump(mode="json"), "before": False, "after": False},
    })
    summary = run(Prepared(cfg, prepared.bundle, prepared.base_model), settings, progress=lambda m: None)
    history = MlflowClient(tracking_uri=settings.mlflow_uri).get_metric_history(summary.run_id, "tokens_per_s")
    return {"tokens": summary.tokens, "wall_s": summary.train_s,
            "window_rates": [m.value for m in sorted(history, key=lambda m: m.step)]}


def steady(rates: list[float]) -> float:
    """Median window rate, the first window (warm-up) left out when there are others."""
    kept = rates[1:] if len(rates) > 1 else rates
    return statistics.median(kept) if kept else float("nan")


def throughput(args, settings, prepared) -> dict:
    from cluster.local import init_private

    report = {"steps": args.steps, "recipe": str(args.config), "overrides": args.overrides}
    report["plain"] = plain_loop(prepared, settings, args.steps, prepared.cfg.log_every)
    init_private(num_cpus=settings.ray_num_cpus, object_store_mb=settings.ray_object_store_mb)
    report["ray_1_worker"] = ray_train(prepared, settings, args.steps, 1)
    report["ray_2_workers"] = ray_train(prepared, settings, args.steps, 2)
    base = steady(report["plain"]["window_rates"])
    rows = []
    for name in ("plain", "ray_1_worker", "ray_2_workers"):
        entry = report[name]
        entry["steady_tokens_per_s"] = round(steady(entry["window_rates"]), 1)
        entry["end_to_end_tokens_per_s"] = round(entry["tokens"] / entry["wall_s"], 1)
        entry["steady_ratio_to_plain"] = round(entry["steady_tokens_per_s"] / base, 3)
        rows.append([name, entry["tokens"], round(entry["wall_s"], 1), entry["steady_tokens_per_s"],
                     entry["end_to_end_tokens_per_s"], entry["steady_ratio_to_plain"]])
    report["table"] = markdown_table(["path", "tokens", "wall s", "steady tokens/s", "end-to-end tokens/s",
                                      "steady ratio to plain"], rows)
    return report


def usefulness(args, settings, prepared) -> dict:
    from cluster.local import init_private
    from train.job import run

    init_private(num_cpus=settings.ray_num_cpus, object_store_mb=settings.ray_object_store_mb)
    summary = run(prepared, settings, progress=lambda m: print(f"bench.train: {m}", flush=True))
    tasks = sorted({k.split(".")[1] for k in summary.after if k.startswith("tasks.")})
    rows = []
    for task in tasks:
        for metric in ("heading_accuracy", "chapter_accuracy", "accuracy", "citation_accuracy"):
            key = f"tasks.{task}.{metric}"
            if key in summary.after:
                rows.append([task, metric, round(summary.before.get(key, float("nan")), 3),
                             round(summary.after[key], 3)])
    rows.append(["all", "heldout_loss", round(summary.before.get("heldout_loss", float("nan")), 3),
                 round(summary.after.get("heldout_loss", float("nan")), 3)])
    return {"summary": summary.to_dict(), "recipe": str(args.config), "overrides": args.overrides,
            "table": markdown_table(["task", "metric", "base model", "adapter"], rows)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["throughput", "usefulness"])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per path (throughput)")
    parser.add_argument("--data-dir", type=Path, help="default: a temporary directory")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from predator.settings import get_settings
    from train.config import load_config
    from train.job import prepare

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-train-"))
    settings = get_settings(data_dir=data_dir)
    cfg = load_config(args.config, args.overrides)
    prepared = prepare(cfg, settings, progress=lambda m: print(f"bench.train: {m}", flush=True))
    report = (throughput if args.what == "throughput" else usefulness)(args, settings, prepared)
    print(report["table"])
    out = args.out or RESULTS / f"train-{args.what}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
