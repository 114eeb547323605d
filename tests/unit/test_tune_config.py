"""Sweep recipes: every bad input fails with a clear message before a cluster is touched."""
from pathlib import Path

import pytest
import yaml

from train.config import ConfigError
from tune.config import Distribution, apply_set, load
from tune.sweep import TrialRow, best_row, format_table, trial_status

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "tune" / "configs"


def sweep_file(tmp_path, **changes) -> Path:
    raw = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
    raw["train_config"] = str(ROOT / "train" / "configs" / "smoke.yaml")
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("name", ["smoke.yaml", "small.yaml"])
def test_shipped_sweeps_are_valid(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    sweep = load(CONFIGS / name)
    assert sweep.config.num_samples >= 4 and sweep.config.scheduler.type == "asha"


def test_searched_and_fixed_keys_reach_the_trial_recipe(tmp_path):
    sweep = load(sweep_file(tmp_path), ["optim.max_steps=6", "num_samples=5"])
    assert sweep.config.num_samples == 5
    assert sweep.base.optim.max_steps == 6 and sweep.max_t() == 6
    raw = sweep.trial_raw({"lora.r": 8, "optim.learning_rate": 0.003})
    assert raw["lora"]["r"] == 8 and raw["optim"]["learning_rate"] == 0.003 and raw["optim"]["max_steps"] == 6
    assert sweep.base_raw["lora"]["r"] == 4  # the base recipe is not changed by a trial


def test_empty_search_space_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="search_space is empty"):
        load(sweep_file(tmp_path, search_space={}))


def test_unknown_search_key_names_the_closest_training_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"search_space.optim.lerning_rate: unknown.*optim.learning_rate"):
        load(sweep_file(tmp_path, search_space={"optim.lerning_rate": {"loguniform": [1e-4, 1e-2]}}))


def test_a_block_is_not_a_searchable_key(tmp_path):
    with pytest.raises(ConfigError, match="search_space.lora: unknown"):
        load(sweep_file(tmp_path, search_space={"lora": {"choice": [1, 2]}}))


@pytest.mark.parametrize("dist, reason", [
    ({"uniform": [0.3, 0.1]}, "must be below"),
    ({"loguniform": [0.0, 0.1]}, "low > 0"),
    ({"randint": [9, 2]}, "randint low 9 > high 2"),
    ({"choice": []}, "at least 1"),
    ({"choice": [4, 4]}, "twice"),
    ({"uniform": [0.1, 0.2], "choice": [1]}, "exactly one"),
])
def test_inconsistent_distributions_are_refused(tmp_path, dist, reason):
    with pytest.raises(ConfigError, match=reason):
        load(sweep_file(tmp_path, search_space={"lora.dropout": dist}))


def test_a_range_the_training_recipe_rejects_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"search_space.lora.dropout: uniform can give 1.5.*lora.dropout"):
        load(sweep_file(tmp_path, search_space={"lora.dropout": {"uniform": [0.0, 1.5]}}))


def test_a_float_distribution_over_an_integer_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="search_space.lora.r: loguniform can give"):
        load(sweep_file(tmp_path, search_space={"lora.r": {"loguniform": [2, 32]}}))


def test_a_key_both_fixed_and_searched_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="also fixed in train_overrides"):
        load(sweep_file(tmp_path), ["lora.r=8"])


def test_unknown_metric_is_refused_with_the_reported_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"metric.name: no trial reports 'after.heldout_los'.*after.heldout_loss"):
        load(sweep_file(tmp_path, metric={"name": "after.heldout_los", "mode": "min"}))


def test_task_metrics_follow_the_recipe_data_sources(tmp_path):
    ok = load(sweep_file(tmp_path, metric={"name": "after.tasks.hs_rag.accuracy", "mode": "max"}))
    assert ok.config.metric.name == "after.tasks.hs_rag.accuracy"
    with pytest.raises(ConfigError, match="no trial reports 'after.tasks.hs_closed.accuracy'"):
        load(sweep_file(tmp_path, metric={"name": "after.tasks.hs_closed.accuracy", "mode": "max"}))


