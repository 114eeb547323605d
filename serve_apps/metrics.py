"""Application metrics through ``ray.util.metrics``, exported by each node's Ray metrics agent.

Prometheus sees them with Ray's ``ray_`` prefix; counters also get ``_total`` (see docs/OBSERVABILITY.md):

- ``predator_search_latency_seconds`` (histogram; tag ``route``): time to answer a request of the search app.
- ``predator_search_requests`` (counter; tags ``route``, ``status``): requests of the search app by HTTP status.
- ``predator_ingest_rows`` (counter; tag ``outcome`` = indexed | quarantined): rows through ``run_ingest``.
- ``predator_events_published`` (counter; tag ``channel``): events stored by the event hub.
- ``predator_training_tokens`` and ``predator_training_steps`` (counters; tag ``run``): work done by training
  runs (rank 0 counts for the whole worker group).

Each metric is created on first use in the process that records it, so importing this module costs nothing.
"""
import time
from collections import Counter as Tally
from functools import cache
from typing import Iterable

from ray.util.metrics import Counter, Histogram

# Seconds; search answers in milliseconds, HS suggestion and cold replicas take up to seconds.
LATENCY_BOUNDARIES = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


@cache
def _search_latency() -> Histogram:
    return Histogram("predator_search_latency_seconds", description="Search app request latency by route.",
                     boundaries=LATENCY_BOUNDARIES, tag_keys=("route",))


@cache
def _search_requests() -> Counter:
    return Counter("predator_search_requests", description="Search app requests by route and HTTP status.",
                   tag_keys=("route", "status"))


@cache
def _ingest_rows() -> Counter:
    return Counter("predator_ingest_rows", description="Ingested rows by outcome.", tag_keys=("outcome",))


@cache
def _events_published() -> Counter:
    return Counter("predator_events_published", description="Events stored by the hub, by channel.",
                   tag_keys=("channel",))


@cache
def _training_tokens() -> Counter:
    return Counter("predator_training_tokens", description="Tokens trained on, by run.", tag_keys=("run",))


@cache
def _training_steps() -> Counter:
    return Counter("predator_training_steps", description="Optimizer steps, by run.", tag_keys=("run",))


def count_training(run: str, steps: int, tokens: int) -> None:
    """Steps and tokens a training run completed since its previous report."""
    if steps:
        _training_steps().inc(steps, tags={"run": run})
    if tokens:
        _training_tokens().inc(tokens, tags={"run": run})


def observe_request(route: str, status: int, seconds: float) -> None:
    """One answered request of the search app (``route`` is the route template, never the raw path)."""
    _search_latency().observe(seconds, tags={"route": route})
    _search_requests().inc(1, tags={"route": route, "status": str(status)})


def count_ingest_rows(indexed: int, quarantined: int) -> None:
    """Rows of one ingest batch by outcome."""
    for outcome, rows in (("indexed", indexed), ("quarantined", quarantined)):
        if rows:
            _ingest_rows().inc(rows, tags={"outcome": outcome})


def count_events_published(channels: Iterable[str]) -> None:
    """Events just stored, one channel name per event."""
    for channel, n in Tally(channels).items():
        _events_published().inc(n, tags={"channel": channel})


class RequestMetrics:
    """ASGI middleware recording :func:`observe_request` per route template and status.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware adds a task and
    a response stream per request on the search hot path.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def capture(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the template: bounded label values
            observe_request(route, status, time.perf_counter() - started)
