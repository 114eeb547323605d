"""Risk detectors on small hand-built datasets: clear positives, clear negatives, too little data."""
from datetime import date, timedelta

import pytest

from ingest.risk_stage import rescore_all
from predator.risk import (
    RiskConfig, RiskScorer, RiskStats, consensus_flag, misclassification_flag, new_mass_importer_flag,
    mass_importer_threshold, risk_level, undervaluation_flag,
)

CONFIG = RiskConfig()
LATEST = date(2024, 6, 30)


def doc(i, heading="8471", price=14.1, weight=100.0, origin=None, importer="11111111", day=None,
        description="Portable computers", quantity=None, unit="кг", **extra):
    """A document dict with what the detectors read; ``price`` is USD per kg."""
    day = day or LATEST - timedelta(days=400 - i % 300)
    return {"id": f"D{i}#1", "hs_code": heading + "000000", "hs_heading": heading, "hs_chapter": heading[:2],
            "date": day.isoformat(), "direction": "import", "importer_code": importer,
            "goods_description": description, "origin_country": origin, "net_weight_kg": weight,
            "customs_value_usd": round(price * weight, 2), "quantity": quantity, "unit": unit, **extra}


def priced_heading(n=40, heading="8471", median=14.1, origin=None, start=0):
    """``n`` records, prices spread on a log scale so that ``median`` is the median once one cheap line joins."""
    half = n // 2 - 1
    return [doc(start + k, heading, median * 1.02 ** (k - half), origin=origin) for k in range(n)]


# --------------------------------------------------------------------- undervaluation


def test_undervaluation_clear_positive_with_exact_reason():
    docs = priced_heading() + [doc(999, price=0.42)]
    stats = RiskStats.from_documents(docs)
    flag = undervaluation_flag(docs[-1], stats, CONFIG)
    assert flag == {"detector": "undervaluation", "score": 0.97,
                    "reason": "unit price 0.42 USD/kg is 97% below the median 14.1 USD/kg of heading 8471 (n=41)"}


def test_undervaluation_clear_negative():
    docs = priced_heading() + [doc(999, price=11.0)]
    stats = RiskStats.from_documents(docs)
    assert undervaluation_flag(docs[-1], stats, CONFIG) is None


def test_undervaluation_too_little_data_to_judge():
    docs = priced_heading(n=CONFIG.min_heading_n - 2) + [doc(999, price=0.01)]
    stats = RiskStats.from_documents(docs)
    assert stats.summary("kg|8471").n == CONFIG.min_heading_n - 1
    assert undervaluation_flag(docs[-1], stats, CONFIG) is None


def test_undervaluation_prefers_heading_by_origin_when_it_has_enough_data():
    docs = priced_heading(n=34, origin="CN") + priced_heading(n=20, median=50.0, origin="DE", start=100)
    docs.append(doc(999, price=2.0, origin="CN"))
    flag = undervaluation_flag(docs[-1], RiskStats.from_documents(docs), CONFIG)
    assert flag["reason"] == "unit price 2 USD/kg is 86% below the median 14.1 USD/kg of heading 8471 from CN (n=35)"


def test_undervaluation_needs_every_basis_to_agree():
    # Cheap per kg but an ordinary price per piece: a heavy model, not an undervalued line.
    docs = [{**d, "quantity": 10.0, "unit": "шт"} for d in priced_heading()]
    heavy = doc(999, price=0.42, weight=100.0, quantity=0.42 * 100 / (14.1 * 10), unit="шт")
    heavy["quantity"] = round(heavy["customs_value_usd"] / (14.1 * 100 / 10), 4)
    stats = RiskStats.from_documents(docs + [heavy])
    assert undervaluation_flag(heavy, stats, CONFIG) is None
    cheap = doc(998, price=0.42, quantity=10.0, unit="шт")
    assert undervaluation_flag(cheap, RiskStats.from_documents(docs + [cheap]), CONFIG)["score"] == 0.97


# --------------------------------------------------------------------- misclassification

SUGGESTIONS = {"Fresh bananas": [("0803", 0.9), ("0804", 0.5), ("0810", 0.4), ("2008", 0.3), ("0811", 0.2),
                                 ("1106", 0.1), ("0805", 0.05)]}


def titles(heading):
    return {"0803": "Bananas, including plantains"}.get(heading, "")


def test_misclassification_clear_positive_with_exact_reason():
    record = doc(1, heading="8471", description="Fresh bananas")
    flag = misclassification_flag(record, SUGGESTIONS["Fresh bananas"], CONFIG, titles)
    assert flag == {"detector": "misclassification", "score": 1.0,
                    "reason": 'declared heading 8471 is not among the top 7 HS suggestions for "Fresh bananas"; '
                              "the top suggestion is 0803 (Bananas, including plantains)"}


