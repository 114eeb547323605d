"""Health checks of the platform: each real, each timed, each with its own deadline.

A check is a function returning a :class:`Result` (status and detail). :class:`CheckRunner` runs every
check of a list of :class:`CheckSpec` concurrently, each in its own daemon thread with its own
timeout, and returns a :class:`Report`. A check that raises fails with the exception as its error; a
check that hangs fails on its timeout and is not started again until its hung call returns, so a
stuck backend costs one thread, never the whole report.

Check statuses: ``ok``, ``degraded``, ``critical``, ``unknown`` (not checked, e.g. not configured).

The rule from checks to the overall status (:func:`overall_status`):

- ``critical`` when a *critical* check is ``critical``. Critical checks are those without which
  search cannot answer: the keyword store, the vector store, the embedding model and the Serve
  applications (added by the Serve layer).
- otherwise ``degraded`` when any check is ``degraded`` or ``critical``. The other checks (free disk,
  event hub, MLflow, the Ray cluster) only degrade: search still answers without them.
- otherwise ``healthy``. ``unknown`` checks count for nothing.

A failed (raising or timed-out) check reports ``critical`` if it is a critical check, else ``degraded``.

This module is plain Python: the Ray-side checks and the hub's stats call come from ``serve_apps``.
"""
from __future__ import annotations

import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from predator.settings import Settings

CHECK_STATUSES = ("ok", "degraded", "critical", "unknown")
OVERALL_STATUSES = ("healthy", "degraded", "critical")


@dataclass
class Result:
    """What a check function returns; the runner adds the name and the latency."""

    status: str
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Check:
    """One check's outcome as reported."""

    name: str
    status: str
    latency_ms: float
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    critical: bool = False  # whether this check can make the platform critical


@dataclass
class Report:
    """The overall status and every check, as of ``checked_at`` (UTC, ISO 8601)."""

    status: str
    checked_at: str
    checks: list[Check]

    def to_dict(self) -> dict:
        return {"status": self.status, "checked_at": self.checked_at, "checks": [asdict(c) for c in self.checks]}

    def by_name(self) -> dict[str, Check]:
        return {c.name: c for c in self.checks}


@dataclass(frozen=True)
class CheckSpec:
    """A named check, its deadline, and whether its failure makes the platform critical."""

    name: str
    run: Callable[[], Result]
    timeout_s: float
    critical: bool = False

    @property
    def failure_status(self) -> str:
        return "critical" if self.critical else "degraded"


def overall_status(checks: list[Check]) -> str:
    """The documented rule (module docstring): critical > degraded > healthy; unknown is ignored."""
    status = "healthy"
    for check in checks:
        if check.status == "critical" and check.critical:
            return "critical"
        if check.status in ("degraded", "critical"):
            status = "degraded"
    return status


def status_changes(previous: Report | None, current: Report) -> list[dict]:
    """What changed from ``previous`` to ``current``: the overall status and each check's status.

    A check absent before (or no previous report at all) counts as a change unless it is now ``ok``:
    a platform coming up healthy is not news, one coming up broken is.
    """
    before = previous.by_name() if previous else {}
    changes = []
    if previous is None or previous.status != current.status:
        changes.append({"kind": "overall", "name": "overall", "from": previous.status if previous else None,
                        "to": current.status})
    for check in current.checks:
        old = before.get(check.name)
        was = old.status if old else None
        if was != check.status and (old is not None or check.status != "ok"):
            changes.append({"kind": "check", "name": check.name, "from": was, "to": check.status,
                            "reason": check.error or check.detail.get("reason")})
    return changes


