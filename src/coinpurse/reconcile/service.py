"""Reconciliation runs: the ledger's books, the hash chain, provider statements.

A run is stored when it starts (``running``) and when it ends (``passed``, ``failed`` with
its discrepancies, or ``error`` if the run itself broke). It reads one consistent snapshot
(REPEATABLE READ on PostgreSQL), so money moving meanwhile cannot look like a discrepancy.

Incremental runs check what changed since the last clean run of their kind:

- accounts whose balance, held amount or version differ from their mark (what the last
  clean run saw), and only their entries after the mark;
- transactions sealed after the last clean run's head (the seal sequence is a total order
  that never changes), chain included;
- top-up orders, withdrawals and shop orders changed since that run began (an hour of
  margin), and every paid top-up order that names no credit;
- counts of transactions, entries and seals, which reveal a row inserted or deleted
  anywhere; only then are all rows searched for it.

So a run costs the day's volume plus one pass over the accounts, not the whole history.
Months of history archived by ``coinpurse partitions detach`` are accounted for by their
per-account totals and their seals (``archived_before`` in a run's scope). A
full run (``--full``, and the schedule every ``COINPURSE_RECONCILE_FULL_EVERY_DAYS``) reads
everything. A discrepancy writes a ``reconciliation.failed`` event and an error log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.core.audit import record
from coinpurse.core.clock import iso, utcnow
from coinpurse.core.errors import NotFound
from coinpurse.core.ids import new_id
from coinpurse.events.service import emit
from coinpurse.payments.errors import ProviderNotEnabled, ProviderUnavailable
from coinpurse.payments.settings import PaymentSettings
from coinpurse.reconcile import checks, statements
from coinpurse.reconcile import repository as repo
from coinpurse.reconcile.canonical import GENESIS_PREVIOUS, seal_hash
from coinpurse.reconcile.errors import ReconciliationRunning
from coinpurse.reconcile.model import (
    Counts,
    Discrepancy,
    LedgerEntry,
    LinkedTx,
    Mark,
    OrderRow,
    Run,
    RunDetail,
    Seal,
    ShopOrderRow,
    ShopRefundRow,
)
from coinpurse.reconcile.sealer import Sealer
from coinpurse.reconcile.settings import ReconcileSettings

log = logging.getLogger("coinpurse.reconcile")

ACCOUNT_CHUNK = 500
WALK_CHUNK = 2000
ROW_CHUNK = 1000
STORED_MAX = 1000  # discrepancies stored per run; all are counted
FIND_MAX = 1000  # rows named when counts reveal something
DETAIL_MAX = 500  # discrepancies a run detail shows
CHANGE_MARGIN = timedelta(hours=1)
HEARTBEAT_S = 20.0
STALE_AFTER = timedelta(minutes=5)
EVENT_SAMPLE = 20


class Progress(Protocol):
    """What a run reports as it goes (the CLI draws a bar on a terminal)."""

    def stage(self, name: str, total: int | None) -> None: ...

    def advance(self, n: int) -> None: ...


class NoProgress:
    def stage(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Anchor:
    """A head exported earlier: the chain must still reach ``hash`` at ``sequence``."""

    sequence: int
    hash: str


@dataclass(frozen=True, slots=True)
class Audit:
    """Who started a run from the API, for the audit log."""

    actor: str
    role: str | None
    ip: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime

    @classmethod
    def of_days(cls, first: date, last: date) -> Period:
        return cls(datetime(first.year, first.month, first.day, tzinfo=UTC),
                   datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1))


@dataclass(slots=True)
class Findings:
    """What a run found: every discrepancy counted, the first ``STORED_MAX`` kept."""

    kept: list[Discrepancy] = field(default_factory=list)
    total: int = 0
    counts: Counts = field(default_factory=Counts)
    marks: list[Mark] = field(default_factory=list)
    scope: dict[str, Any] = field(default_factory=dict)
    chain_break: Discrepancy | None = None
    bonus_users: set[str] = field(default_factory=set)  # whose bonus wallet changed

    def add(self, found: Iterable[Discrepancy]) -> None:
        for d in found:
            self.total += 1
            if len(self.kept) < STORED_MAX:
                self.kept.append(d)


@dataclass(slots=True)
class _Beat:
    """Keeps a running run's heartbeat fresh, so a stopped process's run can be told apart."""

    db: AsyncEngine
    run_id: str
    last: float = field(default_factory=time.monotonic)

    async def __call__(self) -> None:
        if time.monotonic() - self.last < HEARTBEAT_S:
            return
        self.last = time.monotonic()
        async with self.db.begin() as conn:
            await repo.heartbeat(conn, self.run_id, utcnow())


@dataclass(frozen=True, slots=True)
class Reconciler:
    db: AsyncEngine
    settings: ReconcileSettings
    payments: PaymentSettings  # provider keys, for statements

    # --- runs ---------------------------------------------------------------------------

    async def start(self, kind: str, *, mode: str, trigger: str,
                    scheduled_for: str | None = None, provider: str | None = None,
                    period: Period | None = None, audit: Audit | None = None) -> Run | None:
        """Store a new running run; None when a run of this kind is running (or the day's
        scheduled run exists)."""
        now = utcnow()
        scope: dict[str, Any] = {}
        if period is not None:
            scope = {"period_from": iso(period.start), "period_to": iso(period.end)}
        run = Run(id=new_id(), kind=kind, mode=mode, status="running", trigger=trigger,
                  scheduled_for=scheduled_for, provider=provider, scope=scope, counts={},
                  discrepancy_count=0, error=None, started_at=now, heartbeat_at=now,
                  finished_at=None)
        async with self.db.begin() as conn:
            await repo.abandon_stale(conn, now - STALE_AFTER, now)
            if not await repo.insert_run(conn, run):
                return None
            if audit is not None:
                await record(conn, actor=audit.actor, actor_role=audit.role,
                             action="reconciliation.start", target=f"reconciliation:{run.id}",
                             details=audit.details, ip=audit.ip)
        return run

    async def begin(self, kind: str, **kw: Any) -> Run:
        """``start``, or ``reconciliation_running`` if one of this kind is running."""
        run = await self.start(kind, **kw)
        if run is None:
            raise ReconciliationRunning(f"a {kind} reconciliation is running; wait for it "
                                        "(GET /admin/v1/reconciliations?status=running)")
        return run

    async def execute(self, run: Run, *, progress: Progress | None = None,
                      anchor: Anchor | None = None, from_sequence: int | None = None) -> Run:
        """Carry out a started run and store its outcome."""
        progress = progress or NoProgress()
        beat = _Beat(self.db, run.id)
        try:
            if run.kind == "provider":
                assert run.provider is not None
                findings = await self._provider(run, progress)
            else:
                await Sealer(self.db).seal_pending()
                findings = await self._books(run, progress, beat, anchor=anchor,
                                             from_sequence=from_sequence)
        except Exception as exc:
            await self._finish(run, Findings(scope=run.scope), error=exc)
            raise
        return await self._finish(run, findings)

    async def _finish(self, run: Run, findings: Findings,
                      error: BaseException | None = None) -> Run:
        now = utcnow()
        status = "error" if error else ("failed" if findings.total else "passed")
        mode = findings.scope.get("mode", run.mode)
        message = None
        if error is not None:
            # The user-facing words of our own errors; a type name for anything else.
            message = (getattr(error, "detail", None) or type(error).__name__)[:1000]
        async with self.db.begin() as conn:
            await repo.insert_discrepancies(conn, run.id, findings.kept)
            if status == "passed" and findings.marks:
                await repo.save_marks(conn, findings.marks, now)
            await repo.finish_run(conn, run.id, status=status, mode=mode, scope=findings.scope,
                                  counts=findings.counts.values,
                                  discrepancy_count=findings.total, error=message, at=now)
            if status == "failed":
                await emit(conn, "reconciliation.failed", _event(run, findings, mode, now), now)
        if status == "failed":
            sample = "; ".join(f"{d.check}: {d.detail}" for d in findings.kept[:5])
            log.error("reconciliation %s (%s, %s) found %d discrepancies: %s", run.id,
                      run.kind, mode, findings.total, sample)
        elif status == "error":
            log.error("reconciliation %s (%s) could not finish: %s", run.id, run.kind, message)
        else:
            log.info("reconciliation %s (%s, %s) passed: %s", run.id, run.kind, mode,
                     findings.counts.values)
        found = await self.get(run.id)
        return found.run

    async def get(self, run_id: str) -> RunDetail:
        async with self.db.connect() as conn:
            found = await repo.run(conn, run_id)
            if found is None:
                raise NotFound(f"no reconciliation {run_id!r}")
            return RunDetail(found, await repo.discrepancies(conn, run_id, DETAIL_MAX))

    async def page(self, *, kind: str | None, status: str | None, before: str | None,
                   limit: int) -> tuple[list[Run], str | None]:
        async with self.db.connect() as conn:
            found = await repo.runs_page(conn, kind=kind, status=status, before=before,
                                         limit=limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return found, (found[-1].id if more and found else None)

    async def head(self) -> Seal | None:
        """The chain's newest seal, after sealing what has committed."""
        await Sealer(self.db).seal_pending()
        async with self.db.connect() as conn:
            return await repo.head(conn)

    # --- the schedule ---------------------------------------------------------------------

    async def scheduled(self, now: datetime | None = None) -> Run | None:
        """The daily run, once a day across every process: the first process past
        ``COINPURSE_RECONCILE_AT`` that claims the day runs it; the others find it taken."""
        at = self.settings.reconcile_time
        now = now or utcnow()
        if at is None or now < datetime.combine(now.date(), at, tzinfo=UTC):
            return None
        day = now.date().isoformat()
        async with self.db.connect() as conn:
            if await repo.day_claimed(conn, day):
                return None
            last_full = await repo.last_run(conn, "ledger", mode="full")
        every = self.settings.reconcile_full_every_days
        full = every > 0 and (last_full is None
                              or last_full.started_at < now - timedelta(days=every) + CHANGE_MARGIN)
        run = await self.start("ledger", mode="full" if full else "incremental",
                               trigger="schedule", scheduled_for=day)
        if run is None:
            return None
        return await self.execute(run)

    # --- the ledger and the chain -----------------------------------------------------------

    async def _books(self, run: Run, progress: Progress, beat: _Beat, *,
                     anchor: Anchor | None, from_sequence: int | None) -> Findings:
        ledger = run.kind == "ledger"
        async with self.db.connect() as conn:
            await repo.snapshot(conn)
            base = None
            if run.mode != "full" and anchor is None and from_sequence is None:
                base = await repo.last_run(conn, run.kind)
            now = utcnow()
            top = await repo.head(conn)
            f = Findings(scope={
                "mode": "incremental" if base else "full",
                "since_run": base.id if base else None,
                "since": base.scope.get("through") if base else None,
                "through": {"seal_sequence": top.sequence if top else 0,
                            "seal_hash": top.hash if top else GENESIS_PREVIOUS,
                            "at": iso(now)},
            })
            if from_sequence is not None:
                f.scope["mode"] = "from_sequence"
            horizon = await repo.archive_horizon(conn)
            if horizon is not None:
                f.scope["archived_before"] = iso(horizon)
            if ledger:
                await self._accounts(conn, f, base, progress, beat, horizon)
            await self._walk(conn, f, base, top, progress, beat, ledger=ledger, anchor=anchor,
                             from_sequence=from_sequence, horizon=horizon)
            await self._unsealed(conn, f, full=base is None, now=now, ledger=ledger,
                                 horizon=horizon)
            if ledger:
                since = base.started_at - CHANGE_MARGIN if base else None
                await self._orders(conn, f, since, progress, beat, horizon)
                await self._withdrawals(conn, f, since, progress, beat, horizon)
                await self._shop_orders(conn, f, since, progress, beat, horizon)
                await self._bonuses(conn, f, since, progress, beat)
        return f

    async def _accounts(self, conn: AsyncConnection, f: Findings, base: Run | None,
                        progress: Progress, beat: _Beat, horizon: datetime | None) -> None:
        full = base is None
        f.add(checks.check_currency_sums(await repo.currency_sums(conn)))
        progress.stage("accounts", None)
        after = 0
        while chunk := await repo.accounts_after(conn, after, ACCOUNT_CHUNK,
                                                 changed_only=not full):
            after = chunk[-1].id
            floors = {a.id: (0 if full else a.mark_last_entry_id or 0) for a in chunk}
            found = await repo.entries_of_accounts(conn, floors)
            by_account: dict[int, list[LedgerEntry]] = {}
            for e in found:
                by_account.setdefault(e.account_id, []).append(e)
            held = await repo.open_holds(conn, list(floors))
            archived = (await repo.archived_totals(conn, list(floors))
                        if horizon is not None else {})
            for a in chunk:
                if (user := repo.bonus_wallet_user(a.address)) is not None:
                    f.bonus_users.add(user)  # its wallet changed: the bonuses step checks it
                mine = by_account.get(a.id, [])
                problems, mark = checks.check_account(
                    a, mine, held.get(a.id, 0),
                    from_mark=not full and a.mark_balance is not None,
                    archived=archived.get(a.id, 0))
                f.add(problems)
                f.marks.append(mark)
                f.counts.add("entries", len(mine))
            f.counts.add("accounts", len(chunk))
            progress.advance(len(chunk))
            await beat()

    async def _walk(self, conn: AsyncConnection, f: Findings, base: Run | None,
                    top: Seal | None, progress: Progress, beat: _Beat, *, ledger: bool,
                    anchor: Anchor | None, from_sequence: int | None,
                    horizon: datetime | None) -> None:
        """Recompute each seal from the tables, in sequence order; in a ledger run also
        check each transaction's entries and links. The seal of a transaction in an
        archived month (before ``horizon``) can only be checked for its place in the chain:
        its rows are in the archive, proven by the head exported with it."""
        through = top.sequence if top else 0
        after, previous = 0, GENESIS_PREVIOUS
        if from_sequence is not None and from_sequence > 1:
            start = await repo.seal_at(conn, from_sequence)
            after = from_sequence - 1
            previous = start.previous_hash if start else GENESIS_PREVIOUS
            if start is None:
                f.chain_break = Discrepancy(
                    "seal_missing", "seal", str(from_sequence),
                    f"there is no seal {from_sequence} to start from (the chain's head is "
                    f"{through})", expected=from_sequence, actual=None)
                f.add([f.chain_break])
        elif base is not None and base.scope.get("through"):
            since = base.scope["through"]
            after, previous = int(since["seal_sequence"]), str(since["seal_hash"])
            stored = await repo.seal_at(conn, after) if after else None
            if after and (stored is None or stored.hash != previous):
                f.chain_break = checks_seal_changed(after, previous, stored)
                f.add([f.chain_break])
        if anchor is not None and anchor.sequence > through:
            f.chain_break = Discrepancy(
                "head_mismatch", "seal", str(anchor.sequence),
                f"the exported head is seal {anchor.sequence}, the chain has {through}",
                expected=anchor.hash, actual=None)
            f.add([f.chain_break])
        progress.stage("transactions" if ledger else "chain", through - after)
        while after < through and (ledger or f.chain_break is None):
            seals = await repo.seals_after(conn, after, through, WALK_CHUNK)
            if not seals:
                break
            gone = {s.sequence for s in seals if horizon is not None
                    and s.created_at is not None and s.created_at < horizon}
            ids = [s.transaction_id for s in seals if s.sequence not in gone]
            txs = await repo.transactions_by_id(conn, ids)
            ents = await repo.entries_of(conn, ids)
            orders: dict[str, OrderRow] = {}
            shop_orders: dict[str, ShopOrderRow] = {}
            shop_refunds: dict[str, list[ShopRefundRow]] = {}
            if ledger:
                orders = await repo.orders_by_id(conn, (
                    t.reference_id for t in txs.values()
                    if checks.is_provider_credit(t.kind, t.initiator)))
                sold = {t.reference_id for t in txs.values() if checks.is_shop(t)}
                shop_orders = await repo.shop_orders_by_id(conn, sold)
                shop_refunds = await repo.shop_refunds_of(conn, (
                    t.reference_id for t in txs.values()
                    if checks.is_shop(t) and t.kind == "refund"))
            for s in seals:
                if s.sequence in gone:
                    if f.chain_break is None:
                        f.chain_break = _link_check(s, after, previous, anchor)
                        if f.chain_break is not None:
                            f.add([f.chain_break])
                            if not ledger:
                                break
                    after, previous = s.sequence, s.hash
                    f.counts.add("archived_seals")
                    continue
                tx, es = txs.get(s.transaction_id), ents.get(s.transaction_id, [])
                if f.chain_break is None:
                    brk = _chain_check(s, after, previous, tx, es, anchor)
                    if brk is not None:
                        f.chain_break = brk
                        f.add([brk])
                        if not ledger:
                            break
                elif ledger and tx is None:
                    f.add([checks.diagnose(s, tx, es)])
                if ledger and tx is not None:
                    f.add(checks.check_transaction(tx, es))
                    f.add(checks.check_credit_link(tx, orders.get(tx.reference_id)))
                    f.add(checks.check_shop_link(tx, shop_orders.get(tx.reference_id),
                                                 shop_refunds.get(tx.reference_id, [])))
                after, previous = s.sequence, s.hash
                f.counts.add("transactions")
                f.counts.add("seals")
            progress.advance(len(seals))
            await beat()

    async def _unsealed(self, conn: AsyncConnection, f: Findings, *, full: bool,
                        now: datetime, ledger: bool, horizon: datetime | None) -> None:
        """Rows that no seal accounts for: inserted without the ledger, or deleted. An
        incremental run compares counts and searches only when they disagree."""
        cutoff = now - timedelta(seconds=self.settings.seal_lag_s)
        if horizon is not None:
            recorded, sealed = await repo.archive_counts(conn, horizon)
            if recorded != sealed:
                f.add([Discrepancy(
                    "archived_totals_mismatch", "ledger", "archived_entry_totals",
                    f"the archived months' totals account for {recorded} entries, their "
                    f"seals for {sealed}: the archive's records were changed",
                    expected=sealed, actual=recorded)])
        if not full:
            n_tx, n_entries = await repo.ledger_totals(conn)
            n_seals, n_sealed_entries = await repo.seal_totals(conn, horizon)
            recent_tx, recent_entries = await repo.unsealed_recent(conn, cutoff)
            f.counts.add("unsealed_recent", recent_tx)
            if n_tx == n_seals + recent_tx and n_entries == n_sealed_entries + recent_entries:
                return
        named = 0
        old = await repo.unsealed(conn, created_before=cutoff, created_since=None,
                                  limit=FIND_MAX)
        old_entries = await repo.entries_of(conn, [t.id for t in old])
        for tx in old:
            f.add([Discrepancy(
                "transaction_unsealed", "transaction", tx.id,
                f"transaction {tx.id} ({tx.kind}, created {iso(tx.created_at)}) has no seal "
                f"after {self.settings.seal_lag_s} s: it was not written by the ledger",
                expected="a seal", actual=None)])
            if ledger:
                f.add(checks.check_transaction(tx, old_entries.get(tx.id, [])))
        named += len(old)
        if full:
            return
        for s in await repo.seals_without_transaction(conn, FIND_MAX, horizon):
            f.add([checks.diagnose(s, None, [])])
            named += 1
        for s, now_count in await repo.seals_with_other_entry_count(conn, FIND_MAX, horizon):
            kind = "entry_deleted" if now_count < s.entry_count else "entry_inserted"
            f.add([Discrepancy(kind, "transaction", s.transaction_id,
                               f"seal {s.sequence}: transaction {s.transaction_id} had "
                               f"{s.entry_count} entries, has {now_count}",
                               expected=s.entry_count, actual=now_count)])
            named += 1
        if not named:
            f.add([Discrepancy(
                "entry_count_mismatch", "ledger", "entries",
                "the tables hold another number of transactions or entries than the seals "
                "account for; run a full reconciliation to find them")])

    async def _orders(self, conn: AsyncConnection, f: Findings, since: datetime | None,
                      progress: Progress, beat: _Beat, horizon: datetime | None) -> None:
        progress.stage("orders", None)
        after = ""
        while chunk := await repo.orders_after(conn, after, ROW_CHUNK, since=since):
            after = chunk[-1].id
            linked = await repo.transactions_referencing(conn, (o.id for o in chunk))
            pool = {t.id: t for t in linked}
            named = {i for o in chunk for i in (o.credit_transaction_id,
                                                o.reversal_transaction_id) if i}
            pool.update(await repo.linked_transactions(conn, named - pool.keys()))
            archived = await repo.archived_among(conn, named - pool.keys(), horizon)
            by_ref: dict[str, dict[str, LinkedTx]] = {}
            for t in pool.values():
                by_ref.setdefault(t.reference_id, {})[t.id] = t
            for o in chunk:
                if archived and {o.credit_transaction_id, o.reversal_transaction_id} & archived:
                    f.counts.add("orders_archived")  # its money is in an archived month
                    continue
                mine = dict(by_ref.get(o.id, {}))
                for i in (o.credit_transaction_id, o.reversal_transaction_id):
                    if i and i in pool:
                        mine[i] = pool[i]
                f.add(checks.check_order(o, list(mine.values())))
            f.counts.add("orders", len(chunk))
            progress.advance(len(chunk))
            await beat()

    async def _withdrawals(self, conn: AsyncConnection, f: Findings, since: datetime | None,
                           progress: Progress, beat: _Beat, horizon: datetime | None) -> None:
        progress.stage("withdrawals", None)
        after = ""
        while chunk := await repo.withdrawals_after(conn, after, ROW_CHUNK, since=since):
            after = chunk[-1].id
            txs = await repo.linked_transactions(conn, (w.transaction_id for w in chunk
                                                        if w.transaction_id))
            archived = await repo.archived_among(
                conn, (w.transaction_id for w in chunk
                       if w.transaction_id and w.transaction_id not in txs), horizon)
            for w in chunk:
                if w.transaction_id in archived:
                    f.counts.add("withdrawals_archived")
                    continue
                f.add(checks.check_withdrawal(w, txs.get(w.transaction_id or "")))
            f.counts.add("withdrawals", len(chunk))
            progress.advance(len(chunk))
            await beat()

    async def _shop_orders(self, conn: AsyncConnection, f: Findings, since: datetime | None,
                           progress: Progress, beat: _Beat, horizon: datetime | None) -> None:
        progress.stage("shop orders", None)
        after = ""
        while chunk := await repo.shop_orders_after(conn, after, ROW_CHUNK, since=since):
            after = chunk[-1].id
            refunds = await repo.shop_refunds_of(conn, (o.id for o in chunk))
            named = {o.transaction_id for o in chunk}
            named |= {r.transaction_id for rs in refunds.values() for r in rs}
            txs = await repo.linked_transactions(conn, named)
            archived = await repo.archived_among(conn, named - txs.keys(), horizon)
            for o in chunk:
                mine = refunds.get(o.id, [])
                if archived and ({o.transaction_id} | {r.transaction_id for r in mine}) \
                        & archived:
                    f.counts.add("shop_orders_archived")  # its money is in an archived month
                    continue
                f.add(checks.check_shop_order(
                    o, txs.get(o.transaction_id),
                    [(r, txs.get(r.transaction_id)) for r in mine]))
            f.counts.add("shop_orders", len(chunk))
            progress.advance(len(chunk))
            await beat()

    async def _bonuses(self, conn: AsyncConnection, f: Findings, since: datetime | None,
                       progress: Progress, beat: _Beat) -> None:
        """Bonus wallets against the bonus rows: the users whose bonuses changed since
        ``since`` (every user with bonuses in a full run), those whose bonus wallet changed
        (found by the accounts step), and in a full run every bonus wallet holding money
        for a user with no bonus at all."""
        progress.stage("bonuses", None)
        users = set(f.bonus_users)
        after = ""
        while chunk := await repo.bonus_users_after(conn, after, ROW_CHUNK, since=since):
            after = chunk[-1]
            users.difference_update(chunk)
            f.add(checks.check_bonus_wallets(*await repo.bonus_books(conn, chunk)))
            f.counts.add("bonus_users", len(chunk))
            progress.advance(len(chunk))
            await beat()
        rest = sorted(users)  # changed wallets of users not listed above
        if since is None:
            after_id = 0
            while found := await repo.orphan_bonus_wallets_after(conn, after_id, ROW_CHUNK):
                after_id = found[-1][0]
                rest.extend(user for _, user in found)
        rest = sorted(set(rest))  # a user listed twice (two currencies, or both ways) once
        for start in range(0, len(rest), ROW_CHUNK):
            part = rest[start:start + ROW_CHUNK]
            f.add(checks.check_bonus_wallets(*await repo.bonus_books(conn, part)))
            f.counts.add("bonus_users", len(part))
            await beat()

    # --- provider statements ------------------------------------------------------------------

    async def _provider(self, run: Run, progress: Progress) -> Findings:
        provider = run.provider or ""
        period = Period(datetime.fromisoformat(run.scope["period_from"]),
                        datetime.fromisoformat(run.scope["period_to"]))
        reader = statements.reader(provider, self.payments)
        # The provider's list a day wider on each side: a payment made before midnight and
        # recorded here after it is still found.
        progress.stage(f"{provider} statement", None)
        try:
            paid = await asyncio.to_thread(reader.successful_payments,
                                           period.start - timedelta(days=1),
                                           period.end + timedelta(days=1))
        except statements.StatementError as exc:
            log.warning("reading the %s statement failed: %s", provider, exc)
            raise ProviderUnavailable(f"{provider} could not be reached for its list of "
                                      "payments; try again") from None
        progress.advance(len(paid))
        f = Findings(scope={**run.scope, "mode": "period"})
        async with self.db.connect() as conn:
            ours = await repo.orders_paid_between(conn, provider, period.start, period.end)
            in_period = [p for p in paid if period.start <= p.created_at < period.end]
            by_provider_order = await repo.orders_by_provider_order(
                conn, provider, (p.provider_order_id for p in in_period if p.provider_order_id))
        f.add(statements.compare(provider, in_period, paid, ours, by_provider_order))
        f.counts.add("provider_payments", len(in_period))
        f.counts.add("orders", len(ours))
        return f

    def check_provider(self, provider: str) -> None:
        """``provider_not_enabled`` unless its statement can be read with our keys."""
        try:
            statements.reader(provider, self.payments)
        except statements.NotConfigured as exc:
            raise ProviderNotEnabled(str(exc)) from None


