"""The training job's driver: data, MLflow run, evaluation before and after, TorchTrainer, registration.

Everything that can be wrong with the input (config, model path, data) fails in :func:`prepare`, before
a cluster is touched. :func:`run` then trains and returns a summary.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from predator.settings import Settings
from train.config import TrainConfig
from train.datasets import DatasetBundle, build as build_datasets
from train.loop import ADAPTER_DIR
from train.model import model_source


@dataclass
class Prepared:
    cfg: TrainConfig
    bundle: DatasetBundle
    base_model: str


@dataclass
class TrainSummary:
    run_id: str
    steps: int
    tokens: int
    restarts: int
    resumed_from: int
    train_s: float
    checkpoint: str
    adapter: str | None
    adapter_version: int | None
    dataset_hash: str
    before: dict
    after: dict

    def to_dict(self) -> dict:
        return asdict(self)


def prepare(cfg: TrainConfig, settings: Settings, progress: Callable[[str], None] = print) -> Prepared:
    """Resolve the model and build the datasets; raises ModelNotFound / EmptyDataset with the reason."""
    source = model_source(cfg.model, settings.llm_model)
    base_model = f"tiny-random-llama ({source.name} vocabulary)" if cfg.model.tiny else source.name
    bundle = build_datasets(cfg.data, settings, progress=progress)
    progress(f"data: {len(bundle.train)} train / {len(bundle.heldout)} held-out examples, hash {bundle.content_hash[:12]}")
    return Prepared(cfg, bundle, base_model)


def heldout_sample(bundle: DatasetBundle, per_task: int) -> list:
    """At most ``per_task`` held-out examples of each task, in a stable order."""
    kept, seen = [], {}
    for example in bundle.heldout:
        if seen.get(example.task, 0) < per_task:
            kept.append(example)
            seen[example.task] = seen.get(example.task, 0) + 1
    return kept


def evaluate_adapter(prepared: Prepared, settings: Settings, adapter_dir: Path | None) -> dict:
    """Held-out loss and task accuracy of the base model, or of the base with an adapter applied."""
    import torch

    from train.evaluate import evaluate
    from train.loop import encode, heldout_loss
    from train.model import build_base
    from predator.llm import load_tokenizer

    cfg = prepared.cfg
    torch.set_num_threads(max(1, cfg.scaling.torch_threads))
    source = model_source(cfg.model, settings.llm_model)
    tokenizer = load_tokenizer(source, settings.llm_cache)
    torch.manual_seed(cfg.optim.seed)
    model = build_base(cfg.model, source, settings.llm_cache, tokenizer)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    examples = heldout_sample(prepared.bundle, cfg.eval.max_examples)
    encoded = [encode(e.messages, tokenizer, cfg.optim.max_seq_len) for e in examples]
    metrics = {"heldout_loss": heldout_loss(model, encoded, tokenizer.pad_token_id, cfg.eval.batch_size,
                                            torch.device("cpu"))}
    scores = evaluate(model, tokenizer, examples, max_new_tokens=cfg.eval.max_new_tokens,
                      batch_size=cfg.eval.batch_size)
    metrics.update(_numeric(scores))
    return metrics


def _numeric(tree: dict, prefix: str = "") -> dict[str, float]:
    """Flatten an evaluation report to ``task.metric`` numbers (MLflow metrics are flat floats)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_numeric(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix + key] = float(value)
    return flat


