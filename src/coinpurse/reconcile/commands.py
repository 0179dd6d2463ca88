"""``coinpurse reconcile`` and ``coinpurse verify`` (mounted by cli.py).

Exit codes: 0 passed; 1 discrepancies found (or the database is not ready); 2 bad usage or
configuration; 3 the run could not finish (a provider unreachable, a database error).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import IO, Any, TypeVar

import click

from coinpurse.config import ConfigError, Settings, load_settings, unknown_settings

T = TypeVar("T")
EXPECT_RE = re.compile(r"^([1-9][0-9]{0,18}):([0-9a-f]{64})$")
SHOWN_MAX = 50
COUNT_ORDER = ["accounts", "entries", "transactions", "seals", "archived_seals", "orders",
               "withdrawals", "shop_orders", "unsealed_recent", "provider_payments"]


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        click.echo(f"coinpurse: {exc}", err=True)
        sys.exit(2)
    for name in unknown_settings():
        click.echo(f"coinpurse: warning: unknown setting {name} is ignored", err=True)
    return settings


def _with_reconciler(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``fn(reconciler)`` against a database that exists and is migrated."""
    from coinpurse.core.db import DatabaseNotReady, check_ready, create_engine
    from coinpurse.reconcile.service import Reconciler

    async def main() -> T:
        try:
            await check_ready(settings.database_url)
        except DatabaseNotReady as exc:
            click.echo(f"coinpurse: {exc}", err=True)
            sys.exit(1)
        engine = create_engine(settings.database_url, pool_size=3)
        try:
            return await fn(Reconciler(engine, settings, settings))
        finally:
            await engine.dispose()

    return asyncio.run(main())


