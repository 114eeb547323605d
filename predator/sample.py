"""Realistic, seeded sample declarations with labelled anomalies, for demos, tests and benchmarks.

The world: a few hundred Ukrainian companies (8-digit ЄДРПОУ, names like ``ТОВ "АГРОТЕХ-ЗАХІД"``),
each importing (or, some, exporting) goods of a handful of HS headings through one or two of ~20
customs offices, from foreign partners (``... GmbH``, ``... Sp. z o.o.``, ``... Co., Ltd.``).
Goods descriptions come from the HS subheading texts (English), sometimes with brand and model, and
for common chapters sometimes in Ukrainian. Each heading has its own lognormal weight and unit-price
distribution, derived deterministically from the seed and the heading code.

Anomalies, a share ``anomaly_rate`` of the rows split in three, each labelled in a sidecar file
``PATH + ".labels.jsonl"`` as ``{"id", "anomaly", "detail"}``:

- ``undervaluation``: the unit price is 70-95 % below the heading's normal price;
- ``misclassification``: goods described as one heading, declared under a heading of another chapter
  (``detail.true_heading`` is the heading the goods belong to);
- ``new_mass_importer``: a company first seen in the last three weeks of the range, which then
  declares many high-volume lines within one or two weeks (every such line is labelled).

Export declarations: the Ukrainian company's code stays in ``importer_code`` (the only company code
an export carries); its name is ``exporter_name`` and the foreign buyer is ``importer_name``.

Output styles: ``ua`` writes the headers and formats of real Ukrainian exports (``01.03.2024``,
``1 234,56``, ``ІМ40ДЕ``, codes sometimes without leading zeros or with dots); ``canonical`` writes
the canonical field names with plain values. The same seed always gives the same records and file.
"""
from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import math
import random
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from predator.countries import country_name
from predator.nomenclature import load_nomenclature
from predator.schema import CANONICAL_FIELDS, Declaration

START = dt.date(2023, 1, 1)
DAYS = 731  # 2023-01-01 .. 2024-12-31
FORMATS = ("csv", "xlsx", "jsonl", "parquet")
ANOMALIES = ("undervaluation", "misclassification", "new_mass_importer")
INPUT_FIELDS = tuple(f for f in CANONICAL_FIELDS if f not in ("risk_level", "risk_flags"))

CUSTOMS_OFFICES = {  # code -> (name, weight: share of declarations)
    "UA100000": ("Київська митниця", 20), "UA500000": ("Одеська митниця", 14),
    "UA209000": ("Львівська митниця", 10), "UA205000": ("Волинська митниця", 8),
    "UA305000": ("Закарпатська митниця", 5), "UA408000": ("Чернівецька митниця", 3),
    "UA807000": ("Харківська митниця", 4), "UA110000": ("Дніпровська митниця", 5),
    "UA401000": ("Вінницька митниця", 3), "UA400000": ("Хмельницька митниця", 2),
    "UA101000": ("Житомирська митниця", 2), "UA204000": ("Рівненська митниця", 2),
    "UA304000": ("Тернопільська митниця", 2), "UA206000": ("Івано-Франківська митниця", 2),
    "UA806000": ("Полтавська митниця", 2), "UA805000": ("Сумська митниця", 1),
    "UA102000": ("Чернігівська митниця", 1), "UA700000": ("Черкаська митниця", 1),
    "UA504000": ("Миколаївська митниця", 3), "UA112000": ("Запорізька митниця", 2),
    "UA903000": ("Енергетична митниця", 2),
}

IMPORT_CHAPTERS = {
    "84": 10, "85": 10, "87": 7, "39": 6, "73": 5, "30": 4, "33": 4, "94": 4, "95": 3, "64": 3,
    "61": 3, "62": 3, "08": 3, "22": 3, "27": 3, "31": 2, "40": 3, "48": 2, "90": 3, "72": 2,
    "44": 1, "20": 2, "21": 2, "38": 2, "29": 2, "96": 2, "69": 2, "70": 2, "76": 2, "83": 2,
    "34": 2, "32": 2, "82": 2, "18": 1, "19": 1, "09": 1, "03": 1, "02": 1, "04": 1, "07": 1,
    "17": 1, "15": 1, "28": 1, "63": 1, "52": 1, "68": 1, "25": 1, "24": 1,
}
EXPORT_CHAPTERS = {"10": 5, "12": 4, "15": 4, "72": 3, "44": 2, "23": 2, "26": 1, "94": 1, "85": 1, "20": 1}
MASS_IMPORT_CHAPTERS = ("85", "84", "61", "64", "95", "33", "87", "39")

