"""Country reference data built from ``pycountry`` (ISO 3166-1 with its Ukrainian translations).

Tables are built lazily on first use and cached: importing this module reads nothing.
Lookups accept alpha-2, alpha-3, English names (official, common, short) and Ukrainian names,
matched case- and punctuation-insensitively (``"south korea"``, ``"Південна Корея"``, ``"KOR"``
all give ``"KR"``).
"""
from __future__ import annotations

import functools
import gettext
import re
from dataclasses import dataclass

import pycountry

_NON_WORD = re.compile(r"[\W_]+")

# Names analysts and customs exports actually write that ISO does not carry.
_EXTRA_NAMES = {
    "USA": "US", "United States of America": "US", "America": "US", "США": "US",
    "UK": "GB", "Great Britain": "GB", "England": "GB", "Britain": "GB", "Велика Британія": "GB",
    "Russia": "RU", "Росія": "RU", "РФ": "RU",
    "Korea": "KR", "Корея": "KR", "Республіка Корея": "KR",
    "Turkey": "TR", "Туреччина": "TR", "Czech Republic": "CZ", "Чехія": "CZ",
    "Moldova": "MD", "Молдова": "MD", "Holland": "NL", "Нідерланди": "NL",
    "Vietnam": "VN", "В'єтнам": "VN", "China": "CN", "КНР": "CN", "Тайвань": "TW",
    "Iran": "IR", "Іран": "IR", "Syria": "SY", "Сирія": "SY",
}


@dataclass(frozen=True, slots=True)
class Country:
    """One ISO 3166-1 country with the names the platform shows."""

    alpha_2: str
    alpha_3: str
    name_en: str
    name_uk: str


def name_key(text: str) -> str:
    """Matching key of a name: case-folded, apostrophes and punctuation and spaces removed."""
    return _NON_WORD.sub("", text.casefold())


@functools.cache
def countries() -> dict[str, Country]:
    """Every ISO 3166-1 country keyed by alpha-2, with English (common) and Ukrainian names."""
    uk = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["uk"], fallback=True)
    table = {}
    for c in pycountry.countries:
        english = getattr(c, "common_name", None) or c.name
        table[c.alpha_2] = Country(c.alpha_2, c.alpha_3, english, uk.gettext(c.name))
    return table


@functools.cache
def _lookup_index() -> dict[str, str]:
    """Reverse map name-key -> alpha-2.

    Precedence: codes, then full names, then short forms cut at a comma ("Moldova, Republic of" ->
    "Moldova"); a full name or short form shared by two countries is left out of its tier.
    """
    uk = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["uk"], fallback=True)
    index: dict[str, str] = {}
    full: dict[str, set[str]] = {}
    short: dict[str, set[str]] = {}
    for c in pycountry.countries:
        for code in (c.alpha_2, c.alpha_3):
            index[name_key(code)] = c.alpha_2
        names = {c.name, getattr(c, "common_name", ""), getattr(c, "official_name", "")}
        names |= {uk.gettext(n) for n in names if n}
        for name in filter(None, names):
            full.setdefault(name_key(name), set()).add(c.alpha_2)
            if "," in name:
                short.setdefault(name_key(name.split(",")[0]), set()).add(c.alpha_2)
    for tier in (full, short):
        for key, codes in tier.items():
            if len(codes) == 1 and key not in index:
                index[key] = next(iter(codes))
    for name, code in _EXTRA_NAMES.items():
        index[name_key(name)] = code
    return index


@functools.lru_cache(maxsize=4096)  # exports repeat the same few dozen spellings
def lookup_country(text: str) -> str | None:
    """Alpha-2 code of a country given as a code or an English/Ukrainian name; None if unknown."""
    return _lookup_index().get(name_key(text))


def country_name(code: str | None, lang: str = "en") -> str | None:
    """English (``lang="en"``) or Ukrainian (``"uk"``) name of an alpha-2 code; None if unknown."""
    country = countries().get(code) if code else None
    if country is None:
        return None
    return country.name_uk if lang == "uk" else country.name_en
