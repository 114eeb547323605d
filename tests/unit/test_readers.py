"""Readers: every format streams rows with the right physical line, and bad files fail clearly."""
import json

import pytest
from openpyxl import Workbook

from predator.normalise import normalise_rows
from predator.readers import ERROR_KEY, RAW_KEY, ReaderError, read_rows, sniff_delimiter
from predator.sample import generate, write_sample


def _lines(path):
    return [(row.line, row.data) for row in read_rows(path)]


def test_csv_utf8_with_bom_and_comma_delimiter(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes("\ufeffdeclaration_id,hs_code\nA/1,8471\nB/2,0101\n".encode("utf-8"))
    assert _lines(path) == [(2, {"declaration_id": "A/1", "hs_code": "8471"}),
                            (3, {"declaration_id": "B/2", "hs_code": "0101"})]


def test_csv_cp1251_with_semicolon_is_detected(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes("Код товару;Опис товару\n8471;Ноутбук, 2 шт\n".encode("cp1251"))
    assert _lines(path) == [(2, {"Код товару": "8471", "Опис товару": "Ноутбук, 2 шт"})]


def test_csv_quoted_newlines_keep_the_start_line_of_each_record(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('id;description\n1;"first\nsecond\nthird"\n2;plain\n\n3;"a;b"\n', encoding="utf-8")
    rows = _lines(path)
    assert [line for line, _ in rows] == [2, 5, 7]
    assert rows[0][1]["description"] == "first\nsecond\nthird"
    assert rows[2][1]["description"] == "a;b"


def test_csv_cells_beyond_the_header_are_kept_apart(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a,b\n1,2,3\n", encoding="utf-8")
    assert _lines(path) == [(2, {"a": "1", "b": "2", "_extra": ["3"]})]


@pytest.mark.parametrize(
    "header, delimiter",
    [("a;b;c", ";"), ("a,b,c", ","), ("a\tb\tc", "\t"),
     ("Маса, нетто, кг;Маса, брутто, кг;Код товару", ";"), ('"x;y",b,c', ","), ("a, b, c", ",")],
)
def test_sniff_delimiter_counts_only_unquoted_separators(header, delimiter):
    assert sniff_delimiter(header) == delimiter


def test_xlsx_header_is_the_first_non_empty_row_and_lines_are_sheet_rows(tmp_path):
    path = tmp_path / "a.xlsx"
    workbook = Workbook()
    sheet = workbook.active
    sheet["A3"], sheet["B3"] = "Номер митної декларації", "ЄДРПОУ одержувача"
    sheet["A4"], sheet["B4"] = "UA1/2024/1", 130850
    sheet["A6"], sheet["B6"] = "UA1/2024/2", "00130850"
    workbook.save(path)
    assert _lines(path) == [
        (4, {"Номер митної декларації": "UA1/2024/1", "ЄДРПОУ одержувача": 130850}),
        (6, {"Номер митної декларації": "UA1/2024/2", "ЄДРПОУ одержувача": "00130850"}),
    ]


def test_jsonl_lines_that_are_not_objects_become_error_rows(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n[1, 2]\n{broken\n{"a": 2}\n', encoding="utf-8")
    rows = _lines(path)
    assert [line for line, _ in rows] == [1, 3, 4, 5]
    assert rows[0][1] == {"a": 1} and rows[3][1] == {"a": 2}
    assert rows[1][1][RAW_KEY] == "[1, 2]" and "not an object" in rows[1][1][ERROR_KEY]
    assert rows[2][1][RAW_KEY] == "{broken" and "not valid JSON" in rows[2][1][ERROR_KEY]


def test_parquet_lines_are_row_numbers_across_batches(tmp_path):
    records, _ = generate(5000, seed=3)
    path = write_sample(tmp_path / "a.parquet", records)
    lines = [row.line for row in read_rows(path)]
    assert lines == list(range(1, 5001))


@pytest.mark.parametrize(
    "fmt, style",
    [("csv", "ua"), ("csv", "canonical"), ("xlsx", "ua"), ("xlsx", "canonical"),
     ("jsonl", "ua"), ("jsonl", "canonical"), ("parquet", "ua"), ("parquet", "canonical")],
)
def test_every_format_round_trips_the_generated_records(tmp_path, fmt, style):
    records, labels = generate(400, seed=11)
    path = write_sample(tmp_path / f"sample.{fmt}", records, labels, style=style, seed=11)
    read, rejected = normalise_rows(read_rows(path))
    assert rejected == []
    assert [r.to_document() for r in read] == [r.to_document() for r in records]


def test_cp1251_csv_round_trips_the_generated_records(tmp_path):
    records, _ = generate(300, seed=5)
    path = write_sample(tmp_path / "sample.csv", records, encoding="cp1251")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    read, rejected = normalise_rows(read_rows(path))
    assert rejected == [] and [r.to_document() for r in read] == [r.to_document() for r in records]


def test_unknown_extension_is_a_reader_error(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x")
    with pytest.raises(ReaderError, match="unsupported file type '.txt'"):
        read_rows(path)


def test_missing_file_is_a_reader_error(tmp_path):
    with pytest.raises(ReaderError, match="no such file"):
        read_rows(tmp_path / "absent.csv")


@pytest.mark.parametrize("suffix, message", [(".xlsx", "not a readable XLSX"), (".parquet", "not a readable Parquet")])
def test_corrupt_binary_files_are_reader_errors(tmp_path, suffix, message):
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(b"this is not a real file" * 10)
    with pytest.raises(ReaderError, match=message):
        list(read_rows(path))


def test_empty_csv_has_no_rows(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert list(read_rows(path)) == []


def test_jsonl_rows_keep_typed_values(tmp_path):
    path = tmp_path / "a.ndjson"
    path.write_text(json.dumps({"net_weight_kg": 1.5, "line_no": 2}) + "\n", encoding="utf-8")
    assert _lines(path) == [(1, {"net_weight_kg": 1.5, "line_no": 2})]
