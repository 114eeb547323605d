"""The copilot application: retrieval-augmented, cited, grounding-checked answers over the declarations.

Two deployments. ``CopilotAPI`` (the FastAPI ingress) validates the request, retrieves through the search
application's ``SearchAPI`` handle, streams the answer from ``LLMServer`` and checks its citations and
grounding. ``LLMServer`` holds the base model once per replica and multiplexes LoRA adapters by name
(``@serve.multiplexed``: a bounded, least-recently-used set per replica); concurrent requests for the
same adapter are decoded in one batch.

Routes, under the application's route prefix ``/copilot`` (all but ``/healthz`` need a viewer key):
``POST /chat``, ``POST /v1/chat/completions``, ``GET /v1/models`` (OpenAI clients use the base URL
``http://<host>:<port>/copilot/v1``), ``GET /healthz``. See ``docs/COPILOT.md``.
"""

import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve

from predator.adapters import AdapterNotFound
from predator.auth import KeyRing, Principal, Role
from predator.copilot.catalog import UnknownModel, available_adapters, model_ids, resolve_adapter, split_model_id
from predator.copilot.conversation import RequestError, conversation
from predator.copilot.generation import GenerationRequest, Generator
from predator.copilot.grounding import verify_answer
from predator.copilot.prompt import ContextRecord, Message, PromptTooLong, context_records, fit_prompt, mentioned_ids
from predator.events import publish_event
from predator.filters import FilterError
from predator.llm import resolve_model
from predator.settings import Settings, get_settings
from serve_apps.copilot_models import (
    ChatMessage, CopilotAnswer, CopilotRequest, OpenAIChatRequest, OpenAIModel, OpenAIModelList,
)
from serve_apps.search_models import Filters
from serve_apps.security import require

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class _LoadedAdapter:
    """What the multiplexer caches per adapter. Serve calls ``__del__`` when it evicts one (LRU); the
    guard keeps a later garbage collection of this object from unloading a re-loaded adapter."""

    def __init__(self, generator: Generator, name: str):
        self.generator = generator
        self.name = name
        self._unloaded = False

    def __del__(self):
        if not self._unloaded:
            self._unloaded = True
            self.generator.unload_adapter(self.name)


def _error(status: int, field: str, reason: str, **details) -> dict:
    return {"event": "error", "status": status, "field": field, "reason": reason, **details}


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=16,
                  autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 4})