# Ukrainian wording of the goods of common chapters, for descriptions written in Ukrainian.
UK_GOODS = {
    "02": "м'ясо заморожене", "03": "риба заморожена", "04": "молочна продукція", "07": "овочі свіжі",
    "08": "фрукти свіжі", "09": "кава, чай, прянощі", "10": "зернові культури", "12": "насіння олійних культур",
    "15": "олія рослинна", "17": "цукор та кондитерські вироби", "18": "шоколадні вироби",
    "19": "борошняні кондитерські вироби", "20": "консервовані овочі та фрукти", "21": "харчові продукти",
    "22": "напої", "24": "тютюнові вироби", "27": "нафтопродукти", "28": "неорганічні хімічні речовини",
    "29": "органічні хімічні сполуки", "30": "лікарські засоби", "31": "мінеральні добрива",
    "32": "фарби та лаки", "33": "косметичні засоби", "34": "мийні засоби", "38": "хімічна продукція",
    "39": "вироби з пластмас", "40": "гумові вироби", "44": "деревина та вироби з деревини",
    "48": "папір та картон", "61": "одяг трикотажний", "62": "одяг текстильний", "64": "взуття",
    "69": "керамічні вироби", "70": "вироби зі скла", "72": "чорні метали", "73": "вироби з чорних металів",
    "76": "вироби з алюмінію", "82": "інструменти", "83": "вироби з недорогоцінних металів",
    "84": "машини та механічні пристрої", "85": "електричне обладнання", "87": "частини до транспортних засобів",
    "90": "прилади та апарати вимірювальні", "94": "меблі", "95": "іграшки та спортивний інвентар",
    "96": "різні готові вироби",
}

# (last chapter of a range, low, high) of heading median unit prices, USD per kg.
PRICE_RANGES = (
    (24, 0.4, 8.0), (27, 0.05, 1.5), (38, 0.8, 25.0), (40, 1.5, 12.0), (43, 5.0, 60.0), (49, 0.3, 5.0),
    (63, 3.0, 40.0), (67, 6.0, 60.0), (70, 0.3, 6.0), (71, 500.0, 40000.0), (83, 0.6, 20.0),
    (85, 8.0, 250.0), (89, 5.0, 60.0), (92, 30.0, 600.0), (93, 20.0, 200.0), (99, 3.0, 30.0),
)
BULK_CHAPTERS = {"10", "12", "23", "25", "26", "27", "31", "72", "44", "15"}
PIECE_UNITS = {"84": "шт", "85": "шт", "87": "шт", "90": "шт", "94": "шт", "95": "шт", "82": "шт",
               "61": "шт", "62": "шт", "63": "шт", "96": "шт", "91": "шт", "64": "пар", "22": "л"}

SUPPLIER_COUNTRIES = {"CN": 26, "PL": 12, "DE": 10, "TR": 8, "IT": 5, "US": 4, "NL": 3, "CZ": 3, "FR": 3,
                      "KR": 3, "JP": 2, "IN": 3, "ES": 2, "HU": 2, "RO": 2, "MD": 1, "LT": 2, "VN": 2, "GB": 2}
EXPORT_MARKETS = {"PL": 8, "DE": 5, "TR": 6, "IT": 4, "NL": 4, "RO": 4, "MD": 3, "CN": 4, "EG": 3, "ES": 3, "HU": 2}
NEIGHBOURS = {"PL", "DE", "CZ", "HU", "RO", "MD", "LT", "NL", "IT", "FR", "ES", "TR", "GB"}
TRANSIT = ("PL", "PL", "SK", "HU", "RO", "TR", "NL")
EURO_COUNTRIES = {"DE", "IT", "NL", "FR", "ES", "LT"}
USD_RATES = {"USD": 1.0, "EUR": 0.92, "PLN": 4.0, "CNY": 7.1}

