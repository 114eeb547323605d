"""HS heading suggestion over the HS 2022 nomenclature (real embedder).

The nomenclature embeddings (~6.8k texts) are cached in the session's ``hs_cache_dir`` (shared with
the search app's tests), so only the first run on a machine pays for embedding them."""
import numpy as np
import pytest

from predator.embedder import Embedder
from predator.hs_suggest import HsSuggester, cached_embeddings, nomenclature_texts


@pytest.fixture(scope="module")
def embedder():
    return Embedder(threads=1)


@pytest.fixture(scope="module")
def suggester(embedder, hs_cache_dir):
    return HsSuggester.build(embedder, cache_dir=hs_cache_dir)


@pytest.mark.parametrize(
    "description, heading",
    [
        ("laptop computer", "8471"),
        ("fresh apples", "0808"),
        ("frozen shrimps", "0306"),
        ("mobile phone smartphone", "8517"),
        ("crude petroleum oil", "2709"),
        ("cotton t-shirts", "6109"),
    ],
)
def test_clear_descriptions_get_the_right_heading_first(suggester, description, heading):
    top = suggester.suggest(description, limit=5)[0]
    assert top.heading == heading
    assert top.chapter == heading[:2]
    assert top.title == suggester.titles[heading]
    assert top.matched_text


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_every_mode_and_fusion_returns_ranked_suggestions(suggester, mode, fusion):
    found = suggester.suggest("fresh apples", limit=3, mode=mode, fusion=fusion)
    assert [s.heading for s in found][0] == "0808"
    assert len(found) == 3 and [s.score for s in found] == sorted((s.score for s in found), reverse=True)


def test_a_heading_scores_by_its_best_text_and_reports_it(suggester):
    top = suggester.suggest("apples, dried", limit=1, mode="keyword")[0]
    assert top.heading == "0813" and top.matched_text == "Fruit, edible; apples, dried"


def test_learned_examples_make_a_ukrainian_description_findable(embedder, hs_cache_dir):
    suggester = HsSuggester.build(embedder, cache_dir=hs_cache_dir)
    assert "8471" not in [s.heading for s in suggester.suggest("ноутбук lenovo", limit=3)]
    suggester.add_examples("8471", ["Ноутбук Lenovo ThinkPad", ""])
    top = suggester.suggest("ноутбук lenovo", limit=3)[0]
    assert top.heading == "8471" and top.matched_text == "Ноутбук Lenovo ThinkPad"
    with pytest.raises(ValueError):
        suggester.add_examples("8499", ["x"])  # no such heading


def test_held_out_subheadings_are_not_indexed(embedder, hs_cache_dir):
    suggester = HsSuggester.build(embedder, cache_dir=hs_cache_dir, exclude={"080810"})
    assert "Fruit, edible; apples, fresh" not in [t.text for t in suggester.texts]
    assert len(suggester.texts) == len(nomenclature_texts()[0]) - 1


def test_embeddings_cache_is_keyed_by_model_and_reused(embedder, tmp_path):
    texts = ["fresh apples", "laptop"]
    first = cached_embeddings(embedder, texts, tmp_path)
    files = list(tmp_path.glob("hs2022-all-MiniLM-L6-v2-384-*.npy"))
    assert len(files) == 1
    np.save(files[0], np.ones_like(first))  # prove the second call reads the file
    assert np.array_equal(cached_embeddings(embedder, texts, tmp_path), np.ones_like(first))


def test_empty_description_and_bad_mode(suggester):
    assert suggester.suggest("   ") == []
    with pytest.raises(ValueError):
        suggester.suggest("apples", mode="fuzzy")
    with pytest.raises(ValueError):
        suggester.suggest("apples", fusion="max")
