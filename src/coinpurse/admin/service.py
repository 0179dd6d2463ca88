"""Operators' rules: adjustments (with four-eyes approval above a threshold), reversals,
service keys, and the reports admins and auditors read.

Adjustments and reversals post through the ledger with an idempotency claim of their own
(scope ``adjustment`` or ``reversal``), so an adjustment is applied and a transaction
reversed at most once, however often the request is retried or raced. Every change is
written to the audit log in the transaction that makes it.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.admin import repository
from coinpurse.admin.errors import AlreadyReversed
from coinpurse.admin.model import (
    Adjustment,
    DailyStats,
    GiftFilter,
    GiftReport,
    PendingCounts,
    PostedTransaction,
    Stats,
    TransactionSearch,
    TxFilter,
    UserLedger,
)
from coinpurse.admin.settings import AdminSettings
from coinpurse.auth import keys
from coinpurse.auth.keycache import KeyCache
from coinpurse.auth.model import NewKey, RotatedKey, ServiceKey
from coinpurse.auth.scopes import parse_scopes
from coinpurse.auth.settings import AuthSettings
from coinpurse.auth.tokens import Principal
from coinpurse.bonuses import service as bonuses
from coinpurse.core import audit, cursor
from coinpurse.core.clock import day_start, iso, utcnow
from coinpurse.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from coinpurse.ledger import queries as ledger_queries
from coinpurse.ledger.errors import IdempotencyKeyReused
from coinpurse.ledger.idempotency import Claim, StoredResponse
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
from coinpurse.ledger.service import Ledger, RowInserts, SqlWrite
from coinpurse.ledger.views import rejection_problem, transaction_view

ADJUSTMENT_ACCOUNT = "service:adjustments"
DAYS_MAX = 366  # the dashboard's longest period
EXPORT_MAX = 100_000  # transactions in one CSV export
EXPORT_BATCH = 500
EXPORT_COLUMNS = ("transaction_id", "created_at", "kind", "currency", "amount", "description",
                  "reference_id", "service", "initiator")
FLOW_SERVICES = frozenset({"payments", "withdrawals"})
_ADJUSTMENT_NS = uuid.UUID("6f1d0c3e-4b7a-4f43-9a55-1b0b2c6d7e8f")


@dataclass(frozen=True, slots=True)
class AdminService:
    """What the admin rules need; built by the routes from the app's state.

    Cursors arrive as the client sent them and are decoded here, after the filters are
    checked; the answers encode the ``next_id`` of a page."""

    db: AsyncEngine
    ledger: Ledger
    settings: AdminSettings
    auth: AuthSettings  # the key rotation's default grace period
    key_cache: KeyCache

    # --- reports --------------------------------------------------------------------------

    async def search_transactions(self, f: TxFilter, *, cursor_: str | None,
                                  limit: int) -> TransactionSearch:
        if f.currency:
            self.settings.currency(f.currency)
        before = cursor.decode_text(cursor_)
        async with self.db.connect() as conn:
            return await repository.search_transactions(conn, f, before=before, limit=limit)

    async def user_ledger(self, user_id: str, *, currency: str | None, cursor_: str | None,
                          limit: int) -> UserLedger:
        if currency:
            self.settings.currency(currency)
        before = cursor.decode(cursor_)
        async with self.db.connect() as conn:
            return await repository.user_ledger(conn, user_id, currency=currency,
                                                before=before, limit=limit)

    async def stats(self) -> Stats:
        async with self.db.connect() as conn:
            return await repository.stats(conn, list(self.settings.currencies), utcnow())

    async def account_balances(self, address: str) -> dict[str, Balance]:
        async with self.db.connect() as conn:
            return await ledger_queries.account_balances(conn, address)

    async def bonus_balances(self, address: str) -> dict[str, int] | None:
        """For a user's wallet (``user:<id>``): the bonus wallet per currency; else None."""
        parts = address.split(":")
        if len(parts) != 2 or parts[0] != "user":
            return None
        async with self.db.connect() as conn:
            found = await ledger_queries.account_balances(conn, bonuses.wallet_of(parts[1]))
        return {c: b.balance for c, b in found.items()}

    async def audit_log(self, *, actor: str | None, action: str | None, cursor_: str | None,
                        limit: int) -> tuple[list[audit.AuditEntry], int | None]:
        before = cursor.decode(cursor_)
        async with self.db.connect() as conn:
            return await audit.page(conn, actor=actor, action=action, before=before,
                                    limit=limit)

    async def gift_report(self, f: GiftFilter, *, cursor_: str | None,
                          limit: int) -> GiftReport:
        before = cursor.decode_text(cursor_)
        async with self.db.connect() as conn:
            return await repository.gift_report(conn, f, before=before, limit=limit)

    async def adjustments(self, *, status: str | None, limit: int) -> list[Adjustment]:
        async with self.db.connect() as conn:
            return await repository.list_adjustments(conn, status=status, limit=limit)

    async def daily_stats(self, *, days: int, currency: str | None,
                          fee_address: str) -> DailyStats:
        """The last ``days`` UTC days, today included: volume per currency and kind, and
        what entered ``fee_address`` (the platform's fees)."""
        assert 1 <= days <= DAYS_MAX
        if currency:
            self.settings.currency(currency)
        since = day_start(utcnow()) - timedelta(days=days - 1)
        async with self.db.connect() as conn:
            volume = await repository.daily_volume(conn, since, currency)
            fees = await repository.daily_fees(conn, fee_address, since, currency)
        first = since.date()
        return DailyStats(days=[(first + timedelta(days=i)).isoformat() for i in range(days)],
                          volume=volume, fees=fees, fee_address=fee_address)

    async def pending(self) -> PendingCounts:
        async with self.db.connect() as conn:
            return await repository.pending_counts(conn)

    def export_csv(self, f: TxFilter, *, limit: int) -> AsyncIterator[str]:
        """The transaction search as CSV text, streamed a batch at a time. Amounts are
        integers in minor units; text a spreadsheet would run as a formula is quoted."""
        assert 1 <= limit <= EXPORT_MAX
        if f.currency:
            self.settings.currency(f.currency)  # refused before the answer starts

        async def chunks() -> AsyncIterator[str]:
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(EXPORT_COLUMNS)
            async with self.db.connect() as conn:
                async for rows in repository.export_batches(conn, f, limit=limit,
                                                            batch=EXPORT_BATCH):
                    writer.writerows([csv_cell(v) for v in (
                        r.transaction_id, iso(r.created_at), r.kind, r.currency, r.amount,
                        r.description, r.reference_id, r.service, r.initiator)] for r in rows)
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
            yield out.getvalue()

        return chunks()

    # --- service keys ---------------------------------------------------------------------

    async def keys(self) -> list[ServiceKey]:
        async with self.db.connect() as conn:
            return await keys.list_keys(conn)

    async def create_key(self, admin: Principal, service: str, scopes: list[str], *,
                         ip: str) -> NewKey:
        try:
            keys.check_service_name(service)
            joined = ",".join(parse_scopes(",".join(scopes)))
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        async with self.db.begin() as conn:
            key, secret = await keys.create_key(conn, service, joined,
                                                created_by=f"admin:{admin.user_id}")
            await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                               action="admin.key_create", target=key.id,
                               details={"service": key.service, "scopes": list(key.scopes)},
                               ip=ip)
        return NewKey(key, secret)

    async def rotate_key(self, admin: Principal, key_id: str, grace_s: int | None, *,
                         ip: str) -> RotatedKey:
        grace = grace_s if grace_s is not None else self.auth.key_rotation_grace_s
        async with self.db.begin() as conn:
            new, secret, old = await keys.rotate_key(conn, key_id, grace,
                                                     rotated_by=f"admin:{admin.user_id}")
            await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                               action="admin.key_rotate", target=key_id,
                               details={"new_key_id": new.id, "grace_s": grace}, ip=ip)
        self.key_cache.clear()  # this process at once; the others hear of the change
        return RotatedKey(NewKey(new, secret), old)

    async def revoke_key(self, admin: Principal, key_id: str, *, ip: str) -> ServiceKey:
        async with self.db.begin() as conn:
            key = await keys.revoke_key(conn, key_id)
            await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                               action="admin.key_revoke", target=key_id, ip=ip)
        self.key_cache.clear()
        return key

    # --- adjustments ----------------------------------------------------------------------

    async def create_adjustment(self, admin: Principal, *, user_id: str, currency: str,
                                amount: int, direction: str, reason: str, ip: str,
                                idem: str) -> Adjustment:
        """Idempotent per admin and key: the id is derived from them, so a retry finds the
        row. Above the approval threshold it waits for a second admin."""
        self.settings.currency(currency)
        needs_approval = amount > self.settings.adjustment_approval_above
        new = Adjustment(
            id=str(uuid.uuid5(_ADJUSTMENT_NS, f"{admin.user_id}\n{idem}")), user_id=user_id,
            currency=currency, amount=amount, direction=direction, reason=reason,
            status="pending" if needs_approval else "approving", requested_by=admin.user_id,
            created_at=utcnow(), decided_by=None if needs_approval else admin.user_id)
        if (done := await self._existing(admin, new)) is not None:
            return done
        async with self.db.begin() as conn:
            inserted = await repository.insert_adjustment(conn, new)
            if inserted:
                await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                                   action="admin.adjustment_create", target=new.id,
                                   details={"user_id": user_id, "currency": currency,
                                            "amount": amount, "direction": direction,
                                            "reason": reason,
                                            "needs_approval": needs_approval}, ip=ip)
        if not inserted:  # the same key at the same moment: answer as a retry would get
            done = await self._existing(admin, new)
            assert done is not None
            return done
        if needs_approval:
            return await self._adjustment(new.id)
        return await self._apply(new.id)

    async def _existing(self, admin: Principal, wanted: Adjustment) -> Adjustment | None:
        """The adjustment this admin's key already made: the same request, or a refusal."""
        async with self.db.connect() as conn:
            found = await repository.adjustment(conn, wanted.id)
        if found is None:
            return None
        if not found.same_request(wanted.user_id, wanted.currency, wanted.amount,
                                  wanted.direction, wanted.reason):
            raise IdempotencyKeyReused("this idempotency key was used for another adjustment")
        if found.status == "approving" and found.decided_by == admin.user_id:
            return await self._apply(found.id)  # resume after a crash
        return found

    async def decide(self, admin: Principal, adjustment_id: str, *, approve: bool,
                     note: str | None, ip: str) -> Adjustment:
        """Exactly one decision wins: the row leaves ``pending`` with a conditional UPDATE."""
        async with self.db.begin() as conn:
            adj = await _get(conn, adjustment_id)
            resuming = approve and adj.status == "approving" and adj.decided_by == admin.user_id
            if not resuming:
                if adj.status != "pending":
                    raise Conflict(f"the adjustment is {adj.status}, not pending")
                if adj.requested_by == admin.user_id:
                    raise Forbidden("a second, different admin must decide this adjustment")
                if not await repository.decide_pending(
                        conn, adjustment_id, status="approving" if approve else "rejected",
                        decided_by=admin.user_id, note=note, now=utcnow()):
                    raise Conflict("another admin decided this adjustment first")
            await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                               action="admin.adjustment_" + ("approve" if approve else "reject"),
                               target=adjustment_id, details={"note": note}, ip=ip)
        if not approve:
            return await self._adjustment(adjustment_id)
        return await self._apply(adjustment_id)

    async def _adjustment(self, adjustment_id: str) -> Adjustment:
        async with self.db.connect() as conn:
            return await _get(conn, adjustment_id)

    async def _apply(self, adjustment_id: str) -> Adjustment:
        """Post an approved adjustment once, and record the outcome in the same commit.

        The claim keeps a concurrent retry out; the ledger itself (a transaction posted for
        this adjustment) keeps a resume out once the claim has been purged."""
        adj = await self._adjustment(adjustment_id)
        spec = _adjustment_spec(adj)
        earlier: list[str] = []  # the transaction an earlier apply posted, if any

        async def prepare(conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                          pending: Sequence[RowInserts]) -> list[Operation]:
            found = await repository.adjustment_transaction(conn, adj.id)
            earlier[:] = [found] if found else []
            return [] if found else [spec]

        def outcome(outcomes: list[Outcome]) -> tuple[str, str | None, str | None]:
            """(status, transaction id, note) of the adjustment after this batch."""
            if not outcomes:
                return "applied", earlier[0], None
            (o,) = outcomes
            if isinstance(o, Rejection):
                return "failed", None, o.detail
            assert isinstance(o, Transaction)
            return "applied", o.id, None

        def render(outcomes: list[Outcome]) -> StoredResponse:
            if outcomes and isinstance(outcomes[0], Rejection):
                return rejection_problem(outcomes[0])
            return StoredResponse(201, orjson.dumps({"transaction_id": outcome(outcomes)[1]}))

        result = await self.ledger.submit(
            [spec], render=render, claim=Claim("adjustment", adj.id, "apply"),
            prepare=prepare, side_writes=lambda o: [_record(adj.id, *outcome(o))])
        body = orjson.loads(result.response.body)
        status, tx_id, note = ("applied", body.get("transaction_id"), None) \
            if result.response.status == 201 else ("failed", None, body.get("detail"))
        async with self.db.begin() as conn:
            await _record(adj.id, status, tx_id, note)(conn)  # a replayed claim: no side writes
            return await _get(conn, adj.id)

    # --- reversals ------------------------------------------------------------------------

    async def reverse(self, admin: Principal, transaction_id: str, *, reason: str,
                      ip: str) -> StoredResponse:
        """The reversal's answer as the ledger stored it (201 and the transaction, or the
        problem that refused it); refused before that when it cannot be reversed."""
        async with self.db.connect() as conn:
            original = await repository.posted_transaction(conn, transaction_id)
            if original is None:
                raise NotFound(f"no transaction {transaction_id!r}")
            done = await repository.reversal_of(conn, transaction_id)
        if done is not None:
            raise AlreadyReversed(f"already reversed by {done}", reversal_transaction_id=done)
        _check_reversible(original)
        spec = _reversal_spec(original, admin, reason)
        now = utcnow()

        def render(outcomes: list[Outcome]) -> StoredResponse:
            (o,) = outcomes
            if isinstance(o, Rejection):
                return rejection_problem(o)
            assert isinstance(o, Transaction)
            return StoredResponse(201, orjson.dumps(transaction_view(o)))

        def side_writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
            posted = [o.id for o in outcomes if isinstance(o, Transaction)]
            return [repository.reversal_rows(transaction_id, posted, reversed_by=admin.user_id,
                                             reason=reason, now=now)]

        # The claim is the transaction itself: a second reversal finds the first one's answer.
        result = await self.ledger.submit(
            [spec], render=render, side_writes=side_writes, store_refusals=False,
            claim=Claim("reversal", transaction_id, "reverse"))
        if result.replayed:
            first = orjson.loads(result.response.body)
            raise AlreadyReversed(f"already reversed by {first.get('id')}",
                                  reversal_transaction_id=first.get("id"))
        async with self.db.begin() as conn:
            await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                               action="admin.reverse", target=transaction_id,
                               details={"reason": reason, "status": result.response.status},
                               ip=ip)
        return result.response


