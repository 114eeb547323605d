"""Base model plus LoRA: what a training worker (or the benchmark's plain loop) trains."""
from __future__ import annotations

from pathlib import Path

from predator.llm import ModelSource, load_model, load_tokenizer, resolve_model
from train.config import LoraConfig, ModelConfig


def model_source(cfg: ModelConfig, default: str | None) -> ModelSource:
    """The configured model (or the platform default); raises ModelNotFound before anything loads."""
    return resolve_model(cfg.path or default)


def build_base(cfg: ModelConfig, source: ModelSource, cache_dir: Path, tokenizer):
    """The pretrained model, or a tiny random Llama with the same vocabulary when ``cfg.tiny`` is set."""
    if cfg.tiny is None:
        return load_model(source, cache_dir)
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True, **cfg.tiny.model_dump())
    return LlamaForCausalLM(config)


def with_lora(model, lora: LoraConfig):
    """Wrap the model with fresh LoRA weights; only they train."""
    from peft import LoraConfig as PeftLoraConfig, get_peft_model

    config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def build(cfg: ModelConfig, lora: LoraConfig, default: str | None, cache_dir: Path, seed: int):
    """(peft model in train mode, tokenizer, source) with LoRA initialised from ``seed``."""
    import torch

    source = model_source(cfg, default)
    tokenizer = load_tokenizer(source, cache_dir)
    torch.manual_seed(seed)
    model = with_lora(build_base(cfg, source, cache_dir, tokenizer), lora)
    return model.train(), tokenizer, source
