"""Top-ups over HTTP: packages, orders, the client's verify call, provider webhooks, the mock
checkout page, and the operators' views of orders and of the webhook inbox."""

from __future__ import annotations

import html
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import HTMLResponse, RedirectResponse, Response

from coinpurse.bonuses.errors import InvalidPromoCode
from coinpurse.core import cursor
from coinpurse.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from coinpurse.http.deps import Admin, AdminWriter, IdempotencyKey, State, UserId, client_ip
from coinpurse.http.responses import json_response, problems
from coinpurse.kyc.errors import KycRequired, LimitExceeded
from coinpurse.ledger import queries
from coinpurse.ledger.errors import IdempotencyKeyReused, UnknownCurrency
from coinpurse.payments import credits, inbox
from coinpurse.payments import schemas as s
from coinpurse.payments import service as svc
from coinpurse.payments.errors import (
    InvalidSignature,
    PaymentNotCompleted,
    ProviderNotEnabled,
    ProviderUnavailable,
)
from coinpurse.payments.model import OPEN
from coinpurse.payments.providers.mock import checkout_event, payment_signature

router = APIRouter(tags=["top-ups"])
OrderId = Annotated[str, Path(max_length=36, pattern=r"^[0-9a-f-]{1,36}$")]
EventId = Annotated[int, Path(ge=1, le=2**63 - 1)]
PAGE_MAX = queries.PAGE_MAX


def _payments(state: State) -> svc.Payments:
    return svc.Payments(state.db, state.ledger, state.settings, state.settings, state.settings)


def _answer(body: BaseModel, status: int = 200,
            headers: dict[str, str] | None = None) -> Response:
    return json_response(body.model_dump(mode="json"), status, headers)


@router.get("/api/v1/topup/packages", response_model=s.PackagesOut,
            responses=problems(Unauthorized), summary="What can be bought, and for how much")
async def packages(user_id: UserId, state: State) -> Response:
    """The top-up packages (`COINPURSE_TOPUP_PACKAGES`) and per-amount rates
    (`COINPURSE_TOPUP_RATES`), with prices in minor units of an ISO currency and the providers
    that are enabled."""
    settings = state.settings
    return _answer(s.PackagesOut.of(settings.packages.values(), settings.rates.values(),
                                    settings.providers))


@router.post("/api/v1/topups", status_code=201, response_model=s.OrderOut,
             responses=problems(ValidationFailed, Unauthorized, UnknownCurrency,
                                ProviderNotEnabled, KycRequired, LimitExceeded,
                                InvalidPromoCode, IdempotencyKeyReused, ProviderUnavailable),
             summary="Start a top-up: a payment order and its checkout")
async def create_topup(body: s.TopupIn, user_id: UserId, state: State,
                       idem: IdempotencyKey) -> Response:
    """Creates a payment order (`created`) and its checkout at the provider: pay at
    `checkout_url` (mock, stripe) or open the provider's client-side checkout with
    `client_params` (razorpay). The coins are credited once the provider confirms the
    payment, by webhook or by `POST /api/v1/topups/{id}/verify`, whichever comes first.
    The KYC tier's top-up limits are checked here (`limit_exceeded` names the limit).
    `promo_code` names a running `deposit_match` promotion of the top-up's currency (else
    422 `invalid_promo_code`, with `reason`); its bonus is granted in the same commit as
    the credit, if the promotion's per-user limit and budget still allow it then. Running
    automatic deposit matches apply without a code."""
    order, replayed = await svc.create_order(
        _payments(state), user_id, idem, provider_name=body.provider,
        package_id=body.package_id, amount=body.amount, currency=body.currency,
        promo_code=body.promo_code)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return _answer(s.OrderOut.from_domain(order), 201, headers)


@router.get("/api/v1/topups", response_model=s.OrderPage,
            responses=problems(ValidationFailed, Unauthorized),
            summary="The caller's payment orders, newest first")
async def my_topups(user_id: UserId, state: State,
                    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
                    cursor_: Annotated[str | None, Query(alias="cursor", max_length=96)] = None,
                    ) -> Response:
    """The caller's payment orders, newest first, with cursor pages; each with its status
    (`created`, `pending`, `succeeded`, `failed`, `refunded`, `disputed`)."""
    orders, next_id = await svc.list_orders(state.db, user_id=user_id,
                                            before=cursor.decode_text(cursor_), limit=limit)
    return _answer(s.OrderPage(data=[s.OrderOut.from_domain(o) for o in orders],
                               next_cursor=cursor.encode_text(next_id) if next_id else None))


