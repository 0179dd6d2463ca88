"""Ledger invariants computed straight from the tables, independently of coinpurse.reconcile."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from coinpurse.core.db import create_engine


async def _fetch(url: str) -> dict[str, Any]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            sums = (await conn.execute(text(
                "SELECT currency, SUM(balance) FROM accounts GROUP BY currency"))).all()
            negative = (await conn.execute(text(
                "SELECT address, currency, balance FROM accounts "
                "WHERE address LIKE 'user:%' AND balance < 0"))).all()
            mismatched = (await conn.execute(text(
                "SELECT a.address, a.balance, (SELECT COALESCE(SUM(e.amount), 0) FROM entries e "
                "WHERE e.account_id = a.id) + (SELECT COALESCE(SUM(z.total), 0) FROM "
                "archived_entry_totals z WHERE z.account_id = a.id) AS s "
                "FROM accounts a"))).all()
            tx_count = (await conn.execute(text("SELECT COUNT(*) FROM transactions"))).scalar_one()
            tx_ids = {r[0] for r in (await conn.execute(text("SELECT id FROM transactions"))).all()}
    finally:
        await engine.dispose()
    return {
        "sums": {c: int(s) for c, s in sums},
        "negative": list(negative),
        "mismatched": [(a, b, int(s)) for a, b, s in mismatched if b != s],
        "tx_count": int(tx_count),
        "tx_ids": tx_ids,
    }


def ledger_state(url: str) -> dict[str, Any]:
    return asyncio.run(_fetch(url))


async def ledger_state_async(url: str) -> dict[str, Any]:
    return await _fetch(url)


def assert_invariants(state: dict[str, Any]) -> None:
    assert all(v == 0 for v in state["sums"].values()), state["sums"]
    assert state["negative"] == [], state["negative"]
    assert state["mismatched"] == [], state["mismatched"]
