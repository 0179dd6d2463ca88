"""A user's bonuses of one currency as one ledger job sees them, and what the job does to
them: grant, spend, wager (and convert what is played through), give back, forfeit.

A book is made in a job's ``prepare`` hook, after the batch has locked the user's bonus
wallet (``user:<id>:bonus``): every job that reads or changes the bonuses of a user and a
currency locks that account, so such jobs run one after another whatever process they come
from, and each sees the rows as the previous one left them. Within a batch the rows are not
written yet: the book reads the earlier jobs' pending rows too (``repository.load_bonuses``).

The book changes its copies in memory and returns the transactions to post; its
``writes(outcomes)`` are the job's side writes: the rows, the changes, the counters and the
events, or nothing when the job was refused. Jobs with a book are atomic (all their
transactions post, or none).

Invariant, asserted on every load: the bonus wallet's balance is the sum of what remains of
the user's active bonuses in that currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.bonuses import repository as repo
from coinpurse.bonuses.model import BP, Bonus, Promotion
from coinpurse.bonuses.settings import BonusSettings
from coinpurse.core.clock import iso
from coinpurse.core.ids import new_id
from coinpurse.events.service import event_write
from coinpurse.ledger.errors import InsufficientFunds
from coinpurse.ledger.model import (
    AccountKey,
    AccountState,
    Outcome,
    Posting,
    Rejection,
    Transaction,
    TransactionSpec,
)
from coinpurse.ledger.service import RowInserts, SqlWrite

SERVICE = "bonuses"
INITIATOR = "service:bonuses"


def wallet_of(user_id: str) -> str:
    """The user's bonus wallet."""
    return f"user:{user_id}:bonus"


def keys(settings: BonusSettings, user_id: str, currency: str) -> frozenset[AccountKey]:
    """What a job that may grant, convert or forfeit a user's bonuses locks: the bonus
    wallet, the cash wallet (conversions) and the promotions account."""
    return frozenset({(wallet_of(user_id), currency), (f"user:{user_id}", currency),
                      (settings.promotions_address, currency)})


def bonus_data(bonus: Bonus) -> dict[str, Any]:
    """A bonus in events: plain JSON."""
    return {
        "id": bonus.id, "user_id": bonus.user_id, "promotion_id": bonus.promotion_id,
        "promotion_code": bonus.promotion_code, "kind": bonus.kind,
        "currency": bonus.currency, "granted": bonus.granted, "remaining": bonus.remaining,
        "wagering_required": bonus.wagering_required, "wagered": bonus.wagered,
        "status": bonus.status, "converted": bonus.converted, "forfeited": bonus.forfeited,
        "created_at": iso(bonus.created_at), "expires_at": iso(bonus.expires_at),
        "closed_at": iso(bonus.closed_at),
    }


@dataclass(frozen=True, slots=True)
class Spend:
    """How a payment is funded: the postings to its destination, and the split."""

    postings: tuple[Posting, ...]
    from_cash: int
    from_bonus: int


@dataclass(slots=True)
class _Change:
    bonus_id: str
    kind: str  # granted, spent, returned, wagered, converted, forfeited, expired
    amount: int
    remaining_after: int
    wagered_after: int
    status_after: str
    reference_id: str
    spec: TransactionSpec | None  # the transaction that carries it; None: no money moved


@dataclass(slots=True)
class _Event:
    type: str
    bonus: Bonus  # as the event found it
    spec: TransactionSpec | None
    extra: dict[str, Any] = field(default_factory=dict)


