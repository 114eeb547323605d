"""Training recipes and the CLI's refusals: every bad input exits non-zero with a reason, before Ray starts."""
from pathlib import Path

import pytest

from train.__main__ import main
from train.config import ConfigError, apply_override, load_config, valid_keys

CONFIGS = Path(__file__).resolve().parents[2] / "train" / "configs"


@pytest.mark.parametrize("recipe", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(recipe):
    cfg = load_config(recipe)
    assert cfg.optim.max_steps >= 1 and cfg.checkpoint.every_steps >= 1


def test_set_overrides_nested_keys_with_yaml_values():
    cfg = load_config(CONFIGS / "default.yaml", ["optim.learning_rate=1e-4", "lora.target_modules=[q_proj]",
                                                 "scaling.max_workers=2", "adapter_name=null"])
    assert cfg.optim.learning_rate == 1e-4
    assert cfg.lora.target_modules == ["q_proj"]
    assert cfg.scaling.max_workers == 2 and cfg.adapter_name is None


def test_unknown_key_in_a_recipe_lists_the_valid_keys(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("optim:\n  learning_rat: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(recipe)
    assert "optim.learning_rat: unknown key" in str(err.value)
    assert "optim.learning_rate" in str(err.value)


@pytest.mark.parametrize("assignment, reason", [
    ("optim.max_steps", "expected key=value"),
    ("optim.nope=1", "unknown key"),
    ("optim.learning_rate=[", "not valid YAML"),
])
def test_bad_set_is_refused_with_its_reason(assignment, reason):
    with pytest.raises(ConfigError, match=reason):
        apply_override({}, assignment)


def test_values_are_checked_after_overrides():
    with pytest.raises(ConfigError, match="optim.learning_rate"):
        load_config(None, ["optim.learning_rate=-1"])
    with pytest.raises(ConfigError, match="max_workers"):
        load_config(None, ["scaling.min_workers=2", "scaling.max_workers=1"])


def test_every_block_key_is_listed():
    keys = valid_keys()
    assert {"optim.learning_rate", "lora.r", "data.sources", "scaling.min_workers", "checkpoint.every_steps"} <= set(keys)


@pytest.mark.parametrize("argv, reason", [
    (["--set", "optim.bogus=1"], "unknown key"),
    (["--set", "model.path=/nowhere/model"], "does not exist"),
    (["--config", "/nowhere.yaml"], "does not exist"),
    (["--set", "data.sources=[feedback]", "--set", "data.feedback_path=/nowhere.jsonl"], "nowhere.jsonl"),
])
def test_cli_exits_non_zero_with_a_message_before_any_worker(argv, reason, capsys, tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr("train.__main__.connect", lambda *a: pytest.fail("must not reach the cluster"))
    code = main(["--config", str(CONFIGS / "smoke.yaml"), "--data-dir", str(tmp_path), *argv])
    assert code == 2
    assert reason in capsys.readouterr().err
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()


def test_empty_dataset_exits_non_zero(capsys, tmp_path, monkeypatch):
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text("")
    monkeypatch.setattr("train.__main__.connect", lambda *a: pytest.fail("must not reach the cluster"))
    code = main(["--config", str(CONFIGS / "smoke.yaml"), "--data-dir", str(tmp_path),
                 "--set", "data.sources=[feedback]", "--set", f"data.feedback_path={feedback}"])
    assert code == 2
    assert "empty" in capsys.readouterr().err.lower()
