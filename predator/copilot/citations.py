"""Citations in an answer: ``[n]`` markers (also ``[1, 2]``, ``[record 3]``, ``[<record id>]``) and record
ids written in the prose, mapped onto the numbered context.

A citation that points outside the context (a number past its end, an id it does not hold) is removed
from the answer text and from the citations, and counted: the client sees how often the model made one up.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from predator.copilot.prompt import RECORD_ID, ContextRecord

# "[1]", "[1, 2]", "[1; 3]", "[record 2]", "[UA100000/2023/000787#4]"
MARKER = re.compile(r"\[\s*(?:records?\s*)?((?:\d+|[A-Z]{2}\d{6}/\d{4}/\d{6}#\d+)"
                    r"(?:\s*[,;]\s*(?:\d+|[A-Z]{2}\d{6}/\d{4}/\d{6}#\d+))*)\s*\]", re.IGNORECASE)


@dataclass(frozen=True)
class Citation:
    number: int
    record_id: str


@dataclass
class CitedAnswer:
    """The answer with invalid markers removed, its valid citations (in order of first use), the removed count."""

    text: str
    citations: list[Citation]
    removed: int = 0
    removed_refs: list[str] = field(default_factory=list)


def _resolve(ref: str, by_number: dict[int, ContextRecord], by_id: dict[str, ContextRecord]) -> ContextRecord | None:
    if ref.isdigit():
        return by_number.get(int(ref))
    return by_id.get(ref)


def markers_in(text: str) -> list[str]:
    """Every reference inside citation markers of ``text`` (numbers or ids), in order."""
    return [ref.strip() for m in MARKER.finditer(text) for ref in re.split(r"[,;]", m.group(1))]


def parse_citations(answer: str, context: list[ContextRecord]) -> CitedAnswer:
    """Map the answer's markers and written ids onto ``context``; drop and count those outside it."""
    by_number = {r.number: r for r in context}
    by_id = {r.id: r for r in context}
    cited: dict[int, Citation] = {}
    removed: list[str] = []

    def rewrite(match: re.Match) -> str:
        kept = []
        for ref in (part.strip() for part in re.split(r"[,;]", match.group(1))):
            record = _resolve(ref, by_number, by_id)
            if record is None:
                removed.append(ref)
                continue
            cited.setdefault(record.number, Citation(record.number, record.id))
            kept.append(str(record.number))
        return f"[{', '.join(kept)}]" if kept else ""

    text = MARKER.sub(rewrite, answer)
    # Ids written in the prose cite their record; an id the context does not hold cites nothing.
    for written in RECORD_ID.findall(MARKER.sub("", text)):
        record = by_id.get(written)
        if record is None:
            removed.append(written)
        else:
            cited.setdefault(record.number, Citation(record.number, record.id))
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip()
    return CitedAnswer(text, list(cited.values()), len(removed), removed)
