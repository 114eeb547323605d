"""Training and held-out examples for fine-tuning the copilot's language model, in chat format.

Sources (``DataConfig.sources``):

- ``hs_closed``: an HS 2022 subheading description -> ``"0306 — Crustaceans"`` (heading code and short title).
- ``hs_rag``: the same description plus the top-k headings of the search core's HS suggester, shuffled;
  the model picks one and says why. The suggester that ranks a query never indexes that query's own
  text (held-out: an index without any held-out subheading; training: cross-fitted folds), and in
  training the gold heading is always a candidate at a uniformly random position, so echoing the
  first candidate earns nothing (RAY_NOTES: a model trained on retriever order learned to echo it).
- ``declarations``: questions (English and Ukrainian) about declaration records, in the copilot's own
  prompt (``predator.copilot.prompt``: instructions and numbered record lines in the system message, the
  question as the user's), answered with the field value and a citation ``[n]``.
- ``feedback``: analyst verdicts on copilot answers (format: :mod:`train.feedback`).

Every item has a stable key; it is held out when a hash of (seed, key) falls below ``heldout_fraction``,
so the split never depends on order or on the other items. HS items are keyed by subheading code in
both HS sources: a subheading held out of one is held out of the other.
"""
from __future__ import annotations

import collections
import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from predator.settings import Settings

Source = Literal["hs_closed", "hs_rag", "declarations", "feedback"]

# No year in the prompts: the base model answered "HS 2022" as if it were the code.
SYSTEM_HS = "Classify goods by their HS heading. Reply with the 4-digit heading code and its title."
SYSTEM_HS_RAG = ("Classify goods by their HS heading. Pick the right heading among the candidates "
                 "(or name the right one if none fits) and say briefly why.")


class DataConfig(BaseModel, extra="forbid"):
    """What the training data is made of (the ``data:`` block of a training recipe)."""

    sources: list[Source] = Field(["hs_rag", "hs_closed"], min_length=1, description="Example sources, in order.")
    heldout_fraction: float = Field(0.1, gt=0, lt=1, description="Share of keys held out (hash of seed and key).")
    seed: int = Field(0, description="Seeds the split, caps, candidate order, questions and the generated sample.")
    max_train_examples: int | None = Field(
        None, ge=1, description="Cap per source on training examples (a hash-ordered, stable subset); null: all.")
    max_heldout_examples: int | None = Field(200, ge=1, description="Cap per source on held-out examples.")
    rag_candidates: int = Field(5, ge=2, le=10, description="Candidate headings shown in an hs_rag prompt.")
    rag_retriever: Literal["hybrid", "keyword"] = Field(
        "hybrid", description="HS suggester mode: hybrid (BM25 + MiniLM, as search does) or keyword (BM25, no model).")
    rag_folds: int = Field(
        5, ge=2, description="Folds for training candidates: each fold is ranked by an index without its own texts.")
    description_chars: int = Field(160, ge=20, description="Goods descriptions are cut to this many characters.")
    title_chars: int = Field(60, ge=10, description="Heading titles (first clause) are cut to this many characters.")
    declarations_path: str | None = Field(
        None, description="Records file (parquet/CSV/JSONL/XLSX, any export the ingest reads); "
                          "default: the live index's records.parquet, else a generated sample.")
    sample_rows: int = Field(3000, ge=1, description="Rows of the generated sample when there is no index.")
    declaration_questions: int = Field(
        2000, ge=1, description="Records (hash-ordered) that get one question each, before the split.")
    declaration_context: int = Field(3, ge=1, le=8, description="Most records shown in one question's context.")
    feedback_path: str | None = Field(None, description="Analyst feedback JSONL (format: train/feedback.py).")
    feedback_skip_bad_lines: bool = Field(
        False, description="Skip and count malformed feedback lines instead of failing with their line numbers.")

    @model_validator(mode="after")
    def _feedback_needs_a_file(self) -> DataConfig:
        if "feedback" in self.sources and not self.feedback_path:
            raise ValueError("source 'feedback' needs data.feedback_path (a JSONL file)")
        return self


class EmptyDataset(ValueError):
    """A source produced no example, or the training split is empty."""


