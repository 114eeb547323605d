"""A hyperparameter sweep over the LoRA training job: one Tune trial per sampled recipe.

Each trial is a driver function (holding almost no CPU) that runs ``train.job.run`` with the sampled
values: a TorchTrainer whose workers stream step metrics to Tune (``TuneReportCallback``) so the
scheduler can stop poor trials, then held-out evaluation, whose numbers the trial reports last
(``after.*``). Every trial is an MLflow child run of the sweep's parent run. At the end the sweep
prints and stores its table, and writes the best trial's recipe as a ready training config.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from predator.settings import Settings
from train.config import validate
from train.job import Prepared, TrainSummary, prepare, run
from train.tracking import Tracker
from tune.config import STEP_METRICS, Sweep, SweepConfig

STATE_FILE = "sweep.json"
TABLE_FILE = "trials.txt"
TRIALS_FILE = "trials.json"
BEST_FILE = "best_config.yaml"
# Tune's trial driver only waits on its TorchTrainer; its workers hold the CPUs (0 is refused).
DRIVER_RESOURCES = {"CPU": 0.01}
FINAL_STATUSES = ("completed", "stopped early", "error")


class SweepError(RuntimeError):
    """The sweep cannot start or resume as asked; the message says why and what to do."""


@dataclass
class Experiment:
    """Where a sweep lives: Tune's experiment folder and the MLflow parent run (set once started)."""

    path: Path
    resume: bool
    parent_run_id: str | None = None


@dataclass
class TrialRow:
    trial_id: str
    status: str
    params: dict[str, Any]
    metric: float | None
    steps: int | None
    run_id: str | None


@dataclass
class SweepResult:
    name: str
    path: Path
    parent_run_id: str
    metric: str
    mode: str
    rows: list[TrialRow]
    best: TrialRow | None
    best_config: Path | None
    wall_s: float
    table: str
    registered: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return all(row.status in FINAL_STATUSES for row in self.rows)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"], data["best_config"] = str(self.path), str(self.best_config) if self.best_config else None
        return data


def experiment_path(config: SweepConfig, settings: Settings) -> Path:
    storage = Path(config.storage_path) if config.storage_path else settings.data_dir / "tune"
    return storage.resolve() / config.name


def open_experiment(sweep: Sweep, settings: Settings, resume: bool) -> Experiment:
    """Check that the sweep can start (new name) or resume (same recipe); no cluster needed."""
    path = experiment_path(sweep.config, settings)
    state_file = path / STATE_FILE
    if not resume:
        if state_file.exists():
            raise SweepError(f"sweep {sweep.config.name!r} already exists at {path}: pass --resume to continue it, "
                             f"or --set name=<new name> to start another")
        return Experiment(path, resume=False)
    if not state_file.exists():
        raise SweepError(f"no sweep {sweep.config.name!r} to resume at {path}")
    state = json.loads(state_file.read_text())
    stored = state["config"]
    current = sweep.config.model_dump(mode="json")
    changed = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
    if changed:
        raise SweepError(f"the sweep recipe changed since {sweep.config.name!r} started ({', '.join(changed)}); "
                         f"resume it with the recipe it started with, or start a new sweep (--set name=...)")
    return Experiment(path, resume=True, parent_run_id=state["parent_run_id"])


def param_space(config: SweepConfig) -> dict:
    """Tune's search space: one flat entry per dotted training key."""
    from ray import tune

    space = {}
    for key, dist in config.search_space.items():
        if dist.loguniform:
            space[key] = tune.loguniform(*dist.loguniform)
        elif dist.uniform:
            space[key] = tune.uniform(*dist.uniform)
        elif dist.randint:
            space[key] = tune.randint(dist.randint[0], dist.randint[1] + 1)  # Tune's upper bound is excluded
        else:
            space[key] = tune.choice(dist.choice)
    return space


