"""Evaluation: answer parsing and scoring, the command line's errors, and one tiny real generation."""
import json

import pytest

from train.datasets import Example
from train.evaluate import contains_answer, data_config, first_heading, generate_answers, main, score


def hs(task, answer, candidates=()):
    user = "Goods: x\nCandidates:\n" + "\n".join(f"{c} — title" for c in candidates) + "\nWhich heading?"
    return Example(f"{task}:{answer}00", task, [{"role": "user", "content": user},
                                               {"role": "assistant", "content": f"{answer} — title"}], answer)


@pytest.mark.parametrize("text, heading", [
    ("0306 — Crustaceans", "0306"),
    ("The heading is 03.06 (crustaceans)", "0306"),
    ("HS 0306.17 frozen shrimps", "0306"),
    ("heading 03 06", "0306"),
    ("8471.30.00.00", "8471"),
    ("code 9008500000", "9008"),
    ("1 0306", "0306"),
    ("Chapter 3, no heading", None),
    ("", None),
])
def test_first_heading_reads_codes_with_dots_and_spaces(text, heading):
    assert first_heading(text) == heading


def test_hs_scoring_counts_heading_chapter_and_missing_codes():
    examples = [hs("hs_closed", "0306")] * 4
    report = score(examples, ["0306 — Crustaceans", "03.06", "0307 — Molluscs", "I do not know"])
    stats = report["tasks"]["hs_closed"]
    assert stats == {"n": 4, "accuracy": 0.5, "heading_accuracy": 0.5, "chapter_accuracy": 0.75, "no_code_rate": 0.25}
    assert report["n"] == 4 and report["accuracy"] == 0.5


def test_rag_scoring_measures_echoing_the_first_candidate():
    examples = [hs("hs_rag", "0306", ["0307", "0306", "1605"]), hs("hs_rag", "8471", ["8471", "8473", "8517"])]
    stats = score(examples, ["0307 — Molluscs", "8471"])["tasks"]["hs_rag"]
    assert stats["accuracy"] == 0.5 and stats["first_candidate_rate"] == 1.0 and stats["in_candidates_rate"] == 1.0


def test_reading_tasks_score_by_containment_and_citation():
    target = {"role": "assistant", "content": "HS code 7616992000 [2]."}
    declaration = Example("declarations:a#1", "declarations", [{"role": "user", "content": "q"}, target], "7616992000")
    feedback = Example("feedback:1", "feedback", [{"role": "user", "content": "q"}, target], "ES")
    report = score([declaration, declaration, feedback, feedback],
                   ["Код УКТЗЕД 7616.99.20.00 [2].", "7616992000 [1]", "es (Іспанія) [1]", "PL"])
    assert report["tasks"]["declarations"] == {"n": 2, "accuracy": 1.0, "citation_accuracy": 0.5}
    assert report["tasks"]["feedback"] == {"n": 2, "accuracy": 0.5}
    assert report["accuracy"] == 0.75
    assert contains_answer("ТОВ  \"АГРО\"", 'тов "агро"') and not contains_answer("anything", " ")
    with pytest.raises(ValueError):
        score([feedback], [])


def test_data_config_comes_from_the_recipes_data_block(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("run_name: x\ndata:\n  sources: [hs_closed]\n  max_heldout_examples: 7\n")
    cfg = data_config(recipe)
    assert cfg.sources == ["hs_closed"] and cfg.max_heldout_examples == 7
    with pytest.raises(FileNotFoundError):
        data_config(tmp_path / "missing.yaml")


def test_cli_exits_2_with_the_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PREDATOR_DATA_DIR", str(tmp_path))
    assert main(["--adapter", "no-such-adapter"]) == 2
    assert "unknown adapter 'no-such-adapter'; available: none registered" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml does not exist" in capsys.readouterr().err
    assert main(["--tasks", "wikipedia"]) == 2
    assert "sources" in capsys.readouterr().err


@pytest.fixture
def one_thread():
    """Two torch threads on this busy 2-core machine made generation 10x slower (50 s against 4 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_generation_with_the_real_model_keeps_order_and_padding_side(llm_cache_dir, one_thread):
    from predator.llm import load_model, load_tokenizer, resolve_model

    source = resolve_model(None)
    tokenizer = load_tokenizer(source, llm_cache_dir)
    model = load_model(source, llm_cache_dir)
    short = hs("hs_closed", "0306")
    long = Example("hs_closed:847130", "hs_closed", [
        {"role": "system", "content": "Reply with a 4-digit HS heading code."},
        {"role": "user", "content": "Goods: portable automatic data processing machines, weighing not more than 10 kg"},
        {"role": "assistant", "content": "8471 — Automatic data processing machines"}], "8471")
    side = tokenizer.padding_side
    outputs = generate_answers(model, tokenizer, [long, short], max_new_tokens=4, batch_size=2)
    alone = generate_answers(model, tokenizer, [short], max_new_tokens=4)
    assert len(outputs) == 2 and all(isinstance(o, str) for o in outputs)
    assert outputs[1] == alone[0]  # left padding: a batched prompt answers as it does alone
    assert tokenizer.padding_side == side
    json.dumps(score([long, short], outputs))
