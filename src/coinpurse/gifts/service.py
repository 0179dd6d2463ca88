"""Gifts between users: one ledger transaction split between receiver, agency and platform,
and the agency each receiving user belongs to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.auth import accounts
from coinpurse.core import cursor
from coinpurse.core.clock import utcnow
from coinpurse.core.ids import new_id
from coinpurse.core.pages import Page
from coinpurse.events.service import event_write
from coinpurse.gifts import repository
from coinpurse.gifts import schemas as s
from coinpurse.gifts.errors import GiftRefused
from coinpurse.gifts.repository import Gift
from coinpurse.gifts.settings import GiftSettings, GiftType
from coinpurse.gifts.split import Split, split_gift
from coinpurse.ledger.idempotency import claim
from coinpurse.ledger.model import Outcome, Posting, Transaction, TransactionSpec
from coinpurse.ledger.service import JobResult, Ledger, RowInserts, SqlWrite
from coinpurse.ledger.views import render_one


@dataclass(frozen=True, slots=True)
class GiftPlan:
    """A gift decided before it posts: who, how much, and how it is shared out."""

    gift_id: str
    giver: str
    receiver: str
    gift_type: str | None
    currency: str
    amount: int
    agency_id: str | None
    split: Split
    message: str | None
    context_id: str | None

    def spec(self, platform_address: str) -> TransactionSpec:
        src = f"user:{self.giver}"
        legs = [(f"user:{self.receiver}", self.split.receiver),
                (f"agency:{self.agency_id}", self.split.agency),
                (platform_address, self.split.platform)]
        postings = tuple(Posting(src, dst, amt, self.currency) for dst, amt in legs if amt > 0)
        label = self.gift_type or f"{self.amount} {self.currency}"
        return TransactionSpec(
            kind="gift",
            postings=postings,
            description=f"Gift: {label}",
            reference_id=self.gift_id,
            initiator=f"user:{self.giver}",
            metadata={"gift_id": self.gift_id, "to_user_id": self.receiver,
                      "from_user_id": self.giver, "context_id": self.context_id},
        )

    def record(self, tx: Transaction) -> Gift:
        return Gift(
            id=self.gift_id, transaction_id=tx.id, from_user_id=self.giver,
            to_user_id=self.receiver, gift_type=self.gift_type, currency=self.currency,
            amount=self.amount, receiver_amount=self.split.receiver, agency_id=self.agency_id,
            agency_amount=self.split.agency, platform_fee=self.split.platform,
            message=self.message, context_id=self.context_id, created_at=tx.created_at,
        )

    def answer(self, tx: Transaction) -> bytes:
        wallet = tx.balances_after[(f"user:{self.giver}", self.currency)]
        return s.SentGiftOut.of_sent(self.record(tx), wallet).model_dump_json().encode()

    def side_writes(self, outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        """The gift's record and its ``gift.sent`` event, in the same commit as its
        transaction."""
        found = [self.record(o) for o in outcomes if isinstance(o, Transaction)]
        return [repository.inserts(found),
                *(event_write("gift.sent", s.GiftOut.of(g).model_dump()) for g in found)]


def _price(settings: GiftSettings, body: s.GiftIn) -> tuple[int, str]:
    """The amount and currency of a gift: the catalog's price, or what was sent."""
    if body.gift_type is not None:
        item = settings.gift_types.get(body.gift_type)
        if item is None:
            raise GiftRefused("unknown_gift_type",
                              f"{body.gift_type!r} is not in the gift catalog")
        if body.currency is not None and body.currency != item.currency:
            raise GiftRefused("currency_mismatch", f"a {body.gift_type} is paid in "
                              f"{item.currency}, not {body.currency}")
        return item.price, item.currency
    if not settings.gift_allow_amount:
        raise GiftRefused("amount_not_allowed", "gifts must name a gift_type here")
    assert body.amount is not None and body.currency is not None
    return body.amount, body.currency


def plan_gift(settings: GiftSettings, giver: str, body: s.GiftIn,
              agency_id: str | None) -> GiftPlan:
    if body.to_user_id == giver:
        raise GiftRefused("self_gift", "you cannot send a gift to yourself")
    amount, currency = _price(settings, body)
    if currency not in settings.giftable:
        raise GiftRefused("currency_not_giftable",
                          f"{currency} cannot be gifted; giftable: "
                          + ", ".join(sorted(settings.giftable)))
    split = split_gift(amount, platform_bps=settings.gift_platform_bps,
                       agency_bps=settings.gift_agency_bps if agency_id else 0)
    return GiftPlan(new_id(), giver, body.to_user_id, body.gift_type, currency, amount,
                    agency_id, split, body.message, body.context_id)


@dataclass(frozen=True, slots=True)
class Gifts:
    """What the gift rules need. ``builtin_accounts``: Coinpurse keeps the user accounts, so
    a gift to a user it does not know is refused (with an outside auth system it cannot
    tell)."""

    db: AsyncEngine
    ledger: Ledger
    settings: GiftSettings
    builtin_accounts: bool

    def catalog(self) -> Sequence[GiftType]:
        return list(self.settings.gift_types.values())

    async def quote(self, giver: str, body: s.GiftIn) -> GiftPlan:
        """The gift as it would be sent now, with the same refusals; nothing is stored or
        moved. The balance is checked only when it is sent."""
        if body.currency is not None:
            self.settings.currency(body.currency)
        async with self.db.connect() as conn:
            agency = await repository.agency_of(conn, body.to_user_id)
            if self.builtin_accounts and await accounts.get_user(conn, body.to_user_id) is None:
                raise GiftRefused("unknown_recipient", f"there is no user {body.to_user_id!r}")
        return plan_gift(self.settings, giver, body, agency)

    async def send(self, giver: str, body: s.GiftIn, idem: str) -> JobResult:
        """The ``Idempotency-Key`` is scoped to the giver."""
        plan = await self.quote(giver, body)
        return await self.ledger.submit(
            [plan.spec(self.settings.platform_fee_address)], render=render_one(plan.answer),
            claim=claim(f"user:{giver}", idem, "gift", body.model_dump(mode="json")),
            side_writes=plan.side_writes,
        )

    async def page(self, user_id: str, *, direction: Literal["sent", "received"],
                   cursor_text: str | None, limit: int) -> Page[Gift]:
        """The user's gifts, sent or received, newest first."""
        found, next_id = await repository.page(
            self.db, user_id, direction=direction, before=cursor.decode_text(cursor_text),
            limit=limit)
        return Page(found, cursor.encode_text(next_id) if next_id else None)

    async def agency(self, user_id: str) -> str | None:
        async with self.db.connect() as conn:
            return await repository.agency_of(conn, user_id)

    async def set_agency(self, user_id: str, agency_id: str | None) -> None:
        async with self.db.begin() as conn:
            await repository.set_agency(conn, user_id, agency_id, utcnow())