def trial_run_name(sweep_name: str, trial_id: str) -> str:
    """The MLflow run name of a trial: find a Tune trial in MLflow by its id."""
    return f"{sweep_name}-{trial_id}"


def run_trial(params: dict, *, sweep: Sweep, settings: Settings, shared: Prepared, parent_run_id: str,
              train_storage: str) -> None:
    """Tune's driver function for one trial: train the sampled recipe, stream its steps, report its evaluation."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = tune.get_context().get_trial_id()
    raw = sweep.trial_raw(params)
    # Trials are compared, not kept: no registration, no base-model evaluation (the same for every trial).
    raw.update(run_name=trial_run_name(sweep.config.name, trial_id), adapter_name=None, storage_path=train_storage)
    raw.setdefault("eval", {})["before"] = False
    cfg = validate(raw)

    def say(message: str) -> None:
        print(f"trial {trial_id}: {message}", flush=True)

    if cfg.data == shared.cfg.data and cfg.model == shared.cfg.model:
        prepared = Prepared(cfg, shared.bundle, shared.base_model)
    else:
        prepared = prepare(cfg, settings, progress=say)
    summary = run(prepared, settings, progress=say, parent_run_id=parent_run_id, callbacks=[TuneReportCallback()])
    # Tune checks that every result carries the scheduler's metric: repeat the last step's, which
    # rank 0 logged to the trial's MLflow run.
    last_step = Tracker(settings.mlflow_uri, summary.run_id).client.get_run(summary.run_id).data.metrics
    tune.report(final_report(summary, last_step))


def final_report(summary: TrainSummary, last_step: dict[str, float]) -> dict:
    """A finished trial's last Tune result: its last step metrics, the evaluation as ``after.*`` (as in
    MLflow), steps, and its MLflow run."""
    return {**{name: value for name, value in last_step.items() if name in STEP_METRICS},
            **{f"after.{name}": value for name, value in summary.after.items()}, "step": summary.steps,
            "completed": True, "mlflow_run_id": summary.run_id}


def run_sweep(sweep: Sweep, prepared: Prepared, settings: Settings, experiment: Experiment,
              progress: Callable[[str], None] = print) -> SweepResult:
    """Start or resume the sweep on the connected cluster; returns its table and best trial."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from predator.events import publish_event
    from tune.orphans import OrphanReaper, remove_orphans

    config = sweep.config
    started = time.perf_counter()
    parent = _open_parent_run(sweep, settings, experiment)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, sweep=sweep, settings=settings, shared=prepared, parent_run_id=parent.run_id,
                             train_storage=str(experiment.path / "train")),
        DRIVER_RESOURCES)
    publish_event("training", "sweep_started", {"sweep": config.name, "resume": experiment.resume,
                                                "parent_run_id": parent.run_id, "path": str(experiment.path)},
                  source="tune")
    if experiment.resume:
        progress(f"resuming sweep {config.name} from {experiment.path}")
        tuner = tune.Tuner.restore(str(experiment.path), trainable=trainable, resume_unfinished=True,
                                   restart_errored=True)
    else:
        compared = sweep.scheduler_metric()
        scheduler = (ASHAScheduler(time_attr="step", metric=compared.name, mode=compared.mode, max_t=sweep.max_t(),
                                   grace_period=config.scheduler.grace_period,
                                   reduction_factor=config.scheduler.reduction_factor,
                                   # A trial at max_t still has its evaluation to run: let it end by itself.
                                   stop_last_trials=False)
                     if config.scheduler.type == "asha" else FIFOScheduler())
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(config),
            # Tune ignores TuneConfig.max_concurrent_trials when given a BasicVariantGenerator: limit it here.
            tune_config=tune.TuneConfig(num_samples=config.num_samples, scheduler=scheduler,
                                        search_alg=BasicVariantGenerator(random_state=config.search_alg.seed,
                                                                         max_concurrent=config.max_concurrent_trials)),
            run_config=tune.RunConfig(name=config.name, storage_path=str(experiment.path.parent),
                                      callbacks=[OrphanReaper()]))
    tuner.fit()
    remove_orphans()  # the groups of trials stopped in the sweep's last second, or by Ctrl-C
    rows = trial_rows(experiment.path, config.metric.name)
    result = _finish(sweep, experiment, parent, rows, time.perf_counter() - started)
    publish_event("training", "sweep_completed" if result.finished else "sweep_interrupted",
                  {"sweep": config.name, "best_trial": result.best.trial_id if result.best else None,
                   config.metric.name: result.best.metric if result.best else None, "wall_s": round(result.wall_s, 1)},
                  source="tune")
    return result