class BonusBook:
    def __init__(self, settings: BonusSettings, user_id: str, currency: str,
                 found: Mapping[str, Bonus], *, locked: bool, now: datetime) -> None:
        self.settings = settings
        self.user_id = user_id
        self.currency = currency
        self.locked = locked
        self.now = now
        self.before = {k: v.copy() for k, v in found.items()}
        self.bonuses = {k: v.copy() for k, v in found.items()}
        self._changes: list[_Change] = []
        self._events: list[_Event] = []
        self._new: dict[str, TransactionSpec] = {}  # granted here: the grant's transaction
        self._grants: list[tuple[str, int]] = []  # (promotion, amount)
        self._touched: set[str] = set()

    @classmethod
    async def load(cls, conn: AsyncConnection, pending: Sequence[RowInserts],
                   settings: BonusSettings, states: Mapping[AccountKey, AccountState],
                   user_id: str, currency: str, *, now: datetime,
                   ids: Sequence[str] = ()) -> BonusBook:
        """The user's bonuses, if the job locked the bonus wallet; else an empty book that
        only spends cash (the job found no bonus when it was queued)."""
        if (wallet_of(user_id), currency) not in states:
            return cls(settings, user_id, currency, {}, locked=False, now=now)
        found = await repo.load_bonuses(conn, pending, user_id=user_id, currency=currency,
                                        ids=ids)
        book = cls(settings, user_id, currency, found, locked=True, now=now)
        wallet = states[(wallet_of(user_id), currency)]
        assert wallet.held == 0 and wallet.balance == book.total, (
            f"{wallet.address} holds {wallet.balance} {currency}; its active bonuses "
            f"{book.total}")
        return book

    # ------------------------------------------------------------ reading

    @property
    def wallet(self) -> str:
        return wallet_of(self.user_id)

    @property
    def cash(self) -> str:
        return f"user:{self.user_id}"

    @property
    def active(self) -> list[Bonus]:
        """Oldest first (ids follow time)."""
        return [x for x in self.bonuses.values() if x.active]

    @property
    def total(self) -> int:
        return sum(x.remaining for x in self.active)

    @property
    def left_to_wager(self) -> int:
        return sum(x.left_to_wager for x in self.active)

    def touched(self) -> list[Bonus]:
        return [self.bonuses[i] for i in sorted(self._touched)]

    # ------------------------------------------------------------ changing

    def _record(self, bonus: Bonus, kind: str, amount: int, reference_id: str,
                spec: TransactionSpec | None) -> _Change:
        assert bonus.remaining >= 0 and amount >= 0, (bonus, amount)
        self._touched.add(bonus.id)
        change = _Change(bonus.id, kind, amount, bonus.remaining, bonus.wagered, bonus.status,
                         reference_id[:64], spec)
        self._changes.append(change)
        return change

    def grant(self, promotion: Promotion, amount: int, *, source: str, initiator: str,
              reference_id: str) -> list[TransactionSpec]:
        """A new bonus from the promotions account: its transaction, and its conversion
        when the promotion asks for no wagering at all."""
        assert self.locked and amount > 0 and promotion.currency == self.currency
        bonus = Bonus(
            id=new_id(), user_id=self.user_id, promotion_id=promotion.id,
            promotion_code=promotion.code, kind=promotion.kind, currency=self.currency,
            source=source, description=promotion.description, granted=amount,
            remaining=amount, wagering_required=promotion.requirement(amount), wagered=0,
            terms=promotion.terms, status="active", converted=0, forfeited=0,
            transaction_id="", created_at=self.now,
            expires_at=self.now + timedelta(days=promotion.expires_in_days), closed_at=None)
        spec = TransactionSpec(
            kind="bonus",
            postings=(Posting(self.settings.promotions_address, self.wallet, amount,
                              self.currency),),
            description=promotion.description, reference_id=bonus.id, initiator=initiator,
            service=SERVICE,
            metadata={"bonus_id": bonus.id, "promotion_id": promotion.id,
                      "promotion_code": promotion.code, "source": source,
                      "reference_id": reference_id})
        self.bonuses[bonus.id] = bonus
        self._new[bonus.id] = spec
        self._grants.append((promotion.id, amount))
        self._record(bonus, "granted", amount, reference_id, spec)
        self._events.append(_Event("bonus.awarded", bonus.copy(), spec, {"amount": amount}))
        specs = [spec]
        if bonus.wagering_required == 0:
            specs += self._complete(bonus, reference_id)
        return specs

    def spend(self, states: Mapping[AccountKey, AccountState], amount: int, destination: str,
              *, use_bonus: bool, reference_id: str) -> Spend | Rejection:
        """Fund ``amount`` to ``destination`` from cash and bonus, in the currency's order
        (``cash_first`` or ``bonus_first``); bonus money is taken from the oldest bonuses
        first. Bind the transaction that posts it with ``carried_by``."""
        cash_available = max(states[(self.cash, self.currency)].available, 0)
        bonus_available = self.total if use_bonus else 0
        if cash_available + bonus_available < amount:
            also = f" and {bonus_available} bonus" if bonus_available else ""
            return Rejection.of(InsufficientFunds(
                f"{self.cash} has {cash_available} {self.currency} available{also}, "
                f"{amount} needed"))
        if self.settings.spend_order(self.currency) == "bonus_first":
            from_bonus = min(amount, bonus_available)
            from_cash = amount - from_bonus
        else:
            from_cash = min(amount, cash_available)
            from_bonus = amount - from_cash
        postings: list[Posting] = []
        if from_cash:
            postings.append(Posting(self.cash, destination, from_cash, self.currency))
        if from_bonus:
            postings.append(Posting(self.wallet, destination, from_bonus, self.currency))
            left = from_bonus
            for bonus in self.active:
                take = min(bonus.remaining, left)
                if take == 0:
                    continue
                bonus.remaining -= take
                left -= take
                self._record(bonus, "spent", take, reference_id, None)
            assert left == 0
        return Spend(tuple(postings), from_cash, from_bonus)

    def carried_by(self, spec: TransactionSpec) -> None:
        """The caller's transaction that moves the money of the spends and give-backs
        recorded since the last call."""
        for change in self._changes:
            if change.spec is None and change.kind in ("spent", "returned"):
                change.spec = spec

    def wager(self, amount: int, category: str, reference_id: str) -> list[TransactionSpec]:
        """Count ``amount`` of activity in ``category`` toward the active bonuses, oldest
        first: each takes what it still needs at its weight for the category, the rest
        goes on to the next. A bonus whose requirement is met converts at once."""
        specs: list[TransactionSpec] = []
        left = amount
        for bonus in self.active:
            if left <= 0:
                break
            weight = bonus.terms.weight(category)
            need = bonus.left_to_wager
            if weight <= 0:
                continue
            counted = left * weight // BP
            if counted >= need:
                used = min(-(-need * BP // weight), left)  # what it takes to meet it
                left -= used
                bonus.wagered = bonus.wagering_required
                self._record(bonus, "wagered", need, reference_id, None)
                specs += self._complete(bonus, reference_id)
            else:
                left = 0
                if counted > 0:
                    bonus.wagered += counted
                    self._record(bonus, "wagered", counted, reference_id, None)
        return specs

    def _complete(self, bonus: Bonus, reference_id: str) -> list[TransactionSpec]:
        """Wagering met: what remains converts to cash, at most ``max_conversion``; the
        excess goes back to the promotions account."""
        cap = bonus.terms.max_conversion
        converted = bonus.remaining if cap is None else min(bonus.remaining, cap)
        excess = bonus.remaining - converted
        legs = [q for q in (Posting(self.wallet, self.cash, converted, self.currency),
                            Posting(self.wallet, self.settings.promotions_address, excess,
                                    self.currency)) if q.amount > 0]
        spec = None
        if legs:
            spec = TransactionSpec(
                kind="bonus_conversion", postings=tuple(legs),
                description=f"Bonus converted: {bonus.description}"[:255],
                reference_id=bonus.id, initiator=INITIATOR, service=SERVICE,
                metadata={"bonus_id": bonus.id, "promotion_code": bonus.promotion_code,
                          "converted": converted, "forfeited": excess,
                          "reference_id": reference_id})
        bonus.remaining = 0
        bonus.converted += converted
        bonus.forfeited += excess
        bonus.status = "completed"
        bonus.closed_at = self.now
        self._record(bonus, "converted", converted, reference_id, spec)
        if excess:
            self._record(bonus, "forfeited", excess, reference_id, spec)
        self._events.append(_Event("bonus.converted", bonus.copy(), spec,
                                   {"converted": converted, "forfeited": excess}))
        return [spec] if spec is not None else []

    def forfeit(self, bonus_ids: Sequence[str], *, status: str, reference_id: str,
                description: str, initiator: str = INITIATOR) -> list[TransactionSpec]:
        """Close active bonuses (``forfeited`` or ``expired``): what remains of them goes
        back to the promotions account, in one transaction."""
        assert status in ("forfeited", "expired")
        closing = [self.bonuses[i] for i in bonus_ids if self.bonuses[i].active]
        total = sum(x.remaining for x in closing)
        spec = None
        if total:
            spec = TransactionSpec(
                kind="bonus_forfeit" if status == "forfeited" else "bonus_expiry",
                postings=(Posting(self.wallet, self.settings.promotions_address, total,
                                  self.currency),),
                description=description, reference_id=reference_id[:64], initiator=initiator,
                service=SERVICE, metadata={"bonus_ids": [x.id for x in closing],
                                           "status": status})
        for bonus in closing:
            amount = bonus.remaining
            bonus.forfeited += amount
            bonus.remaining = 0
            bonus.status = status
            bonus.closed_at = self.now
            self._record(bonus, status, amount, reference_id, spec)
            self._events.append(_Event(f"bonus.{status}", bonus.copy(), spec,
                                       {"amount": amount}))
        return [spec] if spec is not None else []

    def give_back(self, allocation: Sequence[tuple[str, int]], reference_id: str
                  ) -> tuple[int, int]:
        """Money a refund returns to the bonuses it was spent from: to the bonus wallet for
        a bonus still active, to the promotions account for one that has closed (it can no
        longer be played through, so it must not become cash). Returns (to the wallet, to
        promotions); bind the refund's transaction with ``carried_by``."""
        to_wallet = to_promotions = 0
        for bonus_id, amount in allocation:
            if amount <= 0:
                continue
            bonus = self.bonuses[bonus_id]
            if bonus.active:
                bonus.remaining += amount
                to_wallet += amount
            else:
                bonus.forfeited += amount
                to_promotions += amount
            self._record(bonus, "returned", amount, reference_id, None)
        return to_wallet, to_promotions

    # ------------------------------------------------------------ writing

    def granted(self, outcomes: Sequence[Outcome]) -> list[Bonus]:
        """The bonuses this job granted, with their grant's transaction, if it posted."""
        posted = {id(o.spec): o for o in outcomes if isinstance(o, Transaction)}
        found = []
        for bonus_id, spec in self._new.items():
            tx = posted.get(id(spec))
            if tx is not None:
                self.bonuses[bonus_id].transaction_id = tx.id
                found.append(self.bonuses[bonus_id])
        return found

    def conversions(self, outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
        """The conversions this job made: per bonus, to cash and back to promotions."""
        posted = {id(o.spec): o.id for o in outcomes if isinstance(o, Transaction)}
        return [{"bonus_id": e.bonus.id, "converted": e.extra["converted"],
                 "forfeited": e.extra["forfeited"],
                 "transaction_id": posted.get(id(e.spec)) if e.spec is not None else None}
                for e in self._events if e.type == "bonus.converted"]

    def writes(self, outcomes: Sequence[Outcome]) -> list[RowInserts | SqlWrite]:
        """The job's side writes for its bonuses; none when it was refused."""
        if not self._changes or any(isinstance(o, Rejection) for o in outcomes):
            return []
        posted = {id(o.spec): o for o in outcomes if isinstance(o, Transaction)}

        def tx_of(spec: TransactionSpec | None) -> Transaction | None:
            if spec is None:
                return None
            tx = posted.get(id(spec))
            assert tx is not None, "a bonus change whose transaction did not post"
            return tx

        new_rows = self.granted(outcomes)
        assert len(new_rows) == len(self._new), "a grant did not post"
        writes: list[RowInserts | SqlWrite] = []
        if new_rows:
            writes.append(repo.new_bonuses(new_rows))
        rows = []
        for c in self._changes:
            tx = tx_of(c.spec)
            rows.append({"bonus_id": c.bonus_id, "kind": c.kind, "amount": c.amount,
                         "remaining_after": c.remaining_after,
                         "wagered_after": c.wagered_after, "status_after": c.status_after,
                         "reference_id": c.reference_id,
                         "transaction_id": tx.id if tx is not None else None,
                         "created_at": tx.created_at if tx is not None else self.now})
        writes.append(repo.changes(rows))
        writes += [repo.change_bonus(self.before[i], self.bonuses[i])
                   for i in sorted(self._touched) if i not in self._new]
        writes += [repo.count_grant(pid, amount) for pid, amount in self._grants]
        for e in self._events:
            tx = tx_of(e.spec)
            writes.append(event_write(e.type, {
                "bonus": bonus_data(e.bonus),
                "transaction_id": tx.id if tx is not None else None, **e.extra}))
        return writes
