"""Reconciliation: check every balance against its entries and the ledger's invariants.

Run by ``coinpurse check`` and by the benchmark after each scenario. Read-only; on a busy
PostgreSQL server it reads one consistent snapshot (REPEATABLE READ).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_CHECKS: dict[str, str] = {
    # The sum of all balances of a currency is zero: money is only moved, never made.
    "nonzero_currency_sum":
        "SELECT currency, SUM(balance) AS total FROM accounts GROUP BY currency "
        "HAVING SUM(balance) <> 0",
    # User wallets never go below zero, nor below what is held.
    "negative_user_balance":
        "SELECT address, currency, balance, held FROM accounts "
        "WHERE address LIKE 'user:%' AND (balance < 0 OR balance < held)",
    # A balance equals the sum of its entries (with those of archived months, if any).
    "balance_not_sum_of_entries":
        "SELECT a.address, a.currency, a.balance, COALESCE(e.total, 0) AS entries_total "
        "FROM accounts a LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM ("
        "SELECT account_id, amount FROM entries UNION ALL "
        "SELECT account_id, total FROM archived_entry_totals) x "
        "GROUP BY account_id) e ON e.account_id = a.id "
        "WHERE a.balance <> COALESCE(e.total, 0)",
    # Every entry's transaction exists (on PostgreSQL no foreign key says so: the history
    # tables are partitioned by month, and a transaction's entries share its month).
    "entry_without_transaction":
        "SELECT e.id, e.transaction_id FROM entries e WHERE NOT EXISTS (SELECT 1 FROM "
        "transactions t WHERE t.id = e.transaction_id AND t.created_at = e.created_at)",
    # Each transaction's entries sum to zero per currency (double entry).
    "unbalanced_transaction":
        "SELECT e.transaction_id, a.currency, SUM(e.amount) AS total FROM entries e "
        "JOIN accounts a ON a.id = e.account_id GROUP BY e.transaction_id, a.currency "
        "HAVING SUM(e.amount) <> 0",
    # The newest entry of an account carries the account's balance.
    "last_balance_after_mismatch":
        "SELECT a.address, a.currency, a.balance, e.balance_after FROM accounts a "
        "JOIN entries e ON e.id = (SELECT MAX(id) FROM entries WHERE account_id = a.id) "
        "WHERE e.balance_after <> a.balance",
}


@dataclass
class Report:
    accounts: int = 0
    transactions: int = 0
    entries: int = 0
    problems: dict[str, list[dict[str, object]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


async def check(conn: AsyncConnection, sample_max: int = 20) -> Report:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    report = Report()
    report.accounts = (await conn.execute(text("SELECT COUNT(*) FROM accounts"))).scalar_one()
    report.transactions = (
        await conn.execute(text("SELECT COUNT(*) FROM transactions"))
    ).scalar_one()
    report.entries = (await conn.execute(text("SELECT COUNT(*) FROM entries"))).scalar_one()
    for name, sql in _CHECKS.items():
        rows = (await conn.execute(text(f"{sql} LIMIT {sample_max}"))).mappings().all()
        if rows:
            report.problems[name] = [dict(r) for r in rows]
    return report
