"""Training datasets: determinism, splits, anti-echo candidates, declaration questions, feedback, hashes.

Fast: the keyword-only HS suggester (no embedding model), small caps, a small generated sample."""
import collections
import json
import re

import pytest
from pydantic import ValidationError

from predator.copilot.prompt import SYSTEM_PROMPT
from predator.hs_suggest import nomenclature_texts
from predator.index_layout import IndexLayout, records_path
from predator.sample import generate, write_sample
from predator.settings import get_settings
from train import datasets
from train.datasets import DataConfig, EmptyDataset, HsRetriever, build, hs_items, is_heldout
from train.feedback import FeedbackFormatError, read_feedback

SMALL = dict(sources=["hs_rag", "hs_closed", "declarations"], rag_retriever="keyword", max_train_examples=250,
             max_heldout_examples=80, sample_rows=400, declaration_questions=300)
CANDIDATE = re.compile(r"^(\d{4}) — ", re.MULTILINE)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return get_settings(data_dir=tmp_path_factory.mktemp("data"))  # no index: declarations are generated


@pytest.fixture(scope="module")
def bundle(settings):
    return build(DataConfig(**SMALL), settings)


def of(examples, task):
    return [e for e in examples if e.task == task]


def key(example):
    return example.id.split(":", 1)[1]


def test_build_is_deterministic(bundle, settings):
    again = build(DataConfig(**SMALL), settings)
    assert again.train == bundle.train and again.heldout == bundle.heldout
    assert again.content_hash == bundle.content_hash and again.counts == bundle.counts


def test_examples_are_chat_examples_with_counts(bundle):
    every = bundle.train + bundle.heldout
    assert len({e.id for e in every}) == len(every)
    for example in every:
        assert [m["role"] for m in example.messages] == ["system", "user", "assistant"]
        assert example.id.startswith(example.task + ":") and example.answer
    for task in SMALL["sources"]:
        assert bundle.counts[task]["train"] == len(of(bundle.train, task)) > 0
        assert bundle.counts[task]["heldout"] == len(of(bundle.heldout, task)) > 0
    assert len(of(bundle.train, "hs_rag")) == 250 and len(of(bundle.heldout, "hs_closed")) == 80  # caps per source
    assert {e.task for e in bundle.train[:40]} == set(SMALL["sources"])  # tasks interleave


def test_split_is_by_key_and_shared_by_both_hs_sources(bundle):
    cfg = DataConfig(**SMALL)
    hs = ("hs_rag", "hs_closed")
    train_codes = {key(e) for e in bundle.train if e.task in hs}
    heldout_codes = {key(e) for e in bundle.heldout if e.task in hs}
    assert train_codes and heldout_codes and not train_codes & heldout_codes
    assert all(is_heldout(cfg, code) for code in heldout_codes)
    declaration = {"train": set(), "heldout": set()}
    for split in ("train", "heldout"):
        for example in of(getattr(bundle, split), "declarations"):
            declaration[split].add(key(example).split("#")[0])
    assert not declaration["train"] & declaration["heldout"]


def test_hs_targets_name_the_heading_first(bundle):
    for example in of(bundle.train, "hs_closed") + of(bundle.train, "hs_rag"):
        assert example.messages[-1]["content"].startswith(example.answer + " — ")
        assert example.answer == key(example)[:4]  # heading of the subheading


def test_training_candidates_hold_the_gold_heading_at_uniform_positions(bundle):
    positions = collections.Counter()
    for example in of(bundle.train, "hs_rag"):
        candidates = CANDIDATE.findall(example.messages[1]["content"])
        assert len(candidates) == 5 and len(set(candidates)) == 5
        positions[candidates.index(example.answer)] += 1
    assert sorted(positions) == [0, 1, 2, 3, 4]
    assert min(positions.values()) >= 0.5 * 250 / 5  # no position dominates: echoing one earns ~20 %


