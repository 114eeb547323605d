"""The canonical customs-declaration record and the header aliases that map exports onto it.

One :class:`Declaration` is one goods line of a declaration; its id is ``{declaration_id}#{line_no}``,
so re-ingesting a record replaces it.

Document keys (``Declaration.to_document()``, what the search stores index; keep them stable):

=========================  ==========================================================================
``id``                     ``"{declaration_id}#{line_no}"``
``declaration_id``         str, e.g. ``"UA100010/2024/012345"``
``line_no``                int, 1-based goods line within the declaration
``date``                   ISO date string ``"2024-03-01"``
``month``                  ``"2024-03"``
``direction``              ``"import"`` | ``"export"``
``customs_office``         str
``importer_code``          str, ЄДРПОУ, 8 digits zero-padded
``importer_name``          str
``exporter_name``          str
``hs_code``                str, 4-10 digits
``hs_chapter``             first 2 digits of ``hs_code``
``hs_heading``             first 4 digits of ``hs_code``
``goods_description``      str
``trading_country``        ISO alpha-2 or null; ``trading_country_name`` its English name or null
``dispatch_country``       ISO alpha-2 or null; ``dispatch_country_name`` its English name or null
``origin_country``         ISO alpha-2 or null; ``origin_country_name`` its English name or null
``net_weight_kg``          float or null
``gross_weight_kg``        float or null
``quantity``               float or null
``unit``                   str or null
``invoice_value``          float or null, in ``currency``
``currency``               ISO 4217 alpha-3 or null
``customs_value_usd``      float or null
``unit_price_usd_per_kg``  ``customs_value_usd / net_weight_kg`` rounded to 4 decimals, or null
``risk_level``             str, ``"low"`` until the risk module scores the record
``risk_flags``             list of dicts (filled by the risk module)
=========================  ==========================================================================
"""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field, fields

from predator.countries import country_name, name_key


@dataclass(slots=True)
class Declaration:
    """One goods line of a customs declaration, in canonical form."""

    declaration_id: str
    line_no: int
    date: dt.date
    direction: str
    customs_office: str
    importer_code: str
    importer_name: str
    exporter_name: str
    hs_code: str
    goods_description: str
    trading_country: str | None = None
    dispatch_country: str | None = None
    origin_country: str | None = None
    net_weight_kg: float | None = None
    gross_weight_kg: float | None = None
    quantity: float | None = None
    unit: str | None = None
    invoice_value: float | None = None
    currency: str | None = None
    customs_value_usd: float | None = None
    risk_level: str = "low"
    risk_flags: list[dict] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.declaration_id}#{self.line_no}"

    @property
    def hs_chapter(self) -> str:
        return self.hs_code[:2]

    @property
    def hs_heading(self) -> str:
        return self.hs_code[:4]

    @property
    def month(self) -> str:
        return self.date.strftime("%Y-%m")

    @property
    def unit_price_usd_per_kg(self) -> float | None:
        if self.customs_value_usd is None or not self.net_weight_kg:
            return None
        return round(self.customs_value_usd / self.net_weight_kg, 4)

    def to_document(self) -> dict:
        """Flat JSON-serialisable dict of every canonical and derived field (keys: module docstring)."""
        doc = {f: getattr(self, f) for f in CANONICAL_FIELDS}
        doc["date"] = self.date.isoformat()
        doc["risk_flags"] = [dict(flag) for flag in self.risk_flags]
        doc.update(
            id=self.id,
            month=self.month,
            hs_chapter=self.hs_chapter,
            hs_heading=self.hs_heading,
            unit_price_usd_per_kg=self.unit_price_usd_per_kg,
            trading_country_name=country_name(self.trading_country),
            dispatch_country_name=country_name(self.dispatch_country),
            origin_country_name=country_name(self.origin_country),
        )
        return doc

    @classmethod
    def from_document(cls, doc: dict) -> Declaration:
        """Inverse of :meth:`to_document`: derived keys are ignored, ``date`` is an ISO string."""
        values = {f: doc.get(f) for f in CANONICAL_FIELDS if f in doc}
        values["date"] = dt.date.fromisoformat(doc["date"])
        values["line_no"] = int(doc["line_no"])
        values["risk_flags"] = [dict(flag) for flag in doc.get("risk_flags") or []]
        return cls(**values)


CANONICAL_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Declaration))

