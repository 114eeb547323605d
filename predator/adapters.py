"""LoRA adapters by name: registered in MLflow's model registry by training, loaded by the copilot.

An adapter is a peft directory (``adapter_config.json`` plus weights). Training logs it as the run
artifact ``adapter`` and registers a model version whose source is that artifact, tagged with the base
model and the dataset hash. A name resolves to its newest version; ``name/3`` picks version 3; a path to
an adapter directory works without MLflow at all.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ADAPTER_ARTIFACT = "adapter"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AdapterNotFound(LookupError):
    """No registered adapter or adapter directory under that name; ``available`` lists what exists."""

    def __init__(self, name: str, available: list[str]):
        self.name = name
        self.available = available
        listed = ", ".join(available) or "none registered"
        super().__init__(f"unknown adapter {name!r}; available: {listed}")


@dataclass(frozen=True)
class AdapterVersion:
    name: str
    version: int
    source: str
    tags: dict


def valid_name(name: str) -> bool:
    """Adapter names are plain identifiers (they become model ids, file names and registry names)."""
    return bool(_NAME.match(name))


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def _client(tracking_uri: str):
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    import mlflow

    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def register(tracking_uri: str, name: str, run_id: str, artifact_uri: str, tags: dict[str, str]) -> AdapterVersion:
    """Register the run's adapter artifact as a new version of ``name`` (creating the model on first use)."""
    if not valid_name(name):
        raise ValueError(f"adapter name {name!r} must match {_NAME.pattern}")
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="LoRA adapter trained by predator train")
    source = f"{artifact_uri.rstrip('/')}/{ADAPTER_ARTIFACT}"
    version = client.create_model_version(name, source=source, run_id=run_id, tags=tags)
    return AdapterVersion(name, int(version.version), source, dict(tags))


def list_adapters(tracking_uri: str) -> list[AdapterVersion]:
    """Newest version of every registered adapter; empty when the registry does not exist yet."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        return []
    client = _client(tracking_uri)
    found = []
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name='{model.name}'")
        if versions:
            newest = max(versions, key=lambda v: int(v.version))
            found.append(AdapterVersion(model.name, int(newest.version), newest.source, dict(newest.tags)))
    return sorted(found, key=lambda a: a.name)


def _split(name: str) -> tuple[str, int | None]:
    base, _, version = name.partition("/")
    return base, int(version) if version.isdigit() else None


def resolve(name_or_path: str, tracking_uri: str, download_root: Path) -> Path:
    """Local directory of an adapter given its registry name (``name`` or ``name/version``) or a path.

    Registry artifacts are downloaded once to ``download_root/<name>/<version>/adapter``.
    Raises AdapterNotFound listing the registered names when nothing matches.
    """
    path = Path(name_or_path).expanduser()
    if is_adapter_dir(path):
        return path
    name, version = _split(name_or_path)
    registered = {a.name: a for a in list_adapters(tracking_uri)} if valid_name(name) else {}
    if name not in registered:
        raise AdapterNotFound(name_or_path, sorted(registered))
    version = version or registered[name].version
    target = Path(download_root) / name / str(version)
    if is_adapter_dir(target / ADAPTER_ARTIFACT):
        return target / ADAPTER_ARTIFACT
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        source = _client(tracking_uri).get_model_version(name, str(version)).source
        target.mkdir(parents=True, exist_ok=True)
        local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(target))
    except MlflowException as err:
        raise AdapterNotFound(name_or_path, sorted(registered)) from err
    if not is_adapter_dir(Path(local)):
        raise AdapterNotFound(name_or_path, sorted(registered))
    return Path(local)
