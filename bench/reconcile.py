"""Reconciliation at scale: how long sealing, a full reconciliation, a full verification and
an incremental run take over a ledger of 100,000 transactions.

Run it with ``bench/reconcile`` (which sets everything up); see bench/README.md. For each
database (PostgreSQL with fsync on, as in ``bench/run``; SQLite in a temporary folder):

1. ``--transactions`` transactions (default 100,000) posted through the ledger itself, with
   its event hook, in batches of 1,000: one credit per user for 10,000 users, then one- and
   two-posting transfers between random users;
2. the sealer seals them all (timed: seals per second);
3. a full reconciliation (every check, the chain included), then a full verification;
4. ``--increment`` more transactions (default 1,000), sealed, then an incremental run:
   it must check only those.

Every run must pass; the figures go to bench/results/reconcile-latest.md (and .json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.pgserver

from coinpurse.config import Settings  # noqa: E402
from coinpurse.core.db import create_engine, migrate  # noqa: E402
from coinpurse.events.service import Outbox, Wakeup  # noqa: E402
from coinpurse.ledger.idempotency import StoredResponse  # noqa: E402
from coinpurse.ledger.model import Outcome, Posting, TransactionSpec  # noqa: E402
from coinpurse.ledger.service import Ledger  # noqa: E402
from coinpurse.reconcile.sealer import Sealer  # noqa: E402
from coinpurse.reconcile.service import Reconciler  # noqa: E402

RESULTS = ROOT / "bench" / "results"
USERS = 10_000
BATCH = 1000
PG_SETTINGS = {"max_connections": "300", "shared_buffers": "512MB", "max_wal_size": "4GB",
               "checkpoint_timeout": "30min"}
T = TypeVar("T")


def log(msg: str) -> None:
    print(f"[reconcile-bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def timed(fn: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await fn()
    return result, time.perf_counter() - started


def _render(_outcomes: list[Outcome]) -> StoredResponse:
    return StoredResponse(200, b"{}")


def _specs(n: int, rng: random.Random, first: int) -> list[TransactionSpec]:
    specs = []
    for i in range(first, first + n):
        if i < USERS:
            postings: tuple[Posting, ...] = (
                Posting("world", f"user:{i}", 1_000_000, "points"),)
        else:
            a, b, c = rng.sample(range(USERS), 3)
            postings = (Posting(f"user:{a}", f"user:{b}", rng.randint(1, 100), "points"),)
            if i % 2:
                postings += (Posting(f"user:{a}", f"user:{c}", rng.randint(1, 100), "points"),)
        specs.append(TransactionSpec(kind="transfer", postings=postings, description="bench",
                                     reference_id=f"b{i}", initiator="service:bench",
                                     service="bench"))
    return specs


async def post(settings: Settings, n: int, first: int, rng: random.Random) -> None:
    db = create_engine(settings.database_url, pool_size=4)
    ledger = Ledger(db, may_go_negative=settings.may_go_negative, idempotency_ttl_s=3600,
                    batch_max=BATCH)
    ledger.add_hook(Outbox(Wakeup()))
    await ledger.start()
    try:
        for start in range(first, first + n, BATCH):
            specs = _specs(min(BATCH, first + n - start), rng, start)
            await ledger.submit(specs, render=_render)
    finally:
        await ledger.stop()
        await db.dispose()


async def run_kind(rec: Reconciler, kind: str, mode: str) -> dict[str, Any]:
    started = await rec.begin(kind, mode=mode, trigger="bench")
    done = await rec.execute(started)
    assert done.status == "passed", (await rec.get(started.id)).discrepancies[:5]
    return {"mode": done.mode, "counts": done.counts}


async def measure(url: str, transactions: int, increment: int) -> dict[str, Any]:
    settings = Settings(database_url=url, currencies="points:0",  # type: ignore[arg-type]
                        seal_interval_s=0)
    await migrate(url)
    rng = random.Random(7)
    _, load_s = await timed(lambda: post(settings, transactions, 0, rng))
    log(f"posted {transactions:,} transactions in {load_s:.1f} s")
    db = create_engine(url, pool_size=4)
    out: dict[str, Any] = {"transactions": transactions, "load_s": round(load_s, 2)}
    try:
        sealed, seal_s = await timed(lambda: Sealer(db).seal_pending())
        assert sealed == transactions, sealed
        out["seal_s"] = round(seal_s, 2)
        log(f"sealed {sealed:,} in {seal_s:.2f} s ({sealed / seal_s:,.0f}/s)")
        rec = Reconciler(db, settings, settings)
        full, full_s = await timed(lambda: run_kind(rec, "ledger", "full"))
        assert full["counts"]["transactions"] == transactions, full
        out["reconcile_full_s"] = round(full_s, 2)
        out["reconcile_full_counts"] = full["counts"]
        log(f"full reconciliation in {full_s:.2f} s: {full['counts']}")
        _, verify_s = await timed(lambda: run_kind(rec, "chain", "full"))
        out["verify_full_s"] = round(verify_s, 2)
        log(f"full verification in {verify_s:.2f} s")
        await post(settings, increment, transactions, rng)
        await Sealer(db).seal_pending()
        inc, inc_s = await timed(lambda: run_kind(rec, "ledger", "incremental"))
        assert inc["mode"] == "incremental" and inc["counts"]["transactions"] == increment, inc
        out["increment"] = increment
        out["reconcile_incremental_s"] = round(inc_s, 2)
        out["reconcile_incremental_counts"] = inc["counts"]
        log(f"incremental run after {increment:,} more in {inc_s:.2f} s: {inc['counts']}")
    finally:
        await db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--increment", type=int, default=1000)
    parser.add_argument("--databases", default="postgresql,sqlite")
    args = parser.parse_args()
    results: dict[str, Any] = {"at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "databases": {}}
    with tempfile.TemporaryDirectory(prefix="coinpurse-reconcile-bench-") as tmp:
        for name in args.databases.split(","):
            if name == "sqlite":
                url = f"sqlite:///{tmp}/bench.db"
                results["databases"][name] = asyncio.run(
                    measure(url, args.transactions, args.increment))
            elif name == "postgresql":
                from tests.pgserver import PgServer

                pg = PgServer(durable=True, settings=PG_SETTINGS)
                pg.start()
                try:
                    url = pg.createdb("bench")
                    results["databases"][name] = asyncio.run(
                        measure(url, args.transactions, args.increment))
                finally:
                    pg.stop()
            else:
                parser.error(f"unknown database {name!r}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reconcile-latest.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# Reconciliation benchmark — {results['at']}", "",
             "| database | transactions | seal | full reconcile | full verify | "
             "incremental (after N more) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results["databases"].items():
        lines.append(f"| {name} | {r['transactions']:,} | {r['seal_s']:.1f} s | "
                     f"{r['reconcile_full_s']:.1f} s | {r['verify_full_s']:.1f} s | "
                     f"{r['reconcile_incremental_s']:.2f} s ({r['increment']:,}) |")
    (RESULTS / "reconcile-latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