def _open_parent_run(sweep: Sweep, settings: Settings, experiment: Experiment) -> Tracker:
    if experiment.parent_run_id:
        tracker = Tracker(settings.mlflow_uri, experiment.parent_run_id)
        tracker.client.update_run(experiment.parent_run_id, status="RUNNING")
        return tracker
    tracker = Tracker.start(settings.mlflow_uri, settings.mlflow_experiment, settings.mlflow_artifact_dir,
                            f"sweep-{sweep.config.name}",
                            tags={"tune.sweep": sweep.config.name, "tune.experiment_path": str(experiment.path)})
    tracker.log_params(sweep.config.model_dump(mode="json", exclude_none=True))
    experiment.path.mkdir(parents=True, exist_ok=True)
    (experiment.path / STATE_FILE).write_text(json.dumps(
        {"parent_run_id": tracker.run_id, "config": sweep.config.model_dump(mode="json")}, indent=2))
    experiment.parent_run_id = tracker.run_id
    return tracker


def trial_status(tune_status: str, last_result: dict) -> str:
    """Completed (ran and was evaluated), stopped early (by the scheduler), error, or not finished yet."""
    if tune_status == "ERROR":
        return "error"
    if tune_status == "TERMINATED":
        return "completed" if last_result.get("completed") else "stopped early"
    return "running" if tune_status == "RUNNING" else "pending"


def trial_rows(path: Path, metric: str) -> list[TrialRow]:
    """One row per trial of the experiment at ``path``, in trial order."""
    from ray.tune import ExperimentAnalysis

    rows = []
    for trial in sorted(ExperimentAnalysis(str(path)).trials, key=lambda t: t.trial_id):
        last = trial.last_result or {}
        value = last.get(metric)
        rows.append(TrialRow(
            trial_id=trial.trial_id, status=trial_status(trial.status, last), params=dict(trial.config),
            metric=float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None,
            steps=int(last["step"]) if "step" in last else None, run_id=last.get("mlflow_run_id")))
    return rows


def best_row(rows: list[TrialRow], mode: str) -> TrialRow | None:
    """The best completed trial (stopped ones were cut before the end and are not comparable)."""
    done = [row for row in rows if row.status == "completed" and row.metric is not None]
    if not done:
        return None
    return (min if mode == "min" else max)(done, key=lambda row: row.metric)


def format_table(rows: list[TrialRow], metric: str, best: TrialRow | None) -> str:
    """The sweep's table: trial, status, searched values, steps, metric; the best trial marked ``*``."""
    keys = list(dict.fromkeys(k for row in rows for k in row.params))
    header = ["trial", "status", *keys, "steps", metric]
    lines = [[("*" if row is best else " ") + row.trial_id, row.status, *(_cell(row.params.get(k)) for k in keys),
              _cell(row.steps), _cell(row.metric)] for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines)]
    text = [" | ".join(str(cell).ljust(width) for cell, width in zip(line, widths)) for line in [header, *lines]]
    text.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(text)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def best_recipe(sweep: Sweep, best: TrialRow) -> dict:
    """The best trial's training recipe: the base recipe with its sampled values, named for the sweep."""
    raw = sweep.trial_raw({k: best.params[k] for k in sweep.config.search_space})
    raw["run_name"] = f"{sweep.config.name}-best"
    return raw


