"""Citation parsing: markers and written ids onto the numbered context; citations outside it removed."""
from predator.copilot.citations import parse_citations
from predator.copilot.prompt import ContextRecord

CONTEXT = [ContextRecord(1, "UA100000/2023/000787#4", "line one"),
           ContextRecord(2, "UA305000/2023/000467#2", "line two"),
           ContextRecord(3, "UA807000/2023/000197#2", "line three")]


def test_number_markers_map_to_record_ids_in_order_of_first_use():
    cited = parse_citations("The code is 4014101090 [2]. The origin is Germany [1]. Again [2].", CONTEXT)
    assert [(c.number, c.record_id) for c in cited.citations] == [(2, "UA305000/2023/000467#2"),
                                                                  (1, "UA100000/2023/000787#4")]
    assert cited.removed == 0 and cited.text.endswith("Again [2].")


def test_lists_record_words_and_ids_inside_brackets_are_citations():
    cited = parse_citations("Both [1, 3] and [record 2] and [UA807000/2023/000197#2].", CONTEXT)
    assert {c.number for c in cited.citations} == {1, 2, 3}
    assert "[1, 3]" in cited.text and "[2]" in cited.text and "[3]." in cited.text


def test_a_citation_outside_the_context_is_removed_from_the_text_and_counted():
    cited = parse_citations("It came from China [7]. The value is $79 [1, 9].", CONTEXT)
    assert cited.text == "It came from China. The value is $79 [1]."
    assert [c.number for c in cited.citations] == [1]
    assert cited.removed == 2 and cited.removed_refs == ["7", "9"]


def test_a_bracketed_id_that_is_not_in_the_context_is_removed():
    cited = parse_citations("See [UA999999/2020/000001#1].", CONTEXT)
    assert cited.text == "See." and cited.citations == [] and cited.removed == 1


def test_a_record_id_written_in_the_prose_cites_its_record():
    cited = parse_citations("The HS code of UA305000/2023/000467#2 is 3304200000.", CONTEXT)
    assert [c.number for c in cited.citations] == [2]
    assert cited.text == "The HS code of UA305000/2023/000467#2 is 3304200000."


def test_a_written_id_outside_the_context_is_counted_but_the_prose_is_kept():
    cited = parse_citations("Declaration UA111111/2022/000002#5 is unrelated.", CONTEXT)
    assert cited.citations == [] and cited.removed == 1
    assert "UA111111/2022/000002#5" in cited.text


def test_an_answer_without_citations_has_none():
    cited = parse_citations("I do not know.", CONTEXT)
    assert cited.citations == [] and cited.removed == 0 and cited.text == "I do not know."
