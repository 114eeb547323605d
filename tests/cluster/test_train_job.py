"""The training job on a private 2-CPU cluster: two workers on the real model, registration, and resume."""
import os
import signal
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

CONFIGS = Path(__file__).resolve().parents[2] / "train" / "configs"


@pytest.fixture(scope="module")
def settings(tmp_path_factory, llm_cache_dir, hs_cache_dir):
    from predator.settings import get_settings

    return get_settings(data_dir=tmp_path_factory.mktemp("train-data"), llm_cache_dir=llm_cache_dir,
                        hs_cache_dir=hs_cache_dir)


def prepared_run(settings, *overrides):
    from train.config import load_config
    from train.job import prepare

    cfg = load_config(CONFIGS / "smoke.yaml", list(overrides))
    return prepare(cfg, settings, progress=lambda message: None)


def test_two_workers_train_the_default_model_and_register_the_adapter(ray_cluster, settings):
    from mlflow import MlflowClient

    from predator import adapters
    from train.job import run

    prepared = prepared_run(settings, "model.tiny=null", "scaling.min_workers=2", "scaling.max_workers=2",
                            "optim.max_steps=3", "optim.batch_size=2", "optim.max_seq_len=128",
                            "checkpoint.every_steps=3", "eval.before=false", "eval.max_examples=2",
                            "adapter_name=two-worker-lora")
    summary = run(prepared, settings, progress=lambda message: None)

    assert summary.steps == 3 and summary.restarts == 0
    client = MlflowClient(tracking_uri=settings.mlflow_uri)
    run_data = client.get_run(summary.run_id).data
    assert run_data.params["scaling.min_workers"] == "2"
    assert run_data.params["dataset.hash"] == prepared.bundle.content_hash
    assert [m.step for m in client.get_metric_history(summary.run_id, "loss")] == [1, 2, 3]
    assert "after.heldout_loss" in run_data.metrics
    registered = {a.name: a for a in adapters.list_adapters(settings.mlflow_uri)}
    assert registered["two-worker-lora"].tags["base_model"] == prepared.base_model
    assert registered["two-worker-lora"].tags["dataset_hash"] == prepared.bundle.content_hash
    local = adapters.resolve("two-worker-lora", settings.mlflow_uri, settings.data_dir / "adapters")
    assert (local / "adapter_config.json").is_file()


def _worker_pids() -> list[int]:
    # The GCS actor table of the connected cluster: the state API would need a dashboard (off in tests).
    from ray._private.state import actors

    table = actors(actor_state_name="ALIVE").values()
    return [a["Pid"] for a in table if a.get("ActorClassName", "").endswith("RayTrainWorker") and a["Pid"]]


def _checkpoints(storage: Path) -> list[Path]:
    return list(storage.glob("*/checkpoint_*"))


def test_a_killed_worker_resumes_from_its_checkpoint_not_from_zero(ray_cluster, settings, tmp_path):
    from train.job import run

    storage = tmp_path / "storage"
    prepared = prepared_run(settings, "model.tiny=null", "optim.max_steps=6", "optim.batch_size=2",
                            "optim.max_seq_len=128", "checkpoint.every_steps=2", "eval.before=false",
                            "eval.after=false", f"storage_path={storage}", "adapter_name=null")
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(summary=run(prepared, settings, lambda m: None)))
    thread.start()
    # Two checkpoints on disk: the first has surely been registered by the controller (a folder alone may
    # still be on its way, and a restart before registration rightly starts from zero).
    deadline = time.time() + 240
    while len(_checkpoints(storage)) < 2 and time.time() < deadline and thread.is_alive():
        time.sleep(0.2)
    assert len(_checkpoints(storage)) >= 2, "no checkpoints were written before the deadline"
    victims = _worker_pids()
    assert victims
    os.kill(victims[0], signal.SIGKILL)
    thread.join(timeout=300)

    summary = outcome["summary"]
    assert summary.steps == 6
    assert summary.restarts >= 1 and summary.resumed_from >= 2
    from mlflow import MlflowClient

    history = MlflowClient(tracking_uri=settings.mlflow_uri).get_metric_history(summary.run_id, "loss")
    steps = sorted({m.step for m in history})
    assert steps == list(range(1, 7))
    # Resumed, not restarted: no step before the checkpoint was trained twice.
    first_checkpoint_step = 2
    repeated = [s for s in steps if sum(m.step == s for m in history) > 1]
    assert all(s > first_checkpoint_step for s in repeated)