FOREIGN_NAMES = {  # country -> (roots, legal forms)
    "CN": (("Shenzhen Huaxin", "Ningbo Ocean", "Guangzhou Tianhe", "Yiwu Jinli", "Zhejiang Hengda",
            "Qingdao Haida", "Xiamen Kingtop", "Foshan Meida"), ("Co., Ltd.", "Trading Co., Ltd.", "Import & Export Co., Ltd.")),
    "PL": (("Polmex", "Agropol", "Budmat", "Tech-Pol", "Marpol", "Euro-Trans", "Drewpol"), ("Sp. z o.o.", "S.A.")),
    "DE": (("Schneider", "Hoffmann", "Becker", "Krause", "Weber", "Fischer", "Wagner"), ("GmbH", "GmbH & Co. KG", "AG")),
    "TR": (("Anadolu", "Ege", "Marmara", "Bosphorus", "Kaya", "Yildiz"), ("Dis Ticaret Ltd. Sti.", "Sanayi A.S.")),
    "IT": (("Rossi", "Bianchi", "Colombo", "Galli", "Ferraro"), ("S.r.l.", "S.p.A.")),
    "US": (("Atlantic", "Pioneer", "Summit", "Liberty", "Great Lakes"), ("Inc.", "LLC")),
    "GB": (("Thames", "Albion", "Sterling", "Crown"), ("Ltd", "PLC")),
    "NL": (("Van Dijk", "Oranje", "Holland Trade"), ("B.V.",)),
    "CZ": (("Moravia", "Bohemia", "Praha Tech"), ("s.r.o.", "a.s.")),
    "FR": (("Dupont", "Lumiere", "Provence"), ("SAS", "SARL")),
    "KR": (("Hanil", "Daesung", "Seoul Tech"), ("Co., Ltd.",)),
    "JP": (("Nippon Kiko", "Tokai", "Osaka Seiki"), ("Co., Ltd.", "Corporation")),
    "IN": (("Bharat", "Shree Ganesh", "Sunrise"), ("Pvt. Ltd.",)),
    "ES": (("Iberica", "Levante", "Castilla"), ("S.L.", "S.A.")),
    "HU": (("Duna", "Pannon"), ("Kft.", "Zrt.")),
    "RO": (("Carpati", "Dacia Trade"), ("S.R.L.",)),
    "MD": (("Moldagro", "Codru"), ("SRL",)),
    "LT": (("Baltic", "Nemunas"), ("UAB",)),
    "VN": (("Saigon", "Hanoi Star"), ("Co., Ltd.", "JSC")),
    "EG": (("Nile", "Delta Foods"), ("S.A.E.",)),
}
INDUSTRY_WORDS = ("Trading", "Industrial", "International", "Group", "Supply", "Commerce", "Export")

UA_FORMS = ("ТОВ", "ТОВ", "ТОВ", "ТОВ", "ПП", "ТзОВ", "ПрАТ", "АТ")
UA_ROOTS = ("АГРО", "ТЕХНО", "БУД", "ЕНЕРГО", "ФАРМ", "ТРАНС", "МЕТАЛ", "ХІМ", "ЕЛЕКТРО", "АВТО", "ПРОМ",
            "ТЕКС", "ПАК", "МЕД", "ФУД", "ОПТ", "ІНВЕСТ", "КОМ", "ЛОГІСТ", "ЕКО", "МАКС", "ГРАНД")
UA_SUFFIXES = ("ТРЕЙД", "ІМПОРТ", "СЕРВІС", "ГРУП", "ПОСТАЧ", "КОМПЛЕКТ", "СИСТЕМ", "ЛАЙН", "ТОРГ",
               "ЦЕНТР", "ХОЛДИНГ", "ДИСТРИБ'ЮШН", "СВІТ", "ПРОФІ")
UA_REGIONS = ("ЗАХІД", "СХІД", "ДНІПРО", "КАРПАТИ", "ПОДІЛЛЯ", "ПІВДЕНЬ", "УКРАЇНА", "КИЇВ", "ПЛЮС", "2000")

BRANDS = ("Bosch", "Makita", "Samsung", "Xiaomi", "Lenovo", "Philips", "Siemens", "Haier", "Midea", "Hisense",
          "DeWalt", "Karcher", "Henkel", "BASF", "Nivea", "Continental", "Michelin", "Hilti", "Grundfos", "ABB",
          "Legrand", "Tefal", "Gorenje", "Electrolux", "Canon", "Epson", "TP-Link", "Huawei", "Lego", "Mattel",
          "Adidas", "Puma", "Geox", "Ecco", "Bayer", "Sanofi", "KRKA", "Gedeon Richter", "Dr. Oetker", "Nestle")
NATIONAL_SUFFIXES = ("0000", "0000", "0000", "1000", "9000", "1090", "9090", "2000")
LINES_PER_DECLARATION = ((1, 2, 3, 4, 5, 6, 8, 10), (40, 20, 12, 8, 6, 5, 5, 4))

