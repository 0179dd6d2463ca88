"""Bonuses and promotions: the promotions admins manage, the triggers that grant bonuses,
wagering and conversion, forfeits and expiry; and what the other domains call to take part
(balances, debits, top-ups, purchases and their refunds, withdrawals, sign-ups).

Money moves only through the ledger: every grant, spend, conversion, forfeit and expiry is
a transaction, and the bonus rows change in the same commit (``book.BonusBook``). A job that
touches a user's bonuses of a currency locks the user's bonus wallet (``user:<id>:bonus``),
the cash wallet and the promotions account (``book.keys``), so that the rows it decides on
cannot change under it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from strawberry.dataloader import DataLoader

from coinpurse.auth.tokens import Principal
from coinpurse.bonuses import repository as repo
from coinpurse.bonuses import schemas as s
from coinpurse.bonuses.book import INITIATOR, keys
from coinpurse.bonuses.book import BonusBook as BonusBook
from coinpurse.bonuses.book import Spend as Spend
from coinpurse.bonuses.book import wallet_of as wallet_of
from coinpurse.bonuses.errors import (
    AlreadyReferred,
    BonusNotActive,
    BonusWalletReserved,
    InvalidPromoCode,
    PromotionBudgetExhausted,
    PromotionCodeTaken,
    PromotionLimitReached,
    SelfReferral,
    WageringIncomplete,
)
from coinpurse.bonuses.model import (
    BP,
    Bonus,
    BonusFilter,
    Promotion,
    PromotionFilter,
    Referral,
    Terms,
)
from coinpurse.bonuses.settings import BonusSettings
from coinpurse.core import audit, cursor
from coinpurse.core.clock import utcnow
from coinpurse.core.db import read_connection
from coinpurse.core.errors import CoinpurseError, NotFound, ValidationFailed
from coinpurse.core.ids import new_id
from coinpurse.core.pages import Page
from coinpurse.ledger import queries
from coinpurse.ledger.idempotency import StoredResponse, claim
from coinpurse.ledger.model import (
    AccountKey,
    AccountState,
    Balance,
    Operation,
    Outcome,
    Posting,
    Rejection,
    Transaction,
    TransactionSpec,
)
from coinpurse.ledger.service import (
    CommittedBatch,
    JobResult,
    Ledger,
    RowInserts,
    SqlWrite,
)
from coinpurse.ledger.views import rejection_problem

EXPIRE_BATCH = 500
SIGNUP_BATCH = 100
# A new promotion's terms where the admin sent none.
DEFAULTS: dict[str, Any] = {
    "wagering_multiplier": 1, "contributions": {}, "default_contribution_bp": BP,
    "expires_in_days": 30, "active": True, "automatic": False, "claimable": False,
    "per_user_limit": 1, "percent_bp": None, "max_bonus": None, "amount": None,
    "min_deposit": None, "max_conversion": None, "starts_at": None, "ends_at": None,
    "budget": None,
}
NOT_NULL = frozenset({"description", "wagering_multiplier", "contributions",
                      "default_contribution_bp", "expires_in_days", "active", "automatic",
                      "claimable"})


# ---------------------------------------------------------------- for every domain


def reserved(address: str) -> bool:
    """A user's bonus wallet: only the bonus rules move its money."""
    parts = address.split(":")
    return len(parts) == 3 and parts[0] == "user" and parts[2] == "bonus"


def refuse_bonus_wallets(addresses: Iterable[str]) -> None:
    """Transfers, holds and reversals name any address; a bonus wallet changed that way
    would no longer match its bonuses, so they are refused."""
    for address in addresses:
        if reserved(address):
            raise BonusWalletReserved(
                f"{address} is a bonus wallet: its money moves only by grants, spends, "
                "conversions and forfeits (the bonuses API)", address=address)


async def bonus_balances(conn: AsyncConnection, user_id: str,
                         currencies: Iterable[str]) -> dict[str, int]:
    """What the user's bonus wallets hold, per currency (0 where there is none)."""
    found = await queries.balances(conn, wallet_of(user_id), currencies)
    return {c: b.balance for c, b in found.items()}


async def has_active(db: AsyncEngine, user_id: str, currency: str) -> bool:
    """Whether a job for this user must read (and lock) the bonuses; read before it is
    queued. A bonus granted meanwhile is left alone by that job, as if it came after.
    Every request that asks in the same turn of the event loop is answered by one read
    (before each debit and purchase: under load, many at once)."""
    checker = _checkers.get(db)
    if checker is None:
        checker = _checkers[db] = _ActiveBonuses(db)
    return await checker.has(user_id, currency)


class _ActiveBonuses:
    """One autocommit read for a burst of ``has_active`` questions (Strawberry's
    DataLoader gathers the questions asked in one turn of the event loop; no cache)."""

    def __init__(self, db: AsyncEngine) -> None:
        self.db = db
        self.loader: DataLoader[tuple[str, str], bool] | None = None

    async def has(self, user_id: str, currency: str) -> bool:
        loop = asyncio.get_running_loop()
        if self.loader is None or self.loader.loop is not loop:
            self.loader = DataLoader(self._load, cache=False, max_batch_size=500, loop=loop)
        return await self.loader.load((user_id, currency))

    async def _load(self, keys: list[tuple[str, str]]) -> list[bool]:
        async with read_connection(self.db) as conn:
            found = await repo.active_among(conn, (u for u, _ in keys))
        return [k in found for k in keys]


