"""Filter validation: each bad value is rejected with the field and a precise reason."""
from datetime import date

import pytest

from predator.filters import FilterError, SearchFilters, date_number, hs_prefixes


def test_valid_filters_pass_and_are_returned():
    filters = SearchFilters(
        date_from=date(2024, 1, 1), date_to=date(2024, 12, 31), hs_prefix="8471", origin_countries=["CN"],
        trading_countries=["DE", "PL"], dispatch_countries=["PL"], importer_code="00123456", direction="import",
        customs_office="Київська митниця", value_min=0, value_max=1e6, risk_levels=["high"],
    )
    assert filters.validate() is filters
    assert not filters.is_empty()
    assert SearchFilters().is_empty()


@pytest.mark.parametrize(
    "kwargs, field, reason",
    [
        ({"hs_prefix": "84a1"}, "hs_prefix", "2 to 10 digits"),
        ({"hs_prefix": "8"}, "hs_prefix", "2 to 10 digits"),
        ({"hs_prefix": "84713000001"}, "hs_prefix", "2 to 10 digits"),
        ({"date_from": date(2024, 2, 1), "date_to": date(2024, 1, 1)}, "date_from", "after date_to"),
        ({"date_from": "2024-01-01"}, "date_from", "must be a date"),
        ({"value_min": 10, "value_max": 5}, "value_min", "greater than value_max"),
        ({"value_min": -1}, "value_min", "negative"),
        ({"value_max": "lots"}, "value_max", "must be a number"),
        ({"risk_levels": ["critical"]}, "risk_levels", "low, medium, high"),
        ({"direction": "transit"}, "direction", "import, export"),
        ({"origin_countries": ["Germany"]}, "origin_countries", "alpha-2"),
        ({"trading_countries": ["de"]}, "trading_countries", "alpha-2"),
        ({"importer_code": "123456"}, "importer_code", "8 digits"),
        ({"customs_office": "  "}, "customs_office", "blank"),
    ],
)
def test_bad_filter_values_raise_filter_error_naming_field_and_reason(kwargs, field, reason):
    with pytest.raises(FilterError) as caught:
        SearchFilters(**kwargs).validate()
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert isinstance(caught.value, ValueError)  # the API maps ValueError to a 4xx


def test_equal_date_bounds_and_equal_value_bounds_are_allowed():
    SearchFilters(date_from=date(2024, 1, 1), date_to=date(2024, 1, 1), value_min=5, value_max=5).validate()


def test_dates_are_indexed_as_yyyymmdd_integers():
    assert date_number("2024-03-01") == 20240301
    assert date_number(None) is None
    assert SearchFilters(date_from=date(2024, 3, 1)).date_from_num == 20240301


def test_hs_code_prefixes_cover_every_length_from_two_digits():
    assert hs_prefixes("847130") == ["84", "847", "8471", "84713", "847130"]
    assert hs_prefixes(None) == []