def trainer_for(prepared: Prepared, settings: Settings, worker_config: dict, run_name: str,
                callbacks: list | None = None):
    """The TorchTrainer of a prepared run: elastic workers, checkpoints, failure policy, data as Ray Data."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from train.worker import train_worker

    cfg = prepared.cfg
    scaling = cfg.scaling
    use_gpu = scaling.use_gpu == "true" or (scaling.use_gpu == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
    workers = scaling.min_workers if scaling.min_workers == scaling.max_workers else (scaling.min_workers,
                                                                                      scaling.max_workers)
    resources = {"CPU": scaling.cpus_per_worker, **({"GPU": 1} if use_gpu else {})}
    storage = Path(cfg.storage_path or settings.data_dir / "train").resolve()
    rows = [{"id": e.id, "messages": e.messages} for e in prepared.bundle.train]
    return TorchTrainer(
        train_worker,
        train_loop_config=worker_config,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker=resources if workers != 0 else None),
        run_config=RunConfig(
            name=run_name, storage_path=str(storage),
            failure_config=FailureConfig(max_failures=cfg.checkpoint.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoint.num_to_keep),
            callbacks=callbacks or None),
        datasets={"train": ray.data.from_items(rows)},
    )


def run(prepared: Prepared, settings: Settings, progress: Callable[[str], None] = print,
        parent_run_id: str | None = None, callbacks: list | None = None) -> TrainSummary:
    """Train, evaluate before/after, log everything to MLflow and register the adapter; returns a summary."""
    from predator.events import publish_event
    from train.tracking import Tracker

    cfg = prepared.cfg
    tracker = Tracker.start(settings.mlflow_uri, settings.mlflow_experiment, settings.mlflow_artifact_dir,
                            cfg.run_name, tags={"base_model": prepared.base_model,
                                                "dataset_hash": prepared.bundle.content_hash},
                            parent_run_id=parent_run_id)
    run_name = f"{cfg.run_name}-{tracker.run_id[:8]}"
    tracker.log_params(cfg.model_dump(mode="json"))
    tracker.log_params({"dataset": {"hash": prepared.bundle.content_hash, "train_examples": len(prepared.bundle.train),
                                    "heldout_examples": len(prepared.bundle.heldout)}})
    tracker.log_dict({"counts": prepared.bundle.counts}, "dataset_counts.json")
    publish_event("training", "started", {"run": run_name, "run_id": tracker.run_id}, source="train")
    try:
        summary = _train_and_register(prepared, settings, tracker, run_name, progress, callbacks)
    except BaseException as err:
        tracker.finish("FAILED")
        publish_event("training", "failed", {"run": run_name, "error": f"{type(err).__name__}: {err}"[:500]},
                      source="train")
        raise
    tracker.finish("FINISHED")
    publish_event("training", "completed", {"run": run_name, **summary.to_dict()}, source="train")
    return summary


def _train_and_register(prepared: Prepared, settings: Settings, tracker, run_name: str, progress, callbacks):
    from predator import adapters

    cfg = prepared.cfg
    before = {}
    if cfg.eval.before:
        progress("evaluating the base model on held-out examples")
        before = evaluate_adapter(prepared, settings, None)
        tracker.log_metrics({f"before.{k}": v for k, v in before.items()}, step=0)
    worker_config = {"recipe": cfg.model_dump(mode="json"), "run_id": tracker.run_id, "run_name": run_name,
                     "tracking_uri": settings.mlflow_uri, "default_model": settings.llm_model,
                     "cache_dir": str(Path(settings.llm_cache).resolve())}
    trainer = trainer_for(prepared, settings, worker_config, run_name, callbacks)
    progress(f"training {run_name}: {cfg.optim.max_steps} steps")
    started = time.perf_counter()
    result = trainer.fit()
    train_s = time.perf_counter() - started
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    final = result.metrics or {}
    tracker.log_metrics({"train_s": train_s}, step=int(final.get("step", 0)))
    after = {}
    # as_directory() fetches the checkpoint when the storage is remote (S3, GCS), or uses it in place.
    with result.checkpoint.as_directory() as checkpoint_dir:
        adapter_dir = Path(checkpoint_dir) / ADAPTER_DIR
        if cfg.eval.after:
            progress("evaluating the trained adapter on held-out examples")
            after = evaluate_adapter(prepared, settings, adapter_dir)
            tracker.log_metrics({f"after.{k}": v for k, v in after.items()}, step=int(final.get("step", 0)))
        tracker.log_artifacts(adapter_dir, adapters.ADAPTER_ARTIFACT)
    version = None
    if cfg.adapter_name:
        registered = adapters.register(settings.mlflow_uri, cfg.adapter_name, tracker.run_id, tracker.artifact_uri,
                                       tags={"base_model": prepared.base_model,
                                             "dataset_hash": prepared.bundle.content_hash,
                                             "run_name": run_name})
        version = registered.version
        progress(f"registered adapter {cfg.adapter_name} version {version}")
    return TrainSummary(run_id=tracker.run_id, steps=int(final.get("step", 0)), tokens=int(final.get("tokens", 0)),
                        restarts=int(final.get("restarts", 0)), resumed_from=int(final.get("resumed_from", -1)),
                        train_s=round(train_s, 1),
                        checkpoint=result.checkpoint.path, adapter=cfg.adapter_name, adapter_version=version,
                        dataset_hash=prepared.bundle.content_hash, before=before, after=after)