class LLMServer:
    """One replica: the base model loaded once, LoRA adapters loaded by name per request (multiplexed)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.generator = Generator.from_settings(settings)
        # Wired at init so that the bound comes from settings (Serve detects instance-level multiplexing);
        # a plain function, since Serve keeps its LRU cache as an attribute of the decorated callable.
        async def load_adapter(name: str) -> _LoadedAdapter:
            return await self._load_adapter(name)

        self.get_adapter = serve.multiplexed(
            max_num_models_per_replica=settings.llm_max_adapters_per_replica)(load_adapter)

    async def _load_adapter(self, name: str) -> _LoadedAdapter:
        path = await asyncio.to_thread(resolve_adapter, name, self.settings)
        await asyncio.to_thread(self.generator.load_adapter, name, path)
        return _LoadedAdapter(self.generator, name)

    def model_name(self) -> str:
        return self.generator.name

    async def generate(self, request: dict) -> AsyncIterator[dict]:
        """Events of one answer: ``start`` (records kept, truncation), ``token``..., ``end`` (result and
        timings); or a single ``error`` event (unknown adapter, prompt that cannot fit)."""
        adapter = serve.get_multiplexed_model_id() or None
        if adapter:
            try:
                await self.get_adapter(adapter)
            except AdapterNotFound as err:
                yield _error(404, "adapter", str(err), available=err.available)
                return
            except (OSError, ValueError, RuntimeError, KeyError) as err:  # not a LoRA of this base model
                yield _error(422, "adapter", f"adapter {adapter!r} cannot be loaded on {self.generator.name}: {err}")
                return
        records = [ContextRecord(**r) for r in request["records"]]
        turns = [Message(**m) for m in request["conversation"]]
        try:
            prompt = await asyncio.to_thread(fit_prompt, self.generator.tokenizer, turns, records,
                                             self.settings.llm_max_input_tokens)
        except PromptTooLong as err:
            yield _error(413, "messages", str(err))
            return
        stream = self.generator.submit(
            GenerationRequest(prompt.input_ids, adapter, request["max_new_tokens"], request["temperature"],
                              request["top_p"], request["seed"]), loop=asyncio.get_running_loop())
        yield {"event": "start", "records": [r.number for r in prompt.records], "truncation": prompt.truncation.to_dict()}
        try:
            async for text in stream.chunks():
                yield {"event": "token", "text": text}
        finally:
            stream.cancel()  # a no-op when done; stops decoding when the client went away
        result = stream.result
        yield {"event": "end", **asdict(result), "tokens_per_s": result.tokens_per_s, "model": self.generator.name,
               "replica": serve.get_replica_context().replica_tag, "adapters_loaded": self.generator.adapters}


api = FastAPI(
    title="Predator Analytics copilot",
    description="Cited, grounding-checked answers over customs declarations. Send `Authorization: Bearer <key>`.",
    version="0.1.0",
)


@api.exception_handler(RequestError)
async def request_error(request: Request, err: RequestError) -> JSONResponse:
    if "/v1/" in request.url.path:  # OpenAI clients read errors in OpenAI's shape
        return JSONResponse(status_code=err.status, content={"error": {
            "message": err.reason, "type": "invalid_request_error", "param": err.field, "code": err.status,
            **err.details}})
    return JSONResponse(status_code=err.status, content={"detail": {"field": err.field, "reason": err.reason,
                                                                    **err.details}})


@dataclass
class _Run:
    """One answer in flight: its context, the LLM's event stream, and what has arrived so far."""

    started: float
    question: str
    adapter: str | None
    records: dict[str, dict]
    context: list[ContextRecord]
    retrieve_ms: float
    events: Any  # DeploymentResponseGenerator of LLMServer.generate
    start: dict
    pieces: list[str] = field(default_factory=list)
    end: dict | None = None
    first_token_at: float | None = None

    async def tokens(self) -> AsyncIterator[str]:
        async for event in self.events:
            if event["event"] == "token":
                self.first_token_at = self.first_token_at or time.perf_counter()
                self.pieces.append(event["text"])
                yield event["text"]
            elif event["event"] == "end":
                self.end = event

    def context_out(self) -> list[dict]:
        kept = set(self.start["records"])
        return [{"number": r.number, "id": r.id, "line": r.text, "record": self.records[r.id]}
                for r in self.context if r.number in kept]

    def finish(self, threshold: float) -> CopilotAnswer:
        """Citations and grounding of the complete answer, with timings; publishes the trace."""
        verify_started = time.perf_counter()
        kept = [r for r in self.context if r.number in set(self.start["records"])]
        cited, grounding = verify_answer("".join(self.pieces), kept, self.records, self.question, threshold)
        now = time.perf_counter()
        end = self.end
        timings = {
            "retrieve_ms": round(self.retrieve_ms, 2),
            "queue_ms": round(end["queued_s"] * 1000, 2),
            "first_token_ms": round(((self.first_token_at or now) - self.started) * 1000, 2),
            "generate_ms": round(end["generate_s"] * 1000, 2),
            "verify_ms": round((now - verify_started) * 1000, 2),
            "total_ms": round((now - self.started) * 1000, 2),
            "tokens_per_s": round(end["tokens_per_s"], 2),
        }
        answer = CopilotAnswer(
            answer=cited.text, finish_reason=end["finish_reason"],
            model=end["model"], adapter=self.adapter,
            citations=[asdict(c) for c in cited.citations], citations_removed=cited.removed,
            grounding=grounding.to_dict(), context=self.context_out(), truncation=self.start["truncation"],
            timings=timings,
            usage={"prompt_tokens": end["prompt_tokens"], "completion_tokens": end["completion_tokens"],
                   "total_tokens": end["prompt_tokens"] + end["completion_tokens"]},
            served_by={"replica": end["replica"], "adapters_loaded": end["adapters_loaded"],
                       "batch_size": end["batch_size"]})
        # Sizes and timings only: questions and answers stay out of the event log.
        publish_event("copilot", "trace", {
            "adapter": self.adapter, "records": len(kept), "question_chars": len(self.question),
            "steps": [{"step": "retrieve", "ms": timings["retrieve_ms"]},
                      {"step": "generate", "ms": timings["generate_ms"], "queue_ms": timings["queue_ms"],
                       "tokens": end["completion_tokens"], "batch_size": end["batch_size"]},
                      {"step": "verify", "ms": timings["verify_ms"]}],
            "first_token_ms": timings["first_token_ms"], "total_ms": timings["total_ms"],
            "citations": len(cited.citations), "citations_removed": cited.removed,
            "unsupported_sentences": grounding.unsupported, "truncated": self.start["truncation"]["truncated"],
        }, source="copilot")
        return answer


