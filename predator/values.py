"""Parsers for the values found in customs exports.

Each parser takes a raw cell (text from CSV/JSONL, or a typed value from XLSX/Parquet) and returns
the canonical value, or raises ``ValueError`` whose message quotes the value and says what is wrong
(``"'31.02.2024' does not parse"``); the normaliser prefixes the field name to make the reason.
Empty cells (None, blank text) give None where a parser allows a missing value.
"""
from __future__ import annotations

import datetime as dt
import functools
import gettext
import math
import re

import pycountry

from predator.countries import lookup_country, name_key

_SPACES = re.compile(r"[\s\u00a0\u202f']+")  # thousands separators: space, no-break spaces, apostrophe
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
_EXCEL_EPOCH = dt.date(1899, 12, 30)
_DAY_FIRST = re.compile(r"(?P<d>\d{1,2})[./](?P<m>\d{1,2})[./](?P<y>\d{4})")
_ISO_DATE = re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})")
_DATE_FORMATS = ("%d.%m.%y", "%Y.%m.%d", "%Y/%m/%d")

# Words found in "currency" columns beyond ISO names; Ukrainian spellings included.
_EXTRA_CURRENCIES = {
    "долар": "USD", "долари": "USD", "доларсша": "USD", "дол": "USD", "dollar": "USD", "usdollar": "USD",
    "євро": "EUR", "euro": "EUR", "гривня": "UAH", "грн": "UAH", "злотий": "PLN", "zloty": "PLN",
    "юань": "CNY", "yuan": "CNY", "rmb": "CNY", "фунтстерлінгів": "GBP",
}


def is_blank(value: object) -> bool:
    """True for None, NaN and whitespace-only text: a cell with nothing in it."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def parse_number(value: object) -> float | None:
    """Parse ``1 234,56``, ``1,234.56``, ``1234.56``, ``1234,5`` (and typed numbers); blank -> None.

    With both separators the last one is the decimal mark. A lone comma is a decimal comma, as in
    Ukrainian exports (so ``1,234`` is 1.234); several commas or several dots are thousands marks.
    """
    if is_blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"'{value}' is not a number")
    if isinstance(value, (int, float)):
        if math.isinf(value):
            raise ValueError(f"'{value}' is not a number")
        return float(value)
    text = _SPACES.sub("", str(value).strip())
    if "," in text and "." in text:
        thousands = "," if text.rfind(".") > text.rfind(",") else "."
        text = text.replace(thousands, "").replace(",", ".")
    elif text.count(",") > 1 or text.count(".") > 1:
        text = text.replace(",", "").replace(".", "")
    else:
        text = text.replace(",", ".")
    if not _PLAIN_NUMBER.fullmatch(text):
        raise ValueError(f"'{value}' is not a number")
    return float(text)


def parse_date(value: object) -> dt.date:
    """Parse ``01.03.2024``, ``2024-03-01``, ``01/03/2024`` (day first), ISO datetimes, Excel dates.

    Excel cells arrive as ``datetime``; a bare number is read as an Excel serial day.
    """
    if is_blank(value):
        raise ValueError("date is empty")
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 1 <= value < 2958466:  # Excel's valid serial range (1900-01-01 .. 9999-12-31)
            return _EXCEL_EPOCH + dt.timedelta(days=int(value))
        raise ValueError(f"'{value}' does not parse")
    text = str(value).strip()
    # Fast path for the two spellings of nearly every export; date() itself rejects 31.02.
    match = _DAY_FIRST.fullmatch(text) or _ISO_DATE.fullmatch(text)
    if match:
        try:
            return dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
        except ValueError:
            raise ValueError(f"'{value}' does not parse") from None
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    # "2024-03-01T10:00:00", "2024-03-01 00:00:00", "01.03.2024 00:00:00"
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        pass
    head = text.split(" ")[0].split("T")[0]
    if head != text:
        try:
            return parse_date(head)
        except ValueError:
            pass
    raise ValueError(f"'{value}' does not parse")


def cell_text(value: object) -> str:
    """Text of a cell: integral floats (Excel/pandas codes) without '.0', text stripped."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def normalise_edrpou(value: object) -> str:
    """ЄДРПОУ code as 8 digits, restoring leading zeros that spreadsheets drop (``12345`` -> ``00012345``)."""
    if is_blank(value):
        raise ValueError("code is empty")
    text = _SPACES.sub("", cell_text(value))
    if not text.isdigit():
        raise ValueError(f"'{value}' is not all digits")
    if len(text) > 8:
        raise ValueError(f"'{value}' has more than 8 digits")
    return text.zfill(8)


def normalise_hs(value: object) -> str:
    """УКТЗЕД/HS code as 4-10 digits: ``8471.30.00.00`` -> ``8471300000``.

    A code stored as a number has lost its leading zero when its length is odd (``101210000`` is
    ``0101210000``: chapters 01-09), so numeric codes of odd length get one zero back.
    """
    if is_blank(value):
        raise ValueError("code is empty")
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    text = re.sub(r"[\s.\-/\u00a0]", "", cell_text(value))
    if not text.isdigit():
        raise ValueError(f"'{value}' is not all digits")
    if numeric and len(text) % 2:
        text = "0" + text
    if not 4 <= len(text) <= 10:
        raise ValueError(f"'{value}' must have 4-10 digits")
    return text


# Latin letters that look like the Cyrillic ones of declaration types ("IM40DE" typed on a Latin keyboard).
_LOOKALIKES = str.maketrans({"i": "і", "m": "м", "e": "е", "k": "к", "и": "і"})


def parse_direction(value: object) -> str:
    """``import``/``export`` from a declaration type (``ІМ40ДЕ``, ``ЕК10АА``, Latin ``IM``/``EK``) or a word."""
    if is_blank(value):
        raise ValueError("direction is empty")
    text = str(value).strip().casefold()
    for word, direction in (("import", "import"), ("імпорт", "import"), ("export", "export"), ("експорт", "export")):
        if text.startswith(word):
            return direction
    text = text.translate(_LOOKALIKES)
    if text.startswith("ім"):
        return "import"
    if text.startswith("ек"):
        return "export"
    raise ValueError(f"'{value}' is not a declaration type (ІМ... or ЕК...)")


def normalise_country(value: object) -> str | None:
    """ISO alpha-2 from alpha-2, alpha-3, English or Ukrainian name; blank -> None."""
    if is_blank(value):
        return None
    code = lookup_country(str(value))
    if code is None:
        raise ValueError(f"'{value}' is an unknown country")
    return code


@functools.cache
def _currency_index() -> dict[str, str]:
    """Reverse map of currency codes, ISO numbers, English and Ukrainian names -> alpha-3."""
    uk = gettext.translation("iso4217", pycountry.LOCALES_DIR, languages=["uk"], fallback=True)
    index = {}
    for c in pycountry.currencies:
        for name in (c.name, uk.gettext(c.name)):
            index.setdefault(name_key(name), c.alpha_3)
    for c in pycountry.currencies:  # codes override any clash with a name
        index[name_key(c.alpha_3)] = c.alpha_3
        if getattr(c, "numeric", None):
            index[c.numeric] = c.alpha_3
            index[str(int(c.numeric))] = c.alpha_3
    index.update(_EXTRA_CURRENCIES)
    return index


def normalise_currency(value: object) -> str | None:
    """ISO 4217 alpha-3 from a code (``eur``), a number (``978``) or a name (``Євро``); blank -> None."""
    if is_blank(value):
        return None
    code = _currency_index().get(name_key(cell_text(value)))
    if code is None:
        raise ValueError(f"'{value}' is an unknown currency")
    return code