def test_misclassification_clear_negative_and_near_miss_in_the_right_chapter():
    assert misclassification_flag(doc(1, heading="0803"), SUGGESTIONS["Fresh bananas"], CONFIG) is None
    # Rank 7, past the cut, but chapter 08 leads the suggestions: the suggester's uncertainty.
    assert misclassification_flag(doc(1, heading="0805"), SUGGESTIONS["Fresh bananas"], CONFIG) is None


def test_misclassification_rank_past_the_cut_in_another_chapter():
    flag = misclassification_flag(doc(1, heading="1106", description="Fresh bananas"),
                                  SUGGESTIONS["Fresh bananas"], CONFIG)
    assert flag["score"] == pytest.approx(0.5 + 0.5 * 1 / 6, abs=1e-3)
    assert flag["reason"].startswith("declared heading 1106 is only suggestion #6 for")


def test_scorer_uses_suggestions_once_per_distinct_description():
    calls = []

    def suggest(descriptions):
        calls.append(list(descriptions))
        return [SUGGESTIONS.get(d, []) for d in descriptions]

    docs = [doc(i, heading="0803", description="Fresh bananas") for i in range(5)] + [
        doc(9, heading="8471", description="Fresh bananas")]
    results = RiskScorer(RiskStats.from_documents(docs), CONFIG, suggest).score(docs)
    assert calls == [["Fresh bananas"]]
    assert [level for level, _ in results] == ["low"] * 5 + ["high"]


def test_ungrounded_description_falls_back_to_consensus_with_exact_reason():
    docs = [doc(i, heading="8504", description=f"Електричне обладнання, торговельна марка B{i}") for i in range(24)]
    docs.append(doc(99, heading="4407", description="Електричне обладнання, модель X"))
    stats = RiskStats.from_documents(docs)
    assert consensus_flag(docs[0], stats, CONFIG) is None
    assert consensus_flag(docs[-1], stats, CONFIG) == {
        "detector": "misclassification", "score": 0.96,
        "reason": 'declared chapter 44 is used by 1 of 25 declarations described as "електричне обладнання"; '
                  "24 (96%) are declared in chapter 85"}
    # An empty suggestion list means "cannot ground": the scorer judges by consensus instead.
    level, flags = RiskScorer(stats, CONFIG, lambda ds: [[] for _ in ds]).score([docs[-1]])[0]
    assert [f["detector"] for f in flags] == ["misclassification"]


def test_consensus_too_little_data_to_judge():
    docs = [doc(i, heading="8504", description="Електричне обладнання") for i in range(CONFIG.consensus_min_n - 2)]
    docs.append(doc(99, heading="4407", description="Електричне обладнання"))
    assert consensus_flag(docs[-1], RiskStats.from_documents(docs), CONFIG) is None


# --------------------------------------------------------------------- new mass importer


def importer_world():
    """20 established importers (one line a month since 2023), a new mass importer and a new small one."""
    docs = []
    for company in range(20):
        for month in range(18):
            day = date(2023, 1, 10) + timedelta(days=30 * month)
            docs.append(doc(len(docs), importer=f"{company:08d}", day=day, weight=100.0 * (company + 1), price=10.0))
    for line in range(12):
        docs.append(doc(len(docs), importer="77777777", day=LATEST - timedelta(days=10 - line % 8),
                        weight=20_000.0, price=10.0))
    for line in range(3):
        docs.append(doc(len(docs), importer="55555555", day=LATEST - timedelta(days=5), weight=20_000.0, price=10.0))
    docs.append(doc(len(docs), importer="00000000", day=LATEST, price=10.0))
    return docs


def test_new_mass_importer_clear_positive_with_exact_reason():
    docs = importer_world()
    stats = RiskStats.from_documents(docs)
    threshold = mass_importer_threshold(stats, CONFIG)
    # Established rates: 18 lines of 100 kg x (company + 1) at 10 USD/kg over 511 days, per 30 days;
    # the 90th percentile of 20 companies is the 19th smallest.
    assert threshold == pytest.approx(18 * 100 * 19 * 10.0 * 30 / 511, rel=1e-9)
    record = next(d for d in docs if d["importer_code"] == "77777777")
    flag = new_mass_importer_flag(record, stats, CONFIG, threshold)
    assert flag["detector"] == "new_mass_importer"
    assert flag["reason"] == (
        "importer 77777777 first declared on 2024-06-20, 10 days before the latest date in the data (2024-06-30), "
        "and has 12 lines worth 2,400,000 USD since: 2,400,000 USD per 30 days, above the 90th percentile "
        "20,078 USD of established importers")
    assert flag["score"] == pytest.approx(round(2_400_000 / (2_400_000 + threshold), 3))