def csv_cell(value: Any) -> str:
    """Text a spreadsheet would run as a formula (= + - @, tab, CR) gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def _get(conn: AsyncConnection, adjustment_id: str) -> Adjustment:
    found = await repository.adjustment(conn, adjustment_id)
    if found is None:
        raise NotFound(f"no adjustment {adjustment_id!r}")
    return found


def _record(adjustment_id: str, status: str, tx_id: str | None, note: str | None) -> SqlWrite:
    """The outcome on the row, once: only an adjustment still ``approving`` changes."""

    async def run(conn: AsyncConnection) -> None:
        await repository.record_outcome(conn, adjustment_id, status=status,
                                        transaction_id=tx_id, note=note, now=utcnow())

    return run


def _adjustment_spec(adj: Adjustment) -> TransactionSpec:
    """From or to ``service:adjustments``, recorded with the admins and the reason."""
    user = f"user:{adj.user_id}"
    src, dst = ((ADJUSTMENT_ACCOUNT, user) if adj.direction == "credit"
                else (user, ADJUSTMENT_ACCOUNT))
    return TransactionSpec(
        kind="adjustment", postings=(Posting(src, dst, adj.amount, adj.currency),),
        description="Balance adjustment", reference_id=adj.id,
        initiator=f"admin:{adj.decided_by or adj.requested_by}", service="adjustments",
        internal_notes=adj.reason,
        metadata={"adjustment_id": adj.id, "requested_by": adj.requested_by,
                  "approved_by": adj.decided_by},
    )


def _check_reversible(original: PostedTransaction) -> None:
    if original.kind == "reversal":
        raise Conflict("a reversal is not reversed; post a new transaction instead")
    if any(bonuses.reserved(a) for p in original.postings for a in (p.source, p.destination)):
        # Its bonus rows would still say what it did: forfeit the bonus instead.
        raise Conflict("this transaction moved bonus money; forfeit the bonus instead "
                       "(POST /admin/v1/bonuses/{id}/forfeit)")
    if original.service in FLOW_SERVICES:
        # Its order or withdrawal would still say it happened: a later provider refund would
        # take the coins a second time, a paid-out withdrawal would be paid back.
        raise Conflict(f"this {original.kind} belongs to the {original.service} flow; undo it "
                       "there (refund the payment at the provider, reject the withdrawal)")


def _reversal_spec(original: PostedTransaction, admin: Principal,
                   reason: str) -> TransactionSpec:
    """The opposite postings, in the opposite order."""
    postings = tuple(Posting(p.destination, p.source, p.amount, p.currency)
                     for p in reversed(original.postings))
    return TransactionSpec(
        kind="reversal", postings=postings,
        description=f"Reversal: {original.description}"[:255], reference_id=original.id,
        initiator=f"admin:{admin.user_id}", service=original.service, internal_notes=reason,
        metadata={"reverses": original.id},
    )
