"""Search filters shared by every store.

A :class:`SearchFilters` is backend-neutral. Each store translates it into its own native filter
(tantivy query clauses, a Qdrant ``Filter``, an OpenSearch ``bool``/``filter``) so that counts,
facets and pagination are computed by the engine over the filtered set, never by post-filtering
a page in Python.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date

DIRECTIONS = ("import", "export")
RISK_LEVELS = ("low", "medium", "high")

_HS_PREFIX = re.compile(r"^\d{2,10}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_IMPORTER_CODE = re.compile(r"^\d{8}$")


class FilterError(ValueError):
    """A filter value that cannot be used; ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class SearchFilters:
    """Restrictions on the records a search may return. ``None`` or empty means 'no restriction'."""

    date_from: date | None = None
    date_to: date | None = None
    hs_prefix: str | None = None
    origin_countries: list[str] = field(default_factory=list)
    trading_countries: list[str] = field(default_factory=list)
    dispatch_countries: list[str] = field(default_factory=list)
    importer_code: str | None = None
    direction: str | None = None
    customs_office: str | None = None
    value_min: float | None = None
    value_max: float | None = None
    risk_levels: list[str] = field(default_factory=list)

    def validate(self) -> "SearchFilters":
        """Raise :class:`FilterError` for the first bad value; return ``self`` when all are usable."""
        self._check_dates()
        if self.hs_prefix is not None and not _HS_PREFIX.match(self.hs_prefix):
            raise FilterError("hs_prefix", f"must be 2 to 10 digits, got {self.hs_prefix!r}")
        for name in ("origin_countries", "trading_countries", "dispatch_countries"):
            for code in getattr(self, name):
                if not isinstance(code, str) or not _COUNTRY.match(code):
                    raise FilterError(name, f"must be ISO 3166 alpha-2 codes in upper case, got {code!r}")
        if self.importer_code is not None and not _IMPORTER_CODE.match(self.importer_code):
            raise FilterError("importer_code", f"must be 8 digits (zero-padded), got {self.importer_code!r}")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise FilterError("direction", f"must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if self.customs_office is not None and not self.customs_office.strip():
            raise FilterError("customs_office", "must not be blank")
        self._check_values()
        for level in self.risk_levels:
            if level not in RISK_LEVELS:
                raise FilterError("risk_levels", f"must be among {', '.join(RISK_LEVELS)}, got {level!r}")
        return self

    def _check_dates(self) -> None:
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, date):
                raise FilterError(name, f"must be a date, got {value!r}")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise FilterError("date_from", f"{self.date_from} is after date_to {self.date_to}")

    def _check_values(self) -> None:
        for name in ("value_min", "value_max"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise FilterError(name, f"must be a number, got {value!r}")
            if value < 0:
                raise FilterError(name, f"must not be negative, got {value}")
        if self.value_min is not None and self.value_max is not None and self.value_min > self.value_max:
            raise FilterError("value_min", f"{self.value_min} is greater than value_max {self.value_max}")

    def is_empty(self) -> bool:
        """True when no field restricts anything."""
        return not any(getattr(self, f.name) not in (None, []) for f in fields(self))

    @property
    def date_from_num(self) -> int | None:
        """``date_from`` as the integer YYYYMMDD that stores index (ranges on ints work everywhere)."""
        return date_number(self.date_from.isoformat()) if self.date_from else None

    @property
    def date_to_num(self) -> int | None:
        """``date_to`` as the integer YYYYMMDD that stores index."""
        return date_number(self.date_to.isoformat()) if self.date_to else None


def date_number(iso_date: str | None) -> int | None:
    """``"2024-03-01"`` -> ``20240301``; the one date encoding all stores filter and sort on."""
    if not iso_date:
        return None
    return int(iso_date[:10].replace("-", ""))


def hs_prefixes(hs_code: str | None) -> list[str]:
    """Every prefix of an HS code from 2 digits up: an ``hs_prefix`` filter is then one exact term."""
    if not hs_code:
        return []
    return [hs_code[:n] for n in range(2, len(hs_code) + 1)]
