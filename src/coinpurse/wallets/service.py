"""The wallet API's rules: what a credit, a debit and a transfer post, who may move which
currency between users, and how balances and histories are read. Money moves through the
ledger; its reads come from ``ledger.queries`` (the wallets own no table).

A write's answer is rendered inside the ledger's batch, before the commit, because the
idempotency row that replays it byte for byte commits with the money movement: so the
service renders it, from the schema models, and returns the ledger's ``JobResult``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.bonuses import service as bonuses
from coinpurse.bonuses.settings import BonusSettings
from coinpurse.core import cursor
from coinpurse.core.cluster.reads import ReadRouter
from coinpurse.core.db import read_connection
from coinpurse.core.pages import Page
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
from coinpurse.ledger.queries import HistoryEntry, TransactionRecord
from coinpurse.ledger.service import JobResult, Ledger
from coinpurse.ledger.settings import Currency
from coinpurse.ledger.views import rejection_problem, render_one
from coinpurse.wallets import schemas as s
from coinpurse.wallets.errors import CurrencyNotTransferable
from coinpurse.wallets.settings import WalletSettings


def user_of(address: str) -> str | None:
    """The user id of a ``user:<id>[:<wallet>]`` address."""
    parts = address.split(":")
    return parts[1] if parts[0] == "user" and len(parts) > 1 else None


def transfer_spec(settings: WalletSettings, service: str, body: s.TransferIn) -> TransactionSpec:
    """A transfer's transaction; a currency not open to user-to-user moves is refused, and
    so is a bonus wallet (bonus money never moves between users)."""
    bonuses.refuse_bonus_wallets(a for p in body.postings for a in (p.source, p.destination))
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


def change_spec(service: str, body: s.WalletChangeIn,
                op: Literal["credit", "debit"]) -> TransactionSpec:
    """A credit moves money from ``service:<name>`` to the user, a debit back."""
    service_account = f"service:{service}"
    user_account = f"user:{body.user_id}"
    source, destination = ((service_account, user_account) if op == "credit"
                           else (user_account, service_account))
    return TransactionSpec(
        kind=op,
        postings=(Posting(source, destination, body.amount, body.currency),),
        description=body.description,
        reference_id=body.reference_id,
        metadata=body.metadata,
        initiator=service_account,
        service=service,
        internal_notes=body.internal_notes,
    )


@dataclass(frozen=True, slots=True)
class Wallets:
    """What the wallet rules need: the database (reads), the ledger (writes), the settings;
    ``reads``: where histories may be read (a standby, when it is up to date)."""

    db: AsyncEngine
    ledger: Ledger
    settings: WalletSettings
    bonus: BonusSettings  # the spend order of debits
    reads: ReadRouter | None = None

    async def change(self, service: str, body: s.WalletChangeIn, idem: str,
                     op: Literal["credit", "debit"]) -> JobResult:
        if isinstance(body, s.WalletDebitIn):
            return await self._debit(service, body, idem)
        user_id, currency = body.user_id, body.currency
        return await self.ledger.submit(
            [change_spec(service, body, op)],
            render=render_one(lambda tx: s.WalletTransactionOut.of_change(
                tx, user_id, currency).model_dump_json().encode()),
            claim=claim(f"service:{service}", idem, op, body.model_dump(mode="json")))

    async def _debit(self, service: str, body: s.WalletDebitIn, idem: str) -> JobResult:
        """A debit of a user with active bonuses is decided by the bonus rules under the
        user's locks (cash and bonus, and wagering); any other is one plain posting."""
        user_id, currency, amount = body.user_id, body.currency, body.amount
        idem_claim = claim(f"service:{service}", idem, "debit", body.hashed())
        plain = change_spec(service, body, "debit")
        if not await bonuses.has_active(self.db, user_id, currency):  # bonus wallet: 0
            return await self.ledger.submit([plain], claim=idem_claim, render=render_one(
                lambda tx: s.WalletDebitOut.of_debit(
                    tx, user_id, currency, amount, from_cash=amount, from_bonus=0,
                    wallet=tx.balances_after[(f"user:{user_id}", currency)], bonus_after=0,
                ).model_dump_json().encode()))
        debit = bonuses.BonusDebit(
            self.bonus, user_id, currency, amount, f"service:{service}", body.use_bonus,
            body.category, body.reference_id,
            build=lambda postings: dataclasses.replace(plain, postings=postings))

        def render(outcomes: list[Outcome]) -> StoredResponse:
            refusal = next((o for o in outcomes if isinstance(o, Rejection)), None)
            if refusal is not None:
                return rejection_problem(refusal)
            tx = outcomes[0]
            assert isinstance(tx, Transaction) and debit.spend is not None
            return StoredResponse(201, s.WalletDebitOut.of_debit(
                tx, user_id, currency, amount, wallet=debit.after(outcomes, f"user:{user_id}"),
                from_cash=debit.spend.from_cash, from_bonus=debit.spend.from_bonus,
                bonus_after=debit.after(outcomes, bonuses.wallet_of(user_id)).balance,
                conversions=debit.conversions(outcomes)).model_dump_json().encode())

        return await self.ledger.submit(
            [], render=render, claim=idem_claim, prepare=debit.prepare, atomic=True,
            side_writes=debit.side_writes, lock_keys=debit.lock_keys)

    async def transfer(self, service: str, body: s.TransferIn, idem: str) -> JobResult:
        spec = transfer_spec(self.settings, service, body)
        return await self.ledger.submit(
            [spec], render=render_one(lambda tx: s.TransactionOut.of(tx).model_dump_json()
                                      .encode()),
            claim=claim(f"service:{service}", idem, "transfer", body.model_dump(mode="json")))

    async def transfer_batch(self, service: str, body: s.BatchIn, idem: str) -> JobResult:
        """Each transfer is its own transaction with its own result; one idempotent call."""
        specs = [transfer_spec(self.settings, service, t) for t in body.transfers]

        def render(outcomes: list[Outcome]) -> StoredResponse:
            return StoredResponse(200, s.BatchOut.of(body, outcomes).answer())

        return await self.ledger.submit(
            specs, atomic=body.atomic, render=render,
            claim=claim(f"service:{service}", idem, "batch", body.model_dump(mode="json")))

    def currencies(self) -> list[Currency]:
        """The configured currencies and their scales, in their configured order."""
        return list(self.settings.currencies.values())

    async def balances(self, address: str) -> dict[str, Balance]:
        """Every configured currency, zero where the account has never been used."""
        async with read_connection(self.db) as conn:
            return await queries.balances(conn, address, self.settings.currencies)

    async def user_balances(self, user_id: str) -> tuple[dict[str, Balance], dict[str, int]]:
        """The user's main wallet and bonus wallet in every configured currency."""
        async with read_connection(self.db) as conn:
            cash, bonus = await queries.balances_of_pair(
                conn, f"user:{user_id}", bonuses.wallet_of(user_id), self.settings.currencies)
        return cash, {c: b.balance for c, b in bonus.items()}

    async def transaction(self, tx_id: str) -> TransactionRecord | None:
        async with self.db.connect() as conn:
            return await queries.transaction(conn, tx_id)

    async def postings(self, keys: Sequence[tuple[str, datetime]]
                       ) -> dict[str, tuple[Posting, ...]]:
        """The postings of a page of history lines' transactions, in one read."""
        async with self.db.connect() as conn:
            return await queries.postings_of(conn, keys)

    async def history(self, user_id: str, *, currency: str | None, limit: int,
                      cursor_text: str | None) -> Page[HistoryEntry]:
        """A page of the user's entries, newest first: from a standby when one is
        configured and holds every change of this wallet (so never older than the
        primary's), else from the primary."""
        if currency is not None:
            self.settings.currency(currency)
        before = cursor.decode(cursor_text)
        address = f"user:{user_id}"
        reads = self.reads or ReadRouter(self.db)

        async def versions(conn: AsyncConnection) -> object:
            return await queries.account_versions(conn, address)

        async with reads.connect(versions) as conn:
            found, next_id = await queries.entries_page(
                conn, address, currency=currency, before_id=before, limit=limit)
        return Page(found, cursor.encode(next_id) if next_id is not None else None)