@dataclass(frozen=True)
class Example:
    """One chat-format example; the last message is the assistant's target, ``answer`` what accuracy checks."""

    id: str
    task: str
    messages: list[dict]
    answer: str


@dataclass(frozen=True)
class DatasetBundle:
    """Train and held-out examples, their content hash, counts per source and retriever baselines."""

    train: list[Example]
    heldout: list[Example]
    content_hash: str
    counts: dict[str, dict[str, int]]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class _Part:
    train: list[Example]
    heldout: list[Example]
    counts: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def build(cfg: DataConfig, settings: Settings, progress: Callable[[str], None] | None = None, *,
          heldout_only: bool = False) -> DatasetBundle:
    """Build every configured source, split and capped; deterministic for a config and its input data.

    ``heldout_only`` skips the training examples (evaluation needs only the held-out ones).
    Raises :class:`EmptyDataset` when a source yields nothing or the training split is empty, and
    FileNotFoundError when a configured declarations or feedback file is missing.
    """
    say = progress or (lambda message: None)
    builders = {"hs_closed": _hs_closed, "hs_rag": _hs_rag, "declarations": _declarations, "feedback": _feedback}
    train, heldout, counts, metrics = [], [], {}, {}
    for source in dict.fromkeys(cfg.sources):
        part = builders[source](cfg, settings, say, heldout_only)
        if not part.train and not part.heldout:
            raise EmptyDataset(f"data source {source!r} yielded no {'held-out ' if heldout_only else ''}examples")
        train += part.train
        heldout += part.heldout
        counts[source] = {"train": len(part.train), "heldout": len(part.heldout), **part.counts}
        metrics.update({f"{source}.{name}": value for name, value in part.metrics.items()})
        say(f"{source}: {len(part.train)} train / {len(part.heldout)} held-out examples")
    if not train and not heldout_only:
        raise EmptyDataset(f"the training split is empty (sources {', '.join(cfg.sources)}, "
                           f"heldout_fraction {cfg.heldout_fraction})")
    # Mixed order (by a hash of the id): tasks interleave, and taking the first N of a task is a fair sample.
    train.sort(key=lambda e: _digest(cfg.seed, "order", e.id))
    heldout.sort(key=lambda e: _digest(cfg.seed, "order", e.id))
    return DatasetBundle(train, heldout, content_hash(train, heldout), counts, metrics)


def content_hash(train: list[Example], heldout: list[Example]) -> str:
    """sha256 of the canonical JSON of both splits: equal exactly when the examples are equal."""
    payload = {"train": [asdict(e) for e in train], "heldout": [asdict(e) for e in heldout]}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def is_heldout(cfg: DataConfig, key: str) -> bool:
    """Whether the item with this key belongs to the held-out split."""
    return _digest(cfg.seed, "split", key) / 2**64 < cfg.heldout_fraction