def test_asha_on_a_metric_known_only_at_the_end_is_refused(tmp_path):
    scheduler = {"type": "asha", "grace_period": 2}  # no scheduler.metric: asha would use after.heldout_loss
    with pytest.raises(ConfigError, match="asha compares trials while they train.*only reported when a trial ends"):
        load(sweep_file(tmp_path, scheduler=scheduler))
    fifo = load(sweep_file(tmp_path, scheduler={"type": "fifo"}))
    assert fifo.config.scheduler.type == "fifo"


def test_final_metric_without_evaluation_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="eval.after"):
        load(sweep_file(tmp_path), ["eval.after=false"])


def test_asha_rungs_must_fit_in_the_training_run(tmp_path):
    with pytest.raises(ConfigError, match="max_t .20. is past the end"):
        load(sweep_file(tmp_path), ["scheduler.max_t=20"])
    with pytest.raises(ConfigError, match="grace_period .8. must be below max_t"):
        load(sweep_file(tmp_path), ["scheduler.grace_period=8"])


def test_unknown_sweep_key_lists_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="num_sampels: unknown key"):
        load(sweep_file(tmp_path, num_sampels=3))
    with pytest.raises(ConfigError, match="neither a sweep key"):
        apply_set({}, "bogus.key=1")


def test_optuna_is_not_offered(tmp_path):
    with pytest.raises(ConfigError, match="search_alg.type"):
        load(sweep_file(tmp_path, search_alg={"type": "optuna"}))


def test_randint_includes_its_upper_bound_in_the_probes():
    assert Distribution(randint=(2, 5)).probes() == [2, 5]
    low, inside, high = Distribution(loguniform=(1.0, 100.0)).probes()
    assert low == 1.0 and high == 100.0 and inside != int(inside)


def test_status_best_trial_and_table():
    assert trial_status("TERMINATED", {"completed": True}) == "completed"
    assert trial_status("TERMINATED", {"loss": 3.0}) == "stopped early"
    assert trial_status("ERROR", {}) == "error"
    assert trial_status("PENDING", {}) == "pending"
    rows = [TrialRow("a_00000", "completed", {"lora.r": 4}, 2.5, 8, "r1"),
            TrialRow("a_00001", "stopped early", {"lora.r": 8}, None, 2, None),
            TrialRow("a_00002", "completed", {"lora.r": 2}, 1.5, 8, "r3")]
    best = best_row(rows, "min")
    assert best.trial_id == "a_00002" and best_row(rows, "max").trial_id == "a_00000"
    table = format_table(rows, "after.heldout_loss", best).splitlines()
    assert table[0].split(" | ")[:3] == ["trial   ", "status       ", "lora.r"]
    assert table[4].startswith("*a_00002") and "stopped early" in table[3]


def test_cli_exits_2_with_the_reason_before_any_trial(tmp_path):
    import subprocess
    import sys

    bad = sweep_file(tmp_path, search_space={})
    done = subprocess.run([sys.executable, "-m", "tune", "--config", str(bad), "--data-dir", str(tmp_path / "data")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "search_space is empty" in done.stderr
    assert not (tmp_path / "data" / "tune").exists()


def test_a_sweep_starts_once_and_resumes_only_with_its_own_recipe(tmp_path):
    import json

    from predator.settings import get_settings
    from tune.sweep import STATE_FILE, SweepError, open_experiment

    settings = get_settings(data_dir=tmp_path / "data")
    sweep = load(sweep_file(tmp_path))
    with pytest.raises(SweepError, match="no sweep 'smoke' to resume"):
        open_experiment(sweep, settings, resume=True)
    experiment = open_experiment(sweep, settings, resume=False)
    experiment.path.mkdir(parents=True)
    (experiment.path / STATE_FILE).write_text(json.dumps({"parent_run_id": "p1",
                                                          "config": sweep.config.model_dump(mode="json")}))
    with pytest.raises(SweepError, match="already exists.*--resume"):
        open_experiment(sweep, settings, resume=False)
    assert open_experiment(sweep, settings, resume=True).parent_run_id == "p1"
    changed = load(sweep_file(tmp_path), ["num_samples=9"])
    with pytest.raises(SweepError, match=r"recipe changed .*\(num_samples\)"):
        open_experiment(changed, settings, resume=True)
