"""Value parsers: every spelling real exports use, and a clear reason for what does not parse."""
import datetime as dt

import pytest

from predator.countries import countries, country_name, lookup_country
from predator.values import (
    normalise_country,
    normalise_currency,
    normalise_edrpou,
    normalise_hs,
    parse_date,
    parse_direction,
    parse_number,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1 234,56", 1234.56),
        ("1\u00a0234,56", 1234.56),
        ("1\u202f234,56", 1234.56),
        ("1,234.56", 1234.56),
        ("1.234,56", 1234.56),
        ("1234.56", 1234.56),
        ("1234,5", 1234.5),
        ("1 000 000", 1_000_000.0),
        ("1,234,567", 1_234_567.0),
        ("-12,5", -12.5),
        (" 42 ", 42.0),
        (7, 7.0),
        (2.5, 2.5),
    ],
)
def test_parse_number_reads_ukrainian_and_english_spellings(text, expected):
    assert parse_number(text) == pytest.approx(expected)


@pytest.mark.parametrize("blank", [None, "", "   ", float("nan")])
def test_parse_number_treats_blank_cells_as_missing(blank):
    assert parse_number(blank) is None


@pytest.mark.parametrize("text", ["abc", "12kg", "1,2,3.4.5", "--1", True])
def test_parse_number_rejects_non_numbers_quoting_the_value(text):
    with pytest.raises(ValueError, match="is not a number"):
        parse_number(text)


@pytest.mark.parametrize(
    "value",
    [
        "01.03.2024",
        "1.3.2024",
        "2024-03-01",
        "01/03/2024",
        "2024-03-01T10:15:00",
        "2024-03-01 00:00:00",
        "01.03.2024 00:00:00",
        dt.datetime(2024, 3, 1, 12, 0),
        dt.date(2024, 3, 1),
        45352,  # Excel serial day of 2024-03-01
    ],
)
def test_parse_date_reads_every_export_spelling_as_day_first(value):
    assert parse_date(value) == dt.date(2024, 3, 1)


@pytest.mark.parametrize("value", ["31.02.2024", "2024-13-01", "yesterday", "03/32/2024"])
def test_parse_date_rejects_impossible_or_unknown_dates(value):
    with pytest.raises(ValueError, match=f"'{value}' does not parse"):
        parse_date(value)


def test_parse_date_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        parse_date("  ")


@pytest.mark.parametrize(
    "value, expected",
    [("12345678", "12345678"), ("130850", "00130850"), (130850, "00130850"), (130850.0, "00130850"),
     (" 0013 0850 ", "00130850")],
)
def test_normalise_edrpou_restores_lost_leading_zeros(value, expected):
    assert normalise_edrpou(value) == expected


def test_normalise_edrpou_rejects_nine_digit_codes():
    with pytest.raises(ValueError, match="'123456789' has more than 8 digits"):
        normalise_edrpou("123456789")


def test_normalise_edrpou_rejects_non_digits():
    with pytest.raises(ValueError, match="not all digits"):
        normalise_edrpou("12A45")


@pytest.mark.parametrize(
    "value, expected",
    [("8471.30.00.00", "8471300000"), ("8471 30 00 00", "8471300000"), ("8471-30", "847130"),
     ("0101210000", "0101210000"), ("8471", "8471"), (8471300000, "8471300000"),
     (101210000, "0101210000"), (101, "0101")],
)
def test_normalise_hs_strips_separators_and_restores_numeric_leading_zero(value, expected):
    assert normalise_hs(value) == expected


@pytest.mark.parametrize("value", ["12", "12345678901", "84.71.30.00.00.1"])
def test_normalise_hs_requires_4_to_10_digits(value):
    with pytest.raises(ValueError, match="must have 4-10 digits"):
        normalise_hs(value)


def test_normalise_hs_rejects_letters():
    with pytest.raises(ValueError, match="not all digits"):
        normalise_hs("84A1")


@pytest.mark.parametrize(
    "value, expected",
    [("ІМ40ДЕ", "import"), ("ЕК10АА", "export"), ("IM40DE", "import"), ("EK10AA", "export"),
     ("ім 40 ее", "import"), ("import", "import"), ("Export", "export"), ("Імпорт", "import"),
     ("експорт", "export")],
)
def test_parse_direction_reads_declaration_types_in_cyrillic_and_latin(value, expected):
    assert parse_direction(value) == expected


def test_parse_direction_rejects_other_declaration_types():
    with pytest.raises(ValueError, match="not a declaration type"):
        parse_direction("ТР80")


@pytest.mark.parametrize(
    "value, expected",
    [("DE", "DE"), ("de", "DE"), ("DEU", "DE"), ("Germany", "DE"), ("Німеччина", "DE"),
     ("НІМЕЧЧИНА", "DE"), ("Південна Корея", "KR"), ("south korea", "KR"), ("Korea, Republic of", "KR"),
     ("Moldova", "MD"), ("Республіка Молдова", "MD"), ("Китай", "CN"), ("USA", "US"), ("Türkiye", "TR"),
     ("Turkey", "TR"), ("Viet Nam", "VN"), ("Taiwan", "TW")],
)
def test_normalise_country_accepts_codes_and_english_and_ukrainian_names(value, expected):
    assert normalise_country(value) == expected


def test_normalise_country_rejects_unknown_names():
    with pytest.raises(ValueError, match="'Atlantis' is an unknown country"):
        normalise_country("Atlantis")


def test_normalise_country_blank_is_missing():
    assert normalise_country("") is None


def test_every_country_round_trips_through_its_ukrainian_and_english_name():
    for code in countries():
        assert lookup_country(country_name(code, "uk")) == code, code
        assert lookup_country(country_name(code, "en")) == code, code


@pytest.mark.parametrize(
    "value, expected",
    [("usd", "USD"), ("EUR", "EUR"), ("980", "UAH"), (840, "USD"), ("978", "EUR"), (978.0, "EUR"),
     ("Євро", "EUR"), ("Долар США", "USD"), ("US Dollar", "USD"), ("Злотий", "PLN"), ("гривня", "UAH")],
)
def test_normalise_currency_accepts_codes_numbers_and_names(value, expected):
    assert normalise_currency(value) == expected


def test_normalise_currency_rejects_unknown():
    with pytest.raises(ValueError, match="unknown currency"):
        normalise_currency("ZZZ")
