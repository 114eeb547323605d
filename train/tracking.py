"""MLflow bookkeeping for training runs, through an explicit client (no global active run).

The driver creates the run; the rank-0 worker logs step metrics into the same run by id, so a worker
restarted after a failure keeps writing to the run it belongs to.
"""
from __future__ import annotations

import os
import time
from pathlib import Path


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"optim.learning_rate": "0.0002", ...}`` (MLflow parameters are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = str(value)[:6000]
    return flat


class Tracker:
    """One MLflow run: parameters, metrics by step, artifacts, final status."""

    def __init__(self, tracking_uri: str, run_id: str):
        os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @classmethod
    def start(cls, tracking_uri: str, experiment: str, artifact_dir: Path, run_name: str,
              tags: dict[str, str] | None = None, parent_run_id: str | None = None) -> "Tracker":
        """Create a run in ``experiment`` (created with its artifacts under ``artifact_dir`` if new)."""
        os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
        from mlflow import MlflowClient

        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(
            experiment, artifact_location=Path(artifact_dir).resolve().as_uri())
        run_tags = {"mlflow.runName": run_name, **(tags or {})}
        if parent_run_id:
            run_tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(experiment_id, tags=run_tags, run_name=run_name)
        return cls(tracking_uri, run.info.run_id)

    @property
    def artifact_uri(self) -> str:
        return self.client.get_run(self.run_id).info.artifact_uri

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        for start in range(0, len(items), 100):  # the REST API takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        if values:
            self.client.log_batch(self.run_id, metrics=values)

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_artifacts(self, directory: Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(directory), artifact_path)

    def log_dict(self, data: dict, file_name: str) -> None:
        self.client.log_dict(self.run_id, data, file_name)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)