def test_no_query_is_ranked_by_an_index_holding_its_own_text(settings, monkeypatch):
    items, _, _ = hs_items(DataConfig(**SMALL))
    texts, _ = nomenclature_texts()
    full_text = {t.source: t.text for t in texts}
    code_of = {i.text: i.code for i in items}
    assert len(code_of) == len(items)
    indexed, seen = {}, []
    real_top = HsRetriever.top

    def spy(self, suggester, query, vector, k):
        # Holding the suggester keeps its id from being reused by the next fold's index.
        _, sources, indexed_texts = indexed.setdefault(
            id(suggester), (suggester, {t.source for t in suggester.texts}, {t.text for t in suggester.texts}))
        code = code_of[query]
        seen.append(code in sources or full_text[code] in indexed_texts or query in indexed_texts)
        return real_top(self, suggester, query, vector, k)

    monkeypatch.setattr(HsRetriever, "top", spy)
    build(DataConfig(**{**SMALL, "sources": ["hs_rag"], "max_train_examples": 100, "max_heldout_examples": 40}),
          settings)
    assert len(seen) == 100 + 40 and not any(seen)


def test_heldout_candidates_are_the_retrievers_top_k_and_its_baseline_is_recorded(bundle, settings):
    cfg = DataConfig(**SMALL)
    items, _, _ = hs_items(cfg)
    retriever = HsRetriever(cfg, settings)
    index = retriever.index({i.code for i in items if is_heldout(cfg, i.code)})
    text = {i.code: i.text for i in items}
    heldout = of(bundle.heldout, "hs_rag")
    hits = 0
    for example in heldout:
        ranked = retriever.top(index, text[key(example)], None, 5)
        candidates = CANDIDATE.findall(example.messages[1]["content"])
        assert len(candidates) == 5 and set(ranked) <= set(candidates)  # short rankings are padded
        assert example.answer in candidates or example.answer not in ranked  # padding never adds the gold
        hits += ranked[0] == example.answer
    assert bundle.counts["hs_rag"]["retriever_top1_hits"] == hits
    assert bundle.metrics["hs_rag.retriever_top1_accuracy"] == pytest.approx(hits / len(heldout))
    assert 0.3 < hits / len(heldout) < 0.98  # a real retriever: right often, never by matching itself


def test_declaration_questions_are_answerable_from_their_context(bundle):
    examples = of(bundle.train, "declarations") + of(bundle.heldout, "declarations")
    languages = collections.Counter()
    for example in examples:
        system, question, target = (m["content"] for m in example.messages)
        assert system.startswith(SYSTEM_PROMPT)
        lines = system.split("\nRecords:\n")[1].split("\n")
        cited = re.findall(r"\[(\d+)\]", target)
        assert len(cited) == 1 and 1 <= int(cited[0]) <= len(lines) <= 3
        line = lines[int(cited[0]) - 1]
        assert line.startswith(f"[{cited[0]}] {key(example)} |") and example.answer in line
        assert key(example) in question and example.answer in target
        declarations = [other.split(" | ")[0].split(" ")[1].split("#")[0] for other in lines]
        assert declarations.count(key(example).split("#")[0]) == 1  # no other line of the asked declaration
        languages["uk" if re.search("[а-яіїє]", question) else "en"] += 1
    assert languages["uk"] > 50 and languages["en"] > 50


def test_declarations_come_from_the_live_index_then_from_a_path(tmp_path):
    settings = get_settings(data_dir=tmp_path)
    layout = IndexLayout(settings.index_dir)
    version, _ = layout.begin_version()
    records, _ = generate(120, seed=3)
    write_sample(records_path(settings.index_dir, version), records)
    layout.publish(version)
    docs, origin = datasets.load_records(DataConfig(), settings)
    assert origin.endswith("records.parquet") and {d["id"] for d in docs} == {r.id for r in records}
    csv = write_sample(tmp_path / "other.csv", records[:50])
    docs, origin = datasets.load_records(DataConfig(declarations_path=str(csv)), settings)
    assert origin == str(csv) and len(docs) == 50
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        datasets.load_records(DataConfig(declarations_path=str(tmp_path / "missing.parquet")), settings)


FEEDBACK = [
    {"id": "fb-1", "question": "Яка країна походження в декларації UA1/2024/000001, товар 1?", "answer": "PL [1]",
     "verdict": "corrected", "corrected_answer": "ES (Іспанія) [1]", "short_answer": "ES",
     "context": [{"declaration_id": "UA1/2024/000001", "line_no": 1, "origin_country": "ES"}],
     "record_ids": ["UA1/2024/000001#1"], "analyst": "ok", "created_at": "2024-12-31T10:00:00Z"},
    {"question": "Which HS code is laptops?", "answer": "8471 [1]", "verdict": "accepted", "context": ["laptops: 8471"]},
    {"question": "Who imported the most?", "answer": "nobody", "verdict": "rejected"},
]


