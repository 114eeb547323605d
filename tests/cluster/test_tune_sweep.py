"""A sweep on the 2-CPU test cluster: asha stops trials and the rest still get workers (Ray #54305),
Ctrl-C then --resume without repeating finished trials, MLflow parent and child runs, best recipe.

The module runs one smoke sweep (tiny model, 4 trials, asha on). Its seeded draws make trial 0 complete
and asha stop trial 1; Ctrl-C comes once trial 2 has started, and the sweep is then resumed; the tests
read what it left. A watchdog interrupts a sweep that hangs (a trial waiting for workers forever) so
that it fails instead of blocking CI.
"""
import os
import signal
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
SWEEP_DEADLINE_S = 900  # generous: 2 cores shared with other test runs


@pytest.fixture(scope="module")
def settings(tmp_path_factory, llm_cache_dir, hs_cache_dir):
    from predator.settings import get_settings

    return get_settings(data_dir=tmp_path_factory.mktemp("tune-data"), llm_cache_dir=llm_cache_dir,
                        hs_cache_dir=hs_cache_dir)


def _tune_handles_ctrl_c() -> bool:
    # Outside Tuner.fit a SIGINT would be pytest's KeyboardInterrupt: only send it while Tune listens.
    return getattr(signal.getsignal(signal.SIGINT), "__name__", "") == "signal_interrupt_tune_run"


class CtrlC:
    """Presses Ctrl-C on this process when ``when()`` turns true, or repeatedly once past the deadline."""

    def __init__(self, when, deadline_s: float):
        self.when, self.deadline = when, time.monotonic() + deadline_s
        self.sent, self.hung, self._done = False, False, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._done.wait(1.0):
            late = time.monotonic() > self.deadline
            self.hung = self.hung or late
            if (late or (not self.sent and self.when())) and _tune_handles_ctrl_c():
                self.sent = True
                os.kill(os.getpid(), signal.SIGINT)

    def stop(self):
        self._done.set()
        self._thread.join()


def _child_runs(settings, parent_run_id: str, status: str | None = None) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_uri)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    query = f"tags.mlflow.parentRunId = '{parent_run_id}'" + (f" and attributes.status = '{status}'" if status else "")
    return client.search_runs([experiment.experiment_id], query)


@pytest.fixture(scope="module")
def sweep_runs(ray_cluster, settings, tmp_path_factory):
    """(interrupted result, resumed result, sweep, prepared) of the smoke sweep."""
    from train.job import prepare
    from tune.config import load
    from tune.sweep import open_experiment, run_sweep

    os.chdir(ROOT)  # the sweep recipe names its training recipe relative to the repository
    storage = tmp_path_factory.mktemp("tune-storage")
    sweep = load(ROOT / "tune" / "configs" / "smoke.yaml", [f"storage_path={storage}"])
    prepared = prepare(sweep.base, settings, progress=lambda message: None)
    quiet = lambda message: None  # noqa: E731

    experiment = open_experiment(sweep, settings, resume=False)
    # Each trial opens its MLflow run first thing: a third run means trials 0 and 1 have ended.
    ctrl_c = CtrlC(lambda: experiment.parent_run_id and len(_child_runs(settings, experiment.parent_run_id)) >= 3,
                   SWEEP_DEADLINE_S)
    try:
        interrupted = run_sweep(sweep, prepared, settings, experiment, progress=quiet)
    finally:
        ctrl_c.stop()
    assert not ctrl_c.hung, f"the first part of the sweep hung for {SWEEP_DEADLINE_S} s:\n{interrupted.table}"

    watchdog = CtrlC(lambda: False, SWEEP_DEADLINE_S)
    try:
        resumed = run_sweep(sweep, prepared, settings, open_experiment(sweep, settings, resume=True), progress=quiet)
    finally:
        watchdog.stop()
    assert not watchdog.hung, f"the resumed sweep hung for {SWEEP_DEADLINE_S} s (workers never freed?):\n{resumed.table}"
    return interrupted, resumed, sweep, prepared


def test_ctrl_c_interrupts_the_sweep_after_a_stopped_trial(sweep_runs):
    interrupted, _, _, _ = sweep_runs
    statuses = [row.status for row in interrupted.rows]
    assert not interrupted.finished, interrupted.table
    assert statuses[:2] == ["completed", "stopped early"], interrupted.table