_checkers: weakref.WeakKeyDictionary[AsyncEngine, _ActiveBonuses] = (
    weakref.WeakKeyDictionary())


async def load_book(conn: AsyncConnection, pending: Sequence[RowInserts],
                    settings: BonusSettings, states: Mapping[AccountKey, AccountState],
                    user_id: str, currency: str) -> BonusBook:
    """The user's bonuses inside a ledger job's ``prepare`` (empty unless the job locked
    ``user:<id>:bonus``)."""
    return await BonusBook.load(conn, pending, settings, states, user_id, currency,
                                now=utcnow())


def _render_problem(outcomes: Sequence[Outcome]) -> StoredResponse | None:
    refusal = next((o for o in outcomes if isinstance(o, Rejection)), None)
    return rejection_problem(refusal) if refusal is not None else None


def _no_answer(_outcomes: list[Outcome]) -> StoredResponse:
    return StoredResponse(200, b"{}")  # nobody waits for this answer


async def _grant_refusal(conn: AsyncConnection, pending: Sequence[RowInserts],
                         promo: Promotion, user_id: str, amount: int,
                         also: Sequence[tuple[str, str, int]] = ()) -> CoinpurseError | None:
    """Why a promotion cannot grant ``amount`` to a user now: its per-user limit, or its
    budget (counting this batch's earlier grants, and ``also``: this job's own)."""
    if promo.per_user_limit is not None:
        had = await repo.grants_to(conn, pending, promo.id, user_id) + sum(
            1 for pid, uid, _ in also if pid == promo.id and uid == user_id)
        if had >= promo.per_user_limit:
            return PromotionLimitReached(
                f"{promo.code} grants at most {promo.per_user_limit} bonus(es) per user",
                per_user_limit=promo.per_user_limit)
    if promo.budget is not None:
        granted = await repo.granted_so_far(conn, pending, promo.id) + sum(
            a for pid, _, a in also if pid == promo.id)
        if granted + amount > promo.budget:
            return PromotionBudgetExhausted(
                f"{promo.code} has {max(promo.budget - granted, 0)} {promo.currency} of its "
                f"budget left, {amount} needed", budget_left=max(promo.budget - granted, 0))
    return None


# ---------------------------------------------------------------- promotions


def _check_promotion(settings: BonusSettings, p: Promotion) -> None:
    """What each kind needs, and nothing it cannot use."""
    settings.currency(p.currency)
    wrong: list[tuple[str, str]] = []
    if p.kind == "deposit_match":
        if p.percent_bp is None:
            wrong.append(("percent_bp", "a deposit match needs percent_bp"))
        if p.amount is not None:
            wrong.append(("amount", "a deposit match grants a percent, not an amount"))
    else:
        if p.amount is None:
            wrong.append(("amount", f"a {p.kind} promotion needs an amount"))
        for name in ("percent_bp", "max_bonus"):
            if getattr(p, name) is not None:
                wrong.append((name, "only a deposit match has it"))
    if p.min_deposit is not None and p.kind not in ("deposit_match", "referral"):
        wrong.append(("min_deposit", "only deposit matches and referrals have it"))
    if p.automatic and p.kind != "deposit_match":
        wrong.append(("automatic", "only a deposit match can be automatic"))
    if p.claimable and p.kind != "manual":
        wrong.append(("claimable", "only a manual promotion can be claimed by users"))
    if p.starts_at is not None and p.ends_at is not None and p.ends_at <= p.starts_at:
        wrong.append(("ends_at", "must be after starts_at"))
    if wrong:
        raise ValidationFailed("; ".join(f"{f}: {m}" for f, m in wrong), [
            {"loc": ["body", f], "msg": m, "type": "value_error"} for f, m in wrong])


def _with_changes(base: Promotion, changes: Mapping[str, Any], now: datetime) -> Promotion:
    nulls = sorted(k for k, v in changes.items() if v is None and k in NOT_NULL)
    if nulls:
        raise ValidationFailed(f"{', '.join(nulls)} cannot be null", [
            {"loc": ["body", k], "msg": "cannot be null", "type": "value_error"}
            for k in nulls])
    values = {k: v for k, v in changes.items()
              if k not in ("contributions", "default_contribution_bp", "max_conversion")}
    terms = Terms(
        contributions=changes.get("contributions", base.terms.contributions),
        default_contribution_bp=changes.get("default_contribution_bp",
                                            base.terms.default_contribution_bp),
        max_conversion=changes.get("max_conversion", base.terms.max_conversion))
    return dataclasses.replace(base, **values, terms=terms, updated_at=now)