class TerminalProgress:
    """One line per stage on a terminal: a bar when the total is known, a count if not."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.name = ""
        self.total: int | None = None
        self.done = 0
        self.drawn = 0.0

    def stage(self, name: str, total: int | None) -> None:
        self._draw(force=True, end=bool(self.name))
        self.name, self.total, self.done = name, total, 0
        self._draw(force=True)

    def advance(self, n: int) -> None:
        self.done += n
        self._draw()

    def close(self) -> None:
        if self.name:
            self._draw(force=True, end=True)

    def _draw(self, force: bool = False, end: bool = False) -> None:
        if not self.name or (not force and time.monotonic() - self.drawn < 0.1):
            return
        self.drawn = time.monotonic()
        if self.total:
            filled = min(30, 30 * self.done // self.total)
            line = (f"{self.name:<14} [{'#' * filled}{'.' * (30 - filled)}] "
                    f"{self.done:,}/{self.total:,}")
        else:
            line = f"{self.name:<14} {self.done:,}"
        self.out.write("\r" + line + ("\n" if end else ""))
        self.out.flush()


def _progress(as_json: bool) -> TerminalProgress | None:
    return None if as_json or not sys.stderr.isatty() else TerminalProgress(sys.stderr)


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]])
            for r in rows]


_ERR: list[bool] = [False]


@contextlib.contextmanager
def _to_stderr() -> Iterator[None]:
    _ERR[0] = True
    try:
        yield
    finally:
        _ERR[0] = False


def _echo(line: str) -> None:
    click.echo(line, err=_ERR[0])


def _summary(detail: Any, seconds: float) -> None:
    run = detail.run
    _echo(f"reconciliation {run.id}: {run.kind}, {run.mode}, {run.status.upper()} "
               f"in {seconds:.1f} s")
    ordered = sorted(run.counts.items(), key=lambda kv: (
        COUNT_ORDER.index(kv[0]) if kv[0] in COUNT_ORDER else len(COUNT_ORDER), kv[0]))
    counts = ", ".join(f"{k} {v:,}" for k, v in ordered) or "nothing changed"
    rows = [("checked", counts)]
    through = (run.scope.get("through") or {}).get("seal_sequence")
    first = ((run.scope.get("since") or {}).get("seal_sequence") or 0) + 1
    if through is not None:
        rows.append(("seals", f"{first:,} to {through:,}" if first <= through
                     else f"none new (the chain's head is {through:,})"))
    if run.scope.get("period_from"):
        rows.append(("period", f"{run.scope['period_from']} to {run.scope['period_to']}"))
    rows.append(("discrepancies", f"{run.discrepancy_count:,}"))
    if run.error:
        rows.append(("error", run.error))
    for line in _table(rows):
        _echo("  " + line)
    if detail.discrepancies:
        _echo("")
        shown = [("CHECK", "SUBJECT", "EXPECTED", "ACTUAL", "DETAIL")] + [
            (d.check, d.subject, _text(d.expected), _text(d.actual), d.detail)
            for d in detail.discrepancies[:SHOWN_MAX]]
        for line in _table(shown):
            _echo("  " + line)
        if run.discrepancy_count > SHOWN_MAX:
            _echo(f"  ... and {run.discrepancy_count - SHOWN_MAX:,} more: "
                       f"GET /admin/v1/reconciliations/{run.id}")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _exit_code(status: str) -> int:
    return {"passed": 0, "failed": 1}.get(status, 3)


def _detail_json(detail: Any) -> dict[str, Any]:
    from coinpurse.reconcile.schemas import ReconciliationDetailOut

    return ReconciliationDetailOut.detail(detail).answer()


@click.command("reconcile")
@click.option("--full", is_flag=True, help="Check everything, not only what changed since "
              "the last clean run.")
@click.option("--json", "as_json", is_flag=True, help="Print the run and its discrepancies "
              "as JSON.")
@click.option("--provider", type=click.Choice(["stripe", "razorpay"]),
              help="Compare this provider's successful payments with the paid orders.")
@click.option("--from", "period_from", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="--provider: the first UTC day (default: yesterday).")
@click.option("--to", "period_to", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="--provider: the last UTC day, included (default: --from).")
def reconcile(full: bool, as_json: bool, provider: str | None, period_from: datetime | None,
              period_to: datetime | None) -> None:
    """Reconcile the books: balances, entries, holds, top-up orders, withdrawals, shop
    orders, the hash chain; or, with --provider, a provider's statement. The run is stored (GET
    /admin/v1/reconciliations). Exit 0 passed, 1 discrepancies, 3 could not finish."""
    from coinpurse.core.errors import CoinpurseError
    from coinpurse.reconcile.schemas import check_period
    from coinpurse.reconcile.service import Period, Reconciler

    settings = _settings()
    period = None
    if provider is None and (period_from or period_to):
        raise click.UsageError("--from and --to go with --provider")
    if provider is not None:
        if full:
            raise click.UsageError("--full is for the books, not a provider's statement")
        first = period_from.date() if period_from else date.fromordinal(
            datetime.now(UTC).date().toordinal() - 1)
        last = period_to.date() if period_to else first
        try:
            check_period(first, last)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        period = Period.of_days(first, last)
    progress = _progress(as_json)

    async def run(rec: Reconciler) -> Any:
        try:
            if provider is not None:
                rec.check_provider(provider)
            started = await rec.begin("provider" if provider else "ledger",
                                      mode="period" if provider else
                                      ("full" if full else "incremental"),
                                      trigger="cli", provider=provider, period=period)
        except CoinpurseError as exc:
            click.echo(f"coinpurse: {exc.detail}", err=True)
            sys.exit(2 if exc.status < 500 and exc.code != "reconciliation_running" else 3)
        try:
            await rec.execute(started, progress=progress)
        except Exception as exc:  # stored on the run; its status says what happened
            click.echo(f"coinpurse: {getattr(exc, 'detail', None) or type(exc).__name__}",
                       err=True)
        return await rec.get(started.id)

    began = time.monotonic()
    detail = _with_reconciler(settings, run)
    if progress is not None:
        progress.close()
    if as_json:
        click.echo(json.dumps(_detail_json(detail)))
    else:
        _summary(detail, time.monotonic() - began)
    sys.exit(_exit_code(detail.run.status))


@click.command("verify")
@click.option("--full", is_flag=True, help="From the first seal (default: from where the "
              "last clean verification stopped).")
@click.option("--from-sequence", type=click.IntRange(1), help="From this seal, trusting the "
              "hash it follows (history archived before it).")
@click.option("--expect", metavar="SEQUENCE:HASH", help="A head exported earlier: the chain "
              "must still reach this hash at this sequence (implies a walk from the start).")
@click.option("--head", "show_head", is_flag=True, help="Print the chain's head (sequence "
              "and hash) once verified, to store elsewhere.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(full: bool, from_sequence: int | None, expect: str | None, show_head: bool,
           as_json: bool) -> None:
    """Walk the ledger's hash chain, recomputing every seal from the tables, and report the
    first break (an edited, deleted, inserted or reordered row) and any transaction the
    ledger did not write. Exit 0 intact, 1 broken, 3 could not finish."""
    from coinpurse.reconcile.service import Anchor, Reconciler

    settings = _settings()
    anchor = None
    if expect is not None:
        match = EXPECT_RE.match(expect.strip().lower())
        if match is None:
            raise click.UsageError("--expect takes SEQUENCE:HASH as printed by --head, e.g. "
                                   "1234:<64 hex digits>")
        anchor = Anchor(int(match.group(1)), match.group(2))
    if sum(map(bool, (full, from_sequence, anchor))) > 1:
        raise click.UsageError("--full, --from-sequence and --expect are alternatives")
    progress = _progress(as_json)

    async def run(rec: Reconciler) -> Any:
        started = await rec.begin("chain", mode="full" if full or anchor else "incremental",
                                  trigger="cli")
        try:
            await rec.execute(started, progress=progress, anchor=anchor,
                              from_sequence=from_sequence)
        except Exception as exc:  # stored on the run; its status says what happened
            click.echo(f"coinpurse: {getattr(exc, 'detail', None) or type(exc).__name__}",
                       err=True)
        return await rec.get(started.id)

    began = time.monotonic()
    detail = _with_reconciler(settings, run)
    if progress is not None:
        progress.close()
    passed = detail.run.status == "passed"
    through = detail.run.scope.get("through") or {}
    head = {"sequence": through.get("seal_sequence"), "hash": through.get("seal_hash"),
            "verified_at": through.get("at")} if passed else None
    if as_json:
        click.echo(json.dumps({**_detail_json(detail), "head": head}))
    elif show_head:
        # The head alone on standard output (`coinpurse verify --head > head.txt`), in the
        # form --expect takes; the summary on standard error.
        with _to_stderr():
            _summary(detail, time.monotonic() - began)
        if head is not None:
            click.echo(f"{head['sequence']}:{head['hash']}")
    else:
        _summary(detail, time.monotonic() - began)
    sys.exit(_exit_code(detail.run.status))
