"""Typed request and response models of the search API (the HTTP boundary)."""
from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from predator.filters import SearchFilters
from predator.hs_suggest import DEFAULT_FUSION, DEFAULT_SEMANTIC_WEIGHT
from predator.values import normalise_country, normalise_edrpou

FacetName = Literal["hs_chapter", "hs_heading", "origin_country", "trading_country", "dispatch_country",
                    "customs_office", "month", "direction", "risk_level"]


class Filters(BaseModel):
    """Structured filters; every one narrows the match set before ranking, facets and pagination."""

    model_config = ConfigDict(extra="forbid")

    date_from: date | None = None
    date_to: date | None = None
    hs_prefix: str | None = Field(None, description="2-10 digits of the УКТЗЕД/HS code, e.g. '8471'")
    origin_countries: list[str] = Field(default_factory=list, description="ISO alpha-2 codes")
    trading_countries: list[str] = Field(default_factory=list)
    dispatch_countries: list[str] = Field(default_factory=list)
    importer_code: str | None = Field(None, description="ЄДРПОУ, 8 digits (leading zeros may be omitted)")
    direction: Literal["import", "export"] | None = None
    customs_office: str | None = None
    value_min: float | None = Field(None, ge=0, description="customs value, USD")
    value_max: float | None = Field(None, ge=0)
    risk_levels: list[Literal["low", "medium", "high"]] = Field(default_factory=list)

    def to_core(self) -> SearchFilters:
        """The core's filters, forgiving in form (country names, lost leading zeros), not in meaning.

        Not validated here: :meth:`SearchFilters.validate` names what is still wrong.
        """
        values = self.model_dump()
        for name in ("origin_countries", "trading_countries", "dispatch_countries"):
            values[name] = [_lenient(normalise_country, c) or c for c in values[name]]
        if values["importer_code"] is not None:
            values["importer_code"] = _lenient(normalise_edrpou, values["importer_code"])
        return SearchFilters(**values)


def _lenient(parse, value):
    """Normalise when possible; otherwise keep the value so that validation names it in its error."""
    try:
        return parse(value)
    except ValueError:
        return value


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field("", description="free text, Ukrainian or English; empty lists the filtered records")
    mode: Literal["hybrid", "keyword", "semantic"] = "hybrid"
    fusion: Literal["rrf", "weighted"] = "rrf"
    semantic_weight: float = Field(0.5, ge=0, le=1, description="weight of the vector score in weighted fusion")
    filters: Filters = Field(default_factory=Filters)
    offset: int = Field(0, ge=0)
    limit: int = Field(10, ge=1)
    facets: list[FacetName] = Field(default_factory=list)
    facet_size: int = Field(10, ge=1, le=500, description="buckets per facet, largest first")
    highlight: bool = True
    explain: bool = True


class Explanation(BaseModel):
    keyword_rank: int | None = None
    keyword_score: float | None = None
    vector_rank: int | None = None
    vector_score: float | None = None
    fused_score: float
    matched_terms: list[str] = Field(default_factory=list)


class Hit(BaseModel):
    id: str
    score: float
    record: dict[str, Any]
    highlights: dict[str, str] = Field(default_factory=dict)
    explanation: Explanation | None = None


class FacetBucket(BaseModel):
    value: str
    count: int


class SearchResponse(BaseModel):
    total: int
    offset: int
    limit: int
    mode: str
    fusion: str
    took_ms: float
    hits: list[Hit]
    facets: dict[str, list[FacetBucket]] = Field(default_factory=dict)
    index_version: str | None = None


class HsSuggestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(..., min_length=1, description="a goods description, Ukrainian or English")
    limit: int = Field(5, ge=1, le=50)
    mode: Literal["hybrid", "keyword", "semantic"] = "hybrid"
    # Defaults: the fusion that won on the nomenclature's validation split (docs/BENCHMARKS.md).
    fusion: Literal["rrf", "weighted"] = DEFAULT_FUSION
    semantic_weight: float = Field(DEFAULT_SEMANTIC_WEIGHT, ge=0, le=1)


class HsSuggestion(BaseModel):
    heading: str
    title: str
    chapter: str
    score: float
    matched_text: str


class HsSuggestResponse(BaseModel):
    suggestions: list[HsSuggestion]
    took_ms: float


class IndexStats(BaseModel):
    documents: int
    index_version: str | None
    keyword_backend: str
    vector_backend: str
    embedding_model: str
    embedding_dim: int
