"""What the copilot serves: one base model and LoRA adapters by name.

An adapter name is either a folder under ``llm_adapter_dir`` (default ``data_dir/adapters/<name>``,
a peft directory) or a model in the MLflow registry (``name`` = newest version, ``name/3`` = version 3);
the folder wins when both exist. Arbitrary paths are not accepted from clients. OpenAI-style model ids
are ``<base>`` or ``<base>:<adapter>``.
"""
from __future__ import annotations

from pathlib import Path

from predator.adapters import AdapterNotFound, is_adapter_dir, list_adapters, resolve, valid_name


class UnknownModel(LookupError):
    """A model id that names neither the base model nor ``base:adapter``."""


def adapter_dir(settings) -> Path:
    return Path(settings.llm_adapter_dir or settings.data_dir / "adapters")


def _folder_adapters(settings) -> list[str]:
    root = adapter_dir(settings)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if valid_name(p.name) and is_adapter_dir(p))


def available_adapters(settings) -> list[str]:
    """Every adapter name a request may use: local folders and registered models."""
    return sorted(set(_folder_adapters(settings)) | {a.name for a in list_adapters(settings.mlflow_uri)})


def resolve_adapter(name: str, settings) -> Path:
    """The local peft directory of an adapter name; AdapterNotFound (listing what exists) otherwise."""
    base, _, version = name.partition("/")
    if not valid_name(base) or (version and not version.isdigit()):
        raise AdapterNotFound(name, available_adapters(settings))
    folder = adapter_dir(settings) / base
    if not version and is_adapter_dir(folder):
        return folder
    try:
        return resolve(name, settings.mlflow_uri, Path(settings.data_dir) / "cache" / "adapters")
    except AdapterNotFound:
        raise AdapterNotFound(name, available_adapters(settings)) from None


def model_ids(base: str, adapters: list[str]) -> list[str]:
    """OpenAI model ids: the base model, then one per adapter."""
    return [base, *(f"{base}:{a}" for a in adapters)]


def split_model_id(model: str, base: str) -> str | None:
    """The adapter named by an OpenAI model id (None for the base model); UnknownModel otherwise."""
    if model == base:
        return None
    prefix, sep, adapter = model.partition(":")
    if not sep or prefix != base or not adapter:
        raise UnknownModel(f"unknown model {model!r}; this platform serves {base!r} and {base!r}:<adapter>")
    return adapter