def write_feedback(path, rows, extra_lines=()):
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_feedback_bad_lines_fail_with_their_numbers_or_are_skipped_and_counted(tmp_path):
    path = write_feedback(tmp_path / "fb.jsonl", FEEDBACK, [
        "", "{not json", json.dumps({"question": "q", "verdict": "corrected"}), json.dumps({"verdict": "accepted"})])
    with pytest.raises(FeedbackFormatError) as failure:
        read_feedback(path)
    message = str(failure.value)
    assert [line for line, _ in failure.value.errors] == [5, 6, 7]
    assert "line 5: not JSON" in message and "corrected_answer" in message and "line 7: question" in message
    records, bad = read_feedback(path, skip_bad_lines=True)
    assert len(records) == 3 and len(bad) == 3

    cfg = DataConfig(sources=["feedback"], feedback_path=str(path), feedback_skip_bad_lines=True, heldout_fraction=0.01)
    built = build(cfg, get_settings(data_dir=tmp_path))
    assert built.counts["feedback"] == {"train": 2, "heldout": 0, "records": 3, "rejected_skipped": 1,
                                        "bad_lines_skipped": 3}
    corrected = next(e for e in built.train if e.id == "feedback:fb-1")
    assert corrected.answer == "ES" and corrected.messages[-1]["content"] == "ES (Іспанія) [1]"
    assert corrected.messages[0]["content"].endswith("Records:\n[1] UA1/2024/000001#1 | origin ES")
    assert corrected.messages[1] == {"role": "user", "content": FEEDBACK[0]["question"]}
    passage = next(e for e in built.train if e.id != "feedback:fb-1")
    assert passage.messages[0]["content"].endswith("Records:\n[1] laptops: 8471")
    with pytest.raises(FeedbackFormatError):
        build(cfg.model_copy(update={"feedback_skip_bad_lines": False}), get_settings(data_dir=tmp_path))


def test_content_hash_is_stable_and_follows_the_data(tmp_path):
    settings = get_settings(data_dir=tmp_path)
    path = write_feedback(tmp_path / "fb.jsonl", FEEDBACK)
    cfg = DataConfig(sources=["feedback"], feedback_path=str(path), heldout_fraction=0.01)
    first = build(cfg, settings).content_hash
    assert build(cfg, settings).content_hash == first
    changed = [dict(FEEDBACK[0], corrected_answer="IT (Італія) [1]")] + FEEDBACK[1:]
    write_feedback(path, changed)
    assert build(cfg, settings).content_hash != first


def test_empty_sources_and_an_empty_train_split_raise(tmp_path):
    settings = get_settings(data_dir=tmp_path)
    only_rejected = write_feedback(tmp_path / "rejected.jsonl", FEEDBACK[2:])
    with pytest.raises(EmptyDataset, match="feedback"):
        build(DataConfig(sources=["feedback"], feedback_path=str(only_rejected)), settings)
    one = write_feedback(tmp_path / "one.jsonl", FEEDBACK[:1])
    cfg = DataConfig(sources=["feedback"], feedback_path=str(one), heldout_fraction=0.99)
    assert is_heldout(cfg, "fb-1")
    with pytest.raises(EmptyDataset, match="training split is empty"):
        build(cfg, settings)
    assert len(build(cfg, settings, heldout_only=True).heldout) == 1
    header_only = tmp_path / "empty.csv"
    header_only.write_text("declaration_id,line_no,date,hs_code\n")
    with pytest.raises(EmptyDataset, match="no valid records"):
        build(DataConfig(sources=["declarations"], declarations_path=str(header_only)), settings)
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        build(DataConfig(sources=["feedback"], feedback_path=str(tmp_path / "nowhere.jsonl")), settings)


def test_config_rejects_unknown_keys_and_feedback_without_a_file():
    with pytest.raises(ValidationError, match="feedback_path"):
        DataConfig(sources=["feedback"])
    with pytest.raises(ValidationError):
        DataConfig(heldout_fracton=0.2)
    with pytest.raises(ValidationError):
        DataConfig(sources=["wikipedia"])
