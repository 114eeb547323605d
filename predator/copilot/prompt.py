"""Prompts: retrieved declarations as a numbered context, the conversation, and the input budget.

Each record becomes one compact context line that starts with its number and its id, so a small model
can cite either (``[2]`` or ``UA100000/2023/000787#4``). The model's own chat template renders the
messages.

Truncation policy (applied by :func:`fit_prompt` when the rendered prompt exceeds the token budget),
in this order, each step only as far as needed:

1. drop earlier turns of the conversation, oldest first (the system prompt and the last user message stay);
2. drop context records, lowest-ranked first (the best-ranked record stays);
3. cut the end of the last user message, keeping its beginning.

What was dropped or cut is reported in :class:`Truncation` and returned to the client.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

SYSTEM_PROMPT = (
    "Answer from the customs declaration records below only. Cite the record of each fact as [n], "
    "for example [1]. If the records do not hold the answer, say so."
)

# A record id as the platform writes it: "{declaration_id}#{line_no}", e.g. UA100000/2023/000787#4.
RECORD_ID = re.compile(r"\b[A-Z]{2}\d{6}/\d{4}/\d{6}#\d+\b")


class PromptTooLong(ValueError):
    """Even the system prompt with one record and a cut question exceeds the input budget."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class ContextRecord:
    """One retrieved record as the model sees it: its number in the context, its id and its line."""

    number: int
    id: str
    text: str


@dataclass
class Truncation:
    """What :func:`fit_prompt` removed to stay within ``max_input_tokens``."""

    max_input_tokens: int
    prompt_tokens: int = 0
    dropped_turns: int = 0
    dropped_records: list[str] = field(default_factory=list)
    question_tokens_cut: int = 0

    @property
    def truncated(self) -> bool:
        return bool(self.dropped_turns or self.dropped_records or self.question_tokens_cut)

    def to_dict(self) -> dict:
        return {**asdict(self), "truncated": self.truncated}


@dataclass
class Prompt:
    """A rendered prompt: token ids, the records it kept and the truncation report."""

    input_ids: list[int]
    records: list[ContextRecord]
    truncation: Truncation


def mentioned_ids(text: str) -> list[str]:
    """Record ids written in ``text``, in order, without repeats (looked up before text retrieval)."""
    return list(dict.fromkeys(RECORD_ID.findall(text)))


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip(" ,;") + "…"


# Default fields of a context line. Cyrillic capitals cost two tokens each (an importer name is about
# 40), and on CPU the time to the first token grows with the prompt: names stay out unless configured.
DEFAULT_FIELDS = ("hs_code", "goods_description", "importer_code", "origin_country", "customs_value_usd")

_LABELS = {"hs_code": "HS {}", "importer_code": "importer {}", "importer_name": "importer {}",
           "exporter_name": "exporter {}", "origin_country": "origin {}", "trading_country": "trading {}",
           "dispatch_country": "dispatched from {}", "net_weight_kg": "{} kg", "risk_level": "risk {}"}


def _field_text(name: str, value, text_chars: int) -> str:
    if name == "customs_value_usd":
        return f"${float(value):.0f}"
    if isinstance(value, str) and name.endswith(("_description", "_name")):
        value = _clip(value, text_chars)
    return _LABELS.get(name, "{}").format(value)


def record_line(record: dict, fields: tuple[str, ...] | list[str] = DEFAULT_FIELDS, text_chars: int = 40) -> str:
    """One compact line per record: its id, then ``fields`` in order (nulls left out; free text clipped).

    The grounding check sees every field of the record, not just this line.
    """
    parts = [str(record.get("id", ""))]
    parts += [_field_text(name, record[name], text_chars) for name in fields
              if record.get(name) not in (None, "", [])]
    return " | ".join(parts)


def context_records(records: list[dict], fields: tuple[str, ...] | list[str] = DEFAULT_FIELDS,
                    text_chars: int = 40) -> list[ContextRecord]:
    """Number retrieved records 1..n in rank order."""
    return [ContextRecord(i, r["id"], record_line(r, fields, text_chars)) for i, r in enumerate(records, start=1)]


def system_message(records: list[ContextRecord], instructions: str = "") -> str:
    """The system prompt, any client instructions, then the numbered records."""
    lines = [f"[{r.number}] {r.text}" for r in records] or ["(no records matched)"]
    extra = f"\n{instructions.strip()}" if instructions.strip() else ""
    return f"{SYSTEM_PROMPT}{extra}\n\nRecords:\n" + "\n".join(lines)


def build_messages(conversation: list[Message], records: list[ContextRecord]) -> list[dict]:
    """Chat messages for the template: our system prompt (with the client's system text) and the turns."""
    instructions = "\n".join(m.content for m in conversation if m.role == "system")
    turns = [{"role": m.role, "content": m.content} for m in conversation if m.role != "system"]
    return [{"role": "system", "content": system_message(records, instructions)}, *turns]


def render(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of ``messages`` in the model's chat template, ending with the assistant's turn."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def fit_prompt(tokenizer, conversation: list[Message], records: list[ContextRecord],
               max_input_tokens: int) -> Prompt:
    """Render the prompt within ``max_input_tokens`` following the module's truncation policy.

    ``conversation`` ends with the user's question. Raises :class:`PromptTooLong` when nothing more can go.
    """
    system = [m for m in conversation if m.role == "system"]
    turns = [m for m in conversation if m.role != "system"]
    history, question = turns[:-1], turns[-1]
    records = list(records)
    report = Truncation(max_input_tokens)

    def attempt() -> list[int]:
        return render(tokenizer, build_messages([*system, *history, question], records))

    ids = attempt()
    while len(ids) > max_input_tokens and history:
        history.pop(0)
        report.dropped_turns += 1
        ids = attempt()
    while len(ids) > max_input_tokens and len(records) > 1:
        report.dropped_records.insert(0, records.pop().id)
        ids = attempt()
    if len(ids) > max_input_tokens:
        question_ids = tokenizer(question.content, add_special_tokens=False)["input_ids"]
        keep = len(question_ids) - (len(ids) - max_input_tokens)
        if keep < 1:
            raise PromptTooLong(f"the prompt needs {len(ids)} tokens without the question's text; "
                                f"the input budget is {max_input_tokens}")
        # Decoding a cut token sequence may re-tokenise a little longer: shave until it fits.
        while keep >= 1:
            question = Message(question.role, tokenizer.decode(question_ids[:keep]))
            ids = attempt()
            if len(ids) <= max_input_tokens:
                break
            keep -= max(1, len(ids) - max_input_tokens)
        if len(ids) > max_input_tokens:
            raise PromptTooLong(f"the prompt does not fit in {max_input_tokens} tokens")
        report.question_tokens_cut = len(question_ids) - keep
    report.prompt_tokens = len(ids)
    return Prompt(ids, records, report)
