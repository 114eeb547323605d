"""Sweep recipe: a YAML file (``tune/configs/*.yaml``) validated into one typed object, then checked
against the training recipe it sweeps over.

Everything that can be wrong with a sweep (unknown keys, empty or inconsistent search space, a metric
no trial reports, a scheduler that needs a metric it does not get) fails in :func:`resolve`, before a
cluster is touched.
"""
from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from train.config import ConfigError, TrainConfig, apply_override, load_raw, valid_keys, validate

# What every trial reports while it trains (every ``log_every`` steps; see train/worker.py).
STEP_METRICS = ("loss", "lr", "grad_norm", "tokens_per_s", "epoch", "step", "tokens", "restarts", "resumed_from")
# What a trial reports once, after ``eval.after`` scored its adapter (named as in MLflow: ``after.*``).
FINAL_PREFIX = "after."
FINAL_OVERALL = ("heldout_loss", "accuracy", "n")
# Per-task rates of train/evaluate.py, by data source: ``after.tasks.<source>.<rate>``.
FINAL_TASK_RATES = {
    "hs_closed": ("n", "accuracy", "heading_accuracy", "chapter_accuracy", "no_code_rate"),
    "hs_rag": ("n", "accuracy", "heading_accuracy", "chapter_accuracy", "no_code_rate", "first_candidate_rate",
               "in_candidates_rate"),
    "declarations": ("n", "accuracy", "citation_accuracy"),
    "feedback": ("n", "accuracy"),
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Distribution(Strict):
    """One searched key: exactly one of the four forms, e.g. ``{loguniform: [1e-4, 1e-2]}``."""

    loguniform: tuple[float, float] | None = Field(None, description="[low, high], low > 0; floats")
    uniform: tuple[float, float] | None = Field(None, description="[low, high]; floats")
    randint: tuple[int, int] | None = Field(None, description="[low, high], both included; integers")
    choice: list[Any] | None = Field(None, min_length=1, description="values drawn with equal probability")

    @model_validator(mode="after")
    def _one_form(self):
        given = [name for name in ("loguniform", "uniform", "randint", "choice") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of loguniform, uniform, randint, choice (got {given or 'none'})")
        low_high = self.loguniform or self.uniform or self.randint
        if low_high is not None:
            low, high = low_high
            if self.randint is not None and low > high:
                raise ValueError(f"randint low {low} > high {high}")
            if self.randint is None and not low < high:
                raise ValueError(f"low {low} must be below high {high}")
            if self.loguniform is not None and low <= 0:
                raise ValueError(f"loguniform needs low > 0 (got {low})")
        if self.choice is not None and len({json.dumps(v, sort_keys=True) for v in self.choice}) < len(self.choice):
            raise ValueError(f"choice lists a value twice: {self.choice}")
        return self

    @property
    def form(self) -> str:
        return next(n for n in ("loguniform", "uniform", "randint", "choice") if getattr(self, n) is not None)

    def probes(self) -> list[Any]:
        """Values a trial can get that together show whether the training recipe accepts the range."""
        if self.choice is not None:
            return list(self.choice)
        if self.randint is not None:
            return sorted({self.randint[0], self.randint[1]})
        low, high = self.loguniform or self.uniform
        inside = math.sqrt(low * high) if self.loguniform else (low + high) / 2
        # A fractional value inside the range catches a float distribution over an integer key.
        return [low, inside if inside != int(inside) else inside + (high - low) / 7, high]


class MetricSpec(Strict):
    name: str = Field(description="a step metric (loss, ...) or a final one (after.heldout_loss, ...)")
    mode: Literal["min", "max"]


class SchedulerSpec(Strict):
    type: Literal["asha", "fifo"] = Field("asha", description="asha: stop poor trials early; fifo: run all")
    metric: MetricSpec | None = Field(None, description="what asha compares at each rung; default: the sweep metric")
    max_t: int | None = Field(None, ge=1, description="asha: steps of a full trial; default optim.max_steps")
    grace_period: int = Field(1, ge=1, description="asha: steps before a trial can be stopped (first rung)")
    reduction_factor: float = Field(2.0, gt=1, description="asha: 1/reduction_factor of trials go on at each rung")


class SearchAlgSpec(Strict):
    # Only Tune's random search is offered: optuna (the other candidate) is not installed here.
    type: Literal["random"] = "random"
    seed: int | None = Field(0, description="seeds the draws; null: different trials each run")


class SweepConfig(Strict):
    """One sweep: which training recipe, what to search, how to pick and stop trials, where to record."""

    name: str = Field("sweep", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Tune experiment name")
    train_config: str = Field(description="training recipe (YAML) every trial starts from")
    train_overrides: dict[str, Any] = Field({}, description="dotted training keys fixed for every trial")
    search_space: dict[str, Distribution] = Field(description="dotted training keys -> distribution")
    metric: MetricSpec
    search_alg: SearchAlgSpec = SearchAlgSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    num_samples: int = Field(4, ge=1, description="trials drawn from the search space")
    max_concurrent_trials: int = Field(1, ge=1, description="1 on a 2-CPU machine: each trial trains on 1 CPU")
    storage_path: str | None = Field(None, description="Tune experiments; default data_dir/tune")


@dataclass
class Sweep:
    """A checked sweep: its config, the training recipe (raw and typed) every trial starts from."""

    config: SweepConfig
    base_raw: dict
    base: TrainConfig

    def trial_raw(self, params: dict[str, Any]) -> dict:
        """The base recipe with one trial's sampled values set (a fresh dict)."""
        raw = json.loads(json.dumps(self.base_raw))
        for key, value in params.items():
            set_dotted(raw, key, value)
        return raw

    def scheduler_metric(self) -> MetricSpec:
        return self.config.scheduler.metric or self.config.metric

    def max_t(self) -> int:
        return self.config.scheduler.max_t or self.base.optim.max_steps


def set_dotted(raw: dict, key: str, value: Any) -> None:
    """Set a training key by its dotted path (checked by train.config, values given as YAML/JSON)."""
    apply_override(raw, f"{key}={json.dumps(value)}")


def apply_set(raw: dict, assignment: str) -> None:
    """``--set``: a sweep key (``num_samples=8``, ``scheduler.max_t=40``) or a training key (``optim.max_steps=30``)."""
    key = assignment.partition("=")[0].strip()
    if key.split(".")[0] in SweepConfig.model_fields:
        apply_override(raw, assignment, SweepConfig)
        return
    if key not in valid_keys():
        raise ConfigError(f"--set {key}: neither a sweep key ({', '.join(valid_keys(SweepConfig))}) nor a training "
                          f"key{_close(key)}")
    value = yaml.safe_load(assignment.partition("=")[2]) if assignment.partition("=")[2].strip() else None
    raw.setdefault("train_overrides", {})[key] = value


def load(path: str | Path, overrides: list[str] = ()) -> Sweep:
    """Read a sweep recipe, apply ``--set`` overrides, validate it and the training recipe it names."""
    raw = load_raw(path)
    for assignment in overrides:
        apply_set(raw, assignment)
    return resolve(validate(raw, SweepConfig))


def _close(key: str) -> str:
    near = difflib.get_close_matches(key, valid_keys(), n=3)
    return f" (did you mean {', '.join(near)}?)" if near else "; list them with `python -m train --keys`"


def final_metrics(base: TrainConfig) -> list[str]:
    """Metrics a trial reports once at its end (needs ``eval.after``)."""
    names = [FINAL_PREFIX + n for n in FINAL_OVERALL]
    for source in dict.fromkeys(base.data.sources):
        names += [f"{FINAL_PREFIX}tasks.{source}.{rate}" for rate in FINAL_TASK_RATES[source]]
    return names


def resolve(config: SweepConfig) -> Sweep:
    """Check the sweep against its training recipe; raises ConfigError naming the key and the reason."""
    base_raw = load_raw(config.train_config)
    for key, value in config.train_overrides.items():
        if key not in valid_keys():
            raise ConfigError(f"train_overrides.{key}: unknown training key{_close(key)}")
        set_dotted(base_raw, key, value)
    base = validate(base_raw)
    sweep = Sweep(config, base_raw, base)
    _check_search_space(sweep)
    _check_metrics(sweep)
    return sweep


def _check_search_space(sweep: Sweep) -> None:
    config = sweep.config
    if not config.search_space:
        raise ConfigError("search_space is empty: name at least one training key to search, "
                          "e.g. optim.learning_rate: {loguniform: [1e-4, 1e-2]}")
    for key, distribution in config.search_space.items():
        if key not in valid_keys():
            raise ConfigError(f"search_space.{key}: unknown training key{_close(key)}")
        if key in config.train_overrides:
            raise ConfigError(f"search_space.{key}: also fixed in train_overrides; a key is searched or fixed")
        for value in distribution.probes():
            raw = json.loads(json.dumps(sweep.base_raw))
            set_dotted(raw, key, value)
            try:
                validate(raw)
            except ConfigError as err:
                raise ConfigError(f"search_space.{key}: {distribution.form} can give {value!r}, which the training "
                                  f"recipe rejects: {str(err).removeprefix('invalid config:').strip()}") from None


def _check_metrics(sweep: Sweep) -> None:
    config, base = sweep.config, sweep.base
    finals = final_metrics(base)
    known = list(STEP_METRICS) + finals
    for where, metric in (("metric", config.metric), ("scheduler.metric", config.scheduler.metric)):
        if metric is None:
            continue
        if metric.name not in known:
            near = difflib.get_close_matches(metric.name, known, n=3)
            raise ConfigError(f"{where}.name: no trial reports {metric.name!r}"
                              f"{f' (did you mean {near}?)' if near else ''}; during training: "
                              f"{', '.join(STEP_METRICS)}; at the end: {', '.join(finals)}")
        if metric.name in finals and not _final_eval_on(sweep):
            raise ConfigError(f"{where}.name: {metric.name} is measured by eval.after, which the training recipe "
                              f"turns off; set eval.after: true or pick a step metric ({', '.join(STEP_METRICS)})")
    if config.scheduler.type != "asha":
        return
    compared = sweep.scheduler_metric()
    if compared.name not in STEP_METRICS:
        raise ConfigError(f"scheduler asha compares trials while they train, but {compared.name} is only reported "
                          f"when a trial ends; set scheduler.metric to one reported every log_every steps "
                          f"(e.g. {{name: loss, mode: min}}) or use scheduler.type: fifo")
    shortest = _shortest_run(sweep)
    if sweep.max_t() > shortest:
        raise ConfigError(f"scheduler.max_t ({sweep.max_t()}) is past the end of the shortest trial "
                          f"(optim.max_steps {shortest}); trials would never reach it")
    if config.scheduler.grace_period >= sweep.max_t():
        raise ConfigError(f"scheduler.grace_period ({config.scheduler.grace_period}) must be below max_t "
                          f"({sweep.max_t()}): asha could not stop any trial")


def _final_eval_on(sweep: Sweep) -> bool:
    searched = sweep.config.search_space.get("eval.after")
    return sweep.base.eval.after and searched is None


def _shortest_run(sweep: Sweep) -> int:
    searched = sweep.config.search_space.get("optim.max_steps")
    return min(searched.probes()) if searched else sweep.base.optim.max_steps
