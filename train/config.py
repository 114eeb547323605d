"""Training recipe: a YAML file (``train/configs/*.yaml``) validated into one typed object.

Every block forbids unknown keys, so a typo fails before any worker starts, with the valid keys listed.
``--set a.b=value`` overrides any key by its dotted path; values are parsed as YAML scalars.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from train.datasets import DataConfig


class ConfigError(ValueError):
    """The recipe or an override is invalid; the message says which key and why."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TinyModel(Strict):
    """A randomly initialised Llama of the base model's vocabulary: the training loop's fast tests."""

    hidden_size: int = 32
    intermediate_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    # Wider than transformers' 0.02: with near-zero logits a few LoRA steps barely move a random model.
    initializer_range: float = 0.5


class ModelConfig(Strict):
    path: str | None = Field(None, description="HF model dir or .gguf file; unset: PREDATOR_LLM_MODEL or SmolLM2.")
    tiny: TinyModel | None = Field(None, description="Train a tiny random model instead (tests).")


class LoraConfig(Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


class OptimConfig(Strict):
    learning_rate: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(10, ge=0)
    max_steps: int = Field(200, ge=1, description="Optimizer steps in the whole run (not per worker).")
    batch_size: int = Field(8, ge=1, description="Examples per worker per micro-batch.")
    grad_accum: int = Field(2, ge=1, description="Micro-batches per optimizer step.")
    max_grad_norm: float = Field(1.0, gt=0)
    max_seq_len: int = Field(256, ge=16, description="Tokens per example; the prompt is cut from the left.")
    length_group: int = Field(16, ge=1, description="Micro-batches sorted together by length (less padding).")
    precision: Literal["bf16", "fp32"] = Field("bf16", description="Autocast dtype (CPU and GPU).")
    seed: int = 0


class ScalingSpec(Strict):
    min_workers: int = Field(1, ge=0, description="0 runs the loop in the driver process (tests).")
    max_workers: int = Field(1, ge=0)
    cpus_per_worker: float = Field(1.0, gt=0)
    torch_threads: int = Field(1, ge=1, description="Threads per worker: one per core is fastest here.")
    use_gpu: Literal["auto", "true", "false"] = Field("auto", description="auto: GPUs when the cluster has them.")

    @model_validator(mode="after")
    def _ordered(self):
        if self.max_workers < self.min_workers:
            raise ValueError(f"max_workers ({self.max_workers}) < min_workers ({self.min_workers})")
        return self


class CheckpointSpec(Strict):
    every_steps: int = Field(50, ge=1)
    num_to_keep: int = Field(2, ge=1)
    max_failures: int = Field(3, ge=0, description="Worker-group restarts from the latest checkpoint.")


class EvalSpec(Strict):
    before: bool = True
    after: bool = True
    max_examples: int = Field(200, ge=1, description="Held-out examples scored for accuracy, per task.")
    max_new_tokens: int = Field(24, ge=1)
    batch_size: int = Field(8, ge=1)


class TrainConfig(Strict):
    """One training run: what to train on, how, and where it is recorded."""

    run_name: str = "lora"
    adapter_name: str | None = Field("hs-lora", description="Registry name of the adapter; null: not registered.")
    storage_path: str | None = Field(None, description="Ray Train storage; default data_dir/train (shared FS on clusters).")
    log_every: int = Field(5, ge=1)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    lora: LoraConfig = LoraConfig()
    optim: OptimConfig = OptimConfig()
    scaling: ScalingSpec = ScalingSpec()
    checkpoint: CheckpointSpec = CheckpointSpec()
    eval: EvalSpec = EvalSpec()


def _valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _valid_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def valid_keys(model: type[BaseModel] = TrainConfig) -> list[str]:
    """Every dotted key a recipe or ``--set`` may name."""
    return _valid_keys(model)


def apply_override(raw: dict, assignment: str, model: type[BaseModel] = TrainConfig) -> None:
    """Set ``a.b=value`` in the raw recipe dict; an unknown key or a missing ``=`` is a ConfigError."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. optim.learning_rate=1e-4")
    known = valid_keys(model)
    if key not in known and not any(k.startswith(key + ".") for k in known):
        raise ConfigError(f"--set {key}: unknown key; valid keys: {', '.join(known)}")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: value {text!r} is not valid YAML: {err}") from err
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part} is not a block")
    node[parts[-1]] = value


def validate(raw: dict, model: type[BaseModel] = TrainConfig):
    """The typed config, or a ConfigError naming each bad key (with the valid keys for unknown ones)."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            where = ".".join(str(p) for p in error["loc"])
            if error["type"] == "extra_forbidden":
                problems.append(f"{where}: unknown key")
            else:
                problems.append(f"{where}: {error['msg']}")
        unknown = any(e["type"] == "extra_forbidden" for e in err.errors())
        hint = f"\nvalid keys: {', '.join(valid_keys(model))}" if unknown else ""
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems) + hint) from None


def load_raw(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(raw).__name__}")
    return raw


def load_config(path: str | Path | None, overrides: list[str] = (), model: type[BaseModel] = TrainConfig):
    """Read a recipe (or the defaults when ``path`` is None), apply ``--set`` overrides, validate."""
    raw = load_raw(path) if path else {}
    for assignment in overrides:
        apply_override(raw, assignment, model)
    return validate(raw, model)