class _Call:
    """One run of one check in its own daemon thread (a hung one must not keep the process alive)."""

    def __init__(self, spec: CheckSpec):
        self.spec = spec
        self.started = time.monotonic()
        self.result: Result | None = None
        self.finished: float | None = None
        self.thread = threading.Thread(target=self._run, name=f"check-{spec.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.spec.run()
        except Exception as err:  # a broken backend is a finding, not a crash
            self.result = Result(self.spec.failure_status, error=f"{type(err).__name__}: {err}")
        self.finished = time.monotonic()


class CheckRunner:
    """Runs a fixed list of checks concurrently; remembers hung calls across runs."""

    def __init__(self, specs: list[CheckSpec]):
        self.specs = list(specs)
        self._hung: dict[str, _Call] = {}

    def run(self) -> Report:
        """Run every check once (each bounded by its timeout) and apply the status rule."""
        calls = {spec.name: self._start(spec) for spec in self.specs}
        checks = [self._collect(spec, calls[spec.name]) for spec in self.specs]
        return Report(overall_status(checks), datetime.now(timezone.utc).isoformat(timespec="seconds"), checks)

    def _start(self, spec: CheckSpec) -> _Call:
        hung = self._hung.get(spec.name)
        if hung is not None and hung.thread.is_alive():
            return hung  # still stuck in the previous run: do not pile up another thread
        self._hung.pop(spec.name, None)
        return _Call(spec)

    def _collect(self, spec: CheckSpec, call: _Call) -> Check:
        call.thread.join(max(0.0, call.started + spec.timeout_s - time.monotonic()))
        if call.thread.is_alive():
            self._hung[spec.name] = call
            waited = time.monotonic() - call.started
            return Check(spec.name, spec.failure_status, round(waited * 1000, 1), {},
                         f"timed out: no answer after {waited:.1f} s (timeout {spec.timeout_s:g} s)", spec.critical)
        result = call.result or Result(spec.failure_status, error="check returned nothing")
        latency = ((call.finished or time.monotonic()) - call.started) * 1000
        return Check(spec.name, result.status, round(latency, 1), result.detail, result.error, spec.critical)


# -- individual checks -------------------------------------------------------------------------


def check_disk(settings: Settings) -> Result:
    """Free space on the file system of the data directory; degraded below the configured minimum."""
    path = Path(settings.data_dir).resolve()
    while not path.exists():  # before the first run the data dir may not exist yet: measure its parent
        path = path.parent
    usage = shutil.disk_usage(path)
    free_mb = usage.free // (1 << 20)
    detail = {"path": str(path), "free_mb": free_mb, "total_mb": usage.total // (1 << 20),
              "min_free_mb": settings.diagnostics_min_free_disk_mb}
    if free_mb < settings.diagnostics_min_free_disk_mb:
        return Result("degraded", {**detail, "reason": f"only {free_mb} MB free"})
    return Result("ok", detail)


class StoreUnavailable(Exception):
    """The published index cannot be found; the message says why."""


def published_version(settings: Settings) -> tuple[str, Path]:
    """The published index version and its directory, or :class:`StoreUnavailable` with the reason."""
    from predator.index_layout import IndexLayout

    layout = IndexLayout(settings.index_dir)
    if not layout.root.is_dir():
        raise StoreUnavailable(f"index directory {layout.root} does not exist")
    version = layout.current()
    if version is None:
        raise StoreUnavailable(f"nothing published under {layout.root} (no CURRENT)")
    path = layout.path(version)
    if not path.is_dir():
        raise StoreUnavailable(f"published version {version} is missing: {path} does not exist")
    return version, path


def check_keyword_store(settings: Settings) -> Result:
    """Open the keyword store read-only (the published version) and count its documents."""
    from predator.index_layout import LIVE
    from predator.search import open_keyword_store

    backend = settings.keyword_backend
    try:
        version, path = (LIVE, None) if backend == "opensearch" else published_version(settings)
        documents = _count_and_close(open_keyword_store(settings, path, writable=False))
    except Exception as err:
        return Result("critical", {"backend": backend, "reason": _reason(err)}, _reason(err))
    return _counted(backend, version, documents)


def check_vector_store(settings: Settings, dim: int = 384) -> Result:
    """Open the vector store read-only (the published version) and count its vectors."""
    from predator.index_layout import LIVE
    from predator.search import open_vector_store

    backend = settings.vector_backend
    if backend == "qdrant" and not settings.qdrant_url:
        # Local mode locks its directory to one process: opening it here would break the search app.
        return Result("unknown", {"backend": "qdrant-local",
                                  "reason": "qdrant-client local mode allows one process; not opened"})
    try:
        if backend == "qdrant":
            version, documents = LIVE, _qdrant_count(settings)
        else:
            version, path = published_version(settings)
            documents = _count_and_close(open_vector_store(settings, path, writable=False, dim=dim))
    except Exception as err:
        return Result("critical", {"backend": backend, "reason": _reason(err)}, _reason(err))
    return _counted(backend, version, documents)


def _count_and_close(store) -> int:
    try:
        return store.count()
    finally:
        store.close()


def _qdrant_count(settings: Settings) -> int:
    from qdrant_client import QdrantClient

    client = QdrantClient(url=settings.qdrant_url, timeout=int(settings.diagnostics_check_timeout_s) or 1)
    try:
        if not client.collection_exists(settings.qdrant_collection):
            raise StoreUnavailable(f"collection {settings.qdrant_collection!r} does not exist")
        return int(client.count(settings.qdrant_collection, exact=True).count)
    finally:
        client.close()


def _counted(backend: str, version: str, documents: int) -> Result:
    detail = {"backend": backend, "index_version": version, "documents": documents}
    if documents == 0:
        return Result("degraded", {**detail, "reason": "the index holds no documents"})
    return Result("ok", detail)


class ModelProbe:
    """Loads the embedding model once (on the first check, in the check's thread) and probes it."""

    def __init__(self, load: Callable[[], Any]):
        self._load = load
        self._model = None
        self._lock = threading.Lock()
        self.load_s: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "ModelProbe":
        from predator.embedder import Embedder

        return cls(lambda: Embedder(settings.embedding_model, threads=1, max_tokens=settings.embedding_max_tokens))

    def check(self) -> Result:
        """Loaded (or loadable), encodes a probe text to one vector of the model's dimension."""
        with self._lock:
            if self._model is None:
                started = time.monotonic()
                self._model = self._load()
                self.load_s = round(time.monotonic() - started, 2)
        vectors = self._model.encode(["steel pipes for oil wells"])
        detail = {"model": self._model.model_name, "dim": int(self._model.dim), "loaded": True, "load_s": self.load_s}
        if vectors.shape != (1, self._model.dim):
            return Result("critical", {**detail, "reason": f"probe vector has shape {vectors.shape}"})
        return Result("ok", detail)


def check_event_hub(stats: Callable[[], dict], publisher: Callable[[], dict] | None = None) -> Result:
    """The hub answers ``stats()``: per-channel last seq, uptime, restarts; down only degrades.

    ``publisher`` (this process's publisher stats) shows the local lag: events buffered, not yet sent.
    """
    local = publisher() if publisher else {}
    lag = {"publisher_buffered": local.get("buffered"), "publisher_dropped": local.get("dropped")} if local else {}
    try:
        raw = stats()
    except Exception as err:
        return Result("degraded", {"alive": False, **lag, "reason": f"event hub unavailable: {_reason(err)}"},
                      _reason(err))
    channels = {name: info.get("last_seq") for name, info in raw.get("channels", {}).items()}
    return Result("ok", {"alive": True, "last_seq": channels, "uptime_s": round(raw.get("uptime_s", 0.0), 1),
                         "restarted": raw.get("restarted"), **lag})


def check_mlflow(settings: Settings) -> Result:
    """MLflow tracking reachable: ``GET <uri>/health`` for a server, the file for ``sqlite:///``."""
    uri = settings.mlflow_uri
    if uri.startswith(("http://", "https://")):
        import httpx

        try:
            answer = httpx.get(uri.rstrip("/") + "/health", timeout=settings.diagnostics_check_timeout_s)
        except httpx.HTTPError as err:
            return Result("degraded", {"uri": uri, "reason": f"unreachable: {_reason(err)}"}, _reason(err))
        if answer.status_code != 200:
            return Result("degraded", {"uri": uri, "reason": f"/health answered {answer.status_code}"})
        return Result("ok", {"uri": uri})
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            return Result("unknown", {"uri": uri, "reason": f"no database at {path} yet: nothing trained"})
        return Result("ok", {"uri": uri, "size_mb": round(path.stat().st_size / (1 << 20), 2)})
    return Result("unknown", {"uri": uri, "reason": "only http(s):// and sqlite:/// tracking URIs are checked"})


def check_llm(settings: Settings) -> Result:
    """The language model is on disk (converted once for fast loads) and the registered adapters are listed."""
    from predator import adapters
    from predator.llm import ModelNotFound, resolve_model

    try:
        source = resolve_model(settings.llm_model)
    except ModelNotFound as err:
        return Result("degraded", {"reason": str(err)}, _reason(err))
    detail: dict[str, Any] = {"model": source.name}
    if source.gguf_file:
        detail["converted"] = (Path(settings.llm_cache) / source.cache_key() / "config.json").is_file()
    try:
        detail["adapters"] = [f"{a.name}/{a.version}" for a in adapters.list_adapters(settings.mlflow_uri)]
    except Exception as err:  # an unreachable registry must not hide that the model itself is fine
        return Result("degraded", {**detail, "reason": f"adapter registry: {_reason(err)}"}, _reason(err))
    return Result("ok", detail)


def default_checks(settings: Settings, hub_stats: Callable[[], dict], model: ModelProbe | None = None,
                   publisher: Callable[[], dict] | None = None) -> list[CheckSpec]:
    """The platform's plain-Python checks with their deadlines; the Serve layer adds the Ray ones."""
    timeout = settings.diagnostics_check_timeout_s
    model = model or ModelProbe.from_settings(settings)
    return [
        CheckSpec("keyword_store", lambda: check_keyword_store(settings), timeout, critical=True),
        CheckSpec("vector_store", lambda: check_vector_store(settings), timeout, critical=True),
        CheckSpec("embedding_model", model.check, settings.diagnostics_model_timeout_s, critical=True),
        CheckSpec("event_hub", lambda: check_event_hub(hub_stats, publisher), timeout),
        CheckSpec("mlflow", lambda: check_mlflow(settings), timeout),
        CheckSpec("llm", lambda: check_llm(settings), timeout),
        CheckSpec("disk", lambda: check_disk(settings), timeout),
    ]


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}"[:300] if text else type(err).__name__
