"""The events gateway: ``/ws/events`` (WebSocket; the app is mounted at ``/ws``) over the event hub.

HTTP catch-up (``GET /events``) is :func:`events_router`, which the search app includes at ``/``.

Each replica runs one long-poll loop against the hub and keeps a mirror of its history
(:class:`predator.event_log.EventLog`); every socket reads the mirror with its own per-channel cursors.
A slow socket therefore never holds up the hub or other sockets: it falls behind in the mirror and is
sent a ``gap`` once the history has moved past it. When the hub restarts, the loop resumes from the
mirror's heads and the sockets just see a pause.

Serve's WebSocket ``send`` never blocks, so slowness is measured in-band: the server sends a ``ping``
after every ``ws_window`` events and on a timer; a client answers with a ``pong``; a client more than
two windows behind its pongs is paused (no more events queued for it). See docs/EVENTS.md.
"""

# No `from __future__ import annotations`: Serve's class-based routes would leave FastAPI string
# annotations it cannot resolve (a WebSocket parameter then fails validation and the socket gets 403).
import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, WebSocket
from pydantic import BaseModel
from ray import serve
from starlette.websockets import WebSocketDisconnect, WebSocketState

from actors.event_hub import get_hub, get_or_create_hub
from predator.auth import AuthError, KeyRing, Principal, Role, bearer_token
from predator.event_log import EventLog, ReadResult
from predator.events import may_read
from predator.settings import Settings, get_settings
from serve_apps.security import require

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
KEEPALIVE_TIMEOUT = 4001  # application close code: no pong in time
HUB_POLL_S = 10.0
SYNC_WAIT_S = 5.0

app = FastAPI(title="Predator Analytics events")


def events_router() -> APIRouter:
    """``GET /events`` (catch-up and polling) and ``GET /events/stats``, read straight from the hub.

    Included by the search app (at ``/``) and by the gateway (at ``/ws``); the including app keeps its
    Settings in ``app.state.settings``.
    """
    router = APIRouter(tags=["events"])

    @router.get("/events", response_model=EventsPage)
    async def events_page(request: Request, channel: str, since: int = Query(0, ge=0), limit: int = Query(100, ge=1),
                          principal: Principal = Depends(require(Role.viewer))) -> EventsPage:
        """Events of ``channel`` after ``since``; ``gap`` when the history no longer holds some."""
        settings: Settings = request.app.state.settings
        if channel not in settings.event_channels:
            raise HTTPException(404, f"unknown channel {channel!r}; channels: {', '.join(settings.event_channels)}")
        if not may_read(principal.role, channel):
            raise HTTPException(403, f"role '{principal.role.name}' may not read {channel!r}")
        raw = await _ask_hub(settings, "read", {channel: since}, timeout=0,
                             limit=min(limit, settings.event_read_limit))
        result = ReadResult.from_dict(raw)
        gap = result.gaps[0] if result.gaps else None
        return EventsPage(channel=channel, events=[EventOut(**e.to_dict()) for e in result.events],
                          gap=GapOut(channel=gap.channel, first=gap.first, last=gap.last) if gap else None,
                          head=result.heads[channel])

    @router.get("/events/stats")
    async def events_stats(request: Request, principal: Principal = Depends(require(Role.viewer))) -> dict:
        """The hub's per-channel stats, or 503 while it is unreachable."""
        return {"hub": await _ask_hub(request.app.state.settings, "stats")}

    return router


async def _ask_hub(settings: Settings, method: str, *args, **kwargs):
    """Call a hub method with a deadline; 503 with the reason when the hub is missing or down."""
    try:
        hub = get_hub(settings)
        return await asyncio.wait_for(getattr(hub, method).remote(*args, **kwargs), timeout=SYNC_WAIT_S)
    except Exception as err:
        raise HTTPException(503, f"event hub unavailable: {type(err).__name__}") from None


class EventOut(BaseModel):
    channel: str
    seq: int
    type: str
    ts: float
    source: str
    payload: dict


class GapOut(BaseModel):
    channel: str
    first: int
    last: int


class EventsPage(BaseModel):
    channel: str
    events: list[EventOut]
    gap: GapOut | None
    head: int