# An input-only field: the USD-per-kg customs value of real exports. When no total customs value is
# given, the normaliser derives customs_value_usd = round(customs_value_usd_per_kg * net_weight_kg, 2).
PER_KG_VALUE_FIELD = "customs_value_usd_per_kg"

# Header alias -> canonical field. Matched case-, whitespace- and punctuation-insensitively
# (see header_key), so one spelling per wording is enough.
FIELD_ALIASES: dict[str, str] = {
    # Real Ukrainian export headers.
    "Митниця оформлення": "customs_office",
    "Митниця": "customs_office",
    "Тип декларації": "direction",
    "Напрямок": "direction",
    "Номер митної декларації": "declaration_id",
    "Номер декларації": "declaration_id",
    "Номер товару": "line_no",
    "№ товару": "line_no",
    "Дата оформлення": "date",
    "Дата": "date",
    "Відправник": "exporter_name",
    "ЄДРПОУ одержувача": "importer_code",
    "ЄДРПОУ": "importer_code",
    "Код ЄДРПОУ": "importer_code",
    "Одержувач": "importer_name",
    "Код товару": "hs_code",
    "Код УКТЗЕД": "hs_code",
    "УКТЗЕД": "hs_code",
    "Опис товару": "goods_description",
    "Торгуюча країна": "trading_country",
    "Країна відправлення": "dispatch_country",
    "Країна походження": "origin_country",
    "Маса, нетто, кг": "net_weight_kg",
    "Маса нетто": "net_weight_kg",
    "Маса, брутто, кг": "gross_weight_kg",
    "Маса брутто": "gross_weight_kg",
    "Кількість": "quantity",
    "Одиниця виміру": "unit",
    "Фактурна варість, валюта контракту": "invoice_value",  # sic: the real export misspells it
    "Фактурна вартість, валюта контракту": "invoice_value",
    "Фактурна вартість": "invoice_value",
    "Валюта": "currency",
    "Валюта контракту": "currency",
    "Митна вартість, дол. США": "customs_value_usd",
    "Розрахункова митна вартість, нетто дол. США / кг": PER_KG_VALUE_FIELD,
    # English variants.
    "Customs office": "customs_office",
    "Declaration type": "direction",
    "Declaration number": "declaration_id",
    "Declaration no": "declaration_id",
    "Declaration": "declaration_id",
    "Line": "line_no",
    "Line number": "line_no",
    "Item no": "line_no",
    "Item number": "line_no",
    "Goods number": "line_no",
    "Declaration date": "date",
    "Exporter": "exporter_name",
    "Sender": "exporter_name",
    "Consignor": "exporter_name",
    "EDRPOU": "importer_code",
    "Importer EDRPOU": "importer_code",
    "Importer": "importer_name",
    "Consignee": "importer_name",
    "HS code": "hs_code",
    "HS": "hs_code",
    "Commodity code": "hs_code",
    "UKTZED": "hs_code",
    "Description": "goods_description",
    "Goods": "goods_description",
    "Country of dispatch": "dispatch_country",
    "Country of origin": "origin_country",
    "Origin": "origin_country",
    "Net weight": "net_weight_kg",
    "Net weight, kg": "net_weight_kg",
    "Gross weight": "gross_weight_kg",
    "Gross weight, kg": "gross_weight_kg",
    "Qty": "quantity",
    "Unit of measure": "unit",
    "Invoice amount": "invoice_value",
    "Customs value, USD": "customs_value_usd",
    "Customs value": "customs_value_usd",
    "Customs value per kg, USD": PER_KG_VALUE_FIELD,
}


def header_key(header: str) -> str:
    """Matching key of a header: case-folded, without spaces and punctuation; ``№`` reads as ``номер``."""
    return name_key(str(header).replace("№", "номер"))


@functools.cache
def _alias_index() -> dict[str, str]:
    index = {header_key(alias): target for alias, target in FIELD_ALIASES.items()}
    for name in (*CANONICAL_FIELDS, PER_KG_VALUE_FIELD):
        index[header_key(name)] = name
        index.setdefault(header_key(name.replace("_", " ")), name)
    return index


@functools.lru_cache(maxsize=4096)  # called for every cell of every row: a file has few distinct headers
def canonical_field(header: str) -> str | None:
    """Canonical field a column header stands for, or None for a column the platform ignores."""
    return _alias_index().get(header_key(header))