def test_new_mass_importer_negatives():
    docs = importer_world()
    stats = RiskStats.from_documents(docs)
    threshold = mass_importer_threshold(stats, CONFIG)
    established = next(d for d in docs if d["importer_code"] == "00000019")
    small_new = next(d for d in docs if d["importer_code"] == "55555555")  # only 3 lines
    assert new_mass_importer_flag(established, stats, CONFIG, threshold) is None
    assert new_mass_importer_flag(small_new, stats, CONFIG, threshold) is None


# --------------------------------------------------------------------- level, stats, config


def test_risk_level_rule():
    low, strong = {"detector": "undervaluation", "score": 0.6}, {"detector": "undervaluation", "score": 0.8}
    assert risk_level([], CONFIG) == "low"
    assert risk_level([low], CONFIG) == "medium"
    assert risk_level([strong], CONFIG) == "high"
    assert risk_level([low, {"detector": "new_mass_importer", "score": 0.5}], CONFIG) == "high"


def test_merged_stats_equal_stats_of_the_union():
    docs = importer_world() + priced_heading() + [doc(500, heading="8504", description="Електричне обладнання")]
    whole = RiskStats.from_documents(docs)
    merged = RiskStats.from_documents(docs[:100]).merge(RiskStats.from_documents(docs[100:250]))
    merged.merge(RiskStats.from_documents(docs[250:]))
    assert merged == whole
    assert merged.summary("kg|8471") == whole.summary("kg|8471")
    assert RiskStats.from_dict(whole.to_dict()) == whole


def test_merge_invalidates_cached_summaries():
    stats = RiskStats.from_documents(priced_heading())
    before = stats.summary("kg|8471")
    stats.merge(RiskStats.from_documents(priced_heading(median=100.0, start=200)))
    assert stats.summary("kg|8471").n == 2 * before.n


def test_config_yaml_matches_defaults_and_rejects_unknown_keys(tmp_path):
    assert RiskConfig.load() == RiskConfig()
    (tmp_path / "risk.yaml").write_text("undervaluation_z: 4.0\n")
    assert RiskConfig.load(tmp_path / "risk.yaml").undervaluation_z == 4.0
    (tmp_path / "bad.yaml").write_text("undervaluation_zz: 4.0\n")
    with pytest.raises(ValueError, match="undervaluation_zz"):
        RiskConfig.load(tmp_path / "bad.yaml")


def test_rescore_all_yields_every_record_with_level_and_flags():
    class FakeSuggester:
        def suggest(self, description, limit, mode, fusion):
            return []

    docs = priced_heading() + [doc(999, price=0.42)]
    out = list(rescore_all(iter(docs), FakeSuggester(), batch_size=7))
    assert [i for i, _, _ in out] == [d["id"] for d in docs]
    assert out[-1][1] == "high" and out[-1][2][0]["detector"] == "undervaluation"
    assert {level for _, level, _ in out[:-1]} == {"low"}


def test_with_the_real_hs_suggester_in_keyword_mode():
    """The default mode needs no embeddings: the suggester's BM25 side over the real nomenclature."""
    import numpy as np

    from predator.hs_suggest import HsSuggester, nomenclature_texts
    from predator.risk import heading_title, suggester_fn

    texts, titles = nomenclature_texts()
    suggester = HsSuggester(None, texts, np.zeros((len(texts), 4), dtype=np.float32), titles)
    bananas, ukrainian = suggester_fn(suggester, CONFIG)(
        ["Bananas, including plantains, fresh. Manufacturer: Ege Sanayi A.S.",
         "Електричне обладнання, торговельна марка Bosch, модель AB-123"])
    assert "0803" in [heading for heading, _ in bananas[:CONFIG.misclass_rank]]
    assert ukrainian == []  # nothing of its goods phrase is in the English nomenclature: not judged this way
    record = doc(1, heading="8471", description="Bananas, including plantains, fresh")
    scorer = RiskScorer(RiskStats.from_documents([record]), CONFIG, suggester_fn(suggester, CONFIG), heading_title)
    level, flags = scorer.score([record])[0]
    assert level == "high" and flags[0]["reason"].startswith(
        'declared heading 8471 is not among the top 10 HS suggestions for "Bananas, including plantains, fresh"; '
        "the top suggestion is 0803 (Bananas, including plantains")
