"""Top-ups, withdrawals and KYC: settings with every provider enabled (Stripe and Razorpay
pointed at a local fake of their APIs), and helpers to sign webhooks as providers do."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.kyc.repository import lock_profile
from coinpurse.kyc.tables import kyc_profiles
from coinpurse.payments import inbox
from coinpurse.payments import service as svc
from coinpurse.payments.tables import webhook_inbox
from tests.conftest import TEST_JWT_SECRET, auth, user_token
from tests.fakes.providers import FakeProviders

# Clearly fake: tests only.
STRIPE_KEY = "sk_test_fake_coinpurse_0000000000"
STRIPE_WHSEC_OLD = "whsec_test_fake_old_0000000000"
STRIPE_WHSEC_NEW = "whsec_test_fake_new_1111111111"
RZP_KEY_ID = "rzp_test_fake_key_id"
RZP_KEY_SECRET = "rzp_test_fake_key_secret_000000"
RZP_WHSEC = "rzp_test_fake_webhook_secret_00"
MOCK_WHSEC = "whsec_test_fake_mock_22222222222"

TIERS = {
    "0": {"requires": [], "withdrawals": False,
          "limits": {"coins": {"topup_max": 1200, "topup_daily": 2400, "max_balance": 3000}}},
    "1": {"requires": ["full_name", "date_of_birth", "country"], "withdrawals": True,
          "limits": {"coins": {"topup_max": 20_000},
                     "diamonds": {"withdraw_daily": 1000},
                     "points": {"withdraw_monthly": 1500}}},
    "2": {"requires": ["full_name", "date_of_birth", "country", "id_document_ref",
                       "selfie_ref"], "withdrawals": True, "limits": {}},
}


@pytest.fixture(scope="session")
def fakes() -> Iterator[FakeProviders]:
    server = FakeProviders()
    server.state.stripe_key = STRIPE_KEY
    server.state.razorpay_auth = (RZP_KEY_ID, RZP_KEY_SECRET)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(db_url: str, fakes: FakeProviders) -> Settings:
    fakes.state.reset()
    return Settings(
        database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
        currencies="coins:0,diamonds:0,points:0",
        topup_providers="mock,stripe,razorpay",
        topup_packages="small:100:99:usd:coins,big:1000+20%:799:usd:coins,"
                       "rupee:500:49900:inr:coins",
        topup_rates="coins:10:9:usd",
        public_url="http://test",
        mock_webhook_secret=MOCK_WHSEC,  # type: ignore[arg-type]
        stripe_secret_key=STRIPE_KEY,  # type: ignore[arg-type]
        stripe_webhook_secrets=f"{STRIPE_WHSEC_NEW},{STRIPE_WHSEC_OLD}",  # type: ignore[arg-type]
        stripe_api_base=fakes.url,
        razorpay_key_id=RZP_KEY_ID, razorpay_key_secret=RZP_KEY_SECRET,  # type: ignore[arg-type]
        razorpay_webhook_secret=RZP_WHSEC,  # type: ignore[arg-type]
        razorpay_api_base=fakes.url,
        withdrawal_currencies="diamonds:10:5000,points",
        kyc_tiers=json.dumps(TIERS),
        inbox_poll_s=0,  # tests run the inbox worker themselves, deterministically
    )


def headers(user: str, idem: str | None = None, **claims: Any) -> dict[str, str]:
    return {**auth(user_token(user, **claims)), "Idempotency-Key": idem or uuid.uuid4().hex}


ADMIN = auth(user_token("ops-1", role="admin", mfa=True))
AUDITOR = auth(user_token("aud-1", role="auditor", mfa=True))


def payments(app: Any) -> svc.Payments:
    state = app.state.coinpurse
    return svc.Payments(state.db, state.ledger, state.settings, state.settings, state.settings)


async def drain(app: Any, *, at: float | None = None) -> int:
    """Run the inbox worker until nothing is due (``at``: pretend it is that Unix time)."""
    from datetime import UTC, datetime

    now = datetime.fromtimestamp(at, UTC) if at else None
    total = 0
    while n := await inbox.process_due(payments(app), now=now):
        total += n
    return total


async def inbox_rows(app: Any) -> list[Any]:
    async with app.state.coinpurse.db.connect() as conn:
        return list((await conn.execute(select(webhook_inbox).order_by(webhook_inbox.c.id)))
                    .all())


async def set_tier(settings: Settings, user: str, tier: int) -> None:
    from datetime import UTC, datetime

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await lock_profile(conn, user)
            await conn.execute(update(kyc_profiles).where(kyc_profiles.c.user_id == user)
                               .values(tier=tier, updated_at=datetime.now(UTC)))
    finally:
        await engine.dispose()


async def balance(client: httpx.AsyncClient, user: str, currency: str = "coins"
                  ) -> dict[str, int]:
    r = await client.get("/api/v1/wallet/balance", headers=auth(user_token(user)))
    assert r.status_code == 200, r.text
    wallet: dict[str, int] = r.json()["wallets"][currency]
    return wallet


def stripe_sign(body: bytes, secret: str, ts: int | None = None) -> str:
    """``Stripe-Signature`` exactly as Stripe computes it."""
    ts = ts or int(time.time())
    sig = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={sig}"


def razorpay_sign(body: bytes, secret: str = RZP_WHSEC) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def razorpay_payment_signature(order_id: str, payment_id: str) -> str:
    return hmac.new(RZP_KEY_SECRET.encode(), f"{order_id}|{payment_id}".encode(),
                    hashlib.sha256).hexdigest()


def stripe_event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    return json.dumps({"id": event_id or f"evt_{uuid.uuid4().hex[:16]}", "object": "event",
                       "type": event_type, "api_version": "2024-06-20",
                       "created": int(time.time()), "data": {"object": obj}}).encode()


def razorpay_event(event: str, payment: dict[str, Any] | None = None,
                   **entities: dict[str, Any]) -> bytes:
    payload: dict[str, Any] = {}
    if payment is not None:
        payload["payment"] = {"entity": payment}
    for name, entity in entities.items():
        payload[name] = {"entity": entity}
    return json.dumps({"entity": "event", "account_id": "acc_test_fake", "event": event,
                       "contains": list(payload), "payload": payload,
                       "created_at": int(time.time())}).encode()


def mock_event(event_type: str, order_id: str, *, amount: int, currency: str = "usd",
               payment_id: str | None = None, event_id: str | None = None) -> bytes:
    from coinpurse.payments.providers.mock import event_body

    return event_body(event_id or f"evt_mock_{uuid.uuid4().hex}", event_type,
                      order_id=order_id, payment_id=payment_id or f"mockpay_{uuid.uuid4().hex}",
                      amount=amount, currency=currency)


def mock_headers(body: bytes) -> dict[str, str]:
    from coinpurse.payments.providers.mock import SIGNATURE_HEADER

    return {SIGNATURE_HEADER: stripe_sign(body, MOCK_WHSEC),
            "Content-Type": "application/json"}