UA_HEADERS = {  # canonical field -> real export header, in the column order of the portal's exports
    "customs_office": "Митниця оформлення",
    "direction": "Тип декларації",
    "declaration_id": "Номер митної декларації",
    "line_no": "Номер товару",
    "date": "Дата оформлення",
    "exporter_name": "Відправник",
    "importer_code": "ЄДРПОУ одержувача",
    "importer_name": "Одержувач",
    "hs_code": "Код товару",
    "goods_description": "Опис товару",
    "trading_country": "Торгуюча країна",
    "dispatch_country": "Країна відправлення",
    "origin_country": "Країна походження",
    "net_weight_kg": "Маса, нетто, кг",
    "gross_weight_kg": "Маса, брутто, кг",
    "quantity": "Кількість",
    "unit": "Одиниця виміру",
    "invoice_value": "Фактурна варість, валюта контракту",
    "currency": "Валюта",
    "customs_value_usd": "Митна вартість, дол. США",
    "customs_value_usd_per_kg": "Розрахункова митна вартість, нетто дол. США / кг",
}
CURRENCY_NUMBERS = {"USD": "840", "EUR": "978", "PLN": "985", "CNY": "156"}


@dataclass(slots=True)
class _Heading:
    code: str
    subheadings: list[str]
    price_median: float  # USD per kg
    weight_median: float  # kg per line
    piece_mass: float  # kg per piece, for goods counted in pieces
    unit: str


@dataclass(slots=True)
class _Partner:
    name: str
    country: str


@dataclass(slots=True)
class _Company:
    code: str
    name: str
    direction: str
    headings: list[str]
    offices: list[str]
    partners: list[_Partner]
    first_day: int = 0


@dataclass(slots=True)
class _Group:
    """One declaration: its header and goods lines (ids are assigned once all dates are known)."""

    day: int
    office: str
    lines: list[Declaration] = field(default_factory=list)