def _sse(data: dict | str, event: str | None = None) -> str:
    body = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return (f"event: {event}\n" if event else "") + f"data: {body}\n\n"


def _extension(answer: CopilotAnswer) -> dict:
    """The copilot's additions to an OpenAI response (clients that do not know them ignore them)."""
    return answer.model_dump(mode="json", include={"answer", "citations", "citations_removed", "grounding",
                                                   "context", "truncation", "timings", "adapter", "served_by"})


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
@serve.ingress(api)
class CopilotAPI:
    """The copilot's HTTP face: validation, retrieval through the search app, the LLM, verification."""

    def __init__(self, settings: Settings, llm):
        self.settings = settings
        self.llm = llm
        self.base_model = resolve_model(settings.llm_model).name
        self._search = None
        api.state.keyring = KeyRing.load(settings.keys_path)

    @api.get("/healthz", tags=["ops"])
    def healthz(self) -> dict[str, str]:
        """Liveness: the replica answers. No key needed."""
        return {"status": "ok"}

    @api.post("/chat", response_model=CopilotAnswer, tags=["copilot"])
    async def chat(self, body: CopilotRequest, _: Principal = Depends(require(Role.viewer))):
        """Answer the last user message from the declarations, with citations and a grounding check.

        ``stream: true`` answers with server-sent events: ``context``, ``token``..., then ``final``.
        """
        run = await self._start(body.messages, body.filters, body.adapter, body.max_tokens, body.temperature,
                                body.top_p, body.seed)
        if body.stream:
            return StreamingResponse(self._copilot_events(run), media_type="text/event-stream", headers=SSE_HEADERS)
        async for _ in run.tokens():
            pass
        return run.finish(self.settings.copilot_grounding_threshold)

    @api.post("/v1/chat/completions", tags=["openai"])
    async def chat_completions(self, body: OpenAIChatRequest, _: Principal = Depends(require(Role.viewer))):
        """OpenAI-compatible chat completion (``model`` = the base model or ``base:adapter``).

        The answer is the copilot's: retrieved, cited and grounding-checked; the extension field
        ``copilot`` carries citations, grounding, context and timings.
        """
        try:
            adapter = split_model_id(body.model, self.base_model)
        except UnknownModel as err:
            raise RequestError("model", str(err), 404) from None
        run = await self._start(body.messages, body.filters, adapter, body.max_completion_tokens or body.max_tokens,
                                body.temperature or 0.0, body.top_p or 1.0, body.seed)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if body.stream:
            usage = bool((body.stream_options or {}).get("include_usage"))
            return StreamingResponse(self._openai_chunks(run, completion_id, created, body.model, usage),
                                     media_type="text/event-stream", headers=SSE_HEADERS)
        async for _ in run.tokens():
            pass
        answer = run.finish(self.settings.copilot_grounding_threshold)
        return {"id": completion_id, "object": "chat.completion", "created": created, "model": body.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.answer},
                             "finish_reason": answer.finish_reason}],
                "usage": answer.usage.model_dump(), "copilot": _extension(answer)}

    @api.get("/v1/models", response_model=OpenAIModelList, tags=["openai"])
    async def models(self, _: Principal = Depends(require(Role.viewer))) -> OpenAIModelList:
        """The base model and one ``base:adapter`` per adapter available (folders and the MLflow registry)."""
        adapters = await asyncio.to_thread(available_adapters, self.settings)
        now = int(time.time())
        return OpenAIModelList(data=[OpenAIModel(id=m, created=now) for m in model_ids(self.base_model, adapters)])

    # The pipeline ---------------------------------------------------------------------------------

    async def _start(self, messages: list[ChatMessage], filters: Filters, adapter: str | None,
                     max_tokens: int | None, temperature: float, top_p: float, seed: int | None) -> _Run:
        """Validate, retrieve, and start generating; every problem before the first token is a RequestError."""
        started = time.perf_counter()
        settings = self.settings
        turns = conversation([(m.role, m.text()) for m in messages], settings.copilot_max_messages,
                             settings.copilot_max_message_chars)
        max_new = max_tokens or settings.llm_max_new_tokens
        if max_new > settings.llm_max_new_tokens_limit:
            raise RequestError("max_tokens", f"at most {settings.llm_max_new_tokens_limit}, got {max_new}")
        try:
            filters.to_core().validate()
        except FilterError as err:
            raise RequestError(f"filters.{err.field}", err.reason) from None
        question = turns[-1].content
        records = await self._retrieve(question, filters)
        retrieve_ms = (time.perf_counter() - started) * 1000
        context = context_records(records, settings.copilot_context_fields, settings.copilot_context_text_chars)
        payload = {"conversation": [asdict(t) for t in turns], "records": [asdict(r) for r in context],
                   "max_new_tokens": max_new, "temperature": temperature, "top_p": top_p, "seed": seed}
        options = {"stream": True, **({"multiplexed_model_id": adapter} if adapter else {})}
        events = self.llm.options(**options).generate.remote(payload)
        first = await events.__anext__()
        if first["event"] == "error":
            details = {k: v for k, v in first.items() if k not in ("event", "status", "field", "reason")}
            raise RequestError(first["field"], first["reason"], first["status"], **details)
        return _Run(started, question, adapter, {r["id"]: r for r in records}, context, retrieve_ms, events, first)

    async def _retrieve(self, question: str, filters: Filters) -> list[dict]:
        """The top records for the question through the search app's handle; ids in the question come first."""
        if self._search is None:
            self._search = serve.get_deployment_handle("SearchAPI", app_name=self.settings.copilot_search_app)
        try:
            return await self._search.retrieve.remote(question[: self.settings.max_query_chars],
                                                      filters.model_dump(mode="json"),
                                                      self.settings.copilot_context_records, mentioned_ids(question))
        except Exception as err:  # the search app is down, not deployed, or its index is not ready
            raise RequestError("search", f"retrieval through the {self.settings.copilot_search_app!r} "
                                         f"application failed: {type(err).__name__}", 503) from None

    async def _copilot_events(self, run: _Run) -> AsyncIterator[str]:
        yield _sse({"context": run.context_out(), "truncation": run.start["truncation"], "adapter": run.adapter},
                   "context")
        try:
            async for text in run.tokens():
                yield _sse({"text": text}, "token")
            yield _sse(run.finish(self.settings.copilot_grounding_threshold).model_dump(mode="json"), "final")
        except Exception as err:  # headers are sent: the error can only be an event now
            yield _sse({"detail": f"generation failed: {type(err).__name__}: {err}"}, "error")

    async def _openai_chunks(self, run: _Run, completion_id: str, created: int, model: str,
                             include_usage: bool) -> AsyncIterator[str]:
        def chunk(delta: dict, finish: str | None = None, **extra) -> str:
            return _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})

        yield chunk({"role": "assistant", "content": ""})
        try:
            async for text in run.tokens():
                yield chunk({"content": text})
            answer = run.finish(self.settings.copilot_grounding_threshold)
            yield chunk({}, answer.finish_reason, copilot=_extension(answer))
            if include_usage:
                yield _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                            "model": model, "choices": [], "usage": answer.usage.model_dump()})
        except Exception as err:
            yield _sse({"error": {"message": f"generation failed: {type(err).__name__}: {err}",
                                  "type": "server_error", "code": 500}})
        yield _sse("[DONE]")


def build_app(args: dict | None = None):
    """Serve application builder (``import_path: serve_apps.copilot:build_app``); ``args`` override settings."""
    settings = get_settings(**(args or {}))
    return CopilotAPI.bind(settings, LLMServer.bind(settings))