class ProtocolError(ValueError):
    """Bad client input: answered with an ``error`` message, the socket stays open."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def parse_channels(raw) -> list[str]:
    if isinstance(raw, str):
        raw = [c for c in raw.split(",") if c.strip()]
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise ProtocolError("bad_message", "channels must be a list of names or a comma-separated string")
    return [c.strip() for c in raw]


def parse_since(raw, channels: list[str]) -> dict[str, int | None]:
    """``since`` as one seq for all channels, ``{channel: seq}``, ``"jobs:3,ingest:9"`` or None (tail)."""
    if raw is None or raw == "":
        return {c: None for c in channels}
    if isinstance(raw, str) and ":" in raw:
        try:
            raw = {k.strip(): int(v) for k, v in (part.split(":", 1) for part in raw.split(","))}
        except ValueError:
            raise ProtocolError("bad_since", f"since {raw!r} is not 'channel:seq,...'") from None
    if isinstance(raw, dict):
        since = {c: raw.get(c) for c in channels}
    else:
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ProtocolError("bad_since", f"since must be an integer seq, got {raw!r}") from None
        since = {c: value for c in channels}
    for channel, value in since.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ProtocolError("bad_since", f"since for {channel!r} must be an integer >= 0, got {value!r}")
    return since


@dataclass
class Session:
    """One socket: its cursors, its flow-control window and its keepalive."""

    ws: WebSocket
    principal: Principal
    mirror: EventLog
    settings: Settings
    cursors: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    acked: int = 0
    pings: dict[int, tuple[int, float]] = field(default_factory=dict)  # id -> (events sent before, when)
    ping_id: int = 0
    last_ping: float = 0.0
    since_ping: int = 0

    def __post_init__(self):
        self.wake = self.mirror.watch()

    async def run(self, channels: str | None, since: str | None) -> None:
        self.last_ping = time.monotonic()
        if channels:
            await self.guard(self.subscribe, {"channels": channels, "since": since})
        tasks = {asyncio.create_task(self.read_loop()), asyncio.create_task(self.write_loop())}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise: a disconnect ends the session, anything else is logged
        finally:
            for task in tasks:
                task.cancel()
            self.mirror.unwatch(self.wake)

    async def send(self, message: dict) -> None:
        await self.ws.send_text(json.dumps(message, separators=(",", ":"), ensure_ascii=False))

    async def error(self, code: str, reason: str) -> None:
        await self.send({"type": "error", "code": code, "reason": reason})

    async def guard(self, handler, message: dict) -> None:
        try:
            await handler(message)
        except ProtocolError as err:
            await self.error(err.code, err.reason)

    async def read_loop(self) -> None:
        limit = self.settings.ws_max_message_bytes
        handlers = {"subscribe": self.subscribe, "unsubscribe": self.unsubscribe,
                    "ping": self.on_ping, "pong": self.on_pong}
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            if len(text.encode()) > limit:
                await self.error("too_large", f"message over {limit} bytes")
                continue
            try:
                body = json.loads(text)
            except ValueError:
                await self.error("bad_json", "message is not valid JSON")
                continue
            handler = handlers.get(body.get("type")) if isinstance(body, dict) else None
            if handler is None:
                await self.error("bad_message", f"type must be one of {sorted(handlers)}")
                continue
            await self.guard(handler, body)
            self.wake.set()

    async def subscribe(self, body: dict) -> None:
        channels = parse_channels(body.get("channels"))
        since = parse_since(body.get("since"), channels)
        heads = self.mirror.heads()
        added = {}
        for channel in channels:
            if channel not in heads:
                await self.error("unknown_channel", f"unknown channel {channel!r}; channels: "
                                 f"{', '.join(heads)}")
            elif not may_read(self.principal.role, channel):
                await self.error("forbidden", f"role '{self.principal.role.name}' may not read {channel!r}")
            else:
                cursor = heads[channel] if since[channel] is None else since[channel]
                if cursor > heads[channel]:
                    await self.error("bad_since", f"since {cursor} is past the head of {channel!r} "
                                     f"({heads[channel]}); starting from the head")
                    cursor = heads[channel]
                self.cursors[channel] = added[channel] = cursor
        if added:
            await self.send({"type": "subscribed", "channels": added,
                             "heads": {c: heads[c] for c in added}})

    async def unsubscribe(self, body: dict) -> None:
        channels = [c for c in parse_channels(body.get("channels")) if c in self.cursors]
        for channel in channels:
            del self.cursors[channel]
        await self.send({"type": "unsubscribed", "channels": channels})

    async def on_ping(self, body: dict) -> None:
        await self.send({"type": "pong", "id": body.get("id")})

    async def on_pong(self, body: dict) -> None:
        ping_id = body.get("id")
        if not isinstance(ping_id, int) or ping_id not in self.pings:
            raise ProtocolError("bad_message", f"pong for unknown ping id {ping_id!r}")
        self.acked = max(self.acked, self.pings[ping_id][0])
        for done in [i for i in self.pings if i <= ping_id]:
            del self.pings[done]  # a pong acknowledges the earlier pings too

    async def write_loop(self) -> None:
        window = self.settings.ws_window
        while True:
            await self.keepalive()
            self.wake.clear()  # before reading: a change after the read sets it again
            if self.cursors and self.sent - self.acked < 2 * window:
                result = self.mirror.read(self.cursors, window)
                if result:
                    await self.deliver(result)
                    continue
            await self.sleep_until_woken()

    async def deliver(self, result: ReadResult) -> None:
        for gap in result.gaps:
            if gap.channel in self.cursors:
                await self.send(gap.to_dict())
                self.cursors[gap.channel] = gap.last
        # One message per read, not per event: each WebSocket message costs a hop through Serve's proxy.
        fresh = [e for e in result.events if self.cursors.get(e.channel, e.seq) < e.seq]
        if fresh:
            await self.send({"type": "events", "events": [e.to_dict() for e in fresh]})
            for event in fresh:
                self.cursors[event.channel] = event.seq
            self.sent += len(fresh)
            self.since_ping += len(fresh)
        if self.since_ping >= self.settings.ws_window:
            await self.ping()

    async def ping(self) -> None:
        self.ping_id += 1
        self.last_ping = time.monotonic()
        self.pings[self.ping_id] = (self.sent, self.last_ping)
        self.since_ping = 0
        await self.send({"type": "ping", "id": self.ping_id})

    async def keepalive(self) -> None:
        now = time.monotonic()
        if self.pings and now - self.oldest_ping() > self.settings.ws_pong_timeout_s:
            # Bounded by the pong timeout, even for a client that stopped reading altogether.
            await self.ws.close(KEEPALIVE_TIMEOUT, "no pong within ws_pong_timeout_s")
            raise WebSocketDisconnect(KEEPALIVE_TIMEOUT)
        if now - self.last_ping >= self.settings.ws_ping_interval_s:
            await self.ping()

    def oldest_ping(self) -> float:
        return min(when for _, when in self.pings.values())

    async def sleep_until_woken(self) -> None:
        deadline = self.last_ping + self.settings.ws_ping_interval_s
        if self.pings:
            deadline = min(deadline, self.oldest_ping() + self.settings.ws_pong_timeout_s)
        try:
            async with asyncio.timeout(max(0.01, deadline - time.monotonic())):
                await self.wake.wait()
        except TimeoutError:
            pass


def authenticate_socket(ws: WebSocket, ring: KeyRing) -> Principal:
    key = bearer_token(ws.headers.get("authorization")) or ws.query_params.get("api_key")
    return ring.authorize(key, Role.viewer)


# Before the ingress decorator: Serve takes the app's routes when it wraps the class.
app.include_router(events_router())


@serve.deployment(ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class EventsGateway:
    """WebSocket and HTTP access to the hub's channels, with API-key auth."""

    async def __init__(self, settings: Settings):
        self._settings = settings
        app.state.keyring = KeyRing.load(settings.keys_path)
        app.state.settings = settings
        self._hub = get_or_create_hub(settings)
        self._mirror = EventLog(settings.event_channels, settings.event_history)
        self.hub_up = False
        self._pump_task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        """Mirror the hub: long-poll from the mirror's heads, forever, across hub restarts."""
        delay = 0.1
        while True:
            try:
                raw = await self._hub.read.remote(self._mirror.heads(), timeout=HUB_POLL_S,
                                                  limit=self._settings.event_read_limit)
            except Exception as err:  # hub dead or restarting: keep serving the mirror, retry
                if self.hub_up:
                    log.warning("event hub unreachable: %s", err)
                self.hub_up = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self.hub_up, delay = True, 0.1
            result = ReadResult.from_dict(raw)
            for gap in result.gaps:  # the hub no longer holds these: neither can the mirror
                self._mirror.reset(gap.channel, gap.last)
            self._mirror.add(result.events)

    @app.websocket("/events")
    async def events_socket(self, ws: WebSocket):
        await ws.accept()
        try:
            principal = authenticate_socket(ws, app.state.keyring)
        except AuthError as err:
            await ws.close(POLICY_VIOLATION, err.reason)
            return
        session = Session(ws, principal, self._mirror, self._settings)
        try:
            await session.run(ws.query_params.get("channels"), ws.query_params.get("since"))
        except WebSocketDisconnect:
            pass
        finally:
            if ws.client_state == WebSocketState.CONNECTED and ws.application_state == WebSocketState.CONNECTED:
                await ws.close()


def build_app(args: dict | Settings | None = None):
    """The Serve application: ``import_path: serve_apps.events:build_app`` (args = settings overrides)."""
    settings = args if isinstance(args, Settings) else get_settings(**(args or {}))
    return EventsGateway.options(max_ongoing_requests=settings.ws_max_connections).bind(settings)
