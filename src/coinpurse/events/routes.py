"""The events domain's routes: the log and balance monitors for services
(``/internal/v1``), webhook endpoints for admins (``/admin/v1``), live updates and
notifications for users (``/api/v1``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from starlette.responses import Response, StreamingResponse

from coinpurse.auth.keys import ServiceKey
from coinpurse.auth.scopes import allows
from coinpurse.core import cursor
from coinpurse.core.errors import (
    CoinpurseError,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from coinpurse.core.pages import PAGE_MAX
from coinpurse.core.types import ADDRESS_RE
from coinpurse.events import live, monitors, notifications, service, webhooks
from coinpurse.events import schemas as s
from coinpurse.events.errors import TooManyStreams, WebhookUrlRefused
from coinpurse.http import cookies
from coinpurse.http.deps import (
    Admin,
    AdminWriter,
    Service,
    State,
    UserId,
    client_ip,
    connection_principal,
)
from coinpurse.http.responses import json_response, problems
from coinpurse.ledger.errors import UnknownCurrency
from coinpurse.state import AppState

router = APIRouter(prefix="/internal/v1", tags=["events"])
EVENTS_PAGE_MAX = 1000


@router.get("/events", response_model=s.EventPage,
            responses=problems(ValidationFailed, Unauthorized, Forbidden),
            summary="The event log, oldest first, from a cursor")
async def events(
    state: State, key: Service,
    after: Annotated[str | None, Query(max_length=96, description=(
        "The `next_cursor` of the previous page; omit it to start at the oldest event "
        "kept."))] = None,
    types: Annotated[str | None, Query(max_length=2048, description=(
        "Comma-separated event types or patterns, e.g. `transaction.posted,topup.*`."))
    ] = None,
    limit: Annotated[int, Query(ge=1, le=EVENTS_PAGE_MAX)] = 100,
) -> Response:
    """Every committed change's events in one order that never changes: a reader that
    follows `next_cursor` sees each event exactly once, with several writing processes too.
    Scope `events:read`. Events are kept `COINPURSE_EVENTS_RETENTION_DAYS` (30 days)."""
    key.require("events:read")
    found, last = await service.page(state.db, after=cursor.decode(after) or 0, limit=limit,
                                     types=service.TypeFilter.parse(types))
    return json_response({"data": [s.EventOut.of(e).model_dump() for e in found],
                          "next_cursor": cursor.encode(last)})


# ------------------------------------------------------------------- balance monitors

MonitorId = Annotated[str, PathParam(max_length=36)]
PAGE = Annotated[int, Query(ge=1, le=PAGE_MAX)]
Cursor = Annotated[str | None, Query(alias="cursor", max_length=96)]


def _require_any(key: ServiceKey, *scopes: str) -> None:
    if not any(allows(key.scopes, s) for s in scopes):
        key.require(scopes[0])


@router.post("/balance-monitors", status_code=201, response_model=s.BalanceMonitorOut,
             responses=problems(ValidationFailed, Unauthorized, Forbidden, UnknownCurrency),
             summary="Watch a balance: an event when it goes below or above a threshold")
async def create_monitor(body: s.BalanceMonitorIn, state: State, key: Service) -> Response:
    """When a committed transaction moves the account's **posted** balance (`balance`,
    not `available`) into the condition (`below`: under `amount`; `above`: over it), one
    `balance.threshold_crossed` event is written in the same commit; it comes again only
    after the balance has left the condition. Scope `monitors:write`."""
    key.require("monitors:write")
    state.settings.currency(body.currency)
    found = await monitors.create(state.db, address=body.target, currency=body.currency,
                                  condition=body.condition, amount=body.amount,
                                  description=body.description, service=key.service)
    return json_response(s.BalanceMonitorOut.of(found).model_dump(), status=201)


@router.get("/balance-monitors", response_model=s.BalanceMonitorPage,
            responses=problems(ValidationFailed, Unauthorized, Forbidden),
            summary="Balance monitors, newest first")
async def list_monitors(
    state: State, key: Service,
    address: Annotated[str | None, Query(pattern=ADDRESS_RE, max_length=255)] = None,
    currency: Annotated[str | None, Query(max_length=16)] = None,
    limit: PAGE = 50, cursor_: Cursor = None,
) -> Response:
    """Scope `monitors:read` (or `monitors:write`)."""
    _require_any(key, "monitors:read", "monitors:write")
    found, next_id = await monitors.page(state.db, address=address, currency=currency,
                                         before=cursor.decode_text(cursor_), limit=limit)
    return json_response({"data": [s.BalanceMonitorOut.of(m).model_dump() for m in found],
                          "next_cursor": cursor.encode_text(next_id) if next_id else None})


@router.delete("/balance-monitors/{monitor_id}", status_code=204,
               responses=problems(Unauthorized, Forbidden, NotFound, ValidationFailed),
               summary="Stop watching a balance")
async def delete_monitor(monitor_id: MonitorId, state: State, key: Service) -> Response:
    """Scope `monitors:write`."""
    key.require("monitors:write")
    await monitors.delete(state.db, monitor_id)
    return Response(status_code=204)


# ------------------------------------------------------------------- webhooks (admin)

admin_router = APIRouter(prefix="/admin/v1", tags=["webhooks"])
EndpointId = Annotated[str, PathParam(max_length=36)]
DeliveryId = Annotated[str, PathParam(max_length=36)]
_READ = (Unauthorized, Forbidden, ValidationFailed)


def _endpoint(e: webhooks.Endpoint) -> Response:
    return json_response(s.WebhookEndpointOut.of(e).model_dump())


@admin_router.post("/webhook-endpoints", status_code=201,
                   response_model=s.WebhookEndpointCreatedOut,
                   responses=problems(*_READ, WebhookUrlRefused),
                   summary="Add a webhook endpoint; its signing secret is shown once")
async def create_endpoint(body: s.WebhookEndpointIn, admin: AdminWriter, state: State,
                          request: Request) -> Response:
    """Every event whose type matches one of `events` (from now on) is POSTed to `url` as
    JSON (`{"id", "type", "created_at", "data"}`) with `Coinpurse-Event-Id` and
    `Coinpurse-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. A 2xx
    within 10 s is delivered; anything else is retried with exponential backoff and
    jitter for up to 3 days, then marked failed. Deliveries are at least once: deduplicate
    by event id. The URL is refused (`webhook_url_refused`, with a `reason`) unless it is
    http(s) and resolves to public addresses only."""
    found = await webhooks.create(state.db, state.settings, admin, url=body.url,
                                  events=body.events, description=body.description,
                                  enabled=body.enabled, ip=client_ip(request))
    out = s.WebhookEndpointCreatedOut(**s.WebhookEndpointOut.of(found).model_dump(),
                                      secret=found.secret)
    return json_response(out.model_dump(), status=201)


@admin_router.get("/webhook-endpoints", response_model=s.WebhookEndpointPage,
                  responses=problems(*_READ), summary="Webhook endpoints, newest first")
async def list_endpoints(admin: Admin, state: State, limit: PAGE = 50,
                         cursor_: Cursor = None) -> Response:
    """The webhook endpoints, newest first, with cursor pages; secrets are never shown
    again after creation. Admin or auditor."""
    found, next_id = await webhooks.page(state.db, cursor.decode_text(cursor_), limit)
    return json_response({"data": [s.WebhookEndpointOut.of(e).model_dump() for e in found],
                          "next_cursor": cursor.encode_text(next_id) if next_id else None})


@admin_router.get("/webhook-endpoints/{endpoint_id}", response_model=s.WebhookEndpointOut,
                  responses=problems(*_READ, NotFound), summary="One webhook endpoint")
async def get_endpoint(endpoint_id: EndpointId, admin: Admin, state: State) -> Response:
    """One webhook endpoint: its URL, event types and delivery state. Admin or auditor."""
    return _endpoint(await webhooks.get(state.db, endpoint_id))


@admin_router.patch("/webhook-endpoints/{endpoint_id}", response_model=s.WebhookEndpointOut,
                    responses=problems(*_READ, NotFound, WebhookUrlRefused),
                    summary="Change a webhook endpoint: enable, disable, events, URL")
async def update_endpoint(endpoint_id: EndpointId, body: s.WebhookEndpointPatchIn,
                          admin: AdminWriter, state: State, request: Request) -> Response:
    """Only the fields sent change. While disabled an endpoint gets no new deliveries,
    and its pending ones wait (they go out once it is enabled again, within their 3 days)."""
    changes = body.model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        raise ValidationFailed("fields sent must not be null", [
            {"loc": ["body", k], "msg": "must not be null", "type": "null"}
            for k, v in changes.items() if v is None])
    return _endpoint(await webhooks.update(state.db, state.settings, admin, endpoint_id,
                                           changes, client_ip(request)))


@admin_router.delete("/webhook-endpoints/{endpoint_id}", status_code=204,
                     responses=problems(*_READ, NotFound),
                     summary="Delete a webhook endpoint and its deliveries")
async def delete_endpoint(endpoint_id: EndpointId, admin: AdminWriter, state: State,
                          request: Request) -> Response:
    """Removes the endpoint: nothing more is delivered to it (audited). 204."""
    await webhooks.delete(state.db, admin, endpoint_id, client_ip(request))
    return Response(status_code=204)


@admin_router.post("/webhook-endpoints/{endpoint_id}/rotate-secret",
                   response_model=s.WebhookEndpointCreatedOut,
                   responses=problems(*_READ, NotFound),
                   summary="A new signing secret (shown once); the old one signs on for a "
                   "grace period")
async def rotate_secret(endpoint_id: EndpointId, admin: AdminWriter, state: State,
                        request: Request, body: s.SecretRotateIn | None = None) -> Response:
    """From now on every delivery carries two signatures, `v1=<new>,v1=<old>`, until
    `previous_secret_expires_at` (`grace_s`, default 24 hours): update your receiver to
    the new secret within it. `grace_s: 0` stops the old one at once."""
    grace = state.settings.webhook_secret_grace_s
    if body is not None and body.grace_s is not None:
        grace = body.grace_s
    found = await webhooks.rotate(state.db, admin, endpoint_id, grace, client_ip(request))
    out = s.WebhookEndpointCreatedOut(**s.WebhookEndpointOut.of(found).model_dump(),
                                      secret=found.secret)
    return json_response(out.model_dump())


@admin_router.get("/webhook-endpoints/{endpoint_id}/deliveries",
                  response_model=s.DeliveryPage, responses=problems(*_READ, NotFound),
                  summary="An endpoint's deliveries, newest first")
async def list_deliveries(
    endpoint_id: EndpointId, admin: Admin, state: State,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
    limit: PAGE = 50, cursor_: Cursor = None,
) -> Response:
    """Each with its status, attempts, the receiver's last HTTP status and error, and the
    next attempt's time while pending."""
    found, next_id = await webhooks.deliveries(state.db, endpoint_id, status,
                                               cursor.decode_text(cursor_), limit)
    return json_response({"data": [s.DeliveryOut.of(d).model_dump() for d in found],
                          "next_cursor": cursor.encode_text(next_id) if next_id else None})


@admin_router.post("/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
                   response_model=s.DeliveryOut, responses=problems(*_READ, NotFound),
                   summary="Send a delivery again now")
async def redeliver(endpoint_id: EndpointId, delivery_id: DeliveryId, admin: AdminWriter,
                    state: State, request: Request) -> Response:
    """Whatever its status (a failed one, or a delivered one the receiver lost): it is
    pending again, due now, with a new 3-day retry window."""
    found = await webhooks.redeliver(state.db, state.settings, admin, endpoint_id,
                                     delivery_id, client_ip(request))
    return json_response(s.DeliveryOut.of(found).model_dump())


# ------------------------------------------------------------------- users: live, notifications

user_router = APIRouter(prefix="/api/v1", tags=["live updates"])
NotificationId = Annotated[str, PathParam(max_length=36)]
_USER = (Unauthorized, ValidationFailed)


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


STREAM_DOC = """Server-Sent Events: the caller's own updates, as they commit.

```
id: 4123168604160001
event: balance.updated
data: {"wallet": "main", "address": "user:7", "currency": "points", "balance": 150,
       "held": 0, "available": 150, "version": 12, "transaction_id": "...", "hold_id": null}