@router.get("/api/v1/topups/{order_id}", response_model=s.OrderOut,
            responses=problems(Unauthorized, NotFound), summary="One of the caller's orders")
async def my_topup(order_id: OrderId, user_id: UserId, state: State) -> Response:
    """One of the caller's payment orders (404 for anyone else's)."""
    return _answer(s.OrderOut.from_domain(await svc.own_order(state.db, user_id, order_id)))


@router.post("/api/v1/topups/{order_id}/verify", response_model=s.OrderOut,
             responses=problems(ValidationFailed, Unauthorized, NotFound, InvalidSignature,
                                PaymentNotCompleted, ProviderUnavailable),
             summary="Confirm a payment from the client side")
async def verify(order_id: OrderId, user_id: UserId, state: State,
                 body: s.VerifyIn | None = None) -> Response:
    """razorpay: the payment signature from the checkout is checked; mock: likewise;
    stripe: Coinpurse asks Stripe whether the session is paid. A confirmed payment is
    credited at once (exactly once, also when its webhook arrives at the same moment)."""
    params = body.model_dump(exclude_none=True) if body else {}
    order = await credits.confirm(_payments(state), user_id, order_id, params)
    return _answer(s.OrderOut.from_domain(order))


@router.post("/webhooks/{provider}", response_model=s.WebhookAck,
             responses=problems(NotFound, InvalidSignature), tags=["webhooks"],
             summary="Provider webhooks (signed)")
async def webhook(provider: Annotated[str, Path(max_length=16)], request: Request,
                  state: State) -> Response:
    """The signature is checked on the raw body; the event is stored (unique by provider
    and event id) and applied by the inbox worker, so the provider gets its 2xx at once.
    A redelivered event answers 200 with `duplicate: true`."""
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    event_id, duplicate = await inbox.ingest(_payments(state), provider, body, headers)
    return _answer(s.WebhookAck(received=True, duplicate=duplicate, id=event_id))


