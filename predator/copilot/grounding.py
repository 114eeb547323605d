"""Grounding check: is each sentence of an answer supported by the records it cites?

Method (lexical, cheap, explainable): a sentence's *claims* are its content terms, less stop words,
citation markers and the terms of the question itself (restating the question claims nothing). Its
*evidence* is every field (name and value) of the records it cites; a sentence without a marker of its own is checked
against all records the answer cites. The score is the share of claims found in the evidence (words
compared on their first five letters, so that inflected forms match; numbers and codes exactly).
A sentence is supported when the score reaches the threshold and every claim that contains a digit
(codes, amounts, dates, ids) is found verbatim: a wrong number is the typical failure of a small model.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from predator.copilot.citations import MARKER, CitedAnswer, markers_in, parse_citations
from predator.copilot.prompt import RECORD_ID, ContextRecord

TERM = re.compile(r"\w+(?:[./#-]\w+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")
_STEM = 5
_LEADING_MARKERS = re.compile(rf"(?:{MARKER.pattern}[\s.,;:]*)+", re.IGNORECASE)

STOP_WORDS = frozenset("""
a an the of to in on at by for from with and or not no is are was were be been being it its this that these
those there here which who whom whose what when where why how as than then so such into about over under per
also only any all each other same both more most some can could may might will would shall should do does did
has have had i you he she we they them their our your his her my me us record records context answer question
based according given provided listed following data information declaration declarations і й та а але чи що
це цей ця ці той та також як з із зі до від на у в за по про для при не ні так є був була було були бути його
її їх він вона вони ми ви я який яка яке які запис записи записів відповідь питання згідно даними декларація
декларації
""".split())


@dataclass
class SentenceSupport:
    """One sentence of the answer and how well the records it cites support it."""

    text: str
    citations: list[int]
    score: float
    supported: bool
    claims: int
    unsupported_terms: list[str] = field(default_factory=list)


@dataclass
class Grounding:
    sentences: list[SentenceSupport]
    threshold: float
    method: str = "lexical"

    @property
    def supported_ratio(self) -> float:
        return sum(s.supported for s in self.sentences) / len(self.sentences) if self.sentences else 1.0

    @property
    def unsupported(self) -> int:
        return sum(not s.supported for s in self.sentences)

    def to_dict(self) -> dict:
        return {"method": self.method, "threshold": self.threshold, "supported_ratio": round(self.supported_ratio, 4),
                "unsupported": self.unsupported, "sentences": [asdict(s) for s in self.sentences]}


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; citation markers right after a sentence's end belong to that sentence."""
    out: list[str] = []
    for part in (p.strip() for p in _SENTENCE_END.split(text)):
        leading = _LEADING_MARKERS.match(part)
        if out and leading and leading.group(0).strip():
            out[-1] = f"{out[-1]} {leading.group(0).strip()}"
            part = part[leading.end():].strip()
        if part and MARKER.sub("", part).strip(" .,;:"):
            out.append(part)
        elif part and out:
            out[-1] = f"{out[-1]} {part}"
    return out


def terms(text: str) -> set[str]:
    """Lower-cased content terms of ``text`` (words, numbers, codes and ids kept whole)."""
    return {t for t in (m.group(0).lower().strip("._-/") for m in TERM.finditer(text)) if t and t not in STOP_WORDS}


def record_evidence(record: dict) -> str:
    """Every field of a record, name and value, as one text (nested values flattened).

    Field names count as evidence: "the origin is DE" is supported by ``origin_country: DE``.
    """
    values = []
    for name, value in record.items():
        values.append(name.replace("_", " "))
        if isinstance(value, (list, tuple)):
            values.extend(str(v) for v in value)
        elif isinstance(value, dict):
            values.extend(str(v) for v in value.values())
        elif value is not None:
            values.append(str(value))
    return " ".join(values)


def _key(term: str) -> str:
    return term[:_STEM] if term.isalpha() else term


def _sentence_refs(sentence: str, number_of: dict[str, int]) -> list[int]:
    refs = [int(r) for r in markers_in(sentence) if r.isdigit()]
    refs += [number_of[i] for i in RECORD_ID.findall(sentence) if i in number_of]
    return list(dict.fromkeys(refs))


def score_sentence(sentence: str, evidence: str, question: str) -> tuple[float, bool, int, list[str]]:
    """(score, supported-before-threshold-on-numbers, claim count, unsupported terms) of one sentence."""
    given = {_key(t) for t in terms(question)}
    claims = sorted({t for t in terms(MARKER.sub(" ", sentence)) if _key(t) not in given})
    if not claims:
        return 1.0, True, 0, []
    found = {_key(t) for t in terms(evidence)}
    missing = [t for t in claims if _key(t) not in found]
    numbers_ok = not any(any(ch.isdigit() for ch in t) for t in missing)
    return 1 - len(missing) / len(claims), numbers_ok, len(claims), missing


def check_grounding(answer: CitedAnswer, evidence: dict[int, str], question: str, threshold: float = 0.5,
                    record_ids: dict[str, int] | None = None) -> Grounding:
    """Score every sentence of ``answer.text`` against the records it cites.

    ``evidence`` maps context numbers to record texts (see :func:`record_evidence`); ``record_ids`` maps
    record ids to context numbers, so that an id written in a sentence counts as its citation.
    """
    number_of = record_ids or {}
    cited_anywhere = [c.number for c in answer.citations]
    sentences = []
    for sentence in split_sentences(answer.text):
        refs = _sentence_refs(sentence, number_of) or cited_anywhere
        text = " ".join(evidence.get(n, "") for n in refs)
        score, numbers_ok, claims, missing = score_sentence(sentence, text, question)
        sentences.append(SentenceSupport(sentence, refs, round(score, 4), numbers_ok and score >= threshold,
                                         claims, missing))
    return Grounding(sentences, threshold)


def verify_answer(raw: str, context: list[ContextRecord], records: dict[str, dict], question: str,
                  threshold: float) -> tuple[CitedAnswer, Grounding]:
    """Citations of a generated answer mapped onto ``context`` and every sentence's support.

    ``records`` holds the full records by id: the evidence is all their fields, not just the prompt line.
    """
    cited = parse_citations(raw, context)
    evidence = {r.number: record_evidence(records.get(r.id, {"id": r.id, "line": r.text})) for r in context}
    grounding = check_grounding(cited, evidence, question, threshold, {r.id: r.number for r in context})
    return cited, grounding
