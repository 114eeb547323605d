"""Normalisation, header aliases, the document shape and quarantine accounting."""
import datetime as dt
import json

import pytest

from predator.normalise import Rejection, normalise_row, normalise_rows
from predator.quarantine import QuarantineWriter, read_quarantine
from predator.readers import RawRow, read_rows
from predator.sample import generate, write_sample
from predator.schema import Declaration, canonical_field

UA_HEADER = ("Митниця оформлення;Тип декларації;Номер митної декларації;Номер товару;Дата оформлення;"
             "Відправник;ЄДРПОУ одержувача;Одержувач;Код товару;Опис товару;Торгуюча країна;"
             "Країна відправлення;Країна походження;Маса, нетто, кг;Маса, брутто, кг;"
             "Фактурна варість, валюта контракту;Валюта;Розрахункова митна вартість, нетто дол. США / кг")


def _raw(**cells):
    base = {"declaration_id": "UA100000/2024/000001", "date": "2024-03-01", "direction": "import",
            "importer_code": "12345678", "hs_code": "8471300000"}
    return RawRow("test.csv", 2, {**base, **cells})


def test_ukrainian_headers_in_cp1251_with_semicolons_read_and_normalise(tmp_path):
    path = tmp_path / "export.csv"
    row = ('Львівська митниця;ІМ40ДЕ;UA209000/2024/000123;2;01.03.2024;Schneider GmbH;130850;'
           'ТОВ "АГРОТЕХ";8471.30.00.00;Ноутбуки портативні, 10 шт;Німеччина;PL;CN;1 234,50;1 300,00;'
           '10 000,00;978;12,5')
    path.write_bytes(f"{UA_HEADER}\n{row}\n".encode("cp1251"))
    (record,), rejected = normalise_rows(read_rows(path))
    assert rejected == []
    assert record == Declaration(
        declaration_id="UA209000/2024/000123", line_no=2, date=dt.date(2024, 3, 1), direction="import",
        customs_office="Львівська митниця", importer_code="00130850", importer_name='ТОВ "АГРОТЕХ"',
        exporter_name="Schneider GmbH", hs_code="8471300000", goods_description="Ноутбуки портативні, 10 шт",
        trading_country="DE", dispatch_country="PL", origin_country="CN", net_weight_kg=1234.5,
        gross_weight_kg=1300.0, invoice_value=10000.0, currency="EUR",
        customs_value_usd=15431.25,  # 12.5 USD/kg x 1234.5 kg: the per-kg rule
    )


def test_total_customs_value_wins_over_the_per_kg_figure():
    record = normalise_row(_raw(**{"Маса, нетто, кг": "10", "Митна вартість, дол. США": "99,99",
                                   "Розрахункова митна вартість, нетто дол. США / кг": "5"}))
    assert record.customs_value_usd == 99.99


def test_per_kg_figure_without_net_weight_gives_no_customs_value():
    record = normalise_row(_raw(**{"Розрахункова митна вартість, нетто дол. США / кг": "5"}))
    assert record.customs_value_usd is None


@pytest.mark.parametrize(
    "header, field",
    [("Фактурна варість, валюта контракту", "invoice_value"), ("Фактурна вартість, валюта контракту", "invoice_value"),
     ("  маса  нетто кг ", "net_weight_kg"), ("NET_WEIGHT_KG", "net_weight_kg"), ("Net weight, kg", "net_weight_kg"),
     ("№ товару", "line_no"), ("Номер товару", "line_no"), ("ЄДРПОУ  одержувача", "importer_code"),
     ("HS code", "hs_code"), ("hs_code", "hs_code"), ("Country of origin", "origin_country"),
     ("Митна вартість, дол. США", "customs_value_usd"), ("Something else", None)],
)
def test_header_aliases_match_case_space_and_punctuation_insensitively(header, field):
    assert canonical_field(header) == field


def test_line_no_defaults_to_1_only_without_a_line_column():
    assert normalise_row(_raw()).line_no == 1
    rejection = normalise_row(_raw(line_no=""))
    assert isinstance(rejection, Rejection) and rejection.reason == "line_no is missing"


def test_line_no_must_be_a_positive_whole_number():
    assert normalise_row(_raw(line_no="3")).line_no == 3
    assert normalise_row(_raw(line_no=3.0)).line_no == 3
    assert "positive whole number" in normalise_row(_raw(line_no="2,5")).reason


@pytest.mark.parametrize(
    "cells, reason",
    [({"declaration_id": ""}, "missing declaration_id"),
     ({"date": "31.02.2024"}, "date '31.02.2024' does not parse"),
     ({"hs_code": "12"}, "hs_code '12' must have 4-10 digits"),
     ({"net_weight_kg": "abc"}, "net_weight_kg 'abc' is not a number"),
     ({"importer_code": "123456789"}, "importer_code '123456789' has more than 8 digits"),
     ({"origin_country": "Atlantis"}, "origin_country 'Atlantis' is an unknown country"),
     ({"net_weight_kg": "-5"}, "net_weight_kg '-5' is negative"),
     ({"invoice_value": "-1,5"}, "invoice_value '-1,5' is negative"),
     ({"direction": "ТР80"}, "direction 'ТР80' is not a declaration type"),
     ({"currency": "XYZ"}, "currency 'XYZ' is an unknown currency")],
)
def test_each_defect_is_rejected_with_a_specific_reason(cells, reason):
    rejection = normalise_row(_raw(**cells))
    assert isinstance(rejection, Rejection)
    assert rejection.reason.startswith(reason)
    assert (rejection.source, rejection.line) == ("test.csv", 2)


