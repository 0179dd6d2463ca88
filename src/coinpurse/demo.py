"""Demo data for ``coinpurse serve --demo``: money posted through the ledger like any
credit, and built-in accounts to sign in to the wallet and the console with."""

from __future__ import annotations

from dataclasses import dataclass

import pyotp

from coinpurse.auth import accounts, repository
from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.events.service import Outbox, Wakeup
from coinpurse.ledger.idempotency import StoredResponse, claim
from coinpurse.ledger.model import Outcome, Posting, TransactionSpec
from coinpurse.ledger.service import Ledger
from coinpurse.shop import service as shop
from coinpurse.shop.model import Actor, ProductFilter

DEMO_CREDITS = (("alice", 1000, "Welcome bonus"), ("bob", 250, "Welcome bonus"))
DEMO_MERCHANT = "shop"
# name, description, price, stock: what the demo merchant sells (in the first currency).
DEMO_PRODUCTS = (
    ("Silver shield", "Blocks one hit in three.", 250, 10),
    ("Health potion", "Restores all health at once.", 40, 100),
    ("Dragon egg", "Only one exists. Hatches in 7 days.", 900, 1),
)


async def seed(settings: Settings) -> None:
    """Credit the demo users once; fixed idempotency keys make a restart replay, not repeat."""
    currency = next(iter(settings.currencies))
    db = create_engine(settings.database_url, pool_size=1, options=settings.db_options)
    ledger = Ledger(db, may_go_negative=settings.may_go_negative,
                    idempotency_ttl_s=10 * 365 * 86_400, retry_s=settings.db_retry_s)
    ledger.add_hook(Outbox(Wakeup()))  # its transaction.posted events, as in serve
    await ledger.start()

    def render(_outcomes: list[Outcome]) -> StoredResponse:
        return StoredResponse(201, b"{}")

    try:
        for user, amount, text in DEMO_CREDITS:
            spec = TransactionSpec(
                kind="credit",
                postings=(Posting("service:demo", f"user:{user}", amount, currency),),
                description=text,
                reference_id=f"demo-{user}",
                initiator="service:demo",
                service="demo",
            )
            await ledger.submit([spec], render=render,
                                claim=claim("service:demo", f"demo-seed-{user}", "seed", user))
        await _seed_products(shop.Shop(db, ledger, settings, settings), currency)
    finally:
        await ledger.stop()
        await db.dispose()


async def _seed_products(found: shop.Shop, currency: str) -> None:
    """The demo merchant's products, unless it already has some (a restart adds none)."""
    mine = await shop.own_products(found.db, DEMO_MERCHANT, ProductFilter(), before=None,
                                   limit=1)
    if mine.data or currency not in found.settings.sellable:
        return
    merchant = Actor(DEMO_MERCHANT, "merchant")
    for name, description, price, stock in DEMO_PRODUCTS:
        await shop.create_product(found, merchant, name=name, description=description,
                                  price=price, currency=currency, stock=stock, active=True,
                                  metadata={})


@dataclass(frozen=True, slots=True)
class DemoAccount:
    user_id: str
    email: str
    password: str
    role: str
    note: str
    totp: bool = False


# Demo only: well-known passwords for a local database, never for a real deployment.
DEMO_ACCOUNTS = (
    DemoAccount("alice", "alice@example.com", "alice-demo-pass", "user", "has money"),
    DemoAccount("bob", "bob@example.com", "bob-demo-pass", "user", "send each other gifts"),
    DemoAccount(DEMO_MERCHANT, "merchant@example.com", "merchant-demo-pass", "merchant",
                "role merchant"),
    DemoAccount("admin", "admin@example.com", "admin-demo-pass", "admin",
                "console, with 2FA", totp=True),
    DemoAccount("auditor", "auditor@example.com", "auditor-demo-pass", "auditor",
                "console, reads only, with 2FA", totp=True),
)


async def seed_accounts(settings: Settings) -> dict[str, str]:
    """Create the demo's built-in accounts once (readable ids, so the README's curl
    walk-through still speaks of ``alice``); return each 2FA account's TOTP secret."""
    db = create_engine(settings.database_url, pool_size=1)
    secrets: dict[str, str] = {}
    try:
        async with db.begin() as conn:
            for acc in DEMO_ACCOUNTS:
                found = await repository.credentials_by_id(conn, acc.user_id)
                if found is None:
                    email, password_hash = await accounts.hash_new_password(acc.email,
                                                                            acc.password)
                    await accounts.create_user(conn, email, password_hash, acc.role,
                                               user_id=acc.user_id)
                    secret = pyotp.random_base32() if acc.totp else None
                    if secret:
                        await repository.set_totp_secret(conn, acc.user_id, secret)
                        await repository.enable_totp(conn, acc.user_id, ())
                else:
                    secret = found.totp_secret if found.user.totp_enabled else None
                if secret:
                    secrets[acc.user_id] = secret
    finally:
        await db.dispose()
    return secrets
