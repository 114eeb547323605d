"""Fusion math: reciprocal rank fusion and weighted (convex) combination."""
import math

import pytest

from predator.fusion import normalise_weights, rrf, weighted


def test_rrf_sums_reciprocal_ranks_over_retrievers():
    fused = rrf({"keyword": ["a", "b"], "vector": ["b", "c"]}, k=60)
    scores = {h.id: h.score for h in fused}
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["a"] == pytest.approx(1 / 61)
    assert scores["c"] == pytest.approx(1 / 62)
    assert [h.id for h in fused] == ["b", "a", "c"]


def test_rrf_records_each_retrievers_rank_and_carries_raw_scores():
    fused = rrf({"keyword": ["a"], "vector": ["x", "a"]}, raw_scores={"keyword": {"a": 7.5}, "vector": {"a": 0.8}})
    hit = next(h for h in fused if h.id == "a")
    assert hit.ranks == {"keyword": 1, "vector": 2}
    assert hit.scores == {"keyword": 7.5, "vector": 0.8}


def test_rrf_ties_break_by_best_rank_then_id():
    # a: rank 1 in keyword only; b: rank 1 in vector only -> equal scores, same best rank -> by id
    fused = rrf({"keyword": ["a", "z"], "vector": ["b", "y"]})
    assert [h.id for h in fused] == ["a", "b", "y", "z"]


def test_rrf_counts_a_repeated_id_once_at_its_best_rank():
    fused = rrf({"keyword": ["a", "a", "b"]}, k=0)
    assert fused[0].id == "a" and fused[0].score == pytest.approx(1.0)
    assert fused[1].score == pytest.approx(1 / 3)


def test_rrf_of_empty_inputs_is_empty_and_one_empty_retriever_is_harmless():
    assert rrf({}) == []
    assert rrf({"keyword": [], "vector": []}) == []
    fused = rrf({"keyword": [], "vector": ["a", "b"]})
    assert [h.id for h in fused] == ["a", "b"]
    assert all("keyword" not in h.ranks for h in fused)


def test_rrf_rejects_negative_k():
    with pytest.raises(ValueError):
        rrf({"keyword": ["a"]}, k=-1)


def test_weighted_is_a_convex_combination_of_minmax_scores_missing_counts_zero():
    scores = {"keyword": {"a": 10.0, "b": 5.0, "c": 0.0}, "vector": {"b": 0.9, "d": 0.5}}
    fused = {h.id: h.score for h in weighted(scores, {"keyword": 0.25, "vector": 0.75})}
    assert fused["a"] == pytest.approx(0.25 * 1.0)  # not found by vector: 0 there
    assert fused["b"] == pytest.approx(0.25 * 0.5 + 0.75 * 1.0)
    assert fused["c"] == pytest.approx(0.0)
    assert fused["d"] == pytest.approx(0.75 * 0.0)


def test_weighted_normalises_weights_that_do_not_sum_to_one():
    scores = {"keyword": {"a": 2.0, "b": 1.0}, "vector": {"b": 0.9, "a": 0.1}}
    assert [(h.id, h.score) for h in weighted(scores, {"keyword": 1, "vector": 3})] == [
        (h.id, h.score) for h in weighted(scores, {"keyword": 0.25, "vector": 0.75})
    ]
    assert normalise_weights({"keyword": 2, "vector": 2}) == {"keyword": 0.5, "vector": 0.5}


@pytest.mark.parametrize("bad", [{"keyword": -0.1, "vector": 1.0}, {"keyword": 0, "vector": 0}, {"keyword": math.nan, "vector": 1}])
def test_weighted_rejects_negative_nan_or_all_zero_weights(bad):
    with pytest.raises(ValueError):
        weighted({"keyword": {"a": 1.0}, "vector": {"a": 1.0}}, bad)


def test_weighted_needs_a_weight_for_every_retriever():
    with pytest.raises(ValueError, match="vector"):
        weighted({"keyword": {"a": 1.0}, "vector": {"a": 1.0}}, {"keyword": 1.0})


def test_weighted_single_hit_or_all_tied_scores_normalise_to_one():
    fused = weighted({"keyword": {"a": 3.0}, "vector": {"a": 0.2, "b": 0.2}}, {"keyword": 0.5, "vector": 0.5})
    scores = {h.id: h.score for h in fused}
    assert scores == {"a": pytest.approx(1.0), "b": pytest.approx(0.5)}


def test_weighted_keeps_per_retriever_rank_and_raw_score():
    fused = weighted({"keyword": {"a": 3.0, "b": 4.0}, "vector": {"a": 0.7}}, {"keyword": 0.5, "vector": 0.5})
    a = next(h for h in fused if h.id == "a")
    assert a.ranks == {"keyword": 2, "vector": 1}
    assert a.scores == {"keyword": 3.0, "vector": 0.7}


def test_weighted_with_one_empty_retriever_ranks_by_the_other():
    fused = weighted({"keyword": {}, "vector": {"a": 0.2, "b": 0.9}}, {"keyword": 0.5, "vector": 0.5})
    assert [h.id for h in fused] == ["b", "a"]
    assert weighted({"keyword": {}, "vector": {}}, {"keyword": 1, "vector": 1}) == []


def test_weighted_max_and_none_normalisations():
    scores = {"keyword": {"a": 4.0, "b": 2.0}}
    assert {h.id: h.score for h in weighted(scores, {"keyword": 1}, normalise="max")} == {"a": 1.0, "b": 0.5}
    assert {h.id: h.score for h in weighted(scores, {"keyword": 1}, normalise="none")} == {"a": 4.0, "b": 2.0}
    with pytest.raises(ValueError):
        weighted(scores, {"keyword": 1}, normalise="zscore")
