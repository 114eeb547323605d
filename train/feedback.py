"""Analyst feedback on copilot answers, as JSON lines, turned into training examples.

One JSON object per line (blank lines are ignored; unknown keys are ignored)::

    {"question": "Яка країна походження в декларації UA100000/2024/001121, товар 2?",
     "answer": "PL [1]",                       # what the copilot answered
     "verdict": "corrected",                   # accepted | corrected | rejected
     "corrected_answer": "ES (Іспанія) [1]",   # required when verdict is corrected
     "short_answer": "ES",                     # optional: what accuracy checks for (default: the final answer)
     "context": [{"declaration_id": "UA100000/2024/001121", "line_no": 2, "origin_country": "ES", ...},
                 "or a plain text passage"],   # optional: what the copilot was shown
     "record_ids": ["UA100000/2024/001121#2"], # optional: traceability and the split key
     "id": "fb-000123", "analyst": "o.kovalenko", "created_at": "2024-12-31T10:00:00Z"}   # optional

``accepted`` keeps the copilot's answer as the target, ``corrected`` uses ``corrected_answer``, and
``rejected`` (wrong, no correction given) teaches nothing: such lines are counted and skipped.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class FeedbackFormatError(ValueError):
    """Lines of a feedback file that do not follow the format; ``errors`` is [(line number, reason)]."""

    def __init__(self, path: Path, errors: list[tuple[int, str]]):
        self.path = path
        self.errors = errors
        shown = "; ".join(f"line {line}: {reason}" for line, reason in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(f"{path}: {len(errors)} bad feedback line(s): {shown}{more}")


class FeedbackRecord(BaseModel):
    """One analyst verdict on one copilot answer."""

    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1)
    answer: str = ""
    verdict: Literal["accepted", "corrected", "rejected"]
    corrected_answer: str | None = None
    short_answer: str | None = None
    context: list[str | dict] = Field(default_factory=list)
    record_ids: list[str] = Field(default_factory=list)
    id: str | None = None
    analyst: str | None = None
    created_at: dt.datetime | None = None

    @model_validator(mode="after")
    def _has_target(self) -> FeedbackRecord:
        if self.verdict == "corrected" and not (self.corrected_answer or "").strip():
            raise ValueError("verdict 'corrected' needs a non-empty corrected_answer")
        if self.verdict == "accepted" and not self.answer.strip():
            raise ValueError("verdict 'accepted' needs a non-empty answer")
        return self

    @property
    def target(self) -> str | None:
        """The answer to learn: the accepted one, the correction, or None for a bare rejection."""
        if self.verdict == "rejected":
            return None
        return (self.corrected_answer if self.verdict == "corrected" else self.answer).strip()

    @property
    def key(self) -> str:
        """Stable identity (split key): the given id, else a digest of question, records and context."""
        if self.id:
            return self.id
        content = json.dumps([self.question, self.record_ids, self.context], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(content.encode()).hexdigest()[:16]


def read_feedback(path: str | Path, skip_bad_lines: bool = False) -> tuple[list[FeedbackRecord], list[tuple[int, str]]]:
    """Parse a feedback JSONL file; returns (records, bad lines as (line number, reason)).

    Bad lines raise :class:`FeedbackFormatError` listing every one of them, unless ``skip_bad_lines``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feedback file {path} does not exist")
    records, errors = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(FeedbackRecord.model_validate(json.loads(line)))
            except json.JSONDecodeError as err:
                errors.append((number, f"not JSON ({err.msg})"))
            except ValidationError as err:
                errors.append((number, "; ".join(_reason(e) for e in err.errors())))
    if errors and not skip_bad_lines:
        raise FeedbackFormatError(path, errors)
    return records, errors


def _reason(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]
