"""Gifts between users: one ledger transaction split between receiver, agency and platform."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Row, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.config import Settings
from coinpurse.core.errors import ValidationFailed
from coinpurse.core.ids import new_id
from coinpurse.core.pages import newest_first
from coinpurse.events.service import event_write
from coinpurse.gifts.split import Split, split_gift
from coinpurse.gifts.tables import gifts, user_agencies
from coinpurse.ledger.idempotency import StoredResponse
from coinpurse.ledger.model import Outcome, Posting, Rejection, Transaction, TransactionSpec
from coinpurse.ledger.service import RowInserts, SideWrites, SqlWrite
from coinpurse.ledger.views import rejection_problem


class GiftRefused(ValidationFailed):
    """A gift that can never succeed as asked (to oneself, in a currency not for gifts)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.extra["reason"] = code


@dataclass(frozen=True, slots=True)
class GiftPlan:
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


def plan_gift(settings: Settings, giver: str, *, to_user_id: str, gift_type: str | None,
              amount: int | None, currency: str | None, message: str | None,
              context_id: str | None, agency_id: str | None) -> GiftPlan:
    if to_user_id == giver:
        raise GiftRefused("self_gift", "you cannot send a gift to yourself")
    if gift_type is not None:
        item = settings.gift_types.get(gift_type)
        if item is None:
            raise GiftRefused("unknown_gift_type", f"{gift_type!r} is not in the gift catalog")
        if currency is not None and currency != item.currency:
            raise GiftRefused("currency_mismatch",
                              f"a {gift_type} is paid in {item.currency}, not {currency}")
        amount, currency = item.price, item.currency
    else:
        if not settings.gift_allow_amount:
            raise GiftRefused("amount_not_allowed", "gifts must name a gift_type here")
    assert amount is not None and currency is not None
    if currency not in settings.giftable:
        raise GiftRefused("currency_not_giftable",
                          f"{currency} cannot be gifted; giftable: "
                          + ", ".join(sorted(settings.giftable)))
    split = split_gift(amount, platform_bps=settings.gift_platform_bps,
                       agency_bps=settings.gift_agency_bps if agency_id else 0)
    return GiftPlan(new_id(), giver, to_user_id, gift_type, currency, amount,
                    agency_id, split, message, context_id)


def gift_row(plan: GiftPlan, tx: Transaction) -> dict[str, Any]:
    return {
        "id": plan.gift_id, "transaction_id": tx.id, "from_user_id": plan.giver,
        "to_user_id": plan.receiver, "gift_type": plan.gift_type, "currency": plan.currency,
        "amount": plan.amount, "receiver_amount": plan.split.receiver,
        "agency_id": plan.agency_id, "agency_amount": plan.split.agency,
        "platform_fee": plan.split.platform, "message": plan.message,
        "context_id": plan.context_id, "created_at": tx.created_at,
    }


def gift_view(row: dict[str, Any] | Row[Any]) -> dict[str, Any]:
    r = row if isinstance(row, dict) else row._mapping
    created: datetime = r["created_at"]
    return {
        "id": r["id"], "transaction_id": r["transaction_id"],
        "from_user_id": r["from_user_id"], "to_user_id": r["to_user_id"],
        "gift_type": r["gift_type"], "currency": r["currency"], "amount": r["amount"],
        "receiver_amount": r["receiver_amount"], "agency_id": r["agency_id"],
        "agency_commission": r["agency_amount"], "platform_fee": r["platform_fee"],
        "message": r["message"], "context_id": r["context_id"],
        "created_at": created.isoformat().replace("+00:00", "Z"),
    }


def render_gift(plan: GiftPlan) -> Callable[[list[Outcome]], StoredResponse]:
    def render(outcomes: list[Outcome]) -> StoredResponse:
        (outcome,) = outcomes
        if isinstance(outcome, Rejection):
            return rejection_problem(outcome)
        assert isinstance(outcome, Transaction)
        body = gift_view(gift_row(plan, outcome))
        body["giver_wallet"] = outcome.balances_after[
            (f"user:{plan.giver}", plan.currency)].as_dict()
        return StoredResponse(201, orjson.dumps(body))

    return render


def gift_side_writes(plan: GiftPlan) -> SideWrites:
    """The gift's record, written in the same commit as its transaction."""

    def writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        rows = [gift_row(plan, o) for o in outcomes if isinstance(o, Transaction)]
        return [(gifts, rows), *(event_write("gift.sent", gift_view(r)) for r in rows)]

    return writes


async def agency_of(conn: AsyncConnection, user_id: str) -> str | None:
    row = (await conn.execute(
        select(user_agencies.c.agency_id).where(user_agencies.c.user_id == user_id))).first()
    return row.agency_id if row else None


async def set_agency(db: AsyncEngine, user_id: str, agency_id: str | None) -> None:
    async with db.begin() as conn:
        if agency_id is None:
            await conn.execute(user_agencies.delete().where(user_agencies.c.user_id == user_id))
            return
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(user_agencies).values(
            user_id=user_id, agency_id=agency_id, updated_at=datetime.now(UTC))
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["user_id"],
            set_={"agency_id": stmt.excluded.agency_id, "updated_at": stmt.excluded.updated_at},
        ))


async def list_gifts(db: AsyncEngine, user_id: str, *, direction: str, before: str | None,
                     limit: int) -> tuple[list[dict[str, Any]], str | None]:
    column = "from_user_id" if direction == "sent" else "to_user_id"
    rows, next_id = await newest_first(db, gifts, equal={column: user_id}, before=before,
                                       limit=limit)
    return [gift_view(r) for r in rows], next_id