```

* `balance.updated`: a wallet of the caller changed (`user:<id>` is `wallet: "main"`, a
  sub-wallet `user:<id>:<name>` is `wallet: "<name>"`); `version` grows with every change
  of that wallet, so an older update can be ignored.
* `notification.created`: a new notification (as `GET /api/v1/notifications` shows it).
* `reset`: the stream could not replay everything since `Last-Event-ID`: reload balances
  and notifications, then carry on.
* `: heartbeat` comment lines every 15 s.

Reconnect with the last `id:` received as the `Last-Event-ID` header (EventSource does it
by itself) to get what was missed. Streams are capped per user and per server (429
`too_many_streams`); a client that does not keep up is disconnected and resumes the same
way. The same stream is on a WebSocket at `/api/v1/ws` (JSON messages `{"id", "event",
"data"}`; a Bearer token in the Authorization header, or `{"token": "<jwt>",
"last_event_id"?: "..."}` as the first message, or the web wallet's session cookie from a
page of the same origin; `?last_event_id=` resumes)."""


def _last_event_id(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) > 2**63 - 1:
        raise ValidationFailed("Last-Event-ID must be the id of an event this stream sent", [
            {"loc": ["header", "Last-Event-ID"], "msg": "not an event id",
             "type": "invalid_event_id"}])
    return int(raw)


def _sse(message: live.Message) -> bytes:
    return (f"id: {message.id}\nevent: {message.event}\ndata: ".encode()
            + orjson.dumps(message.data) + b"\n\n")


async def _stream(hub: live.Hub, sub: live.Subscriber, heartbeat_s: float
                  ) -> AsyncIterator[bytes]:
    try:
        yield b"retry: 2000\n: connected\n\n"
        while not sub.dropped:
            message = await sub.next(heartbeat_s)
            if sub.dropped:
                return  # too slow: the client reconnects with Last-Event-ID
            yield _sse(message) if message is not None else b": heartbeat\n\n"
    finally:
        hub.unsubscribe(sub)


@user_router.get(
    "/events/stream", response_class=EventStreamResponse,
    responses={200: {"description": "An endless `text/event-stream`", "content": {
        "text/event-stream": {"schema": {"type": "string", "description": "SSE frames"}}}},
        **problems(*_USER, TooManyStreams)},
    summary="Live updates of the caller's balances and notifications (SSE)",
    description=STREAM_DOC)
async def stream(
    state: State, user: UserId,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
) -> Response:
    sub = await state.live.subscribe(user, _last_event_id(last_event_id))
    return EventStreamResponse(
        _stream(state.live, sub, state.settings.live_heartbeat_s),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


WS_AUTH_TIMEOUT_S = 10.0


@user_router.websocket("/ws")
async def websocket(ws: WebSocket) -> None:
    """The live stream on a WebSocket (see ``GET /api/v1/events/stream``)."""
    app_state: AppState = ws.app.state.coinpurse
    await ws.accept()
    try:
        # Browsers cannot set headers on a WebSocket: they resume with ?last_event_id=.
        token = None
        resume = ws.headers.get("last-event-id") or ws.query_params.get("last_event_id")
        if "authorization" not in ws.headers and cookies.access_token(ws) is None:
            first = await asyncio.wait_for(ws.receive_json(), WS_AUTH_TIMEOUT_S)
            if not isinstance(first, dict):
                raise Unauthorized('the first message must be {"token": "<jwt>"}')
            token = first.get("token") if isinstance(first.get("token"), str) else None
            resume = first.get("last_event_id", resume)
            if resume is not None and not isinstance(resume, str):
                resume = str(resume)
        principal = await connection_principal(app_state, ws, token)
        sub = await app_state.live.subscribe(principal.user_id, _last_event_id(resume))
    except (CoinpurseError, TimeoutError, ValueError, WebSocketDisconnect) as exc:
        await _refuse(ws, exc)
        return
    hub, heartbeat_s = app_state.live, app_state.settings.live_heartbeat_s

    async def send() -> None:
        await ws.send_json({"event": "ready", "data": {"user_id": principal.user_id}})
        while not sub.dropped:
            message = await sub.next(heartbeat_s)
            if sub.dropped:
                break
            await ws.send_text(orjson.dumps(
                {"id": str(message.id), "event": message.event, "data": message.data}
                if message is not None else {"event": "heartbeat"}).decode())
        await ws.close(code=1013, reason="too slow: reconnect with last_event_id")

    async def receive() -> None:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass

    tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect,
                                     RuntimeError):
                await task
        hub.unsubscribe(sub)


async def _refuse(ws: WebSocket, exc: Exception) -> None:
    err = exc if isinstance(exc, CoinpurseError) else Unauthorized(
        "authenticate within 10 s: a Bearer token in the Authorization header, or "
        '{"token": "<jwt>"} as the first message')
    with contextlib.suppress(Exception):
        await ws.send_json({"event": "error", "data": err.problem()})
        await ws.close(code=4000 + err.status, reason=err.code)


@user_router.get("/notifications", response_model=s.NotificationPage,
                 responses=problems(*_USER), tags=["notifications"],
                 summary="The caller's notifications, newest first, with the unread count")
async def list_notifications(
    state: State, user: UserId, limit: PAGE = 50, cursor_: Cursor = None,
    unread: Annotated[bool, Query(description="Only the unread ones")] = False,
) -> Response:
    """Which events notify is set by `COINPURSE_NOTIFY_EVENTS` (default: top-up
    succeeded, gift received, withdrawal paid or rejected, KYC approved or rejected)."""
    found, next_id, unread_count = await notifications.page(
        state.db, user, unread=unread, before=cursor.decode_text(cursor_), limit=limit)
    return json_response({"data": [s.NotificationOut.of(n).model_dump() for n in found],
                          "next_cursor": cursor.encode_text(next_id) if next_id else None,
                          "unread_count": unread_count})


@user_router.post("/notifications/read-all", response_model=s.ReadAllOut,
                  responses=problems(*_USER), tags=["notifications"],
                  summary="Mark every notification of the caller read")
async def read_all(state: State, user: UserId) -> Response:
    """Marks every notification of the caller read; answers how many changed."""
    marked = await notifications.read_all(state.db, user)
    return json_response({"marked_read": marked, "unread_count": 0})


@user_router.post("/notifications/{notification_id}/read", response_model=s.NotificationOut,
                  responses=problems(*_USER, NotFound), tags=["notifications"],
                  summary="Mark one notification read")
async def read_one(notification_id: NotificationId, state: State, user: UserId) -> Response:
    """Someone else's notification is as unknown as a missing one (404). Marking a read
    notification again changes nothing."""
    found = await notifications.read(state.db, user, notification_id)
    return json_response(s.NotificationOut.of(found).model_dump())