def test_asha_stops_trials_and_every_remaining_trial_still_runs_to_completion(sweep_runs):
    _, resumed, sweep, _ = sweep_runs
    rows = resumed.rows
    statuses = [row.status for row in rows]
    assert len(rows) == sweep.config.num_samples == 4
    assert set(statuses) <= {"completed", "stopped early"}, resumed.table
    assert "stopped early" in statuses, resumed.table
    # Trials run one at a time in id order: one that started after a stopped trial got its CPU back.
    first_stopped = statuses.index("stopped early")
    assert first_stopped < len(rows) - 1, resumed.table
    assert all(row.steps == 8 for row in rows if row.status == "completed"), resumed.table
    assert all(row.steps < 8 for row in rows if row.status == "stopped early"), resumed.table
    from tune.orphans import orphaned_placement_groups

    assert orphaned_placement_groups() == []


def test_resume_does_not_repeat_finished_trials(sweep_runs, settings):
    from tune.sweep import trial_run_name

    interrupted, resumed, sweep, _ = sweep_runs
    ended_before = [row for row in interrupted.rows if row.status in ("completed", "stopped early")]
    after = {row.trial_id: row for row in resumed.rows}
    assert ended_before
    runs = [run.data.tags["mlflow.runName"] for run in _child_runs(settings, resumed.parent_run_id)]
    for row in ended_before:
        assert after[row.trial_id].status == row.status and after[row.trial_id].run_id == row.run_id
        assert runs.count(trial_run_name(sweep.config.name, row.trial_id)) == 1, f"{row.trial_id} ran again"
    finished = [run.data.tags["mlflow.runName"] for run in _child_runs(settings, resumed.parent_run_id, "FINISHED")]
    assert len(finished) == len(set(finished)), "a trial was trained to the end twice"
    assert resumed.parent_run_id == interrupted.parent_run_id


def test_mlflow_has_the_parent_run_and_a_child_run_per_trial(sweep_runs, settings):
    from mlflow import MlflowClient

    _, resumed, _, _ = sweep_runs
    client = MlflowClient(tracking_uri=settings.mlflow_uri)
    parent = client.get_run(resumed.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["search_space.lora.r.choice"] == "[2, 4, 8]"
    assert "best.after.heldout_loss" in parent.data.metrics
    artifacts = {a.path for a in client.list_artifacts(resumed.parent_run_id)}
    assert {"trials.txt", "trials.json", "best_config.yaml"} <= artifacts
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert all(child.info.status != "RUNNING" for child in children)
    by_trial = {}
    for child in children:
        if "tune.trial_id" in child.data.tags:  # not the best recipe's run of --register-best
            by_trial.setdefault(child.data.tags["tune.trial_id"], []).append(child)
    assert set(by_trial) == {row.trial_id for row in resumed.rows}
    for row in resumed.rows:
        assert row.status in {child.data.tags["tune.status"] for child in by_trial[row.trial_id]}
        if row.status == "completed":
            run = client.get_run(row.run_id)
            assert run.info.status == "FINISHED" and "after.heldout_loss" in run.data.metrics
            assert float(run.data.params["optim.learning_rate"]) == pytest.approx(row.params["optim.learning_rate"])


def test_best_config_is_a_ready_training_recipe_and_register_best_trains_it(sweep_runs, settings):
    from predator import adapters
    from train.config import load_config
    from tune.sweep import register_best

    _, resumed, sweep, prepared = sweep_runs
    best = resumed.best
    completed = [row.metric for row in resumed.rows if row.status == "completed"]
    assert best.metric == min(completed)
    cfg = load_config(resumed.best_config)
    assert cfg.lora.r == best.params["lora.r"] and cfg.optim.max_steps == 8
    assert cfg.optim.learning_rate == pytest.approx(best.params["optim.learning_rate"])
    assert cfg.adapter_name == "smoke-lora" and cfg.eval.before == sweep.base.eval.before

    summary = register_best(sweep, resumed, prepared, settings, progress=lambda message: None)
    assert summary.steps == 8 and summary.adapter == "smoke-lora"
    registered = {a.name: a for a in adapters.list_adapters(settings.mlflow_uri)}
    assert "smoke-lora" in registered
