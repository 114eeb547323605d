"""Turn raw rows into canonical :class:`Declaration` records, or into :class:`Rejection` with a reason.

Rules:

- Headers go through ``schema.canonical_field``; unknown columns are ignored (a rejection keeps the
  whole raw row for context). When two columns map to one field, the first non-blank one wins.
- Required: ``declaration_id``, ``date``, ``direction``, ``importer_code``, ``hs_code``. Text fields
  that are absent become ``""``; optional numbers, countries and currency become None.
- ``line_no`` defaults to 1 only when the row has no line-number column at all (files with one goods
  line per declaration); a line column that is present but blank is a rejection.
- ``customs_value_usd``: the total when given; otherwise, when the row carries the USD-per-kg value of
  real exports (``Розрахункова митна вартість, нетто дол. США / кг``) and a net weight, it is
  ``round(per_kg * net_weight_kg, 2)``; otherwise None.
- Negative weights, quantities and values are rejected.
- Every problem of a row is reported, joined by ``"; "``: ``"date '31.02.2024' does not parse;
  hs_code '12' must have 4-10 digits"``. Each reason starts with the field name.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable

from predator import values
from predator.readers import ERROR_KEY, RAW_KEY, RawRow
from predator.schema import PER_KG_VALUE_FIELD, Declaration, canonical_field

REQUIRED = ("declaration_id", "date", "direction", "importer_code", "hs_code")
TEXT_FIELDS = ("declaration_id", "customs_office", "importer_name", "exporter_name", "goods_description", "unit")
AMOUNT_FIELDS = ("net_weight_kg", "gross_weight_kg", "quantity", "invoice_value", "customs_value_usd", PER_KG_VALUE_FIELD)
COUNTRY_FIELDS = ("trading_country", "dispatch_country", "origin_country")

_PARSERS: dict[str, Callable[[Any], Any]] = {
    "date": values.parse_date,
    "direction": values.parse_direction,
    "importer_code": values.normalise_edrpou,
    "hs_code": values.normalise_hs,
    "currency": values.normalise_currency,
    **{name: values.parse_number for name in AMOUNT_FIELDS},
    **{name: values.normalise_country for name in COUNTRY_FIELDS},
}


@dataclass(slots=True)
class Rejection:
    """A row that could not become a record: where it was, why, and the raw row itself."""

    source: str
    line: int
    reason: str
    row: dict[str, Any]


def map_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Raw cells keyed by canonical field; the first non-blank cell of a field wins."""
    mapped: dict[str, Any] = {}
    for header, value in data.items():
        name = canonical_field(header)
        if name is None or (name in mapped and not values.is_blank(mapped[name])):
            continue
        mapped[name] = value.strip() if isinstance(value, str) else value
    return mapped


def _parse_line_no(value: Any) -> int:
    number = values.parse_number(value)
    if number is None:
        raise ValueError("is missing")
    if not number.is_integer() or number < 1:
        raise ValueError(f"'{value}' is not a positive whole number")
    return int(number)


def normalise_row(raw: RawRow) -> Declaration | Rejection:
    """Normalise one raw row; never raises for bad data, returns a Rejection instead."""
    if ERROR_KEY in raw.data and RAW_KEY in raw.data:
        return Rejection(raw.source, raw.line, str(raw.data[ERROR_KEY]), raw.data)
    cells = map_fields(raw.data)
    problems: list[str] = []
    parsed: dict[str, Any] = {}

    for name in REQUIRED:
        if values.is_blank(cells.get(name)):
            problems.append(f"missing {name}")
    for name, parse in _PARSERS.items():
        value = cells.get(name)
        if name in REQUIRED and values.is_blank(value):
            continue
        try:
            parsed[name] = parse(value)
        except ValueError as exc:
            problems.append(f"{name} {exc}")  # "hs_code '12' must have 4-10 digits"
            continue
        if name in AMOUNT_FIELDS and parsed[name] is not None and parsed[name] < 0:
            problems.append(f"{name} '{value}' is negative")
    if "line_no" in cells:
        try:
            parsed["line_no"] = _parse_line_no(cells["line_no"])
        except ValueError as exc:
            problems.append(f"line_no {exc}")
    else:
        parsed["line_no"] = 1

    if problems:
        return Rejection(raw.source, raw.line, "; ".join(problems), raw.data)

    for name in TEXT_FIELDS:
        text = cells.get(name)
        parsed[name] = "" if values.is_blank(text) else values.cell_text(text)
    parsed["unit"] = parsed["unit"] or None
    per_kg = parsed.pop(PER_KG_VALUE_FIELD)
    if parsed["customs_value_usd"] is None and per_kg is not None and parsed["net_weight_kg"] is not None:
        parsed["customs_value_usd"] = round(per_kg * parsed["net_weight_kg"], 2)
    return Declaration(**parsed)


def normalise_rows(rows: Iterable[RawRow]) -> tuple[list[Declaration], list[Rejection]]:
    """Normalise a batch: (records, rejections); ``len(records) + len(rejections)`` equals rows in."""
    records: list[Declaration] = []
    rejections: list[Rejection] = []
    for raw in rows:
        result = normalise_row(raw)
        (records if isinstance(result, Declaration) else rejections).append(result)
    return records, rejections