def _link_check(s: Seal, after: int, previous: str, anchor: Anchor | None = None
                ) -> Discrepancy | None:
    """A seal's place in the chain: it follows the seal before it (and, if it is the
    exported head, has its hash)."""
    if s.sequence != after + 1:
        return Discrepancy("seal_missing", "seal", str(after + 1),
                           f"seals {after + 1} to {s.sequence - 1} are missing",
                           expected=after + 1, actual=s.sequence)
    if s.previous_hash != previous:
        return Discrepancy("seal_out_of_order", "seal", str(s.sequence),
                           f"seal {s.sequence} (transaction {s.transaction_id}) does not "
                           f"follow seal {after}", expected=previous, actual=s.previous_hash)
    if anchor is not None and anchor.sequence == s.sequence and anchor.hash != s.hash:
        return Discrepancy("head_mismatch", "seal", str(s.sequence),
                           f"seal {s.sequence} is {s.hash}, the exported head says "
                           f"{anchor.hash}: history before it was rewritten",
                           expected=anchor.hash, actual=s.hash)
    return None


def _chain_check(s: Seal, after: int, previous: str, tx: Any, es: Sequence[Any],
                 anchor: Anchor | None) -> Discrepancy | None:
    if (brk := _link_check(s, after, previous)) is not None:
        return brk
    digest = seal_hash(s.sequence, previous, s.transaction_id, tx, es)
    if digest != s.hash or tx is None:
        return checks.diagnose(s, tx, es)
    if anchor is not None and anchor.sequence == s.sequence and anchor.hash != digest:
        return Discrepancy("head_mismatch", "seal", str(s.sequence),
                           f"seal {s.sequence} hashes to {digest}, the exported head says "
                           f"{anchor.hash}: history before it was rewritten",
                           expected=anchor.hash, actual=digest)
    return None


def checks_seal_changed(sequence: int, expected: str, stored: Seal | None) -> Discrepancy:
    if stored is None:
        return Discrepancy("seal_missing", "seal", str(sequence),
                           f"seal {sequence}, where the last clean run stopped, is missing",
                           expected=expected, actual=None)
    return Discrepancy("seal_out_of_order", "seal", str(sequence),
                       f"seal {sequence} has changed since the last clean run checked it",
                       expected=expected, actual=stored.hash)


def _event(run: Run, f: Findings, mode: str, now: datetime) -> dict[str, Any]:
    by_check: dict[str, int] = {}
    for d in f.kept:
        by_check[d.check] = by_check.get(d.check, 0) + 1
    return {
        "id": run.id, "kind": run.kind, "mode": mode, "trigger": run.trigger,
        "provider": run.provider, "discrepancy_count": f.total, "checks": by_check,
        "started_at": iso(run.started_at), "finished_at": iso(now),
        "discrepancies": [{"check": d.check, "subject_type": d.subject_type,
                           "subject": d.subject, "detail": d.detail}
                          for d in f.kept[:EVENT_SAMPLE]],
    }