def _weighted(rng: random.Random, table: dict[str, int]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _clean_description(text: str) -> str:
    """Short plain-ASCII goods text from a nomenclature description (no '(...)', no 'n.e.c. ...')."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"\([^)]*\)", "", text)
    text = re.sub(r",?\s*n\.e\.c\..*$", "", text)
    text = re.sub(r"\s+", " ", text.replace(";", ","))
    text = re.sub(r" ,", ",", text).strip(" ,")
    if len(text) > 110:
        text = text[:110].rsplit(" ", 1)[0].rstrip(" ,")
    return text


class _World:
    """The seeded cast of a sample: headings with their price/weight laws, companies, partners."""

    def __init__(self, seed: int, companies: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.nomenclature = load_nomenclature()
        self.by_chapter: dict[str, list[str]] = {}
        for code in self.nomenclature.headings:
            if self.nomenclature.subheadings_of(code) and code[:2] != "99":
                self.by_chapter.setdefault(code[:2], []).append(code)
        self._headings: dict[str, _Heading] = {}
        self._descriptions: dict[str, str] = {}
        self._codes: set[str] = set()
        self._names: set[str] = set()
        self.companies = [self.company() for _ in range(companies)]
        weights = [self.rng.paretovariate(1.3) for _ in self.companies]  # a few big importers, a long tail
        self.cum_weights = list(itertools.accumulate(weights))

    def heading(self, code: str) -> _Heading:
        """Price and weight laws of a heading: fixed by the seed and the heading code alone."""
        if code not in self._headings:
            rng = random.Random(f"{self.seed}:{code}")
            chapter = int(code[:2])
            low, high = next((lo, hi) for last, lo, hi in PRICE_RANGES if chapter <= last)
            weight_range = (5000, 60000) if code[:2] in BULK_CHAPTERS else (30, 3000)
            self._headings[code] = _Heading(
                code=code,
                subheadings=list(self.nomenclature.subheadings_of(code)),
                price_median=math.exp(rng.uniform(math.log(low), math.log(high))),
                weight_median=math.exp(rng.uniform(*map(math.log, weight_range))),
                piece_mass=math.exp(rng.uniform(math.log(0.1), math.log(50))),
                unit=PIECE_UNITS.get(code[:2], "кг"),
            )
        return self._headings[code]

    def description(self, subheading: str) -> str:
        if subheading not in self._descriptions:
            self._descriptions[subheading] = _clean_description(self.nomenclature.subheadings[subheading])
        return self._descriptions[subheading]

    def edrpou(self) -> str:
        """A new unique ЄДРПОУ; a quarter of them have leading zeros, as old registrations do."""
        while True:
            low, high = (100000, 9999999) if self.rng.random() < 0.25 else (10000000, 45999999)
            code = str(self.rng.randint(low, high)).zfill(8)
            if code not in self._codes:
                self._codes.add(code)
                return code

    def ua_name(self) -> str:
        rng = self.rng
        for _ in range(20):  # re-roll a few times to keep names distinct
            core = rng.choice(UA_ROOTS) + rng.choice(UA_SUFFIXES)
            if rng.random() < 0.4:
                core += ("-" if rng.random() < 0.5 else " ") + rng.choice(UA_REGIONS)
            name = f'{rng.choice(UA_FORMS)} "{core}"'
            if name not in self._names:
                break
        self._names.add(name)
        return name

    def partner(self, country: str) -> _Partner:
        roots, forms = FOREIGN_NAMES[country]
        words = [self.rng.choice(roots)]
        if self.rng.random() < 0.5:
            words.append(self.rng.choice(INDUSTRY_WORDS))
        return _Partner(f"{' '.join(words)} {self.rng.choice(forms)}", country)

    def company(self, *, direction: str | None = None, chapters: tuple[str, ...] | None = None,
                first_day: int | None = None) -> _Company:
        """A company with its goods, offices and partners; by default most are active from day 0."""
        rng = self.rng
        direction = direction or ("export" if rng.random() < 0.12 else "import")
        if chapters is None:
            chapter = _weighted(rng, EXPORT_CHAPTERS if direction == "export" else IMPORT_CHAPTERS)
        else:
            chapter = rng.choice(chapters)
        pool = self.by_chapter[chapter]
        headings = rng.sample(pool, min(len(pool), rng.randint(2, 5)))
        if rng.random() < 0.3:  # a side line of business in another chapter
            headings.append(rng.choice(self.by_chapter[_weighted(rng, IMPORT_CHAPTERS)]))
        markets = EXPORT_MARKETS if direction == "export" else SUPPLIER_COUNTRIES
        offices = rng.choices(list(CUSTOMS_OFFICES), weights=[w for _, w in CUSTOMS_OFFICES.values()], k=2)
        return _Company(
            code=self.edrpou(),
            name=self.ua_name(),
            direction=direction,
            headings=headings,
            offices=offices[: rng.randint(1, 2)],
            partners=[self.partner(_weighted(rng, markets)) for _ in range(rng.randint(1, 4))],
            first_day=first_day if first_day is not None else (
                0 if rng.random() < 0.7 else rng.randrange(int(DAYS * 0.8))),
        )

    def pick_company(self) -> _Company:
        return self.rng.choices(self.companies, cum_weights=self.cum_weights)[0]

    def goods_text(self, subheading: str, partner: _Partner, origin: str) -> str:
        """English nomenclature text, sometimes with brand/model or maker; sometimes Ukrainian."""
        rng = self.rng
        chapter = subheading[:2]
        manufactured = int(chapter) >= 39
        brand = rng.choice(BRANDS)
        model = f"{rng.choice('ABCDEFHKLMNPRSTVXZ')}{rng.choice('ABCDEFHKLMNPRSTVXZ')}-{rng.randint(100, 9999)}"
        roll = rng.random()
        if chapter in UK_GOODS and roll < 0.3:
            made_in = country_name(origin, "uk")
            if manufactured:
                return f"{UK_GOODS[chapter].capitalize()}, торговельна марка {brand}, модель {model}, країна виробництва {made_in}"
            return f"{UK_GOODS[chapter].capitalize()}, виробник {partner.name}, країна виробництва {made_in}"
        text = self.description(subheading)
        if manufactured and roll < 0.6:
            return f"{text}, brand {brand}, model {model}"
        if roll < 0.75:
            return f"{text}. Manufacturer: {partner.name}"
        return text

    def line(self, company: _Company, partner: _Partner, heading_code: str, day: int, office: str,
             weight_factor: float = 1.0) -> Declaration:
        """One goods line of ``company`` (declaration id and line number are filled in later)."""
        rng = self.rng
        heading = self.heading(heading_code)
        subheading = rng.choice(heading.subheadings)
        if company.direction == "export":
            trading, dispatch, origin = partner.country, "UA", "UA"
            importer_name, exporter_name = partner.name, company.name
        else:
            trading = partner.country
            origin = trading if rng.random() < 0.8 else rng.choice(("CN", "CN", "CN", "TR", "VN", "IN", "DE"))
            dispatch = trading if trading in NEIGHBOURS or rng.random() < 0.5 else rng.choice(TRANSIT)
            importer_name, exporter_name = company.name, partner.name
        net = round(max(0.5, rng.lognormvariate(math.log(heading.weight_median), 1.0) * weight_factor), 2)
        if heading.unit in ("шт", "пар"):
            quantity = float(max(1, round(net / heading.piece_mass)))
        elif heading.unit == "л":
            quantity = round(net * 0.98, 2)
        else:
            quantity = net
        currency = self.currency(trading)
        line = Declaration(
            declaration_id="", line_no=0, date=START + dt.timedelta(days=day), direction=company.direction,
            customs_office=CUSTOMS_OFFICES[office][0], importer_code=company.code, importer_name=importer_name,
            exporter_name=exporter_name, hs_code=subheading + rng.choice(NATIONAL_SUFFIXES),
            goods_description=self.goods_text(subheading, partner, origin), trading_country=trading,
            dispatch_country=dispatch, origin_country=origin, net_weight_kg=net,
            gross_weight_kg=round(net * rng.uniform(1.02, 1.15), 2), quantity=quantity, unit=heading.unit,
            currency=currency,
        )
        _set_unit_price(line, rng.lognormvariate(math.log(heading.price_median), 0.35), rng.uniform(0.95, 1.0))
        return line

    def currency(self, country: str) -> str:
        roll = self.rng.random()
        if country == "PL":
            return "PLN" if roll < 0.6 else "EUR"
        if country == "CN":
            return "CNY" if roll < 0.3 else "USD"
        return "EUR" if country in EURO_COUNTRIES else "USD"


def _set_unit_price(line: Declaration, usd_per_kg: float, invoice_share: float = 1.0) -> None:
    """Price a line: customs value from a USD/kg price; invoice in its currency (customs value adds freight)."""
    line.customs_value_usd = max(round(usd_per_kg * line.net_weight_kg, 2), 0.01)
    line.invoice_value = round(line.customs_value_usd * USD_RATES[line.currency] * invoice_share, 2)


def _declaration_groups(world: _World, rows: int) -> list[_Group]:
    """Regular declarations of the world's companies, exactly ``rows`` goods lines in all."""
    rng = world.rng
    groups = []
    while rows > 0:
        company = world.pick_company()
        day = rng.randrange(company.first_day, DAYS)
        if (START + dt.timedelta(days=day)).weekday() >= 5:  # customs is quieter at weekends
            day = rng.randrange(company.first_day, DAYS)
        group = _Group(day, rng.choice(company.offices))
        partner = rng.choice(company.partners)
        n_lines = min(rows, rng.choices(*LINES_PER_DECLARATION)[0])
        for _ in range(n_lines):
            group.lines.append(world.line(company, partner, rng.choice(company.headings), day, group.office))
        rows -= n_lines
        groups.append(group)
    return groups


def _mass_importer_groups(world: _World, rows: int, labels: list[tuple[Declaration, str, dict]]) -> list[_Group]:
    """New companies appearing in the last weeks and declaring high volumes within a week or two."""
    rng = world.rng
    groups = []
    n_companies = max(1, round(rows / 30)) if rows else 0
    for index in range(n_companies):
        share = rows // n_companies + (1 if index < rows % n_companies else 0)
        first_day = DAYS - rng.randint(10, 21)
        window = min(rng.randint(7, 14), DAYS - 1 - first_day)
        company = world.company(direction="import", chapters=MASS_IMPORT_CHAPTERS, first_day=first_day)
        detail = {"importer_code": company.code,
                  "first_seen": (START + dt.timedelta(days=first_day)).isoformat(), "window_days": window}
        day = first_day
        while share > 0:
            group = _Group(day, company.offices[0])
            partner = rng.choice(company.partners)
            for _ in range(min(share, rng.randint(3, 8))):
                line = world.line(company, partner, rng.choice(company.headings), day, group.office,
                                  weight_factor=rng.uniform(8, 30))
                group.lines.append(line)
                labels.append((line, "new_mass_importer", detail))
            share -= len(group.lines)
            groups.append(group)
            day = first_day + rng.randint(0, window)
    return groups


def _plant_anomalies(world: _World, groups: list[_Group], undervalued: int, misclassified: int,
                     labels: list[tuple[Declaration, str, dict]]) -> None:
    """Turn chosen regular import lines into undervaluation and misclassification cases."""
    rng = world.rng
    candidates = [line for group in groups for line in group.lines if line.direction == "import"]
    chosen = rng.sample(candidates, min(len(candidates), undervalued + misclassified))
    for line in chosen[:undervalued]:
        heading = world.heading(line.hs_heading)
        discount = rng.uniform(0.70, 0.95)
        share = line.invoice_value / line.customs_value_usd / USD_RATES[line.currency]
        _set_unit_price(line, heading.price_median * (1 - discount), share)
        labels.append((line, "undervaluation", {
            "heading": heading.code, "normal_unit_price_usd_per_kg": round(heading.price_median, 4),
            "declared_unit_price_usd_per_kg": line.unit_price_usd_per_kg, "discount": round(discount, 3)}))
    for line in chosen[undervalued:]:
        true_heading = line.hs_heading
        chapters = [c for c in world.by_chapter if c != line.hs_chapter]
        declared = world.heading(rng.choice(world.by_chapter[rng.choice(chapters)]))
        line.hs_code = rng.choice(declared.subheadings) + rng.choice(NATIONAL_SUFFIXES)
        labels.append((line, "misclassification", {
            "true_heading": true_heading, "declared_heading": declared.code, "declared_hs_code": line.hs_code}))


def _assign_ids(world: _World, groups: list[_Group]) -> list[Declaration]:
    """Number declarations per office and year in date order, lines 1..n; return all lines in order."""
    groups.sort(key=lambda g: (g.day, g.office))
    counters: dict[tuple[str, int], int] = {}
    records = []
    for group in groups:
        year = (START + dt.timedelta(days=group.day)).year
        key = (group.office, year)
        counters[key] = counters.get(key, world.rng.randint(0, 800)) + 1
        declaration_id = f"{group.office}/{year}/{counters[key]:06d}"
        for line_no, line in enumerate(group.lines, start=1):
            line.declaration_id, line.line_no = declaration_id, line_no
            records.append(line)
    return records


def generate(rows: int, seed: int = 0, anomaly_rate: float = 0.03) -> tuple[list[Declaration], list[dict]]:
    """``rows`` sample records sorted by date, and the labels of the anomalous ones.

    A label is ``{"id": "<declaration_id>#<line_no>", "anomaly": kind, "detail": {...}}``.
    """
    if rows < 0 or not 0 <= anomaly_rate <= 1:
        raise ValueError("rows must be >= 0 and anomaly_rate within [0, 1]")
    world = _World(seed, companies=min(400, max(30, rows // 50)))
    anomalies = round(rows * anomaly_rate)
    undervalued = misclassified = anomalies // 3
    pending: list[tuple[Declaration, str, dict]] = []
    mass = _mass_importer_groups(world, anomalies - undervalued - misclassified, pending)
    regular = _declaration_groups(world, rows - sum(len(g.lines) for g in mass))
    _plant_anomalies(world, regular, undervalued, misclassified, pending)
    records = _assign_ids(world, regular + mass)
    labels = [{"id": line.id, "anomaly": kind, "detail": detail} for line, kind, detail in pending]
    labels.sort(key=lambda label: label["id"])
    return records, labels


# ---- writing -------------------------------------------------------------------------------------

def labels_path(path: str | Path) -> Path:
    """The labels sidecar of a sample file: ``PATH + ".labels.jsonl"``."""
    return Path(str(path) + ".labels.jsonl")


def _ua_number(value: float | None, decimals: int = 2) -> str:
    """``1 234,56`` as real exports write it."""
    if value is None:
        return ""
    return f"{value:,.{decimals}f}".replace(",", " ").replace(".", ",")


def _ua_row(d: Declaration, rng: random.Random, spreadsheet: bool) -> dict:
    """A record as the customs portal exports it; in a spreadsheet some codes are numbers (lost zeros)."""
    code = d.importer_code
    if rng.random() < 0.3:
        code = int(code) if spreadsheet else code.lstrip("0")
    hs = d.hs_code
    roll = rng.random()
    if roll < 0.15 and len(hs) == 10:
        hs = f"{hs[:4]}.{hs[4:6]}.{hs[6:8]}.{hs[8:]}"
    elif roll < 0.3 and spreadsheet:
        hs = int(hs)
    origin = d.origin_country
    if origin and rng.random() < 0.15:
        origin = country_name(origin, "uk")
    currency = d.currency
    if currency and rng.random() < 0.1:
        currency = CURRENCY_NUMBERS[currency]
    kind = rng.choice(("ІМ40ДЕ", "ІМ40ЕЕ")) if d.direction == "import" else rng.choice(("ЕК10АА", "ЕК10ДЕ"))
    quantity = d.quantity
    row = {
        "customs_office": d.customs_office, "direction": kind, "declaration_id": d.declaration_id,
        "line_no": str(d.line_no), "date": d.date.strftime("%d.%m.%Y"), "exporter_name": d.exporter_name,
        "importer_code": code, "importer_name": d.importer_name, "hs_code": hs,
        "goods_description": d.goods_description, "trading_country": d.trading_country or "",
        "dispatch_country": d.dispatch_country or "", "origin_country": origin or "",
        "net_weight_kg": _ua_number(d.net_weight_kg), "gross_weight_kg": _ua_number(d.gross_weight_kg),
        "quantity": _ua_number(quantity, 0 if quantity is not None and quantity.is_integer() else 2),
        "unit": d.unit or "", "invoice_value": _ua_number(d.invoice_value), "currency": currency or "",
        "customs_value_usd": _ua_number(d.customs_value_usd),
        "customs_value_usd_per_kg": _ua_number(d.unit_price_usd_per_kg, 4),
    }
    return {UA_HEADERS[name]: value for name, value in row.items()}


def _canonical_row(d: Declaration) -> dict:
    row = {name: getattr(d, name) for name in INPUT_FIELDS}
    row["date"] = d.date.isoformat()
    return row


BAD_ROW_KINDS = (  # (field broken, value written, the reason the normaliser gives starts with ...)
    ("declaration_id", ""),
    ("date", "31.02.2024"),
    ("net_weight_kg", "abc"),
    ("hs_code", "12"),
    ("importer_code", "123456789"),
    ("origin_country", "Atlantis"),
)


def _bad_rows(records: list[Declaration], count: int, style: str, rng: random.Random) -> list[dict]:
    """``count`` broken rows, cycling through every kind of defect, each a copy of a valid row."""
    if count and not records:
        raise ValueError("bad rows are copies of valid rows: generate at least one row")
    rows = []
    for index in range(count):
        name, value = BAD_ROW_KINDS[index % len(BAD_ROW_KINDS)]
        base = records[index % len(records)]
        row = _ua_row(base, rng, False) if style == "ua" else _canonical_row(base)
        key = UA_HEADERS if style == "ua" else {f: f for f in INPUT_FIELDS}
        row[key["declaration_id"]] = f"BAD/{base.date.year}/{index + 1:06d}"
        row[key[name]] = value
        rows.append(row)
    return rows


def write_sample(path: str | Path, records: list[Declaration], labels: list[dict] = (), *,
                 fmt: str | None = None, style: str | None = None, encoding: str = "utf-8",
                 bad_rows: int = 0, seed: int = 0) -> Path:
    """Write records (then ``bad_rows`` broken rows) to ``path`` and the labels sidecar; return ``path``.

    ``fmt`` defaults to the extension of ``path``; ``style`` to ``ua`` for CSV/XLSX (what the portal
    exports) and ``canonical`` for JSONL/Parquet. CSV: ``ua`` uses ``;``, ``canonical`` uses ``,``.
    """
    path = Path(path)
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format '{fmt}' (expected one of {', '.join(FORMATS)})")
    style = style or ("ua" if fmt in ("csv", "xlsx") else "canonical")
    if style not in ("ua", "canonical"):
        raise ValueError(f"unknown style '{style}' (expected ua or canonical)")
    rng = random.Random(f"{seed}:render")  # how each cell is spelled is seeded too
    spreadsheet = fmt == "xlsx"
    rows = [_ua_row(d, rng, spreadsheet) if style == "ua" else _canonical_row(d) for d in records]
    rows += _bad_rows(records, bad_rows, style, rng)
    header = list(UA_HEADERS.values()) if style == "ua" else list(INPUT_FIELDS)
    path.parent.mkdir(parents=True, exist_ok=True)
    {"csv": _write_csv, "xlsx": _write_xlsx, "jsonl": _write_jsonl, "parquet": _write_parquet}[fmt](
        path, header, rows, style=style, encoding=encoding, typed=style == "canonical" and not bad_rows)
    with labels_path(path).open("w", encoding="utf-8") as f:
        for label in labels:
            f.write(json.dumps(label, ensure_ascii=False) + "\n")
    return path


def _write_csv(path: Path, header: list[str], rows: list[dict], *, style: str, encoding: str, typed: bool) -> None:
    with path.open("w", encoding=encoding, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, delimiter=";" if style == "ua" else ",")
        writer.writeheader()
        writer.writerows(rows)


def _write_xlsx(path: Path, header: list[str], rows: list[dict], *, style: str, encoding: str, typed: bool) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Декларації")
    sheet.append(header)
    for row in rows:
        if typed:  # canonical workbooks carry real Excel dates
            row = {**row, "date": dt.datetime.combine(dt.date.fromisoformat(row["date"]), dt.time())}
        sheet.append([row.get(name) for name in header])
    workbook.save(path)


def _write_jsonl(path: Path, header: list[str], rows: list[dict], *, style: str, encoding: str, typed: bool) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_parquet(path: Path, header: list[str], rows: list[dict], *, style: str, encoding: str, typed: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if typed:
        numbers = {"net_weight_kg", "gross_weight_kg", "quantity", "invoice_value", "customs_value_usd"}
        types = {name: pa.float64() if name in numbers else pa.string() for name in header}
        types.update(line_no=pa.int64(), date=pa.date32())
        columns = {name: [row.get(name) for row in rows] for name in header}
        columns["date"] = [dt.date.fromisoformat(v) for v in columns["date"]]
        schema = pa.schema([(name, types[name]) for name in header])
    else:  # every cell as text, as the portal's exports (and broken rows) have them
        columns = {name: [None if row.get(name) is None else str(row.get(name)) for row in rows] for name in header}
        schema = pa.schema([(name, pa.string()) for name in header])
    pq.write_table(pa.table(columns, schema=schema), path)
