"""Typed request and response models of the copilot API and its OpenAI-compatible endpoints."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serve_apps.search_models import Filters


class ContentPart(BaseModel):
    """OpenAI's structured content: only text parts carry meaning here."""

    model_config = ConfigDict(extra="ignore")

    type: str
    text: str = ""


class ChatMessage(BaseModel):
    # OpenAI clients add fields such as ``name``; they do not change the answer.
    model_config = ConfigDict(extra="ignore")

    role: str = Field(..., description="system | user | assistant (the last message must be the user's)")
    content: str | list[ContentPart] = ""

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if part.type == "text")


class CopilotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(..., description="the conversation, ending with the user's question")
    filters: Filters = Field(default_factory=Filters, description="search filters for retrieval")
    adapter: str | None = Field(None, description="LoRA adapter by name (`name` or `name/version`); none = base model")
    stream: bool = Field(False, description="server-sent events: tokens, then the final answer")
    max_tokens: int | None = Field(None, ge=1, description="answer length in tokens (default llm_max_new_tokens)")
    temperature: float = Field(0.0, ge=0, le=2, description="0 = greedy (deterministic)")
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = Field(None, description="sampling seed (temperature > 0)")


class ContextRecordOut(BaseModel):
    number: int = Field(..., description="the [n] the answer cites it by")
    id: str
    line: str = Field(..., description="the record as the model saw it")
    record: dict[str, Any]


class CitationOut(BaseModel):
    number: int
    record_id: str


class SentenceSupportOut(BaseModel):
    text: str
    citations: list[int]
    score: float
    supported: bool
    claims: int
    unsupported_terms: list[str]


class GroundingOut(BaseModel):
    method: str
    threshold: float
    supported_ratio: float
    unsupported: int = Field(..., description="sentences that no cited record supports")
    sentences: list[SentenceSupportOut]


class TruncationOut(BaseModel):
    truncated: bool
    max_input_tokens: int
    prompt_tokens: int
    dropped_turns: int = Field(..., description="earlier messages left out, oldest first")
    dropped_records: list[str] = Field(..., description="retrieved records left out of the context, lowest-ranked first")
    question_tokens_cut: int = Field(..., description="tokens cut from the end of the question")


class Timings(BaseModel):
    retrieve_ms: float
    queue_ms: float = Field(..., description="waiting for the LLM replica's scheduler")
    first_token_ms: float = Field(..., description="from the request's arrival to the first token")
    generate_ms: float
    verify_ms: float
    total_ms: float
    tokens_per_s: float


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CopilotAnswer(BaseModel):
    answer: str = Field(..., description="the answer, citations outside the context removed")
    finish_reason: str = Field(..., description="stop (the model ended its turn) | length (max_tokens reached)")
    model: str
    adapter: str | None
    citations: list[CitationOut]
    citations_removed: int = Field(..., description="citations that pointed outside the context")
    grounding: GroundingOut
    context: list[ContextRecordOut]
    truncation: TruncationOut
    timings: Timings
    usage: Usage
    served_by: dict[str, Any] = Field(default_factory=dict, description="LLM replica, adapters it holds, batch size")


class OpenAIChatRequest(BaseModel):
    """The fields of OpenAI's chat completion request that apply; others are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    filters: Filters = Field(default_factory=Filters, description="platform extension: search filters")


class OpenAIModel(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "predator"


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]
