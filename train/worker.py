"""The Ray Train worker function: the plain loop of ``train.loop`` fed by a Ray Data shard.

Every worker calls ``ray.train.report`` at the same steps; rank 0 attaches the checkpoint, logs to MLflow
and publishes progress to the event hub. A restarted worker group resumes from the latest checkpoint:
optimiser, scheduler, step and the position in the data all continue.
"""
from __future__ import annotations

import tempfile
import time
from itertools import islice
from pathlib import Path

import torch

from train.config import TrainConfig
from train.loop import (AnswerLoss, TrainState, collate, encode, length_grouped, load_checkpoint, make_optimizer,
                        save_checkpoint, train_step)
from train.model import build


def _micro_batches(shard, cfg: TrainConfig, tokenizer, epoch: int):
    rows = shard.iter_rows()
    encoded = (encode(row["messages"], tokenizer, cfg.optim.max_seq_len) for row in rows)
    for batch in length_grouped(encoded, cfg.optim.batch_size, cfg.optim.length_group, cfg.optim.seed + epoch):
        yield collate(batch, tokenizer.pad_token_id)


def _steps(shard, cfg: TrainConfig, tokenizer, state: TrainState):
    """Groups of ``grad_accum`` micro-batches, epoch after epoch, from where ``state`` says the run was."""
    accum = cfg.optim.grad_accum
    while True:
        micro = _micro_batches(shard, cfg, tokenizer, state.epoch)
        skipped = sum(1 for _ in islice(micro, state.micro_in_epoch))
        yielded = False
        while True:
            group = list(islice(micro, accum))
            if len(group) < accum:  # a short tail would desynchronise the workers' gradient all-reduce
                break
            yielded = True
            yield group
        if not yielded and skipped == 0:
            raise RuntimeError("this worker's data shard holds fewer micro-batches than one optimiser step")
        state.epoch += 1
        state.micro_in_epoch = 0


class _Reporter:
    """Rank 0's MLflow run and event stream; silent on other ranks."""

    def __init__(self, config: dict, rank: int):
        self.rank = rank
        self.tracker = None
        if rank == 0 and config.get("run_id"):
            from train.tracking import Tracker

            self.tracker = Tracker(config["tracking_uri"], config["run_id"])
        self.run_name = config.get("run_name", "")

    def progress(self, metrics: dict, step: int, steps: int, tokens: int) -> None:
        """Rank 0: MLflow metrics, Prometheus counters (``steps``/``tokens`` since the last call), an event."""
        if self.rank != 0:
            return
        if self.tracker:
            self.tracker.log_metrics(metrics, step)
        from predator.events import publish_event
        from serve_apps.metrics import count_training

        count_training(self.run_name, steps, tokens)
        publish_event("training", "progress", {"run": self.run_name, "step": step, **metrics}, source="train")


def train_worker(config: dict) -> None:
    """Entry point given to ``TorchTrainer``; ``config`` carries the recipe and where to record."""
    import ray.train
    import ray.train.torch

    cfg = TrainConfig.model_validate(config["recipe"])
    torch.set_num_threads(cfg.scaling.torch_threads)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()

    model, tokenizer, _ = build(cfg.model, cfg.lora, config.get("default_model"), Path(config["cache_dir"]),
                                cfg.optim.seed)
    model.to(device)
    optimizer, scheduler = make_optimizer(model, cfg.optim.learning_rate, cfg.optim.weight_decay,
                                          cfg.optim.warmup_steps, cfg.optim.max_steps)
    state = TrainState()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            state = load_checkpoint(Path(directory), model, optimizer, scheduler)
        state.resumed_from.append(state.step)
    loss_fn = AnswerLoss(model)
    if world > 1:
        loss_fn = ray.train.torch.prepare_model(loss_fn, move_to_device=False)

    reporter = _Reporter(config, rank)
    shard = ray.train.get_dataset_shard("train")
    window_start, window_tokens, window_steps = time.perf_counter(), 0, 0
    for group in _steps(shard, cfg, tokenizer, state):
        if state.step >= cfg.optim.max_steps:
            break
        result = train_step(loss_fn, group, optimizer, scheduler, cfg.optim.max_grad_norm, device,
                            cfg.optim.precision)
        state.step += 1
        state.micro_in_epoch += len(group)
        state.tokens += result["tokens"] * world
        window_tokens += result["tokens"] * world
        window_steps += 1
        due_checkpoint = state.step % cfg.checkpoint.every_steps == 0 or state.step == cfg.optim.max_steps
        if state.step % cfg.log_every == 0 or due_checkpoint:
            elapsed = time.perf_counter() - window_start
            metrics = {"loss": result["loss"], "lr": result["lr"], "grad_norm": result["grad_norm"],
                       "tokens_per_s": window_tokens / elapsed if elapsed > 0 else 0.0, "epoch": state.epoch}
            reporter.progress(metrics, state.step, window_steps, window_tokens)
            _report(metrics, state, model, optimizer, scheduler, rank, due_checkpoint)
            window_start, window_tokens, window_steps = time.perf_counter(), 0, 0


def _report(metrics: dict, state: TrainState, model, optimizer, scheduler, rank: int, with_checkpoint: bool) -> None:
    import ray.train

    reported = {**metrics, "step": state.step, "tokens": state.tokens,
                "resumed_from": state.resumed_from[-1] if state.resumed_from else -1,
                "restarts": len(state.resumed_from)}
    if not (with_checkpoint and rank == 0):
        ray.train.report(reported)
        return
    with tempfile.TemporaryDirectory(prefix="predator-ckpt-") as directory:
        save_checkpoint(Path(directory), _unwrap(model), optimizer, scheduler, state)
        ray.train.report(reported, checkpoint=ray.train.Checkpoint.from_directory(directory))


def _unwrap(model):
    return getattr(model, "module", model)
