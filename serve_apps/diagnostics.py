"""The diagnostics application (route prefix ``/diagnostics``): checks for machines and for people.

Routes:

- ``GET /diagnostics``: the latest report ``{status, checked_at, checks: [...]}`` (viewer key). The
  status rule is in :mod:`predator.diagnostics`.
- ``GET /diagnostics/ui``: one self-contained HTML page (no key needed: it holds no data; it fetches
  the report and the ``diagnostics`` and ``jobs`` channels with the key the user gives it).
- ``GET /diagnostics/healthz``: liveness of this replica, no key.
- ``GET /diagnostics/events``: the hub's HTTP catch-up (the same router as the search app's ``/events``),
  so that the page's live feed works while the search app is down, which is when people open it.

The replica runs every check in a background loop (``diagnostics_interval_s``) and publishes each change
of the overall status or of a check to the ``diagnostics`` channel. The Ray cluster and Serve checks
live here, inside the replica, where Ray is connected.
"""

import asyncio
import logging
from pathlib import Path
from typing import Any

import ray
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from ray import serve

from actors.event_hub import get_hub
from predator.auth import KeyRing, Principal, Role
from predator.diagnostics import CheckRunner, CheckSpec, ModelProbe, Report, Result, default_checks, status_changes
from predator.events import default_publisher, publish_event
from predator.settings import Settings, get_settings
from serve_apps.events import events_router
from serve_apps.security import require

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("diagnostics.html")
OBJECT_STORE_DEGRADED_PCT = 90.0
# The page carries its own script and style and talks only to this origin.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the page URL may carry ?key=
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "connect-src 'self'",
}

api = FastAPI(title="Predator Analytics diagnostics", version="0.1.0")
# Before the ingress decorator: Serve takes the app's routes when it wraps the class.
api.include_router(events_router())


@api.middleware("http")
async def bare_prefix_is_root(request: Request, call_next):
    # A request for the bare prefix (/diagnostics) leaves no route path, and Starlette would answer it with
    # a redirect to /diagnostics/ (an empty route path is refused by FastAPI): serve it as "/" directly.
    root = request.scope.get("root_path", "")
    if root and request.scope["path"] == root:
        request.scope["path"] = root + "/"
    return await call_next(request)


class CheckOut(BaseModel):
    name: str
    status: str
    latency_ms: float
    detail: dict[str, Any]
    error: str | None
    critical: bool


class ReportOut(BaseModel):
    status: str
    checked_at: str
    checks: list[CheckOut]


def check_ray_cluster() -> Result:
    """Nodes alive, CPUs and GPUs (total and free), object store use; a full object store degrades."""
    nodes = ray.nodes()
    alive = sum(1 for n in nodes if n.get("Alive"))
    total, free = ray.cluster_resources(), ray.available_resources()
    store_total = total.get("object_store_memory", 0.0)
    store_used_pct = round(100.0 * (1 - free.get("object_store_memory", 0.0) / store_total), 1) if store_total else 0.0
    detail = {"nodes_alive": alive, "nodes_dead": len(nodes) - alive,
              "cpus": total.get("CPU", 0.0), "cpus_free": free.get("CPU", 0.0),
              "gpus": total.get("GPU", 0.0), "gpus_free": free.get("GPU", 0.0),
              "object_store_mb": round(store_total / (1 << 20)), "object_store_used_pct": store_used_pct}
    if alive == 0:
        return Result("critical", {**detail, "reason": "no node alive"})
    if store_used_pct > OBJECT_STORE_DEGRADED_PCT:
        return Result("degraded", {**detail, "reason": f"object store {store_used_pct}% full"})
    return Result("ok", detail)


def check_serve() -> Result:
    """Every Serve application's status and, per deployment, replicas running against the target.

    Reads the controller's instance details, the same data ``serve.status()`` summarises, because only
    they carry the target replica count.
    """
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeInstanceDetails

    details = ServeInstanceDetails(**_get_global_client().get_serve_details())
    apps, failed, short = {}, [], []
    for name, app in details.applications.items():
        deployments = {}
        for dep_name, dep in app.deployments.items():
            running = sum(1 for r in dep.replicas if r.state.value == "RUNNING")
            deployments[dep_name] = {"status": dep.status.value, "running": running, "target": dep.target_num_replicas}
            if running < dep.target_num_replicas:
                short.append(f"{name}/{dep_name} {running}/{dep.target_num_replicas} replicas")
        apps[name] = {"status": app.status.value, "deployments": deployments}
        if app.status.value in ("DEPLOY_FAILED", "UNHEALTHY"):
            failed.append(f"{name} {app.status.value}: {app.message}"[:200])
        elif app.status.value != "RUNNING":
            short.append(f"{name} {app.status.value}")
    if failed:
        return Result("critical", {"applications": apps, "reason": "; ".join(failed)})
    if short:
        return Result("degraded", {"applications": apps, "reason": "; ".join(short)})
    return Result("ok", {"applications": apps})


def all_checks(settings: Settings, model: ModelProbe | None = None) -> list[CheckSpec]:
    """The plain-Python checks plus the Ray-side ones, with the hub's stats as a bounded Ray call."""
    timeout = settings.diagnostics_check_timeout_s

    def hub_stats() -> dict:
        return ray.get(get_hub(settings).stats.remote(), timeout=timeout)

    return [
        *default_checks(settings, hub_stats, model, publisher=lambda: default_publisher().stats()),
        CheckSpec("ray_cluster", check_ray_cluster, timeout),
        CheckSpec("serve", check_serve, timeout, critical=True),
    ]


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=16)
@serve.ingress(api)
class DiagnosticsAPI:
    """Runs the checks in a loop, keeps the latest report, publishes changes."""

    async def __init__(self, settings: Settings):
        self.settings = settings
        api.state.keyring = KeyRing.load(settings.keys_path)
        api.state.settings = settings
        self.runner = CheckRunner(all_checks(settings))
        self.report: Report | None = None
        self._ready = asyncio.Event()
        self._loop = asyncio.get_running_loop().create_task(self._check_forever())

    async def _check_forever(self) -> None:
        while True:
            try:
                report = await asyncio.to_thread(self.runner.run)
                self._publish(status_changes(self.report, report))
                self.report = report
                self._ready.set()
            except Exception:  # the loop must outlive any bug in one round
                log.exception("diagnostics round failed")
            await asyncio.sleep(self.settings.diagnostics_interval_s)

    @staticmethod
    def _publish(changes: list[dict]) -> None:
        for change in changes:
            kind = "status.changed" if change["kind"] == "overall" else "check.changed"
            publish_event("diagnostics", kind, change, source="diagnostics")

    @api.get("/", response_model=ReportOut, tags=["ops"])
    async def diagnostics(self, _: Principal = Depends(require(Role.viewer))) -> ReportOut:
        """The latest report (waits for the first round after a start)."""
        await self._ready.wait()
        return ReportOut(**self.report.to_dict())

    @api.get("/ui", response_class=HTMLResponse, tags=["ops"])
    def ui(self) -> HTMLResponse:
        """The diagnostics page. No key: it holds no data and asks for the key to fetch any."""
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers=PAGE_HEADERS)

    @api.get("/healthz", tags=["ops"])
    def healthz(self) -> dict[str, str]:
        """Liveness of the diagnostics replica. No key needed."""
        return {"status": "ok"}


def build_app(args: dict | Settings | None = None):
    """Serve application builder (``import_path: serve_apps.diagnostics:build_app``); ``args`` override settings."""
    settings = args if isinstance(args, Settings) else get_settings(**(args or {}))
    return DiagnosticsAPI.bind(settings)
