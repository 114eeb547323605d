"""Text generation with one base model and any number of LoRA adapters, batched across requests.

A :class:`Generator` owns the model, its tokenizer and the loaded adapters. Requests are submitted
from any thread (or event loop) and run on one scheduler thread: it takes the oldest waiting request
and every other waiting request for the same adapter (up to ``max_batch_size``) and decodes them
together, left-padded, with a key/value cache; a finished row leaves the batch at once. Every request
gets a :class:`TokenStream` of text pieces, then a :class:`GenerationResult`.

Adapters are peft LoRA directories injected into the same base weights; a batch runs with exactly one
adapter active (or none). Unloading an adapter that queued or running requests still use waits until
they are done.
"""
from __future__ import annotations

import asyncio
import queue
import random
import threading
import time
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


class AdapterNotLoaded(KeyError):
    """A request named an adapter this generator has not loaded."""


@dataclass
class GenerationRequest:
    input_ids: list[int]
    adapter: str | None = None
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of turn) | "length" (max_new_tokens reached) | "cancelled"
    queued_s: float  # waiting for the scheduler
    first_token_s: float  # from submission to the first token
    generate_s: float  # from the start of its batch to its last token
    batch_size: int  # requests in the batch it ran in

    @property
    def tokens_per_s(self) -> float:
        """Decode rate after the first token."""
        decode_s = self.generate_s - (self.first_token_s - self.queued_s)
        return (self.completion_tokens - 1) / decode_s if self.completion_tokens > 1 and decode_s > 0 else 0.0


class TokenStream:
    """Text pieces of one request as they are decoded, then its result (or its error).

    Iterate it in a thread (``for piece in stream``) or, when made with an event loop, in that loop
    (``async for text in stream.chunks()``, which joins the pieces that arrived together).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop
        self._queue: asyncio.Queue | queue.Queue = asyncio.Queue() if loop else queue.Queue()
        self.result: GenerationResult | None = None
        self.cancelled = False

    def cancel(self) -> None:
        """Stop generating for this request (its client went away); it finishes with reason "cancelled"."""
        self.cancelled = True

    def put(self, kind: str, value) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        else:
            self._queue.put((kind, value))

    def _take(self, kind: str, value):
        if kind == "error":
            raise value
        if kind == "done":
            self.result = value
        return kind == "token"

    def __iter__(self):
        while True:
            kind, value = self._queue.get()
            if not self._take(kind, value):
                return
            yield value

    async def chunks(self):
        """Text as it arrives; pieces already waiting are joined into one chunk."""
        while True:
            items = [await self._queue.get()]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            text = []
            for kind, value in items:
                if not self._take(kind, value):
                    if text:
                        yield "".join(text)
                    return
                text.append(value)
            yield "".join(text)


@dataclass
class _Job:
    request: GenerationRequest
    stream: TokenStream
    submitted: float = field(default_factory=time.perf_counter)


class _Detokenizer:
    """Incremental decoding: emit only text that can no longer change (no half UTF-8 characters)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""

    def push(self, token_id: int | None) -> str:
        if token_id is not None:
            self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if token_id is not None and text.endswith("\ufffd"):
            return ""
        new, self.text = text[len(self.text):], text
        return new