# ---------------------------------------------------------------- mock checkout


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mock checkout</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto}}
button{{font-size:1.1rem;padding:.5rem 1.5rem;margin-right:1rem}}</style></head>
<body><h1>Mock checkout</h1>
<p>Development only: no real money moves.</p>
<p>Order <code>{order_id}</code>: <strong>{what}</strong><br>
Price: <strong>{price}</strong><br>Status: <strong>{status}</strong></p>
{actions}
</body></html>"""


@router.get("/mock-checkout/{order_id}", response_class=HTMLResponse, tags=["mock"],
            summary="The mock provider's checkout page")
async def mock_checkout(order_id: OrderId, state: State) -> Response:
    """An HTML page with **Pay** and **Decline** for the development provider `mock`: Pay sends
    a signed webhook through Coinpurse's own HTTP stack, as a real provider would. Never enable
    `mock` in production."""
    order = await svc.mock_order(_payments(state), order_id)
    oid = html.escape(order.id)
    actions = (
        f'<form method="post" action="/mock-checkout/{oid}/pay" style="display:inline">'
        '<button type="submit">Pay</button></form>'
        f'<form method="post" action="/mock-checkout/{oid}/decline" style="display:inline">'
        '<button type="submit">Decline</button></form>'
    ) if order.status in (*OPEN, "failed") else "<p>Nothing left to pay.</p>"
    price = f"{order.price.amount} {order.price.currency.upper()} (minor units)"
    page = PAGE.format(order_id=oid, what=html.escape(svc.describe(order)),
                       price=html.escape(price), status=html.escape(order.status),
                       actions=actions)
    return HTMLResponse(page)


@router.post("/mock-checkout/{order_id}/{action}", tags=["mock"],
             summary="Pay or decline at the mock checkout")
async def mock_checkout_action(order_id: OrderId, action: Literal["pay", "decline"],
                               request: Request, state: State) -> Response:
    """Sends a signed webhook to `/webhooks/mock` through the app's own HTTP stack, exactly
    as a provider would, then redirects to the return URL with the payment's proof
    (`payment_id`, `signature`) for the verify call."""
    order = await svc.mock_order(_payments(state), order_id)
    secret = state.settings.mock_webhook_secret.get_secret_value()
    body, headers, payment_id = checkout_event(
        secret, order_id=order.id, price=order.price.amount,
        price_currency=order.price.currency, pay=action == "pay")
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coinpurse") as client:
        delivered = await client.post("/webhooks/mock", content=body, headers=headers)
    if delivered.status_code != 200:
        raise ProviderUnavailable(f"the webhook was answered {delivered.status_code}")
    if action == "decline":
        return RedirectResponse(svc.return_url(state.settings, order.id, "cancel"), 303)
    target = svc.return_url(state.settings, order.id, "success")
    signature = payment_signature(secret, order.id, payment_id)
    return RedirectResponse(f"{target}&payment_id={payment_id}&signature={signature}", 303)


@router.get("/topup-return", tags=["mock"], status_code=303, response_class=RedirectResponse,
            responses={303: {"description": "To `/wallet/topup-return`, with the same query",
                             "headers": {"Location": {"schema": {"type": "string"}}}}},
            summary="Where checkouts return to, unless COINPURSE_TOPUP_RETURN_URL is set")
async def topup_return(request: Request) -> Response:
    """Leads to the web wallet's top-up page, which confirms the payment (the verify call)
    and shows the outcome; the query (`order_id`, `status`, the payment's proof) is kept."""
    query = request.url.query
    return RedirectResponse("/wallet/topup-return" + (f"?{query}" if query else ""), 303)


# ---------------------------------------------------------------- operators


@router.get("/admin/v1/payment-orders", response_model=s.AdminOrderPage, tags=["admin"],
            responses=problems(ValidationFailed, Unauthorized, Forbidden),
            summary="Payment orders, newest first, with filters")
async def admin_orders(
    admin: Admin, state: State,
    status: Annotated[str | None, Query(max_length=16)] = None,
    provider: Annotated[str | None, Query(max_length=16)] = None,
    user_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    cursor_: Annotated[str | None, Query(alias="cursor", max_length=96)] = None,
) -> Response:
    """Payment orders of every user, newest first, filtered by `status`, `provider` and
    `user_id`, with cursor pages. Admin or auditor."""
    orders, next_id = await svc.list_orders(state.db, user_id=user_id, status=status,
                                            provider=provider,
                                            before=cursor.decode_text(cursor_), limit=limit)
    return _answer(s.AdminOrderPage(
        data=[s.AdminOrderOut.from_domain(o) for o in orders],
        next_cursor=cursor.encode_text(next_id) if next_id else None))


@router.get("/admin/v1/payment-orders/{order_id}", response_model=s.AdminOrderOut,
            tags=["admin"], responses=problems(Unauthorized, Forbidden, NotFound),
            summary="One payment order")
async def admin_order(order_id: OrderId, admin: Admin, state: State) -> Response:
    """One payment order with its provider ids, amounts, credit and reversal transactions.
    Admin or auditor."""
    return _answer(s.AdminOrderOut.from_domain(await svc.read_order(state.db, order_id)))


@router.get("/admin/v1/webhook-events", response_model=s.EventPage, tags=["admin"],
            responses=problems(ValidationFailed, Unauthorized, Forbidden),
            summary="The webhook inbox, newest first, with each event's processing state")
async def admin_events(
    admin: Admin, state: State,
    status: Annotated[str | None, Query(max_length=16)] = None,
    provider: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    cursor_: Annotated[str | None, Query(alias="cursor", max_length=96)] = None,
) -> Response:
    """The provider webhook inbox, newest first, filtered by `status` (`received`, `processed`,
    `ignored`, `failed`) and `provider`: attempts, next attempt and last error. Admin or
    auditor."""
    events, next_id = await inbox.list_events(_payments(state), status=status,
                                              provider=provider,
                                              before=cursor.decode(cursor_), limit=limit)
    return _answer(s.EventPage(data=[s.EventOut.from_domain(e) for e in events],
                               next_cursor=cursor.encode(next_id) if next_id else None))


@router.get("/admin/v1/webhook-events/{event_id}", response_model=s.EventDetailOut,
            tags=["admin"], responses=problems(Unauthorized, Forbidden, NotFound),
            summary="One webhook event, with its body")
async def admin_event(event_id: EventId, admin: Admin, state: State) -> Response:
    """One inbox event with its raw body, as the provider sent it. Admin or auditor."""
    return _answer(s.EventDetailOut.from_domain(await inbox.get_event(_payments(state),
                                                                      event_id)))


@router.post("/admin/v1/webhook-events/{event_id}/retry", response_model=s.EventOut,
             tags=["admin"], responses=problems(Unauthorized, Forbidden, NotFound),
             summary="Send a failed event round again")
async def admin_retry(event_id: EventId, admin: AdminWriter, state: State,
                      request: Request) -> Response:
    """Puts a `failed` event back in the inbox so that the worker applies it again (audited).
    Admin only."""
    event = await inbox.retry_event(_payments(state), event_id, admin, client_ip(request))
    return _answer(s.EventOut.from_domain(event))
