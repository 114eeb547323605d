"""Aggregations over declarations for analysts: totals, breakdowns, top importers, company profiles.

Works on a columnar table of the documents (a pandas DataFrame; the ingest job keeps it per index
version as ``records.parquet``). Filters are :class:`~predator.filters.SearchFilters` applied as one
vectorised mask with the semantics of the search stores: inclusive date and value ranges, an HS code
prefix, "any of" for country and risk-level lists, exact importer code, direction and customs office;
a record without the field a filter restricts does not match.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from predator.filters import SearchFilters

GROUP_FIELDS = ("month", "hs_chapter", "hs_heading", "origin_country", "trading_country", "dispatch_country",
                "importer_code", "customs_office", "direction", "risk_level")
METRICS = ("count", "customs_value_usd", "net_weight_kg")
TOP_BY = ("value", "risk")
_RISK_RANK = {"low": 0, "medium": 1, "high": 2}
_COLUMNS = ("id", "declaration_id", "date", "month", "direction", "customs_office", "importer_code",
            "importer_name", "exporter_name", "hs_code", "hs_chapter", "hs_heading", "goods_description",
            "origin_country", "trading_country", "dispatch_country", "net_weight_kg", "customs_value_usd",
            "risk_level", "risk_flags")
_NUMERIC = ("net_weight_kg", "customs_value_usd")


@dataclass
class Totals:
    count: int
    customs_value_usd: float
    net_weight_kg: float


@dataclass
class Bucket:
    key: str
    count: int
    customs_value_usd: float
    net_weight_kg: float


@dataclass
class Aggregation:
    totals: Totals
    group_by: str
    metric: str
    buckets: list[Bucket]
    other_buckets: int = 0  # groups beyond ``limit``


@dataclass
class ImporterRank:
    importer_code: str
    importer_name: str
    count: int
    customs_value_usd: float
    flagged: int  # records with risk level medium or high
    high: int
    max_flag_score: float


@dataclass
class RelatedCompany:
    importer_code: str
    importer_name: str
    shared_exporters: list[str]


@dataclass
class FlaggedRecord:
    id: str
    date: str
    hs_code: str
    customs_value_usd: float | None
    risk_level: str
    flags: list[dict]


@dataclass
class CompanyProfile:
    importer_code: str
    names: list[str]
    totals: Totals
    first_date: str
    last_date: str
    by_month: list[Bucket]
    headings: list[Bucket]
    origin_countries: list[Bucket]
    trading_countries: list[Bucket]
    exporters: list[Bucket]
    risk_levels: dict[str, int]
    flags_by_detector: dict[str, int]
    flagged_records: list[FlaggedRecord]
    related_companies: list[RelatedCompany] = field(default_factory=list)


class UnknownCompany(LookupError):
    """No declaration carries this importer code."""


class AnalyticsTable:
    """The documents as a DataFrame, with the aggregations analysts ask for."""

    def __init__(self, frame: pd.DataFrame):
        frame = frame.copy()
        for name in _COLUMNS:
            if name not in frame.columns:
                frame[name] = None
        for name in _NUMERIC:
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
        # One comparable date key for the range filter: the stores' YYYYMMDD integer encoding.
        frame["_date_num"] = pd.to_numeric(frame["date"].astype("string").str[:10].str.replace("-", ""),
                                           errors="coerce")
        frame["risk_flags"] = frame["risk_flags"].map(_as_flag_list)
        frame["_max_flag_score"] = frame["risk_flags"].map(lambda fs: max((f["score"] for f in fs), default=0.0))
        self.frame = frame

    @classmethod
    def from_documents(cls, docs: Iterable[dict]) -> AnalyticsTable:
        """A table of document dicts (``Declaration.to_document()``)."""
        return cls(pd.DataFrame.from_records(list(docs)))

    @classmethod
    def from_parquet(cls, path: str | Path) -> AnalyticsTable:
        """A table of the ``records.parquet`` an ingest wrote."""
        return cls(pd.read_parquet(path))

    def __len__(self) -> int:
        return len(self.frame)

    # ------------------------------------------------------------------ filters

    def mask(self, filters: SearchFilters | None) -> pd.Series:
        """Boolean mask of the records matching ``filters`` (validated first; FilterError if bad)."""
        f = self.frame
        keep = pd.Series(True, index=f.index)
        if filters is None:
            return keep
        filters.validate()
        if filters.date_from is not None:
            keep &= f["_date_num"] >= filters.date_from_num
        if filters.date_to is not None:
            keep &= f["_date_num"] <= filters.date_to_num
        if filters.hs_prefix:
            keep &= f["hs_code"].astype("string").str.startswith(filters.hs_prefix).fillna(False).astype(bool)
        for column, values in (("origin_country", filters.origin_countries),
                               ("trading_country", filters.trading_countries),
                               ("dispatch_country", filters.dispatch_countries),
                               ("risk_level", filters.risk_levels)):
            if values:
                keep &= f[column].isin(values)
        for column, value in (("importer_code", filters.importer_code), ("direction", filters.direction),
                              ("customs_office", filters.customs_office)):
            if value:
                keep &= f[column] == value
        if filters.value_min is not None:
            keep &= f["customs_value_usd"] >= filters.value_min
        if filters.value_max is not None:
            keep &= f["customs_value_usd"] <= filters.value_max
        return keep

    def select(self, filters: SearchFilters | None) -> pd.DataFrame:
        """The records matching ``filters``."""
        return self.frame[self.mask(filters)]

    # ------------------------------------------------------------------ aggregations

    def totals(self, filters: SearchFilters | None = None) -> Totals:
        """Count, customs value (USD) and net weight (kg) of the matching records."""
        return _totals(self.select(filters))

    def aggregate(self, group_by: str, metric: str = "count", filters: SearchFilters | None = None,
                  limit: int | None = None) -> Aggregation:
        """Totals and per-group buckets of the matching records.

        Buckets are ordered by ``metric`` (largest first), except ``month``, which is chronological.
        Records without a value in ``group_by`` are counted in the totals, not in a bucket.
        """
        if group_by not in GROUP_FIELDS:
            raise ValueError(f"group_by must be one of {', '.join(GROUP_FIELDS)}, got {group_by!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        rows = self.select(filters)
        buckets = _buckets(rows, group_by, metric)
        shown = buckets if limit is None else buckets[:limit]
        return Aggregation(_totals(rows), group_by, metric, shown, len(buckets) - len(shown))

    def top_importers(self, by: str = "value", limit: int = 10,
                      filters: SearchFilters | None = None) -> list[ImporterRank]:
        """Importers ranked by customs value, or by risk (high-risk records, then flagged, then value)."""
        if by not in TOP_BY:
            raise ValueError(f"by must be one of {', '.join(TOP_BY)}, got {by!r}")
        rows = self.select(filters)
        rows = rows[rows["importer_code"].notna()]
        level = rows["risk_level"].map(_RISK_RANK).fillna(0)
        table = rows.assign(_flagged=level >= 1, _high=level >= 2).groupby("importer_code").agg(
            importer_name=("importer_name", "first"), count=("id", "size"),
            customs_value_usd=("customs_value_usd", "sum"), flagged=("_flagged", "sum"), high=("_high", "sum"),
            max_flag_score=("_max_flag_score", "max"))
        order = ["customs_value_usd"] if by == "value" else ["high", "flagged", "customs_value_usd"]
        table = table.sort_values(order + ["count"], ascending=False, kind="stable").head(limit)
        return [ImporterRank(code, str(r.importer_name or ""), int(r["count"]), float(r.customs_value_usd),
                             int(r.flagged), int(r.high), float(r.max_flag_score))
                for code, r in table.iterrows()]

    def company_profile(self, importer_code: str, related_limit: int = 10, flagged_limit: int = 50) -> CompanyProfile:
        """Everything about one importer (ЄДРПОУ, 8 digits); :class:`UnknownCompany` if it has no records."""
        rows = self.frame[self.frame["importer_code"] == importer_code]
        if rows.empty:
            raise UnknownCompany(f"no declarations for importer {importer_code}")
        flagged = rows[rows["risk_flags"].map(len) > 0].sort_values(["_max_flag_score", "date"], ascending=False)
        detectors = Counter(f["detector"] for flags in flagged["risk_flags"] for f in flags)
        dates = rows["date"].astype("string").str[:10]
        return CompanyProfile(
            importer_code=importer_code,
            names=sorted(rows["importer_name"].dropna().astype(str).unique().tolist()),
            totals=_totals(rows),
            first_date=str(dates.min()),
            last_date=str(dates.max()),
            by_month=_buckets(rows, "month", "count"),
            headings=_buckets(rows, "hs_heading", "customs_value_usd"),
            origin_countries=_buckets(rows, "origin_country", "customs_value_usd"),
            trading_countries=_buckets(rows, "trading_country", "customs_value_usd"),
            exporters=_buckets(rows, "exporter_name", "customs_value_usd"),
            risk_levels={level: int(n) for level, n in rows["risk_level"].value_counts().items()},
            flags_by_detector=dict(detectors),
            flagged_records=[_flagged_record(r) for _, r in flagged.head(flagged_limit).iterrows()],
            related_companies=self._related(rows, importer_code, related_limit),
        )

    def _related(self, rows: pd.DataFrame, importer_code: str, limit: int) -> list[RelatedCompany]:
        """Other importers buying from the same exporters, most shared exporters first."""
        exporters = set(rows["exporter_name"].dropna())
        others = self.frame[self.frame["exporter_name"].isin(exporters) & (self.frame["importer_code"] != importer_code)
                            & self.frame["importer_code"].notna()]
        shared = others.groupby("importer_code").agg(
            importer_name=("importer_name", "first"), exporters=("exporter_name", lambda s: sorted(set(s))))
        shared["_n"] = shared["exporters"].map(len)
        shared = shared.sort_values(["_n"], ascending=False, kind="stable").head(limit)
        return [RelatedCompany(code, str(r.importer_name or ""), list(r.exporters)) for code, r in shared.iterrows()]


def _as_flag_list(value) -> list[dict]:
    """Risk flags as a list of dicts whatever the storage gave (None, numpy array from parquet, list)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [dict(f) for f in value]


def _totals(rows: pd.DataFrame) -> Totals:
    return Totals(int(len(rows)), float(rows["customs_value_usd"].sum()), float(rows["net_weight_kg"].sum()))


def _buckets(rows: pd.DataFrame, column: str, metric: str) -> list[Bucket]:
    grouped = rows[rows[column].notna()].groupby(column).agg(
        count=("id", "size"), customs_value_usd=("customs_value_usd", "sum"), net_weight_kg=("net_weight_kg", "sum"))
    if column == "month":
        grouped = grouped.sort_index()
    else:
        # Ties broken by key so that equal values list in a stable, readable order.
        grouped = grouped.reset_index().sort_values([metric, column], ascending=[False, True]).set_index(column)
    return [Bucket(str(key), int(r["count"]), float(r.customs_value_usd), float(r.net_weight_kg))
            for key, r in grouped.iterrows()]


def _flagged_record(row: pd.Series) -> FlaggedRecord:
    value = row["customs_value_usd"]
    return FlaggedRecord(str(row["id"]), str(row["date"])[:10], str(row["hs_code"]),
                         None if pd.isna(value) else float(value), str(row["risk_level"]), row["risk_flags"])
