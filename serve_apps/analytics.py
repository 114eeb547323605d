"""Analytics endpoints (a FastAPI router the search application mounts): aggregations with the search
filters, top importers, company profiles. Typed responses; bad input is a 4xx with a reason."""

import re
import time
from dataclasses import asdict
from typing import Any, Callable, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from predator.analytics import AnalyticsTable, UnknownCompany
from predator.auth import Role
from predator.filters import FilterError, SearchFilters
from predator.values import normalise_edrpou
from serve_apps.search_models import Filters
from serve_apps.security import require

GroupBy = Literal["month", "hs_chapter", "hs_heading", "origin_country", "trading_country", "dispatch_country",
                  "importer_code", "customs_office", "direction", "risk_level"]
Metric = Literal["count", "customs_value_usd", "net_weight_kg"]
_EDRPOU = re.compile(r"^\d{1,8}$")
_MAX_LIMIT = 1000


class AggregateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filters: Filters = Field(default_factory=Filters)
    group_by: GroupBy
    metric: Metric = Field("count", description="orders the buckets (month buckets stay chronological)")
    limit: int = Field(50, ge=1, le=_MAX_LIMIT)


class TotalsModel(BaseModel):
    count: int
    customs_value_usd: float
    net_weight_kg: float


class BucketModel(BaseModel):
    key: str
    count: int
    customs_value_usd: float
    net_weight_kg: float


class AggregateResponse(BaseModel):
    totals: TotalsModel
    group_by: str
    metric: str
    buckets: list[BucketModel]
    other_buckets: int = Field(description="groups beyond limit")
    took_ms: float


class TopImportersRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filters: Filters = Field(default_factory=Filters)
    by: Literal["value", "risk"] = "value"
    limit: int = Field(10, ge=1, le=_MAX_LIMIT)


class ImporterRankModel(BaseModel):
    importer_code: str
    importer_name: str
    count: int
    customs_value_usd: float
    flagged: int = Field(description="records with risk level medium or high")
    high: int
    max_flag_score: float


class TopImportersResponse(BaseModel):
    by: str
    importers: list[ImporterRankModel]
    took_ms: float


class RiskFlagModel(BaseModel):
    detector: str
    score: float
    reason: str


class FlaggedRecordModel(BaseModel):
    id: str
    date: str
    hs_code: str
    customs_value_usd: float | None
    risk_level: str
    flags: list[RiskFlagModel]


class RelatedCompanyModel(BaseModel):
    importer_code: str
    importer_name: str
    shared_exporters: list[str]


class CompanyProfileModel(BaseModel):
    importer_code: str
    names: list[str]
    totals: TotalsModel
    first_date: str
    last_date: str
    by_month: list[BucketModel]
    headings: list[BucketModel]
    origin_countries: list[BucketModel]
    trading_countries: list[BucketModel]
    exporters: list[BucketModel]
    risk_levels: dict[str, int]
    flags_by_detector: dict[str, int]
    flagged_records: list[FlaggedRecordModel]
    related_companies: list[RelatedCompanyModel]


def search_filters(filters: Filters) -> SearchFilters:
    """The HTTP filters as the core's :class:`SearchFilters`, validated (HTTP 400 with the reason if bad)."""
    try:
        return filters.to_core().validate()
    except FilterError as err:
        raise HTTPException(400, detail=str(err)) from None


def analytics_router(get_table: Callable[[], AnalyticsTable | None]) -> APIRouter:
    """The ``/analytics`` routes over the table ``get_table()`` returns (None: 503, nothing indexed yet).

    Every route needs a viewer key (``app.state.keyring``, see :mod:`serve_apps.security`).
    """
    router = APIRouter(prefix="/analytics", tags=["analytics"], dependencies=[Depends(require(Role.viewer))])

    def table() -> AnalyticsTable:
        found = get_table()
        if found is None:
            raise HTTPException(503, detail="no index has been published yet: run an ingest first")
        return found

    @router.post("/aggregate", response_model=AggregateResponse)
    def aggregate(request: AggregateRequest) -> AggregateResponse:
        started = time.perf_counter()
        result = table().aggregate(request.group_by, request.metric, search_filters(request.filters), request.limit)
        return AggregateResponse(**asdict(result), took_ms=_ms(started))

    @router.post("/top-importers", response_model=TopImportersResponse)
    def top_importers(request: TopImportersRequest) -> TopImportersResponse:
        return _top(table(), request.by, request.limit, search_filters(request.filters))

    @router.get("/top-importers", response_model=TopImportersResponse)
    def top_importers_unfiltered(by: Literal["value", "risk"] = "value",
                                 limit: int = Query(10, ge=1, le=_MAX_LIMIT)) -> TopImportersResponse:
        return _top(table(), by, limit, None)

    @router.get("/companies/{edrpou}", response_model=CompanyProfileModel)
    def company(edrpou: str) -> CompanyProfileModel:
        if not _EDRPOU.match(edrpou):
            raise HTTPException(422, detail=f"an ЄДРПОУ code is 1 to 8 digits (leading zeros may be omitted), "
                                            f"got {edrpou!r}")
        code = edrpou.zfill(8)
        try:
            return CompanyProfileModel(**asdict(table().company_profile(code)))
        except UnknownCompany as err:
            raise HTTPException(404, detail=str(err)) from None

    return router


def _top(table: AnalyticsTable, by: str, limit: int, filters: SearchFilters | None) -> TopImportersResponse:
    started = time.perf_counter()
    ranks = table.top_importers(by, limit, filters)
    return TopImportersResponse(by=by, importers=[ImporterRankModel(**asdict(r)) for r in ranks], took_ms=_ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