def _finish(sweep: Sweep, experiment: Experiment, parent: Tracker, rows: list[TrialRow], wall_s: float) -> SweepResult:
    config = sweep.config
    best = best_row(rows, config.metric.mode)
    table = format_table(rows, config.metric.name, best)
    path = experiment.path
    (path / TABLE_FILE).write_text(table + "\n")
    (path / TRIALS_FILE).write_text(json.dumps([asdict(row) for row in rows], indent=2, default=str))
    best_config = None
    if best is not None:
        best_config = path / BEST_FILE
        header = (f"# Best trial {best.trial_id} of sweep {config.name}: {config.metric.name} = {best.metric:.6g} "
                  f"({config.metric.mode}).\n# Train it: python -m train --config {best_config}\n")
        best_config.write_text(header + yaml.safe_dump(best_recipe(sweep, best), sort_keys=False))
        parent.client.log_artifact(parent.run_id, str(best_config))
        parent.log_metrics({f"best.{config.metric.name}": best.metric}, step=0)
    for name in (TABLE_FILE, TRIALS_FILE):
        parent.client.log_artifact(parent.run_id, str(path / name))
    counts = {status: sum(row.status == status for row in rows) for status in FINAL_STATUSES}
    parent.log_metrics({f"trials_{status.replace(' ', '_')}": n for status, n in counts.items()}, step=0)
    result = SweepResult(config.name, path, parent.run_id, config.metric.name, config.metric.mode, rows, best,
                         best_config, wall_s, table)
    _label_child_runs(parent, config.name, rows)
    parent.set_tags({"tune.best_trial": best.trial_id if best else "-"})
    parent.finish("FINISHED" if result.finished else "KILLED")
    return result


def _label_child_runs(parent: Tracker, sweep_name: str, rows: list[TrialRow]) -> None:
    """Tag each trial's MLflow run with its trial id and status; close the runs of stopped or interrupted trials
    as KILLED (a trial stopped by the scheduler dies mid-run: its run would stay RUNNING, or read FAILED).
    """
    experiment_id = parent.client.get_run(parent.run_id).info.experiment_id
    children = parent.client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent.run_id}'",
                                         max_results=5000)
    by_name = {trial_run_name(sweep_name, row.trial_id): row for row in rows}
    for child in children:
        row = by_name.get(child.data.tags.get("mlflow.runName", ""))
        if row is None:
            continue
        state = child.info.status
        # A stopped or interrupted attempt dies inside train.job.run, which may have marked its run FAILED.
        if state == "FINISHED" or row.status == "error":
            status = row.status
        elif row.status == "stopped early":
            status = "stopped early"
        else:
            status = "interrupted"
        parent.client.set_tag(child.info.run_id, "tune.trial_id", row.trial_id)
        parent.client.set_tag(child.info.run_id, "tune.status", status)
        if status in ("stopped early", "interrupted") and state != "KILLED":
            parent.client.set_terminated(child.info.run_id, status="KILLED")


def register_best(sweep: Sweep, result: SweepResult, shared: Prepared, settings: Settings,
                  progress: Callable[[str], None] = print) -> TrainSummary:
    """Train the best trial's recipe in full (its own evaluation, as configured) and register its adapter."""
    if result.best is None:
        raise SweepError(f"sweep {result.name} has no completed trial with {result.metric}: nothing to register")
    cfg = validate(best_recipe(sweep, result.best))
    prepared = (Prepared(cfg, shared.bundle, shared.base_model)
                if cfg.data == shared.cfg.data and cfg.model == shared.cfg.model else prepare(cfg, settings, progress))
    progress(f"training the best configuration (trial {result.best.trial_id}) to register it as {cfg.adapter_name}")
    summary = run(prepared, settings, progress=progress, parent_run_id=result.parent_run_id)
    result.registered = {"adapter": summary.adapter, "version": summary.adapter_version, "run_id": summary.run_id,
                         "after": summary.after}
    return summary