@dataclass(frozen=True, slots=True)
class Bonuses:
    """What the bonus rules need: the database, the ledger and their settings."""

    db: AsyncEngine
    ledger: Ledger
    settings: BonusSettings

    async def create_promotion(self, admin: Principal, body: s.PromotionIn,
                               ip: str | None) -> Promotion:
        now = utcnow()
        sent = body.model_dump(exclude_unset=True)
        blank = Promotion(
            id=new_id(), code=body.code.upper(), kind=body.kind, currency=body.currency,
            description=body.description, percent_bp=None, max_bonus=None, amount=None,
            min_deposit=None, wagering_multiplier=1, terms=Terms({}, BP, None),
            expires_in_days=30, starts_at=None, ends_at=None, active=True, automatic=False,
            claimable=False, per_user_limit=1, budget=None, granted_total=0, granted_count=0,
            created_at=now, updated_at=now)
        changes = {**DEFAULTS, **{k: v for k, v in sent.items()
                                  if k not in ("code", "kind", "currency")}}
        promo = _with_changes(blank, changes, now)
        _check_promotion(self.settings, promo)
        async with self.db.begin() as conn:
            if not await repo.insert_promotion(conn, promo):
                raise PromotionCodeTaken(f"another promotion has the code {promo.code}")
            await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                               action="promotion.create", target=f"promotion:{promo.id}",
                               details={"code": promo.code, "kind": promo.kind}, ip=ip)
        return promo

    async def update_promotion(self, admin: Principal, promotion_id: str,
                               body: s.PromotionPatchIn, ip: str | None) -> Promotion:
        changes = body.model_dump(exclude_unset=True)
        async with self.db.begin() as conn:
            found = await repo.get_promotion(conn, promotion_id, lock=True)
            if found is None:
                raise NotFound(f"no promotion {promotion_id!r}")
            promo = _with_changes(found, changes, utcnow())
            _check_promotion(self.settings, promo)
            await repo.update_promotion(conn, promo)
            await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                               action="promotion.update", target=f"promotion:{promo.id}",
                               details={"changed": sorted(changes)}, ip=ip)
        return await self.promotion(promotion_id)

    async def promotion(self, promotion_id: str) -> Promotion:
        async with self.db.connect() as conn:
            found = await repo.get_promotion(conn, promotion_id)
        if found is None:
            raise NotFound(f"no promotion {promotion_id!r}")
        return found

    async def promotions(self, f: PromotionFilter, *, cursor_text: str | None,
                         limit: int) -> Page[Promotion]:
        if f.currency is not None:
            self.settings.currency(f.currency)
        async with self.db.connect() as conn:
            found, next_id = await repo.list_promotions(
                conn, f, before=cursor.decode_text(cursor_text), limit=limit)
        return Page(found, cursor.encode_text(next_id) if next_id else None)

    # ------------------------------------------------------------ manual grants, claims

    async def _live_code(self, code: str, *, claimable: bool) -> Promotion:
        """The manual promotion of a code (which accounts to lock). Whether it is running
        is decided in the job, so that a retried key replays its first answer even after
        the promotion ended."""
        async with self.db.connect() as conn:
            promo = await repo.promotion_by_code(conn, code)
        if promo is None or promo.kind != "manual" or (claimable and not promo.claimable):
            raise InvalidPromoCode(f"{code.upper()} is not a code that grants a bonus here",
                                   reason="unknown")
        return promo

    async def grant(self, *, actor: str, scope: str, body: s.GrantIn, idem: str,
                    audit_entry: dict[str, Any] | None = None) -> JobResult:
        """A manual promotion's bonus for a user, by an admin (``actor`` admin:<id>) or a
        service (service:<name>); its answer is stored with the idempotency key."""
        promo = await self._live_code(body.promotion_code, claimable=False)
        job = _Grant(self.settings, promo.id, body.user_id, body.amount,
                     f"manual:{new_id()}", actor, audit_entry, admin=True)
        payload = body.model_dump(mode="json")
        return await self.ledger.submit(
            [], render=job.render, claim=claim(scope, idem, "bonus_grant", payload),
            prepare=job.prepare, side_writes=job.side_writes, atomic=True,
            lock_keys=keys(self.settings, body.user_id, promo.currency))

    async def claim(self, user_id: str, code: str, idem: str) -> JobResult:
        """A user claims a claimable manual promotion's code."""
        promo = await self._live_code(code, claimable=True)
        job = _Grant(self.settings, promo.id, user_id, None, f"claim:{new_id()}",
                     f"user:{user_id}", None, admin=False)
        return await self.ledger.submit(
            [], render=job.render,
            claim=claim(f"user:{user_id}", idem, "bonus_claim", {"code": code.upper()}),
            prepare=job.prepare, side_writes=job.side_writes, atomic=True,
            lock_keys=keys(self.settings, user_id, promo.currency))

    # ------------------------------------------------------------ wagering

    async def activity(self, service: str, body: s.ActivityIn, idem: str) -> JobResult:
        """Activity settled elsewhere counts toward the user's active bonuses; one that
        meets a requirement converts in the same commit, exactly once."""
        self.settings.currency(body.currency)
        job = _Activity(self.settings, body)
        return await self.ledger.submit(
            [], render=job.render,
            claim=claim(f"service:{service}", idem, "bonus_activity",
                        body.model_dump(mode="json")),
            prepare=job.prepare, side_writes=job.side_writes, atomic=True,
            lock_keys=keys(self.settings, body.user_id, body.currency))

    # ------------------------------------------------------------ referrals

    async def refer(self, service: str, referrer_id: str, referee_id: str
                    ) -> tuple[Referral, bool]:
        """Record who referred a user, once; the same link again is answered as it is."""
        if referrer_id == referee_id:
            raise SelfReferral("a user cannot refer themselves")
        async with self.db.begin() as conn:
            created = await repo.insert_referral(conn, referee_id, referrer_id, service,
                                                 utcnow())
        found = await self.referral(referee_id)
        if found.referrer_id != referrer_id:
            raise AlreadyReferred(f"{referee_id} was already referred by another user",
                                  referrer_user_id=found.referrer_id)
        return found, created

    async def referral(self, referee_id: str) -> Referral:
        async with self.db.connect() as conn:
            found = await repo.get_referral(conn, referee_id)
        if found is None:
            raise NotFound(f"{referee_id} has no referrer")
        return found

    # ------------------------------------------------------------ reading bonuses

    async def bonuses(self, f: BonusFilter, *, cursor_text: str | None,
                      limit: int) -> Page[Bonus]:
        if f.currency is not None:
            self.settings.currency(f.currency)
        async with self.db.connect() as conn:
            found, next_id = await repo.list_bonuses(
                conn, f, before=cursor.decode_text(cursor_text), limit=limit)
        return Page(found, cursor.encode_text(next_id) if next_id else None)

    async def bonus(self, bonus_id: str, user_id: str | None = None) -> Bonus:
        """One bonus; with ``user_id``, only that user's (another's is as unknown)."""
        async with self.db.connect() as conn:
            found = await repo.get_bonus(conn, bonus_id)
        if found is None or (user_id is not None and found.user_id != user_id):
            raise NotFound(f"no bonus {bonus_id!r}")
        return found

    # ------------------------------------------------------------ forfeits and expiry

    async def forfeit(self, admin: Principal, bonus_id: str, reason: str,
                      ip: str | None) -> Bonus:
        found = await self.bonus(bonus_id)
        entry = audit.entry(actor=admin.user_id, actor_role=admin.role,
                            action="bonus.forfeit", target=f"bonus:{bonus_id}",
                            details={"reason": reason, "user_id": found.user_id}, ip=ip)
        job = _Close(self.settings, found.user_id, found.currency, [bonus_id], "forfeited",
                     f"admin:{admin.user_id}", entry)
        result = await self.ledger.submit(
            [], render=_no_answer, prepare=job.prepare, side_writes=job.side_writes,
            atomic=True, lock_keys=keys(self.settings, found.user_id, found.currency))
        assert result.outcomes is not None
        refusal = next((o for o in result.outcomes if isinstance(o, Rejection)), None)
        if refusal is not None and refusal.error is not None:
            raise refusal.error
        return await self.bonus(bonus_id)

    async def expire_due(self, now: datetime | None = None) -> int:
        """Forfeit (``expired``) the active bonuses past their expiry; how many."""
        now = now or utcnow()
        async with self.db.connect() as conn:
            groups = await repo.due(conn, now, EXPIRE_BATCH)
        counts = await asyncio.gather(*(self._expire(u, c, now) for u, c in groups))
        return sum(counts)

    async def _expire(self, user_id: str, currency: str, now: datetime) -> int:
        job = _Close(self.settings, user_id, currency, None, "expired", INITIATOR, None,
                     due_at=now)
        await self.ledger.submit(
            [], render=_no_answer, prepare=job.prepare, side_writes=job.side_writes,
            atomic=True, lock_keys=keys(self.settings, user_id, currency))
        return job.closed

    # ------------------------------------------------------------ sign-ups

    async def grant_signups(self, now: datetime | None = None) -> int:
        """Grant the sign-up promotions to the users waiting for them; how many users."""
        now = now or utcnow()
        async with self.db.connect() as conn:
            due = await repo.pending_signups(conn, SIGNUP_BATCH)
            promos = await repo.promotions_of(conn, "signup") if due else []
        if not due:
            return 0
        if not promos:  # nothing to grant: no ledger job (it would only mark them done)
            async with self.db.begin() as conn:
                await repo.signups_done(conn, [u for u, _ in due], now)
            return len(due)
        await asyncio.gather(*(self._signup(user_id, at, promos) for user_id, at in due))
        return len(due)

    async def _signup(self, user_id: str, at: datetime, promos: list[Promotion]) -> None:
        lock: frozenset[AccountKey] = frozenset()
        for currency in {p.currency for p in promos}:
            lock |= keys(self.settings, user_id, currency)
        job = _Signup(self.settings, user_id, at, [p.id for p in promos])
        await self.ledger.submit([], render=_no_answer, prepare=job.prepare,
                                 side_writes=job.side_writes, atomic=True, lock_keys=lock)