def test_every_problem_of_a_row_is_reported_and_the_raw_row_kept():
    raw = _raw(date="never", hs_code="12", Comment="kept for context")
    rejection = normalise_row(raw)
    assert rejection.reason == "date 'never' does not parse; hs_code '12' must have 4-10 digits"
    assert rejection.row["Comment"] == "kept for context"


def test_unknown_columns_are_ignored_and_first_non_blank_alias_wins():
    record = normalise_row(_raw(Comment="x", **{"HS code": "", "Код товару": "0101210000"}))
    assert record.hs_code == "8471300000"  # the canonical column came first
    record = normalise_row(RawRow("t", 2, {**_raw().data, "hs_code": "", "Код товару": "0101.21"}))
    assert record.hs_code == "010121"


def test_json_error_rows_are_rejected_with_the_reader_reason(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('[1]\n', encoding="utf-8")
    (rejection,) = normalise_rows(read_rows(path))[1]
    assert rejection.reason == "line is a JSON list, not an object" and rejection.line == 1


def test_lost_leading_zeros_and_dotted_codes_are_restored():
    record = normalise_row(_raw(importer_code=130850, hs_code="0101.21.00.00"))
    assert (record.importer_code, record.hs_code) == ("00130850", "0101210000")
    assert (record.hs_chapter, record.hs_heading) == ("01", "0101")


DOCUMENT_KEYS = {
    "id", "declaration_id", "line_no", "date", "month", "direction", "customs_office", "importer_code",
    "importer_name", "exporter_name", "hs_code", "hs_chapter", "hs_heading", "goods_description",
    "trading_country", "trading_country_name", "dispatch_country", "dispatch_country_name", "origin_country",
    "origin_country_name", "net_weight_kg", "gross_weight_kg", "quantity", "unit", "invoice_value", "currency",
    "customs_value_usd", "unit_price_usd_per_kg", "risk_level", "risk_flags",
}


def test_document_has_stable_keys_and_round_trips_through_json():
    record = normalise_row(_raw(line_no="2", net_weight_kg="4", customs_value_usd="10", origin_country="CN",
                                trading_country="DE"))
    record.risk_flags.append({"rule": "price", "reason": "below median"})
    doc = record.to_document()
    assert set(doc) == DOCUMENT_KEYS
    assert doc["id"] == "UA100000/2024/000001#2" and doc["month"] == "2024-03" and doc["date"] == "2024-03-01"
    assert doc["unit_price_usd_per_kg"] == 2.5
    assert (doc["origin_country_name"], doc["trading_country_name"]) == ("China", "Germany")
    assert Declaration.from_document(json.loads(json.dumps(doc))) == record


def test_unit_price_is_none_without_weight():
    assert normalise_row(_raw(customs_value_usd="10")).unit_price_usd_per_kg is None


def test_quarantine_accounts_for_every_row_in(tmp_path):
    records, labels = generate(120, seed=4)
    path = write_sample(tmp_path / "demo.csv", records, labels, bad_rows=12, seed=4)
    rows = list(read_rows(path))
    valid, rejected = normalise_rows(rows)
    assert len(rows) == 132 and len(valid) == 120 and len(rejected) == 12
    reasons = [r.reason for r in rejected]
    for expected in ("missing declaration_id", "date '31.02.2024' does not parse", "is not a number",
                     "must have 4-10 digits", "has more than 8 digits", "unknown country"):
        assert sum(expected in reason for reason in reasons) == 2, expected

    quarantine = tmp_path / "q" / "quarantine.jsonl"
    with QuarantineWriter(quarantine) as writer:
        writer.write_all(rejected)
    assert writer.count == 12
    entries = read_quarantine(quarantine)
    assert [(e["source"], e["line"], e["reason"]) for e in entries] == [(r.source, r.line, r.reason) for r in rejected]
    assert entries[0]["line"] == 122 and entries[0]["quarantined_at"]
    assert all(isinstance(v, (str, type(None))) for e in entries for v in e["row"].values())


def test_quarantine_appends_and_stringifies_any_cell(tmp_path):
    path = tmp_path / "q.jsonl"
    rejection = Rejection("a.xlsx", 7, "date 'x' does not parse", {"Дата": dt.datetime(2024, 1, 1), "n": 3, "e": None})
    for _ in range(2):
        with QuarantineWriter(path) as writer:
            writer.write(rejection)
    entries = read_quarantine(path)
    assert len(entries) == 2
    assert entries[0]["row"] == {"Дата": "2024-01-01 00:00:00", "n": "3", "e": None}


def test_missing_quarantine_file_reads_as_empty(tmp_path):
    assert read_quarantine(tmp_path / "none.jsonl") == []
