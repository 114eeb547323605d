"""Risk scoring of declarations: three detectors, each flag with a score and a reason a person can read.

Plain Python over document dicts (``Declaration.to_document()``); the Ray side is ``ingest/risk_stage.py``.

Detectors (thresholds in :class:`RiskConfig`, defaults in ``predator/risk.yaml``):

``undervaluation``
    The unit price (customs value USD per kg, and per unit of ``quantity`` where the unit is not a
    weight) is compared with the price distribution of its group, on a log10 scale with robust
    statistics: median and MAD. The group is heading x origin country when that group has at least
    ``min_origin_n`` priced records, else the heading when it has at least ``min_heading_n``; with
    less data the record is not judged. A basis finds the price low when it is at least
    ``undervaluation_min_drop`` below the median AND its robust z-score
    ``(log p - median) / (1.4826 * max(MAD, min_mad_log10))`` is at most ``-undervaluation_z``; the
    record is flagged when every basis with enough data (per kg, per unit) finds it low.
    Score = the drop (0.97 for "97% below the median").

``misclassification``
    The goods description goes through the HS suggestion of the search core (any callable
    ``descriptions -> ranked (heading, score) lists``; ``misclass_mode`` keyword by default, see
    :func:`suggester_fn`). Flagged when the declared heading is not among the
    first ``misclass_rank`` suggestions and its chapter is not among the chapters of the first
    ``misclass_chapter_rank`` suggestions (a near miss inside the right chapter is the suggester's
    uncertainty, not evidence). Score 1.0 when the declared heading is not in the ``misclass_depth``
    suggestions requested at all, else it grows linearly with its rank from 0.5 (just past the cut).
    A description the suggester cannot ground (no word of it in the English nomenclature, e.g. a
    Ukrainian one) is judged by the data instead (:func:`consensus_flag`): flagged when at most
    ``consensus_max_share`` of the >= ``consensus_min_n`` declarations with the same goods phrase use
    its chapter while another chapter leads.

``new_mass_importer``
    An importer (ЄДРПОУ code) is *new* when its first declaration line is at most
    ``new_importer_days`` before the latest date in the data, and *mass* when it has at least
    ``mass_min_lines`` lines and its customs value per 30 days of activity (activity span floored at
    30 days) reaches the ``mass_volume_quantile`` of the same rate over *established* importers
    (first line older than that). Every line of such an importer is flagged.
    Score = rate / (rate + threshold rate): 0.5 at the threshold, 0.8 at four times it.

Combined level (``risk_level``): ``high`` when any flag scores at least ``high_score`` or at least
two detectors flag the record; ``medium`` when any detector flags it; ``low`` otherwise.

Statistics (:class:`RiskStats`) are mergeable: unit prices are kept as sparse histograms of log10
price with bins of ``PRICE_BIN`` (0.23% wide, well below what a reason prints), and importers as
first/last date, line count and value, and goods phrases as counts of declared chapters. Stats of
two blocks merged equal the stats of their union, so they are computed per block on Ray Data and
combined, and updated with the stats of new data. (A re-ingested record would count twice in a
merge: after an ingest, recompute over all current records, see ``ingest.risk_stage.rescore_all``.)
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import yaml

UNDERVALUATION = "undervaluation"
MISCLASSIFICATION = "misclassification"
NEW_MASS_IMPORTER = "new_mass_importer"
DETECTORS = (UNDERVALUATION, MISCLASSIFICATION, NEW_MASS_IMPORTER)

PRICE_BIN = 0.001  # log10 units per histogram bin: a factor of 1.0023
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
# Units that measure weight: a per-unit price in them would repeat the per-kg test.
_WEIGHT_UNITS = frozenset({"kg", "кг", "kgm", "g", "г", "t", "т", "tonne", "ton"})

_FIRST_CLAUSE = re.compile(r"[,;:.(]")
_DESCRIPTION_KEY_CHARS = 60

CONFIG_PATH = Path(__file__).with_name("risk.yaml")

Ranked = Sequence[tuple[str, float]]
"""Ranked HS suggestions for one description: ``(heading, score)``, best first."""
SuggestMany = Callable[[Sequence[str]], list[Ranked]]
"""Descriptions in, one ranked suggestion list per description out."""


@dataclass(frozen=True)
class RiskConfig:
    """Every threshold of the detectors and of the combined level (see the module docstring)."""

    min_heading_n: int = 10
    min_origin_n: int = 30
    undervaluation_min_drop: float = 0.5
    undervaluation_z: float = 3.5
    min_mad_log10: float = 0.02
    mad_prior_n: int = 20
    misclass_depth: int = 10
    misclass_rank: int = 5
    misclass_chapter_rank: int = 3
    misclass_min_chars: int = 3
    misclass_mode: str = "keyword"
    consensus_min_n: int = 20
    consensus_max_share: float = 0.05
    new_importer_days: int = 30
    mass_min_lines: int = 10
    mass_volume_quantile: float = 0.9
    high_score: float = 0.8

    @classmethod
    def load(cls, path: str | Path | None = None) -> RiskConfig:
        """Thresholds from a YAML mapping (default ``predator/risk.yaml``); missing keys keep defaults."""
        raw = yaml.safe_load(Path(path or CONFIG_PATH).read_text()) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown risk settings: {', '.join(sorted(unknown))}")
        return cls(**raw)


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class PriceSummary:
    """Robust summary of one price group: median and MAD of log10 price, and its size."""

    n: int
    median_log: float
    mad_log: float

    @property
    def median(self) -> float:
        return 10 ** self.median_log


@dataclass
class ImporterActivity:
    """What the new-mass-importer detector needs of one importer; merges by min/max/sum."""

    first_date: str
    last_date: str
    lines: int = 0
    value_usd: float = 0.0

    def merge(self, other: ImporterActivity) -> None:
        self.first_date = min(self.first_date, other.first_date)
        self.last_date = max(self.last_date, other.last_date)
        self.lines += other.lines
        self.value_usd += other.value_usd

    def rate_per_30_days(self) -> float:
        """Customs value per 30 days of activity; spans under 30 days count as 30 (no inflation)."""
        return self.value_usd * 30 / max(30, _days_between(self.first_date, self.last_date) + 1)


@dataclass
class RiskStats:
    """Mergeable statistics of a set of documents: price histograms per group and importer activity.

    Price group keys: ``"kg|<heading>"``, ``"kg|<heading>|<origin>"``, ``"unit|<heading>|<unit>"``.
    """

    prices: dict[str, Counter] = field(default_factory=dict)
    importers: dict[str, ImporterActivity] = field(default_factory=dict)
    latest_date: str | None = None
    descriptions: dict[str, Counter] = field(default_factory=dict)  # description key -> declared chapters
    _summaries: dict[str, PriceSummary] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_documents(cls, docs: Iterable[dict]) -> RiskStats:
        """Statistics over ``docs``."""
        stats = cls()
        for doc in docs:
            stats.add(doc)
        return stats

    def add(self, doc: dict) -> None:
        """Count one document in."""
        self._summaries.clear()
        for key, price in price_points(doc):
            self.prices.setdefault(key, Counter())[_bin(price)] += 1
        key = description_key(doc.get("goods_description"))
        if key and doc.get("hs_chapter"):
            self.descriptions.setdefault(key, Counter())[doc["hs_chapter"]] += 1
        self._add_importer(doc)

    def _add_importer(self, doc: dict) -> None:
        day, code = doc.get("date"), doc.get("importer_code")
        if not day:
            return
        day = str(day)[:10]
        self.latest_date = max(self.latest_date or day, day)
        if not code or doc.get("direction", "import") != "import":
            return
        activity = ImporterActivity(day, day, 1, float(doc.get("customs_value_usd") or 0.0))
        if code in self.importers:
            self.importers[code].merge(activity)
        else:
            self.importers[code] = activity

    def merge(self, other: RiskStats) -> RiskStats:
        """Add ``other`` into this (in place) and return this: stats of the union of both inputs."""
        self._summaries.clear()
        for key, hist in other.prices.items():
            self.prices.setdefault(key, Counter()).update(hist)
        for key, chapters in other.descriptions.items():
            self.descriptions.setdefault(key, Counter()).update(chapters)
        for code, activity in other.importers.items():
            if code in self.importers:
                self.importers[code].merge(activity)
            else:
                self.importers[code] = ImporterActivity(**asdict(activity))
        if other.latest_date:
            self.latest_date = max(self.latest_date or other.latest_date, other.latest_date)
        return self

    def summary(self, key: str) -> PriceSummary | None:
        """Median and MAD of a price group, or None for a group never seen (cached until stats change)."""
        if key not in self._summaries:
            hist = self.prices.get(key)
            if not hist:
                return None
            self._summaries[key] = self._summarise(hist)
        return self._summaries[key]

    def pooled_mad(self, min_n: int) -> float | None:
        """Median MAD (log10) of the per-kg heading groups with at least ``min_n`` records: the typical spread."""
        mads = sorted(s.mad_log for key in self.prices if key.startswith("kg|") and key.count("|") == 1
                      for s in [self.summary(key)] if s.n >= min_n)
        return mads[len(mads) // 2] if mads else None

    @staticmethod
    def _summarise(hist: Counter) -> PriceSummary:
        bins = sorted(hist.items())
        median_bin = _weighted_median(bins)
        deviations = Counter()
        for b, count in bins:
            deviations[abs(b - median_bin)] += count
        mad_bins = _weighted_median(sorted(deviations.items()))
        return PriceSummary(sum(hist.values()), _centre(median_bin), mad_bins * PRICE_BIN)

    def to_dict(self) -> dict:
        """JSON-serialisable form (store it next to an index version)."""
        return {
            "prices": {key: {str(b): c for b, c in hist.items()} for key, hist in self.prices.items()},
            "importers": {code: asdict(a) for code, a in self.importers.items()},
            "latest_date": self.latest_date,
            "descriptions": {key: dict(chapters) for key, chapters in self.descriptions.items()},
        }

    @classmethod
    def from_dict(cls, raw: dict) -> RiskStats:
        """Inverse of :meth:`to_dict`."""
        return cls(
            prices={key: Counter({int(b): c for b, c in hist.items()}) for key, hist in raw["prices"].items()},
            importers={code: ImporterActivity(**a) for code, a in raw["importers"].items()},
            latest_date=raw.get("latest_date"),
            descriptions={key: Counter(chapters) for key, chapters in raw.get("descriptions", {}).items()},
        )


def price_points(doc: dict) -> Iterator[tuple[str, float]]:
    """The price-group keys of a document with its price in each (nothing without a positive price)."""
    heading, value = doc.get("hs_heading"), doc.get("customs_value_usd")
    if not heading or not value or value <= 0:
        return
    weight = doc.get("net_weight_kg")
    if weight and weight > 0:
        yield f"kg|{heading}", value / weight
        if doc.get("origin_country"):
            yield f"kg|{heading}|{doc['origin_country']}", value / weight
    unit, quantity = _count_unit(doc.get("unit")), doc.get("quantity")
    if unit and quantity and quantity > 0:
        yield f"unit|{heading}|{unit}", value / quantity


def description_key(text: str | None) -> str:
    """The goods phrase of a description: its first clause, lower case, letters only ('' if too short).

    Declarations usually name the goods first and then brand, model, maker and origin; the first
    clause is what similar declarations share.
    """
    clause = _FIRST_CLAUSE.split((text or "").strip(), maxsplit=1)[0]
    words = "".join(ch if ch.isalpha() else " " for ch in clause.lower()).split()
    key = " ".join(words)[:_DESCRIPTION_KEY_CHARS]
    return key if len(key) >= 3 else ""


def _count_unit(unit: Any) -> str | None:
    unit = str(unit).strip().lower() if unit else ""
    return unit if unit and unit not in _WEIGHT_UNITS else None


def _bin(price: float) -> int:
    return math.floor(math.log10(price) / PRICE_BIN)


def _centre(bin_index: float) -> float:
    return (bin_index + 0.5) * PRICE_BIN


def _weighted_median(pairs: list[tuple[int, int]]) -> float:
    """Median of values given as sorted ``(value, count)`` pairs; the mean of the two middles when even."""
    total = sum(c for _, c in pairs)
    lower_rank, upper_rank = (total - 1) // 2, total // 2
    lower = upper = None
    seen = 0
    for value, count in pairs:
        if lower is None and seen + count > lower_rank:
            lower = value
        if seen + count > upper_rank:
            upper = value
            break
        seen += count
    return (lower + upper) / 2


def _days_between(first: str, last: str) -> int:
    return (date.fromisoformat(last[:10]) - date.fromisoformat(first[:10])).days


# --------------------------------------------------------------------------- detectors


def flag(detector: str, score: float, reason: str) -> dict:
    """One risk flag as stored on a record."""
    return {"detector": detector, "score": round(min(1.0, max(0.0, score)), 3), "reason": reason}


def undervaluation_flag(doc: dict, stats: RiskStats, config: RiskConfig,
                        pooled_mad: float | None = None) -> dict | None:
    """The undervaluation flag of a document, or None (fine, unpriced, or too little data to judge).

    Every basis with enough data (per kg; per unit where the quantity is counted) must find the price
    low: a line cheap per kg but normal per piece is a heavy model, not an undervalued one.
    ``pooled_mad`` (:meth:`RiskStats.pooled_mad`) steadies the spread of small groups.
    """
    judged = []
    for price, summary, unit, group in _price_bases(doc, stats, config):
        drop = 1 - price / summary.median
        z = (math.log10(price) - summary.median_log) / (_MAD_TO_SIGMA * _spread(summary, config, pooled_mad))
        low = drop >= config.undervaluation_min_drop and z <= -config.undervaluation_z
        judged.append((low, drop, f"unit price {fmt(price)} USD/{unit} is {_percent(drop)}% below the median "
                                  f"{fmt(summary.median)} USD/{unit} of {group} (n={summary.n})"))
    if not judged or not all(low for low, _, _ in judged):
        return None
    _, drop, reason = judged[0]  # the per-kg basis comes first: the reason analysts expect
    return flag(UNDERVALUATION, drop, reason)


def _spread(summary: PriceSummary, config: RiskConfig, pooled_mad: float | None) -> float:
    """The group's MAD shrunk towards the pooled one with ``mad_prior_n`` pseudo-records (empirical Bayes):
    a MAD from 20-50 prices is often a third too small, which turns ordinary cheap lines into outliers."""
    mad = summary.mad_log
    if pooled_mad is not None:
        mad = (summary.n * mad + config.mad_prior_n * pooled_mad) / (summary.n + config.mad_prior_n)
    return max(mad, config.min_mad_log10)


def _price_bases(doc: dict, stats: RiskStats, config: RiskConfig) -> Iterator[tuple[float, PriceSummary, str, str]]:
    """``(price, group summary, unit label, group label)`` for each group with enough data, most specific first."""
    heading, origin = doc.get("hs_heading"), doc.get("origin_country")
    for key, price in sorted(price_points(doc), key=lambda kp: (not kp[0].startswith("kg"), -kp[0].count("|"))):
        kind, *_, last = key.split("|")
        summary = stats.summary(key)
        by_origin = key.count("|") == 2 and kind == "kg"
        if summary is None or summary.n < (config.min_origin_n if by_origin else config.min_heading_n):
            continue
        unit = "kg" if kind == "kg" else last
        yield price, summary, unit, f"heading {heading} from {origin}" if by_origin else f"heading {heading}"


def misclassification_flag(doc: dict, ranked: Ranked | None, config: RiskConfig,
                           titles: Callable[[str], str] | None = None) -> dict | None:
    """The misclassification flag of a document given the HS suggestions for its description, or None."""
    heading = doc.get("hs_heading")
    if not heading or not ranked:
        return None
    headings = [h for h, _ in ranked[: config.misclass_depth]]
    rank = headings.index(heading) + 1 if heading in headings else None
    if rank is not None and rank <= config.misclass_rank:
        return None
    if heading[:2] in {h[:2] for h in headings[: config.misclass_chapter_rank]}:
        return None
    top = headings[0]
    top_label = f"{top} ({titles(top)})" if titles and titles(top) else top
    description = _clip(doc.get("goods_description") or "")
    if rank is None:
        score = 1.0
        where = f"is not among the top {len(headings)} HS suggestions"
    else:
        score = 0.5 + 0.5 * (rank - config.misclass_rank) / (config.misclass_depth - config.misclass_rank + 1)
        where = f"is only suggestion #{rank}"
    return flag(MISCLASSIFICATION, score,
                f"declared heading {heading} {where} for \"{description}\"; the top suggestion is {top_label}")


def consensus_flag(doc: dict, stats: RiskStats, config: RiskConfig) -> dict | None:
    """Misclassification by the data itself, for descriptions the nomenclature cannot ground.

    Among the declarations whose description starts with the same goods phrase (at least
    ``consensus_min_n``), at most ``consensus_max_share`` use this record's chapter while another
    chapter is the most common: the record is flagged; score = the share of that chapter.
    """
    key, chapter = description_key(doc.get("goods_description")), doc.get("hs_chapter")
    chapters = stats.descriptions.get(key) if key and chapter else None
    if not chapters:
        return None
    n = sum(chapters.values())
    top, top_count = max(chapters.items(), key=lambda item: (item[1], item[0]))
    if n < config.consensus_min_n or top == chapter or chapters[chapter] / n > config.consensus_max_share:
        return None
    return flag(MISCLASSIFICATION, top_count / n,
                f"declared chapter {chapter} is used by {chapters[chapter]} of {n} declarations described as "
                f"\"{key}\"; {top_count} ({_percent(top_count / n)}%) are declared in chapter {top}")


def mass_importer_threshold(stats: RiskStats, config: RiskConfig) -> float | None:
    """The value-per-30-days rate a new importer must reach: a quantile over established importers."""
    if not stats.latest_date:
        return None
    rates = sorted(a.rate_per_30_days() for a in stats.importers.values()
                   if not _is_new(a, stats.latest_date, config))
    if not rates:
        return None
    return rates[min(len(rates) - 1, int(config.mass_volume_quantile * len(rates)))]


def _is_new(activity: ImporterActivity, latest: str, config: RiskConfig) -> bool:
    return _days_between(activity.first_date, latest) <= config.new_importer_days


def new_mass_importer_flag(doc: dict, stats: RiskStats, config: RiskConfig, threshold: float | None) -> dict | None:
    """The new-mass-importer flag of a document (every line of such an importer), or None."""
    activity = stats.importers.get(doc.get("importer_code") or "")
    if activity is None or threshold is None or doc.get("direction", "import") != "import":
        return None
    if not _is_new(activity, stats.latest_date, config) or activity.lines < config.mass_min_lines:
        return None
    rate = activity.rate_per_30_days()
    if rate < threshold or rate <= 0:
        return None
    age = _days_between(activity.first_date, stats.latest_date)
    reason = (f"importer {doc['importer_code']} first declared on {activity.first_date}, {age} days before the "
              f"latest date in the data ({stats.latest_date}), and has {activity.lines} lines worth "
              f"{fmt(activity.value_usd)} USD since: {fmt(rate)} USD per 30 days, above the "
              f"{int(config.mass_volume_quantile * 100)}th percentile {fmt(threshold)} USD of established importers")
    return flag(NEW_MASS_IMPORTER, rate / (rate + threshold), reason)


def risk_level(flags: Sequence[dict], config: RiskConfig) -> str:
    """Combined level: high (a strong flag or two detectors), medium (any flag) or low."""
    if not flags:
        return "low"
    detectors = {f["detector"] for f in flags}
    if len(detectors) >= 2 or max(f["score"] for f in flags) >= config.high_score:
        return "high"
    return "medium"


# --------------------------------------------------------------------------- scoring


class RiskScorer:
    """Scores documents against fixed :class:`RiskStats`.

    ``suggest`` (optional) maps a batch of descriptions to ranked ``(heading, score)`` lists; an empty
    list means the suggester cannot ground that description (no word of it is in the nomenclature),
    and then, as without ``suggest``, misclassification falls back to :func:`consensus_flag`.
    Suggestions are computed once per distinct description in a batch (declarations repeat their
    descriptions). ``titles`` names headings in reasons.
    """

    def __init__(self, stats: RiskStats, config: RiskConfig | None = None, suggest: SuggestMany | None = None,
                 titles: Callable[[str], str] | None = None):
        self.stats = stats
        self.config = config or RiskConfig()
        self.suggest = suggest
        self.titles = titles
        self.mass_threshold = mass_importer_threshold(stats, self.config)
        self.pooled_mad = stats.pooled_mad(self.config.min_heading_n)

    def score(self, docs: Sequence[dict]) -> list[tuple[str, list[dict]]]:
        """``(risk_level, risk_flags)`` for each document, in order."""
        ranked = self._suggestions(docs)
        results = []
        for doc in docs:
            suggestions = ranked.get(_description(doc))
            flags = [f for f in (
                undervaluation_flag(doc, self.stats, self.config, self.pooled_mad),
                misclassification_flag(doc, suggestions, self.config, self.titles) if suggestions
                else consensus_flag(doc, self.stats, self.config),
                new_mass_importer_flag(doc, self.stats, self.config, self.mass_threshold),
            ) if f]
            results.append((risk_level(flags, self.config), flags))
        return results

    def apply(self, docs: Sequence[dict]) -> list[dict]:
        """Set ``risk_level`` and ``risk_flags`` on each document (in place) and return them."""
        for doc, (level, flags) in zip(docs, self.score(docs)):
            doc["risk_level"], doc["risk_flags"] = level, flags
        return list(docs)

    def _suggestions(self, docs: Sequence[dict]) -> dict[str, Ranked]:
        if self.suggest is None:
            return {}
        wanted = sorted({d for d in map(_description, docs) if len(d) >= self.config.misclass_min_chars})
        return dict(zip(wanted, self.suggest(wanted))) if wanted else {}


def _description(doc: dict) -> str:
    return (doc.get("goods_description") or "").strip()


def suggester_fn(suggester: Any, config: RiskConfig | None = None, fusion: str = "rrf") -> SuggestMany:
    """Adapt the search core's ``HsSuggester`` to :data:`SuggestMany`, in the config's ``misclass_mode``.

    Each description gets ``misclass_depth`` suggestions, or none when its goods phrase
    (:func:`description_key`) shares no word with the nomenclature: the ranking would then come from
    brand, model and maker names or from embeddings alone, a guess, and judging declarations by it
    flags every description the English nomenclature cannot read (measured: most Ukrainian ones).
    With the vector-in API (``embedder``, ``heading_scores``, ``rank``) a batch is embedded in one call;
    anything else with ``suggest(description, limit=, mode=, fusion=)`` is called once per description.
    """
    config = config or RiskConfig()
    depth, mode = config.misclass_depth, config.misclass_mode

    def ranked(suggestions) -> Ranked:
        return [(s.heading, float(s.score)) for s in suggestions[:depth]]

    def one_by_one(descriptions: Sequence[str]) -> list[Ranked]:
        return [ranked(suggester.suggest(d, limit=depth, mode=mode, fusion=fusion)) for d in descriptions]

    def batched(descriptions: Sequence[str]) -> list[Ranked]:
        vectors = (suggester.embedder.encode(list(descriptions)) if mode != "keyword"
                   else [None] * len(descriptions))
        out = []
        for description, vector in zip(descriptions, vectors):
            if grounded(description):
                scores = suggester.heading_scores(description, vector, with_keyword=mode != "semantic")
                out.append(ranked(suggester.rank(scores, mode, fusion)))
            else:
                out.append([])
        return out

    def grounded(description: str) -> bool:
        phrase = description_key(description)
        return bool(phrase) and bool(suggester.heading_scores(phrase, None, with_keyword=True).keyword)

    return batched if hasattr(suggester, "heading_scores") else one_by_one


@lru_cache(maxsize=1)
def _heading_titles() -> dict[str, str]:
    from predator.nomenclature import load_nomenclature

    return load_nomenclature().headings


def heading_title(heading: str) -> str:
    """Short English title of an HS heading for reasons (first clause, at most 60 characters)."""
    return _clip(_heading_titles().get(heading, "").split(";")[0], 60)


def _percent(share: float) -> int:
    """A share as a whole percentage that never reads 100% for a share below 1."""
    return min(99, round(share * 100)) if share < 1 else 100


def fmt(x: float) -> str:
    """A number for a reason: 3 significant digits below 1000 ("0.42", "14.1"), thousands separated above."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