# ---------------------------------------------------------------- the jobs


@dataclass(slots=True)
class _Grant:
    """A manual or claimed grant. ``prepare`` may run twice (a failed batch is re-run job
    by job): it starts afresh each time."""

    settings: BonusSettings
    promotion_id: str
    user_id: str
    amount: int | None
    source: str
    initiator: str
    audit_entry: dict[str, Any] | None
    admin: bool  # the answer: AdminBonusOut (admins, services) or BonusOut (the user)
    book: BonusBook | None = None

    async def prepare(self, conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> Sequence[Operation] | Rejection:
        self.book = None
        promo = await repo.get_promotion(conn, self.promotion_id)
        assert promo is not None  # promotions are never deleted
        if not promo.live(utcnow()):
            return Rejection.of(InvalidPromoCode(f"{promo.code} is not running",
                                                 reason="inactive"))
        amount = self.amount if self.amount is not None else promo.amount
        assert amount is not None  # a manual promotion has one
        refusal = await _grant_refusal(conn, pending, promo, self.user_id, amount)
        if refusal is not None:
            return Rejection.of(refusal)
        self.book = await load_book(conn, pending, self.settings, states, self.user_id,
                                    promo.currency)
        return self.book.grant(promo, amount, source=self.source, initiator=self.initiator,
                               reference_id=self.source)

    def render(self, outcomes: list[Outcome]) -> StoredResponse:
        problem = _render_problem(outcomes)
        if problem is not None:
            return problem
        assert self.book is not None
        (bonus,) = self.book.granted(outcomes)
        out = s.AdminBonusOut.of(bonus) if self.admin else s.BonusOut.of(bonus)
        return StoredResponse(201, out.model_dump_json().encode())

    def side_writes(self, outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        writes = self.book.writes(outcomes) if self.book is not None else []
        if writes and self.audit_entry is not None:
            writes.append(repo.audit_row(self.audit_entry))
        return writes


@dataclass(slots=True)
class _Activity:
    settings: BonusSettings
    body: s.ActivityIn
    book: BonusBook | None = None

    async def prepare(self, conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> Sequence[Operation] | Rejection:
        b = self.body
        self.book = await load_book(conn, pending, self.settings, states, b.user_id,
                                    b.currency)
        return self.book.wager(b.amount, b.category, b.reference_id)

    def render(self, outcomes: list[Outcome]) -> StoredResponse:
        problem = _render_problem(outcomes)
        if problem is not None:
            return problem
        assert self.book is not None
        out = s.ActivityOut.of(self.body, self.book.touched(), self.book.conversions(outcomes))
        return StoredResponse(200, out.model_dump_json().encode())

    def side_writes(self, outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        return self.book.writes(outcomes) if self.book is not None else []


@dataclass(slots=True)
class _Close:
    """Forfeit listed bonuses (an admin), or expire those past their expiry (the worker)."""

    settings: BonusSettings
    user_id: str
    currency: str
    bonus_ids: list[str] | None  # None: every active one due by ``due_at``
    status: str
    initiator: str
    audit_entry: dict[str, Any] | None
    due_at: datetime | None = None
    book: BonusBook | None = None
    closed: int = 0

    async def prepare(self, conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> Sequence[Operation] | Rejection:
        self.book, self.closed = None, 0
        book = await BonusBook.load(conn, pending, self.settings, states, self.user_id,
                                    self.currency, now=utcnow(), ids=self.bonus_ids or ())
        if self.bonus_ids is None:
            assert self.due_at is not None
            ids = [x.id for x in book.active if x.expires_at <= self.due_at]
        else:
            ids = self.bonus_ids
            closed = [book.bonuses[i] for i in ids if not book.bonuses[i].active]
            if closed:
                return Rejection.of(BonusNotActive(f"the bonus is {closed[0].status}",
                                                   bonus_status=closed[0].status))
        self.book, self.closed = book, len(ids)
        specs: list[Operation] = []
        for bonus_id in ids:
            label = "Bonus expired" if self.status == "expired" else "Bonus forfeited"
            specs += book.forfeit([bonus_id], status=self.status, reference_id=bonus_id,
                                  description=f"{label}: {book.bonuses[bonus_id].description}"
                                  [:255], initiator=self.initiator)
        return specs

    def side_writes(self, outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        writes = self.book.writes(outcomes) if self.book is not None else []
        if writes and self.audit_entry is not None:
            writes.append(repo.audit_row(self.audit_entry))
        return writes


@dataclass(slots=True)
class _Signup:
    settings: BonusSettings
    user_id: str
    signed_up_at: datetime
    promotion_ids: list[str]
    books: dict[str, BonusBook] = field(default_factory=dict)
    due: bool = False

    async def prepare(self, conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> Sequence[Operation] | Rejection:
        self.books, self.due = {}, await repo.signup_pending(conn, self.user_id)
        if not self.due:
            return []  # done by another process meanwhile
        specs: list[Operation] = []
        for promotion_id in self.promotion_ids:
            promo = await repo.get_promotion(conn, promotion_id)
            assert promo is not None
            if not (promo.active and promo.live(self.signed_up_at)) or promo.amount is None:
                continue
            if await _grant_refusal(conn, pending, promo, self.user_id, promo.amount):
                continue
            book = self.books.get(promo.currency)
            if book is None:
                book = await load_book(conn, pending, self.settings, states, self.user_id,
                                       promo.currency)
                self.books[promo.currency] = book
            specs += book.grant(promo, promo.amount, source="signup", initiator=INITIATOR,
                                reference_id="signup")
        return specs

    def side_writes(self, outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        if not self.due or any(isinstance(o, Rejection) for o in outcomes):
            return []
        writes: list[RowInserts | SqlWrite] = []
        for book in self.books.values():
            writes += book.writes(outcomes)
        return [*writes, repo.signup_done(self.user_id, utcnow())]


# ---------------------------------------------------------------- sign-ups: the trigger


def _main_wallet_user(address: str) -> str | None:
    parts = address.split(":")
    return parts[1] if len(parts) == 2 and parts[0] == "user" else None


class SignupWatch:
    """The ledger hook that notices a user's first wallet: an account ``user:<id>`` changed
    for the first time (version 1) puts the user in the sign-up queue, in the same commit;
    the worker grants the sign-up promotions from there (``Bonuses.grant_signups``)."""

    async def write(self, conn: AsyncConnection, batch: CommittedBatch) -> None:
        users = {user for tx in batch.transactions
                 for (address, _c), after in tx.balances_after.items()
                 if after.version == 1 and (user := _main_wallet_user(address)) is not None}
        if users:
            await repo.enqueue_signups(conn, users, batch.at)

    def committed(self, batch: CommittedBatch) -> None:
        return None


async def enqueue_signup(conn: AsyncConnection, user_id: str) -> None:
    """A built-in account was registered: its sign-up bonuses are due (in the caller's
    transaction)."""
    await repo.enqueue_signups(conn, [user_id], utcnow())


# ---------------------------------------------------------------- debits (wallets)


@dataclass(slots=True)
class BonusDebit:
    """A debit of a user who has active bonuses: funded from cash and bonus in the
    currency's order, and counted as wagering when it names a ``category``. The wallets
    service builds the transaction from the funding postings (``build``)."""

    settings: BonusSettings
    user_id: str
    currency: str
    amount: int
    destination: str
    use_bonus: bool
    category: str | None
    reference_id: str
    build: Callable[[tuple[Posting, ...]], TransactionSpec]
    book: BonusBook | None = None
    spend: Spend | None = None
    spec: TransactionSpec | None = None
    before: dict[AccountKey, Balance] = field(default_factory=dict)

    @property
    def lock_keys(self) -> frozenset[AccountKey]:
        """The user's cash and bonus wallets, promotions (conversions) and the payee."""
        return keys(self.settings, self.user_id, self.currency) | {
            (self.destination, self.currency)}

    async def prepare(self, conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> Sequence[Operation] | Rejection:
        self.book = self.spend = self.spec = None
        book = await load_book(conn, pending, self.settings, states, self.user_id,
                               self.currency)
        spend = book.spend(states, self.amount, self.destination, use_bonus=self.use_bonus,
                           reference_id=self.reference_id)
        if isinstance(spend, Rejection):
            return spend
        spec = self.build(spend.postings)
        book.carried_by(spec)
        ops: list[Operation] = [spec]
        if self.category is not None:
            ops += book.wager(self.amount, self.category, self.reference_id)
        self.before = {k: Balance(states[k].balance, states[k].held, states[k].version)
                       for k in ((book.cash, self.currency), (book.wallet, self.currency))
                       if k in states}
        self.book, self.spend, self.spec = book, spend, spec
        return ops

    def side_writes(self, outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        return self.book.writes(outcomes) if self.book is not None else []

    def after(self, outcomes: Sequence[Outcome], address: str) -> Balance:
        """An account of the user after the whole job (the debit and any conversion)."""
        key = (address, self.currency)
        for o in reversed(outcomes):
            if isinstance(o, Transaction) and key in o.balances_after:
                return o.balances_after[key]
        return self.before.get(key, Balance(0, 0))

    def conversions(self, outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
        return self.book.conversions(outcomes) if self.book is not None else []


# ---------------------------------------------------------------- purchases and refunds (shop)


async def spend_keys(db: AsyncEngine, user_id: str, currency: str) -> frozenset[AccountKey]:
    """What a purchase locks besides the buyer's cash wallet: the bonus wallet, when the
    buyer has active bonuses (read before the job is queued)."""
    if await has_active(db, user_id, currency):
        return frozenset({(wallet_of(user_id), currency)})
    return frozenset()


async def refund_keys(db: AsyncEngine, settings: BonusSettings, user_id: str, currency: str,
                      purchase_transaction_id: str) -> frozenset[AccountKey]:
    """What a refund of a purchase locks besides the buyer's cash wallet: the bonus wallet
    and the promotions account, when the purchase spent bonus money."""
    async with db.connect() as conn:
        spent = await repo.order_spends(conn, (), transaction_id=purchase_transaction_id,
                                        order_id="")
    if not spent:
        return frozenset()
    return frozenset({(wallet_of(user_id), currency),
                      (settings.promotions_address, currency)})


@dataclass(slots=True)
class RefundSplit:
    """Where a refund's money goes back: its bonus part to the bonuses it was spent from
    (``to_wallet``: those still active; ``to_promotions``: those closed since), the rest
    to the buyer's cash wallet."""

    book: BonusBook
    to_wallet: int
    to_promotions: int

    def postings(self, legs: Sequence[tuple[str, int]], cash: str, currency: str
                 ) -> tuple[Posting, ...]:
        """The refund's postings: each source leg (merchant, fees), in order, fills the
        bonus wallet, then the promotions account, then the cash wallet."""
        total = sum(a for _, a in legs)
        targets = [(self.book.wallet, self.to_wallet),
                   (self.book.settings.promotions_address, self.to_promotions),
                   (cash, total - self.to_wallet - self.to_promotions)]
        assert targets[2][1] >= 0
        return route(legs, targets, currency)


def route(legs: Sequence[tuple[str, int]], targets: Sequence[tuple[str, int]],
          currency: str) -> tuple[Posting, ...]:
    """Postings that move each source's amount to the targets' amounts, both in order."""
    assert sum(a for _, a in legs) == sum(a for _, a in targets)
    out: list[Posting] = []
    wanted = [(dst, amount) for dst, amount in targets if amount > 0]
    i, filled = 0, 0  # the target being filled, and how much of it is
    for src, amount in legs:
        left = amount
        while left > 0:
            dst, size = wanted[i]
            take = min(left, size - filled)
            out.append(Posting(src, dst, take, currency))
            left -= take
            filled += take
            if filled == size:
                i, filled = i + 1, 0
    return tuple(out)


async def refund_split(conn: AsyncConnection, pending: Sequence[RowInserts],
                       settings: BonusSettings, states: Mapping[AccountKey, AccountState], *,
                       buyer_id: str, currency: str, order_id: str,
                       purchase_transaction_id: str, order_amount: int, refunded_before: int,
                       amount: int) -> RefundSplit:
    """Under the buyer's locks: the bonus part of a refund, pro rata of what the purchase
    took from bonus (so a full refund gives back exactly that), shared among the bonuses it
    came from, the newest first."""
    spends = await repo.order_spends(conn, pending, transaction_id=purchase_transaction_id,
                                     order_id=order_id)
    book = await BonusBook.load(conn, pending, settings, states, buyer_id, currency,
                                now=utcnow(), ids=sorted(spends))
    if not spends:
        return RefundSplit(book, 0, 0)
    assert book.locked, "a refund of a purchase paid with bonus must lock the bonus wallet"
    spent = sum(x for x, _ in spends.values())
    returned = sum(r for _, r in spends.values())
    due = (refunded_before + amount) * spent // order_amount
    back = max(0, min(due - returned, spent - returned, amount))
    allocation: list[tuple[str, int]] = []
    for bonus_id in sorted(spends, reverse=True):
        x, r = spends[bonus_id]
        take = min(x - r, back)
        if take > 0:
            allocation.append((bonus_id, take))
            back -= take
    to_wallet, to_promotions = book.give_back(allocation, order_id)
    return RefundSplit(book, to_wallet, to_promotions)


# ---------------------------------------------------------------- top-ups (payments)


async def topup_promotion(conn: AsyncConnection, code: str, *, currency: str,
                          deposit: int, now: datetime) -> Promotion:
    """The deposit match a top-up order names with ``promo_code``; 422 when it cannot
    apply to this order."""
    promo = await repo.promotion_by_code(conn, code)
    if promo is None or promo.kind != "deposit_match":
        raise InvalidPromoCode(f"{code.upper()} is not a deposit promotion",
                               reason="unknown")
    if not promo.live(now):
        raise InvalidPromoCode(f"{promo.code} is not running", reason="inactive")
    if promo.currency != currency:
        raise InvalidPromoCode(f"{promo.code} matches deposits of {promo.currency}, not "
                               f"{currency}", reason="currency")
    if not promo.qualifies(deposit):
        raise InvalidPromoCode(f"{promo.code} needs a deposit of at least "
                               f"{promo.min_deposit} {currency}", reason="min_deposit",
                               min_deposit=promo.min_deposit)
    return promo


async def attach_to_order(conn: AsyncConnection, order_id: str, user_id: str,
                          promotion: Promotion) -> None:
    """Remember the order's code, in the order's own transaction."""
    await repo.attach_order(conn, order_id, user_id, promotion.id, utcnow())


@dataclass(slots=True)
class TopupBonuses:
    """What a top-up's credit grants, in the credit's own commit: deposit matches (the
    order's code, automatic ones) and a pending referral's rewards for both users."""

    settings: BonusSettings
    user_id: str
    currency: str
    deposit: int
    order_id: str
    matches: list[str] = field(default_factory=list)  # deposit match promotion ids
    referrer_id: str | None = None  # a pending referral that a promotion may pay
    books: dict[str, BonusBook] = field(default_factory=dict)
    rewarding: bool = False
    reward_spec: TransactionSpec | None = None

    @classmethod
    async def plan(cls, db: AsyncEngine, settings: BonusSettings, *, user_id: str,
                   currency: str, deposit: int, order_id: str) -> TopupBonuses:
        """What might apply, read before the credit is queued (to know what to lock); the
        credit's ``prepare`` decides again under the locks."""
        plan = cls(settings, user_id, currency, deposit, order_id)
        async with db.connect() as conn:
            attached = await repo.order_promotion(conn, order_id)
            automatic = [p.id for p in await repo.promotions_of(conn, "deposit_match",
                                                                 currency) if p.automatic]
            referral = await repo.get_referral(conn, user_id)
            paying = (referral is not None and referral.rewarded_at is None
                      and await repo.promotions_of(conn, "referral", currency))
        plan.matches = list(dict.fromkeys([*([attached] if attached else []), *automatic]))
        if paying and referral is not None:
            plan.referrer_id = referral.referrer_id
        return plan

    @property
    def lock_keys(self) -> frozenset[AccountKey]:
        found: frozenset[AccountKey] = frozenset()
        if self.matches or self.referrer_id is not None:
            found |= keys(self.settings, self.user_id, self.currency)
        if self.referrer_id is not None:
            found |= keys(self.settings, self.referrer_id, self.currency)
        return found

    async def _book(self, conn: AsyncConnection, pending: Sequence[RowInserts],
                    states: Mapping[AccountKey, AccountState], user_id: str
                    ) -> BonusBook | None:
        if not keys(self.settings, user_id, self.currency) <= states.keys():
            return None  # not locked: it did not apply when the credit was queued
        if user_id not in self.books:
            self.books[user_id] = await load_book(conn, pending, self.settings, states,
                                                  user_id, self.currency)
        return self.books[user_id]

    async def decide(self, conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                     pending: Sequence[RowInserts]) -> list[TransactionSpec]:
        """Under the credit's locks: the grants' transactions (none may be refused: the
        promotions account may go negative)."""
        self.books, self.rewarding, self.reward_spec = {}, False, None
        now = utcnow()
        specs: list[TransactionSpec] = []
        also: list[tuple[str, str, int]] = []

        async def give(promo: Promotion, user_id: str, amount: int,
                       source: str) -> TransactionSpec | None:
            if amount <= 0 or await _grant_refusal(conn, pending, promo, user_id, amount,
                                                   also):
                return None
            book = await self._book(conn, pending, states, user_id)
            if book is None:
                return None
            got = book.grant(promo, amount, source=source, initiator=INITIATOR,
                             reference_id=self.order_id)
            specs.extend(got)
            also.append((promo.id, user_id, amount))
            return got[0]

        for promotion_id in self.matches:
            promo = await repo.get_promotion(conn, promotion_id)
            if (promo is not None and promo.kind == "deposit_match"
                    and promo.currency == self.currency and promo.live(now)):
                await give(promo, self.user_id, promo.match(self.deposit),
                           f"topup:{self.order_id}")
        if self.referrer_id is not None:
            await self._refer(conn, pending, now, give)
        return specs

    async def _refer(self, conn: AsyncConnection, pending: Sequence[RowInserts],
                     now: datetime, give: Callable[..., Any]) -> None:
        """The referee's first qualifying top-up pays both users, once: the reward's row
        (keyed by the referee) is written in this commit."""
        referral = await repo.get_referral(conn, self.user_id)
        if (referral is None or referral.referrer_id != self.referrer_id
                or await repo.rewarded(conn, pending, self.user_id)):
            return
        promos = [p for p in await repo.promotions_of(conn, "referral", self.currency)
                  if p.live(now) and p.qualifies(self.deposit) and p.amount]
        if not promos:
            return  # not a qualifying top-up: the link waits for one
        self.rewarding = True
        for promo in promos:
            source = f"referral:{self.user_id}"
            spec = await give(promo, self.user_id, promo.amount, source)
            if self.reward_spec is None:
                self.reward_spec = spec
            await give(promo, self.referrer_id, promo.amount, source)

    def writes(self, outcomes: Sequence[Outcome]) -> list[RowInserts | SqlWrite]:
        if any(isinstance(o, Rejection) for o in outcomes):
            return []
        writes: list[RowInserts | SqlWrite] = []
        for book in self.books.values():
            writes += book.writes(outcomes)
        if self.rewarding:
            tx = next((o for o in outcomes if isinstance(o, Transaction)
                       and o.spec is self.reward_spec), None)
            writes.append(repo.reward_row(self.user_id, self.order_id,
                                          tx.id if tx is not None else None, utcnow()))
        return writes


# ---------------------------------------------------------------- withdrawals


@dataclass(slots=True)
class WithdrawalBonuses:
    """A withdrawal request while bonuses of its currency are being wagered: ``forfeit``
    closes them (in the request's commit), ``block`` refuses the request."""

    settings: BonusSettings
    user_id: str
    currency: str
    withdrawal_id: str
    book: BonusBook | None = None

    @property
    def lock_keys(self) -> frozenset[AccountKey]:
        return keys(self.settings, self.user_id, self.currency)

    async def decide(self, conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                     pending: Sequence[RowInserts]) -> list[TransactionSpec] | Rejection:
        self.book = await load_book(conn, pending, self.settings, states, self.user_id,
                                    self.currency)
        active = self.book.active
        if not active:
            return []
        if self.settings.withdrawal_policy(self.currency) == "block":
            left = self.book.left_to_wager
            return Rejection.of(WageringIncomplete(
                f"{left} {self.currency} are still to wager before withdrawing",
                left_to_wager=left, currency=self.currency,
                bonuses=[{"id": x.id, "wagered": x.wagered, "required": x.wagering_required,
                          "left": x.left_to_wager} for x in active]))
        return self.book.forfeit([x.id for x in active], status="forfeited",
                                 reference_id=self.withdrawal_id,
                                 description="Bonus forfeited: withdrawal requested")

    def writes(self, outcomes: Sequence[Outcome]) -> list[RowInserts | SqlWrite]:
        return self.book.writes(outcomes) if self.book is not None else []

