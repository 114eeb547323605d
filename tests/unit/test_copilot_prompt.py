"""Prompt building and the truncation policy (a whitespace tokenizer stands in for the model's)."""
import pytest

from predator.copilot.prompt import (
    SYSTEM_PROMPT, Message, PromptTooLong, build_messages, context_records, fit_prompt,
    mentioned_ids, record_line,
)

RECORD = {"id": "UA100000/2023/000787#4", "hs_code": "4014101090", "importer_code": "09419929",
          "importer_name": "ТОВ \"ЕНЕРГОХОЛДИНГ-ЗАХІД\"", "origin_country": "DE", "customs_value_usd": 4781.25,
          "goods_description": "Rubber, vulcanised, sheath contraceptives, brand Makita, model ES-4488",
          "trading_country": None}


class WordTokenizer:
    """One token per whitespace-separated word; the chat template marks roles."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return " ".join(f"<{m['role']}> {m['content']}" for m in messages) + " <assistant>"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(range(len(text.split())))}

    def decode(self, ids):
        return " ".join(f"w{i}" for i in ids)


def records(n):
    return context_records([{**RECORD, "id": f"UA100000/2023/{i:06d}#1"} for i in range(1, n + 1)])


def test_a_context_line_starts_with_the_record_id_and_holds_the_configured_fields():
    line = record_line(RECORD, text_chars=20)
    assert line.startswith("UA100000/2023/000787#4 | HS 4014101090 | ")
    assert "importer 09419929" in line and "origin DE" in line and "$4781" in line
    assert "| Rubber, vulcanised… |" in line  # free text clipped to 20 characters, no dangling comma
    assert "ЕНЕРГОХОЛДИНГ" not in line  # names are not a default field (about 40 tokens each)
    assert "ЕНЕРГОХОЛДИНГ" in record_line(RECORD, fields=["importer_name"])


def test_null_fields_are_left_out_of_a_context_line():
    assert "trading" not in record_line(RECORD, fields=["trading_country", "hs_code"])


def test_context_records_are_numbered_from_one_in_rank_order():
    numbered = records(3)
    assert [r.number for r in numbered] == [1, 2, 3]
    assert numbered[0].id == "UA100000/2023/000001#1"


def test_messages_put_instructions_and_numbered_records_in_the_system_prompt():
    messages = build_messages([Message("system", "Answer in Ukrainian."), Message("user", "Which HS code?")], records(2))
    system = messages[0]["content"]
    assert messages[0]["role"] == "system" and system.startswith(SYSTEM_PROMPT)
    assert "Answer in Ukrainian." in system
    assert "[1] UA100000/2023/000001#1 |" in system and "[2] UA100000/2023/000002#1 |" in system
    assert messages[1:] == [{"role": "user", "content": "Which HS code?"}]


def test_a_prompt_within_budget_is_not_truncated():
    prompt = fit_prompt(WordTokenizer(), [Message("user", "Which HS code?")], records(5), 10_000)
    assert not prompt.truncation.truncated and len(prompt.records) == 5
    assert prompt.truncation.prompt_tokens == len(prompt.input_ids)


def test_truncation_drops_earlier_turns_first_then_the_lowest_ranked_records():
    turns = [Message("user", "old " * 30), Message("assistant", "old answer " * 30), Message("user", "Which HS code?")]
    full = fit_prompt(WordTokenizer(), turns, records(5), 10_000).truncation.prompt_tokens
    without_history = fit_prompt(WordTokenizer(), turns[-1:], records(5), 10_000).truncation.prompt_tokens
    prompt = fit_prompt(WordTokenizer(), turns, records(5), without_history)
    assert prompt.truncation.dropped_turns == 2 and not prompt.truncation.dropped_records
    assert full > without_history

    prompt = fit_prompt(WordTokenizer(), turns, records(5), without_history - 5)
    assert prompt.truncation.dropped_turns == 2
    assert prompt.truncation.dropped_records == ["UA100000/2023/000005#1"]  # the lowest-ranked goes first
    assert [r.number for r in prompt.records] == [1, 2, 3, 4]
    assert prompt.truncation.truncated and len(prompt.input_ids) <= without_history - 5


def test_truncation_cuts_the_end_of_the_question_last_and_reports_it():
    one_record = fit_prompt(WordTokenizer(), [Message("user", "q")], records(1), 10_000).truncation.prompt_tokens
    question = "word " * 100
    prompt = fit_prompt(WordTokenizer(), [Message("user", question)], records(3), one_record + 40)
    report = prompt.truncation
    assert len(report.dropped_records) == 2 and report.question_tokens_cut == 100 - 41
    assert len(prompt.input_ids) <= one_record + 40
    assert report.to_dict()["truncated"] is True


def test_a_budget_smaller_than_the_system_prompt_is_an_error_not_a_silent_cut():
    with pytest.raises(PromptTooLong):
        fit_prompt(WordTokenizer(), [Message("user", "Which HS code?")], records(1), 10)


def test_record_ids_written_in_a_question_are_found_in_order_without_repeats():
    text = "Compare UA100000/2023/000787#4 with UA305000/2023/000467#2 and UA100000/2023/000787#4."
    assert mentioned_ids(text) == ["UA100000/2023/000787#4", "UA305000/2023/000467#2"]
    assert mentioned_ids("declaration UA100000/2023/000787 without a line") == []

