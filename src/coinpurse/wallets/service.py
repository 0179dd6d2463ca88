"""The wallet API's rules: what a credit, a debit and a transfer post, who may move which
currency between users, and how a history page is read. Money moves through the ledger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.core import cursor
from coinpurse.ledger import queries
from coinpurse.ledger.idempotency import StoredResponse, claim
from coinpurse.ledger.model import (
    Balance,
    Outcome,
    Posting,
    Rejection,
    Transaction,
    TransactionSpec,
)
from coinpurse.ledger.service import JobResult, Ledger
from coinpurse.ledger.views import render_one, transaction_view
from coinpurse.wallets import schemas as s
from coinpurse.wallets.errors import CurrencyNotTransferable
from coinpurse.wallets.settings import WalletSettings


@dataclass(frozen=True, slots=True)
class Wallets:
    """What the wallet rules need; built by the routes from the app's state."""

    db: AsyncEngine
    ledger: Ledger
    settings: WalletSettings


def user_of(address: str) -> str | None:
    """The user id of a ``user:<id>[:<wallet>]`` address."""
    parts = address.split(":")
    return parts[1] if parts[0] == "user" and len(parts) > 1 else None


def wallet_view(user_id: str, currency: str) -> Callable[[Transaction], dict[str, Any]]:
    """A credit or debit: the transaction plus the user's wallet after it."""

    def view(tx: Transaction) -> dict[str, Any]:
        body = transaction_view(tx)
        wallet = tx.balances_after[(f"user:{user_id}", currency)]
        body.update(
            user_id=user_id,
            currency=currency,
            amount=tx.spec.postings[0].amount,
            balance_after=wallet.balance,
            wallet=wallet.as_dict(),
        )
        return body

    return view


async def change(w: Wallets, service: str, body: s.WalletChangeIn, idem: str,
                 op: Literal["credit", "debit"]) -> JobResult:
    """A credit moves money from ``service:<name>`` to the user, a debit back."""
    currency = body.currency
    service_account = f"service:{service}"
    user_account = f"user:{body.user_id}"
    source, destination = ((service_account, user_account) if op == "credit"
                           else (user_account, service_account))
    spec = TransactionSpec(
        kind=op,
        postings=(Posting(source, destination, body.amount, currency),),
        description=body.description,
        reference_id=body.reference_id,
        metadata=body.metadata,
        initiator=service_account,
        service=service,
        internal_notes=body.internal_notes,
    )
    return await w.ledger.submit(
        [spec], render=render_one(wallet_view(body.user_id, currency)),
        claim=claim(f"service:{service}", idem, op, body.model_dump(mode="json")))


def transfer_spec(settings: WalletSettings, service: str, body: s.TransferIn) -> TransactionSpec:
    """A transfer's transaction; a currency not open to user-to-user moves is refused."""
    for i, p in enumerate(body.postings):
        src, dst = user_of(p.source), user_of(p.destination)
        if src and dst and src != dst and p.currency not in settings.transferable:
            raise CurrencyNotTransferable(
                f"{p.currency} cannot move between two users' wallets (posting {i})",
                posting_index=i,
            )
    return TransactionSpec(
        kind=body.kind,
        postings=tuple(Posting(p.source, p.destination, p.amount, p.currency)
                       for p in body.postings),
        description=body.description,
        reference_id=body.reference_id,
        metadata=body.metadata,
        initiator=f"service:{service}",
        service=service,
        internal_notes=body.internal_notes,
    )


async def transfer(w: Wallets, service: str, body: s.TransferIn, idem: str) -> JobResult:
    spec = transfer_spec(w.settings, service, body)
    return await w.ledger.submit(
        [spec], render=render_one(transaction_view),
        claim=claim(f"service:{service}", idem, "transfer", body.model_dump(mode="json")))


def render_batch(body: s.BatchIn) -> Callable[[list[Outcome]], StoredResponse]:
    """A batch: one slim result per transfer, in order (full views would be megabytes)."""

    def render(outcomes: list[Outcome]) -> StoredResponse:
        results: list[dict[str, Any]] = []
        for i, (transfer, outcome) in enumerate(zip(body.transfers, outcomes, strict=True)):
            if isinstance(outcome, Rejection):
                results.append({"index": i, "status": "rejected",
                                "reference_id": transfer.reference_id, "code": outcome.code,
                                "detail": outcome.detail})
            else:
                assert isinstance(outcome, Transaction)
                results.append({"index": i, "status": "posted",
                                "reference_id": transfer.reference_id, "id": outcome.id})
        posted = sum(r["status"] == "posted" for r in results)
        return StoredResponse(200, orjson.dumps({
            "atomic": body.atomic, "posted": posted, "rejected": len(results) - posted,
            "results": results,
        }))

    return render


async def transfer_batch(w: Wallets, service: str, body: s.BatchIn, idem: str) -> JobResult:
    """Each transfer is its own transaction with its own result; one idempotent call."""
    specs = [transfer_spec(w.settings, service, t) for t in body.transfers]
    return await w.ledger.submit(
        specs, atomic=body.atomic, render=render_batch(body),
        claim=claim(f"service:{service}", idem, "batch", body.model_dump(mode="json")))


async def balances(w: Wallets, address: str) -> dict[str, Balance]:
    """Every configured currency, zero where the account has never been used."""
    async with w.db.connect() as conn:
        return await queries.balances(conn, address, w.settings.currencies)


async def account_balances(db: AsyncEngine, address: str) -> dict[str, Balance]:
    """Only the currencies the account has been used in."""
    async with db.connect() as conn:
        return await queries.account_balances(conn, address)


async def transaction(db: AsyncEngine, tx_id: str) -> dict[str, Any] | None:
    async with db.connect() as conn:
        return await queries.transaction(conn, tx_id)


async def history(w: Wallets, user_id: str, *, currency: str | None, limit: int,
                  cursor_text: str | None, audit: bool) -> dict[str, Any]:
    """A page of the user's entries, newest first; the audit view adds what users must
    never see (service, initiator, internal notes, metadata)."""
    if currency is not None:
        w.settings.currency(currency)
    before = cursor.decode(cursor_text)
    async with w.db.connect() as conn:
        rows, next_id = await queries.entries_page(
            conn, f"user:{user_id}", currency=currency, before_id=before, limit=limit
        )
    return {
        "data": [queries.entry_view(r, audit=audit) for r in rows],
        "next_cursor": cursor.encode(next_id) if next_id is not None else None,
    }

