"""The grounding check: each answer sentence against the records it cites."""
from predator.copilot.citations import parse_citations
from predator.copilot.grounding import check_grounding, record_evidence, split_sentences, terms, verify_answer
from predator.copilot.prompt import ContextRecord

RECORDS = {
    "UA100000/2023/000787#4": {"id": "UA100000/2023/000787#4", "hs_code": "4014101090", "origin_country": "DE",
                               "origin_country_name": "Germany", "importer_name": "ТОВ \"ЕНЕРГОХОЛДИНГ-ЗАХІД\"",
                               "goods_description": "Rubber sheath contraceptives, brand Makita",
                               "risk_flags": [{"reason": "undervalued"}]},
    "UA305000/2023/000467#2": {"id": "UA305000/2023/000467#2", "hs_code": "3304200000", "origin_country": "US",
                               "origin_country_name": "United States", "goods_description": "Eye make-up"},
}
CONTEXT = [ContextRecord(i, rid, "line") for i, rid in enumerate(RECORDS, start=1)]
EVIDENCE = {r.number: record_evidence(RECORDS[r.id]) for r in CONTEXT}
IDS = {r.id: r.number for r in CONTEXT}


def grade(answer, question="What do the records say?", threshold=0.5):
    return check_grounding(parse_citations(answer, CONTEXT), EVIDENCE, question, threshold, IDS)


def test_sentences_split_at_ends_and_a_trailing_marker_stays_with_its_sentence():
    assert split_sentences("The code is 4014101090. [1] The value is 4781.25 USD [2].\nDone") == [
        "The code is 4014101090. [1]", "The value is 4781.25 USD [2].", "Done"]


def test_terms_keep_codes_and_ids_whole_and_drop_stop_words():
    assert terms("The HS code of UA100000/2023/000787#4 is 4014101090.") == {
        "hs", "code", "ua100000/2023/000787#4", "4014101090"}


def test_a_sentence_whose_facts_are_in_its_cited_record_is_supported():
    grounding = grade("The goods from Germany have HS code 4014101090 [1].")
    sentence = grounding.sentences[0]
    assert sentence.supported and sentence.score == 1.0 and sentence.citations == [1]
    assert grounding.supported_ratio == 1.0 and grounding.unsupported == 0


def test_a_wrong_number_makes_a_sentence_unsupported_even_with_a_citation():
    sentence = grade("The HS code is 4014101091 and the goods are rubber [1].").sentences[0]
    assert not sentence.supported and "4014101091" in sentence.unsupported_terms


def test_facts_from_another_record_than_the_cited_one_are_unsupported():
    sentence = grade("The origin is the United States [1].").sentences[0]
    assert not sentence.supported and sentence.unsupported_terms == ["states", "united"]


def test_words_of_the_question_are_not_claims():
    question = "Which company imported the rubber contraceptives?"
    sentence = grade("The company imported rubber contraceptives from Germany [1].", question).sentences[0]
    assert sentence.claims == 1 and sentence.supported


def test_a_sentence_without_a_marker_is_checked_against_all_records_the_answer_cites():
    grounding = grade("The origin is Germany. The code is 3304200000 [2]. It is eye make-up [1].")
    first = grounding.sentences[0]
    assert first.citations == [2, 1] and first.supported


def test_an_answer_that_cites_nothing_supports_none_of_its_claims():
    grounding = grade("The goods are made in Japan by Sony.")
    assert grounding.unsupported == 1 and grounding.sentences[0].score == 0.0
    assert grounding.to_dict()["supported_ratio"] == 0.0


def test_a_record_id_in_the_sentence_counts_as_its_citation():
    sentence = grade("The origin of UA305000/2023/000467#2 is the United States.").sentences[0]
    assert sentence.citations == [2] and sentence.supported


def test_inflected_words_match_their_stem():
    answer = parse_citations("Гумові вироби з Німеччини [1].", CONTEXT)
    sentence = check_grounding(answer, {1: "Гумовий виріб Німеччина"}, "?", 0.5).sentences[0]
    assert sentence.supported and sentence.unsupported_terms == ["вироби"]  # виріб/вироби differ in the stem
    assert not grade("Гумові вироби з Німеччини [1].").sentences[0].supported  # the record's text is English


def test_verify_answer_removes_invented_citations_and_reads_every_field_of_the_records():
    cited, grounding = verify_answer("It was flagged as undervalued [1] [4].", CONTEXT, RECORDS, "Why flagged?", 0.5)
    assert cited.removed == 1 and cited.text == "It was flagged as undervalued [1]."
    assert grounding.sentences[0].supported  # the risk flag's reason is evidence too