class Generator:
    """A causal LM with its tokenizer and LoRA adapters; see the module docstring."""

    def __init__(self, model, tokenizer, max_batch_size: int = 8, name: str = "model"):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_batch_size = max_batch_size
        eos = model.generation_config.eos_token_id if model.generation_config else None
        eos = eos if isinstance(eos, list) else [eos]
        self.stop_ids = {i for i in [*eos, tokenizer.eos_token_id] if i is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.stop_ids)
        self._peft = None
        self._adapters: dict[str, Path] = {}
        self._in_use: Counter[str] = Counter()
        self._doomed: set[str] = set()
        self._pending: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._model_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    @classmethod
    def from_settings(cls, settings) -> "Generator":
        """The configured model (``llm_model``; packaged SmolLM2 by default) on CPU with ``llm_threads``."""
        import torch

        from predator.llm import load_model, load_tokenizer, resolve_model

        torch.set_num_threads(settings.llm_threads)
        source = resolve_model(settings.llm_model)
        return cls(load_model(source, settings.llm_cache), load_tokenizer(source, settings.llm_cache),
                   max_batch_size=settings.llm_max_batch_size, name=source.name)

    # Adapters ------------------------------------------------------------------------------------

    @property
    def adapters(self) -> list[str]:
        with self._cond:
            return sorted(set(self._adapters) - self._doomed)

    def load_adapter(self, name: str, path: Path) -> None:
        """Inject the peft adapter at ``path`` under ``name`` (idempotent). Waits for a running batch."""
        from peft import PeftModel

        with self._cond:
            if name in self._adapters:
                self._doomed.discard(name)
                return
        with self._model_lock:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            else:
                self._peft.load_adapter(str(path), adapter_name=name)
            self._peft.eval()
        with self._cond:
            self._adapters[name] = Path(path)

    def unload_adapter(self, name: str) -> None:
        """Remove the adapter now, or once the requests that use it are done (idempotent)."""
        with self._cond:
            if name not in self._adapters:
                return
            if self._in_use[name]:
                self._doomed.add(name)
                return
        self._delete(name)

    def _delete(self, name: str) -> None:
        with self._model_lock:
            self._peft.delete_adapter(name)
        with self._cond:
            self._adapters.pop(name, None)
            self._doomed.discard(name)

    def _release(self, name: str | None) -> None:
        if name is None:
            return
        with self._cond:
            self._in_use[name] -= 1
            doomed = self._in_use[name] == 0 and name in self._doomed
        if doomed:
            self._delete(name)

    @contextmanager
    def _active(self, adapter: str | None):
        """The base model with ``adapter`` active, or with every adapter off when it is None."""
        if self._peft is None:
            yield
        elif adapter is None:
            with self._peft.disable_adapter():
                yield
        else:
            self._peft.set_adapter(adapter)
            yield

    # Requests ------------------------------------------------------------------------------------

    def submit(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop | None = None) -> TokenStream:
        """Queue a request; its tokens arrive on the returned stream. Raises AdapterNotLoaded."""
        if not request.input_ids:
            raise ValueError("empty prompt")
        stream = TokenStream(loop)
        with self._cond:
            if self._closed:
                raise RuntimeError("the generator is closed")
            if request.adapter is not None:
                if request.adapter not in self._adapters or request.adapter in self._doomed:
                    raise AdapterNotLoaded(request.adapter)
                self._in_use[request.adapter] += 1
            self._pending.append(_Job(request, stream))
            self._cond.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._schedule, name="generator", daemon=True)
                self._thread.start()
        return stream

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Generate to the end (blocking) and return the result."""
        stream = self.submit(request)
        for _ in stream:
            pass
        return stream.result

    def close(self) -> None:
        """Stop the scheduler thread once the queued requests are done."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _next_batch(self) -> list[_Job]:
        with self._cond:
            while not self._pending:
                if self._closed:
                    return []
                self._cond.wait()
            adapter = self._pending[0].request.adapter
            batch = [job for job in self._pending if job.request.adapter == adapter][: self.max_batch_size]
            for job in batch:
                self._pending.remove(job)
            return batch

    def _schedule(self) -> None:
        while batch := self._next_batch():
            try:
                self._run(batch)
            except Exception as err:  # reported to each caller; the scheduler keeps serving
                for job in batch:
                    if job.stream.result is None:
                        job.stream.put("error", err)
            finally:
                for job in batch:
                    self._release(job.request.adapter)

    def _run(self, jobs: list[_Job]) -> None:
        import torch
        from transformers import DynamicCache

        started = time.perf_counter()
        with self._model_lock, torch.inference_mode(), self._active(jobs[0].request.adapter):
            width = max(len(j.request.input_ids) for j in jobs)
            ids = torch.full((len(jobs), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(jobs), width), dtype=torch.long)
            for row, job in enumerate(jobs):
                prompt = job.request.input_ids
                ids[row, width - len(prompt):] = torch.tensor(prompt)
                mask[row, width - len(prompt):] = 1
            # Left padding: positions count real tokens only, as in training.
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            cache = DynamicCache()
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                                use_cache=True, logits_to_keep=1).logits[:, -1, :]
            next_pos = positions[:, -1] + 1
            rows = list(range(len(jobs)))  # batch row -> job index
            state = [_RowState(job, self.tokenizer, started, len(jobs)) for job in jobs]
            while True:
                chosen = self._pick(logits, [state[k] for k in rows])
                keep = [r for r, k in enumerate(rows) if not state[k].step(chosen[r], self.stop_ids)]
                if not keep:
                    return
                if len(keep) < len(rows):
                    index = torch.tensor(keep)
                    cache.batch_select_indices(index)
                    mask, next_pos, chosen = mask[index], next_pos[index], chosen[index]
                    rows = [rows[r] for r in keep]
                mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
                logits = self.model(input_ids=chosen[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                                    cache=cache, use_cache=True).logits[:, -1, :]
                next_pos = next_pos + 1

    @staticmethod
    def _pick(logits, rows: list["_RowState"]):
        """Next token per row: greedy at temperature 0, else nucleus sampling with the row's own generator."""
        import torch

        chosen = logits.argmax(dim=-1)
        for r, row in enumerate(rows):
            request = row.job.request
            if request.temperature <= 0:
                continue
            probs = torch.softmax(logits[r].float() / request.temperature, dim=-1)
            if request.top_p < 1.0:
                sorted_probs, order = probs.sort(descending=True)
                cut = sorted_probs.cumsum(0) - sorted_probs > request.top_p
                sorted_probs[cut] = 0
                probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
            chosen[r] = torch.multinomial(probs, 1, generator=row.rng).item()
        return chosen


class _RowState:
    """Progress of one request inside a batch."""

    def __init__(self, job: _Job, tokenizer, batch_started: float, batch_size: int):
        import torch

        self.job = job
        self.detok = _Detokenizer(tokenizer)
        self.batch_started = batch_started
        self.batch_size = batch_size
        self.first_token_at: float | None = None
        self.count = 0
        self.rng = torch.Generator().manual_seed(job.request.seed if job.request.seed is not None
                                                 else random.getrandbits(63))

    def step(self, token, stop_ids: set[int]) -> bool:
        """Take one token; True when the request is finished (its result then is on the stream)."""
        token = int(token)
        now = time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
        stop = token in stop_ids
        if not stop:
            self.count += 1
            piece = self.detok.push(token)
            if piece:
                self.job.stream.put("token", piece)
        if stop or self.count >= self.job.request.max_new_tokens or self.job.stream.cancelled:
            self._finish("stop" if stop else "cancelled" if self.job.stream.cancelled else "length", now)
            return True
        return False

    def _finish(self, reason: str, now: float) -> None:
        tail = self.detok.push(None)
        if tail:
            self.job.stream.put("token", tail)
        submitted = self.job.submitted
        self.job.stream.put("done", GenerationResult(
            text=self.detok.text, prompt_tokens=len(self.job.request.input_ids), completion_tokens=self.count,
            finish_reason=reason, queued_s=self.batch_started - submitted, first_token_s=self.first_token_at - submitted,
            generate_s=now - self.batch_started, batch_size=self.batch_size))