def _digest(seed: int, purpose: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{purpose}:{key}".encode()).digest()[:8], "big")


def _capped(items: list, key: Callable, limit: int | None, seed: int) -> list:
    """At most ``limit`` items, a stable pseudo-random subset (by hash of seed and key)."""
    ordered = sorted(items, key=lambda item: _digest(seed, "cap", key(item)))
    return ordered if limit is None else ordered[:limit]


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


# ---- HS nomenclature -----------------------------------------------------------------------------

@dataclass(frozen=True)
class HsItem:
    """A subheading as a question: its code (the key), its heading, the description shown."""

    code: str
    heading: str
    text: str


def hs_items(cfg: DataConfig) -> tuple[list[HsItem], dict[str, str], int]:
    """Subheadings whose text (full and shortened) is unique, heading titles, and how many were dropped.

    A text that occurs twice either names two headings (unanswerable) or repeats its heading's own
    title (a subheading "XX00"): held out, it would still be found verbatim in the index.
    """
    from predator.hs_suggest import nomenclature_texts

    texts, titles = nomenclature_texts()
    occurrences = collections.Counter(t.text for t in texts)
    subheadings = [t for t in texts if t.source != "heading"]
    items = [HsItem(t.source, t.heading, _shorten(t.text, cfg.description_chars))
             for t in subheadings if occurrences[t.text] == 1]
    shown = collections.Counter(i.text for i in items)  # long texts may agree in their first characters
    items = [i for i in items if shown[i.text] == 1]
    return items, titles, len(subheadings) - len(items)


def short_title(title: str, limit: int) -> str:
    """First clause of a heading title, cut at a word boundary: enough to recognise it, cheap in tokens."""
    return _shorten(title.split(";")[0], limit)


def _split_hs(cfg: DataConfig, items: list[HsItem], task: str) -> tuple[list[HsItem], list[HsItem]]:
    train = [i for i in items if not is_heldout(cfg, i.code)]
    heldout = [i for i in items if is_heldout(cfg, i.code)]

    def key(item: HsItem) -> str:  # per task: the two HS sources cap different subsets
        return f"{task}:{item.code}"

    return (_capped(train, key, cfg.max_train_examples, cfg.seed),
            _capped(heldout, key, cfg.max_heldout_examples, cfg.seed))


def _hs_closed(cfg: DataConfig, settings: Settings, say, heldout_only: bool) -> _Part:
    items, titles, dropped = hs_items(cfg)
    train, heldout = _split_hs(cfg, items, "hs_closed")

    def example(item: HsItem) -> Example:
        target = f"{item.heading} — {short_title(titles[item.heading], cfg.title_chars)}"
        messages = [{"role": "system", "content": SYSTEM_HS},
                    {"role": "user", "content": f"Goods: {item.text}\nHS heading?"},
                    {"role": "assistant", "content": target}]
        return Example(f"hs_closed:{item.code}", "hs_closed", messages, item.heading)

    return _Part([] if heldout_only else [example(i) for i in train], [example(i) for i in heldout],
                 {"duplicate_texts_dropped": dropped})


class HsRetriever:
    """The search core's HS suggester over chosen parts of the nomenclature, ranking query texts."""

    def __init__(self, cfg: DataConfig, settings: Settings):
        from predator.hs_suggest import cached_embeddings, nomenclature_texts

        self.texts, self.titles = nomenclature_texts()
        self.mode = cfg.rag_retriever
        if self.mode == "hybrid":
            from predator.embedder import Embedder

            self.embedder = Embedder(settings.embedding_model, threads=settings.torch_threads,
                                     max_tokens=settings.embedding_max_tokens)
            cache = settings.hs_cache_dir or settings.data_dir / "cache"
            self.vectors = cached_embeddings(self.embedder, [t.text for t in self.texts], cache)
        else:
            self.embedder = None
            self.vectors = np.zeros((len(self.texts), 0), dtype=np.float32)
        self._by_text = {t.text: i for i, t in enumerate(self.texts)}

    def index(self, exclude: set[str]):
        """An HsSuggester without the texts of the ``exclude`` subheading codes."""
        from predator.hs_suggest import HsSuggester

        keep = [i for i, t in enumerate(self.texts) if t.source not in exclude]
        return HsSuggester(self.embedder, [self.texts[i] for i in keep], self.vectors[keep], self.titles)

    def query_vectors(self, queries: list[str]) -> list[np.ndarray | None]:
        """Embeddings of the queries: a nomenclature text reuses its cached vector, a shortened one is embedded."""
        if self.embedder is None:
            return [None] * len(queries)
        missing = sorted({q for q in queries if q not in self._by_text})
        fresh = dict(zip(missing, self.embedder.encode(missing)))
        return [self.vectors[self._by_text[q]] if q in self._by_text else fresh[q] for q in queries]

    def top(self, suggester, query: str, vector: np.ndarray | None, k: int) -> list[str]:
        """The k best headings for a query, best first (fusion as in ``HsSuggester.suggest``)."""
        from predator.hs_suggest import DEFAULT_FUSION, DEFAULT_SEMANTIC_WEIGHT

        scores = suggester.heading_scores(query, vector, with_keyword=True)
        ranked = suggester.rank(scores, self.mode, DEFAULT_FUSION, DEFAULT_SEMANTIC_WEIGHT)
        return [s.heading for s in ranked[:k]]


def _padded(ranked: list[str], k: int, gold: str, titles: dict[str, str], rng: random.Random) -> list[str]:
    """Fill a short ranking (BM25 can match few headings) with random other headings, never the gold one:
    a list of one candidate would always put the answer first."""
    if len(ranked) >= k:
        return ranked
    others = [h for h in sorted(titles) if h != gold and h not in ranked]
    return ranked + rng.sample(others, k - len(ranked))


_STOPWORDS = frozenset("other than with without whether their thereof those these such from into parts "
                       "articles products kind used heading chapter being made including excluding".split())


def _reason(description: str, title: str) -> str:
    """Why the gold heading fits: description words its title shares (by 5-letter stem), else a plain phrase."""
    stems = {w[:5] for w in re.findall(r"[a-z]{4,}", title.lower()) if w not in _STOPWORDS}
    shared = [w for w in dict.fromkeys(re.findall(r"[a-z]{4,}", description.lower()))
              if w not in _STOPWORDS and w[:5] in stems]
    return f"matches '{' '.join(shared[:3])}'" if shared else "closest in meaning to the goods"


def _hs_rag(cfg: DataConfig, settings: Settings, say, heldout_only: bool) -> _Part:
    from threadpoolctl import threadpool_limits

    # One BLAS thread: thousands of small matrix-vector products ran 5x slower with two threads on a
    # busy 2-core machine (7 ms against 1.3 ms a query), the threads waiting on each other.
    with threadpool_limits(limits=1, user_api="blas"):
        return _hs_rag_examples(cfg, settings, say, heldout_only)


def _hs_rag_examples(cfg: DataConfig, settings: Settings, say, heldout_only: bool) -> _Part:
    items, titles, dropped = hs_items(cfg)
    train_items, heldout_items = _split_hs(cfg, items, "hs_rag")
    say(f"hs_rag: ranking candidates with the {cfg.rag_retriever} HS suggester")
    retriever = HsRetriever(cfg, settings)
    # Held-out queries: an index without any held-out subheading (as bench/retrieval.py's test split).
    heldout_codes = {i.code for i in items if is_heldout(cfg, i.code)}
    k = cfg.rag_candidates
    heldout, hits, recalled = [], 0, 0
    index = retriever.index(heldout_codes)
    for item, vector in zip(heldout_items, retriever.query_vectors([i.text for i in heldout_items])):
        ranked = retriever.top(index, item.text, vector, k)
        hits += bool(ranked) and ranked[0] == item.heading
        recalled += item.heading in ranked
        heldout.append(_rag_example(cfg, item, ranked, titles))
    train, injected = [], 0
    if not heldout_only:
        # Training queries: each fold is ranked by an index without that fold's (and held-out) texts, so
        # candidates look like held-out ones, not like a self-match that is always right.
        fold_of = {i.code: _digest(cfg.seed, "fold", i.code) % cfg.rag_folds for i in items}
        for fold in range(cfg.rag_folds):
            members = [i for i in train_items if fold_of[i.code] == fold]
            if not members:
                continue
            index = retriever.index(heldout_codes | {c for c, f in fold_of.items() if f == fold})
            for item, vector in zip(members, retriever.query_vectors([i.text for i in members])):
                ranked = retriever.top(index, item.text, vector, k)
                if item.heading not in ranked:
                    ranked = ranked[:k - 1] + [item.heading]
                    injected += 1
                train.append(_rag_example(cfg, item, ranked, titles))
    n = len(heldout) or 1
    counts = {"duplicate_texts_dropped": dropped, "retriever_top1_hits": hits, "gold_in_candidates_heldout": recalled,
              "gold_injected_train": injected}
    metrics = {"retriever_top1_accuracy": hits / n, "retriever_recall_at_k": recalled / n}
    say(f"hs_rag: retriever top-1 on held-out {hits / n:.3f}, gold among {k} candidates {recalled / n:.3f}")
    return _Part(train, heldout, counts, metrics)


def _rag_example(cfg: DataConfig, item: HsItem, ranked: list[str], titles: dict[str, str]) -> Example:
    rng = random.Random(f"{cfg.seed}:hs_rag:{item.code}")
    candidates = _padded(ranked, cfg.rag_candidates, item.heading, titles, rng)
    rng.shuffle(candidates)  # no position carries the answer
    listed = "\n".join(f"{h} — {short_title(titles[h], cfg.title_chars)}" for h in candidates)
    user = f"Goods: {item.text}\nCandidates:\n{listed}\nWhich heading?"
    target = (f"{item.heading} — {short_title(titles[item.heading], cfg.title_chars)}; "
              f"{_reason(item.text, titles[item.heading])}")
    messages = [{"role": "system", "content": SYSTEM_HS_RAG},
                {"role": "user", "content": user},
                {"role": "assistant", "content": target}]
    return Example(f"hs_rag:{item.code}", "hs_rag", messages, item.heading)


# ---- declarations --------------------------------------------------------------------------------

# field -> language -> (question, target); {value} is the answer, {name} its label. Questions name the
# record by its id, as the copilot's context lines start with it; answer and citation come first.
_QUESTIONS = {
    "hs_code": {"en": ("Which HS code was declared in declaration {id}?", "HS code {value} [{n}]."),
                "uk": ("Який код УКТЗЕД задекларовано в декларації {id}?", "Код УКТЗЕД {value} [{n}].")},
    "origin_country": {"en": ("What is the country of origin in declaration {id}?", "{value}{name} [{n}]."),
                       "uk": ("Яка країна походження в декларації {id}?", "{value}{name} [{n}].")},
    "importer": {"en": ("Which importer filed declaration {id}?", "The importer with EDRPOU {value} [{n}]."),
                 "uk": ("Який імпортер у декларації {id}?", "Імпортер з ЄДРПОУ {value} [{n}].")},
    "customs_value_usd": {"en": ("What is the customs value of declaration {id}?", "${value} [{n}]."),
                          "uk": ("Яка митна вартість декларації {id}?", "{value} дол. США [{n}].")},
}


def _field_value(doc: dict, name: str, lang: str) -> tuple[str, str] | None:
    """(answer as the copilot's context line writes it, label for the target), or None when absent."""
    from predator.countries import country_name

    if name == "hs_code":
        return (doc["hs_code"], "") if doc.get("hs_code") else None
    if name == "origin_country":
        code = doc.get("origin_country")
        label = country_name(code, lang) if code else None
        return (code, f" ({label})" if label else "") if code else None
    if name == "importer":
        # An export carries the Ukrainian exporter's code in importer_code: no importer question there.
        ok = doc.get("direction") != "export" and doc.get("importer_code")
        return (doc["importer_code"], "") if ok else None
    value = doc.get("customs_value_usd")
    return (f"{float(value):.0f}", "") if value is not None else None  # the context line shows "$12416"


def load_records(cfg: DataConfig, settings: Settings) -> tuple[list[dict], str]:
    """Declaration records as documents, and where they came from.

    ``declarations_path`` if set (any format the ingest reads), else the live index's records table,
    else a sample generated with ``cfg.seed`` (deterministic).
    """
    from predator.index_layout import IndexLayout, records_path

    if cfg.declarations_path:
        path = Path(cfg.declarations_path)
        if not path.is_file():
            raise FileNotFoundError(f"declarations file {path} does not exist")
        return _read_records(path), str(path)
    version = IndexLayout(settings.index_dir).current()
    if version and records_path(settings.index_dir, version).is_file():
        path = records_path(settings.index_dir, version)
        return _read_records(path), str(path)
    from predator.sample import generate

    records, _ = generate(cfg.sample_rows, seed=cfg.seed)
    return [r.to_document() for r in records], f"generated sample ({cfg.sample_rows} rows, seed {cfg.seed})"


def _read_records(path: Path) -> list[dict]:
    from predator.normalise import normalise_rows
    from predator.readers import read_rows

    records, _ = normalise_rows(read_rows(path))  # rows the ingest would quarantine are not questions
    return [r.to_document() for r in records]


def _declarations(cfg: DataConfig, settings: Settings, say, heldout_only: bool) -> _Part:
    docs, origin = load_records(cfg, settings)
    say(f"declarations: {len(docs)} records from {origin}")
    if not docs:
        raise EmptyDataset(f"data source 'declarations': no valid records in {origin}")
    chosen = _capped(docs, lambda d: d["id"], cfg.declaration_questions, cfg.seed)
    examples = [e for e in (_question(cfg, doc, docs) for doc in chosen) if e is not None]
    # Split by declaration: every line of one declaration is on the same side.
    train = [e for e, d in examples if not is_heldout(cfg, d["declaration_id"])]
    heldout = [e for e, d in examples if is_heldout(cfg, d["declaration_id"])]
    return _Part([] if heldout_only else _capped(train, lambda e: e.id, cfg.max_train_examples, cfg.seed),
                 _capped(heldout, lambda e: e.id, cfg.max_heldout_examples, cfg.seed), {"records": len(docs)})


def _copilot_messages(records: list, question: str) -> list[dict]:
    """System (instructions and numbered records) and user messages exactly as the copilot builds them."""
    from predator.copilot.prompt import Message, build_messages

    return build_messages([Message("user", question)], records)


def _question(cfg: DataConfig, doc: dict, pool: list[dict]) -> tuple[Example, dict] | None:
    from predator.copilot.prompt import context_records

    rng = random.Random(f"{cfg.seed}:declarations:{doc['id']}")
    lang = rng.choice(("en", "uk"))
    answerable = [name for name in _QUESTIONS if _field_value(doc, name, lang)]
    if not answerable:
        return None
    name = rng.choice(answerable)
    value, label = _field_value(doc, name, lang)
    # Other records in the context come from other declarations and hold another value for the field,
    # so exactly one record answers the question.
    others, wanted = [], rng.randint(0, cfg.declaration_context - 1)
    for _ in range(8 * wanted):  # bounded: a tiny pool may not have enough distinct records
        if len(others) == wanted:
            break
        other = rng.choice(pool)
        found = _field_value(other, name, lang)
        if other["declaration_id"] != doc["declaration_id"] and (found is None or found[0] != value) \
                and other not in others:
            others.append(other)
    context = others + [doc]
    rng.shuffle(context)
    n = context.index(doc) + 1
    question, target = _QUESTIONS[name][lang]
    messages = _copilot_messages(context_records(context), question.format(id=doc["id"]))
    messages.append({"role": "assistant", "content": target.format(value=value, name=label, n=n)})
    return Example(f"declarations:{doc['id']}", "declarations", messages, value), doc


# ---- analyst feedback ----------------------------------------------------------------------------

def _feedback(cfg: DataConfig, settings: Settings, say, heldout_only: bool) -> _Part:
    from train.feedback import read_feedback

    records, bad = read_feedback(cfg.feedback_path, skip_bad_lines=cfg.feedback_skip_bad_lines)
    usable = [r for r in records if r.target]
    say(f"feedback: {len(records)} records ({len(records) - len(usable)} rejected without correction, "
        f"{len(bad)} bad lines skipped)")
    if not usable:
        raise EmptyDataset(f"data source 'feedback': no accepted or corrected answer in {cfg.feedback_path}")
    examples = {}
    for record in usable:  # a later verdict on the same key replaces an earlier one
        examples[record.key] = _feedback_example(record)
    train = [e for key, e in examples.items() if not is_heldout(cfg, key)]
    heldout = [e for key, e in examples.items() if is_heldout(cfg, key)]
    counts = {"records": len(records), "rejected_skipped": len(records) - len(usable), "bad_lines_skipped": len(bad)}
    return _Part([] if heldout_only else _capped(train, lambda e: e.id, cfg.max_train_examples, cfg.seed),
                 _capped(heldout, lambda e: e.id, cfg.max_heldout_examples, cfg.seed), counts)


def _feedback_example(record) -> Example:
    from predator.copilot.prompt import ContextRecord, record_line

    records = []
    for number, item in enumerate(record.context, start=1):
        if isinstance(item, dict):  # a declaration record: the copilot's context line
            item = {"id": f"{item.get('declaration_id', '?')}#{item.get('line_no', '?')}", **item}
            records.append(ContextRecord(number, item["id"], record_line(item)))
        else:  # a text passage, as it is
            records.append(ContextRecord(number, "", " ".join(item.split())))
    messages = _copilot_messages(records, record.question)
    messages.append({"role": "assistant", "content": record.target})
    return Example(f"feedback:{record.key}", "feedback", messages, (record.short_answer or record.target).strip())
