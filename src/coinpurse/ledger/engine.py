"""Apply transactions to locked account states, in memory.

The engine decides; the store only writes what it decided. A transaction applies whole or
not at all; a refused one leaves the states exactly as they were, so the rest of the batch
goes on. Postings apply in order, so a transaction may pass money through an account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from datetime import datetime

from coinpurse.ledger.model import (
    AMOUNT_MAX,
    BALANCE_MIN,
    AccountKey,
    AccountState,
    Balance,
    EntryRecord,
    Outcome,
    Rejection,
    Transaction,
    TransactionSpec,
)


def apply_transaction(
    spec: TransactionSpec,
    accounts: Mapping[AccountKey, AccountState],
    *,
    tx_id: str,
    now: datetime,
    idempotency_key: str | None = None,
) -> Outcome:
    """Post one transaction or return why not; ``accounts`` change only when it posts."""
    pending: dict[AccountKey, int] = {}
    entries: list[EntryRecord] = []
    for index, p in enumerate(spec.postings):
        src = accounts[(p.source, p.currency)]
        dst = accounts[(p.destination, p.currency)]
        src_balance = pending.get(src.key, src.balance)
        if not src.overdraft and src_balance - src.held < p.amount:
            return Rejection(
                "insufficient_funds",
                f"{p.source} has {max(src_balance - src.held, 0)} {p.currency} available, "
                f"{p.amount} needed",
                index,
            )
        new_src = src_balance - p.amount
        new_dst = pending.get(dst.key, dst.balance) + p.amount
        if new_src < BALANCE_MIN or new_dst > AMOUNT_MAX:
            return Rejection(
                "balance_overflow",
                f"posting {index} would take a balance outside the 64-bit range",
                index,
            )
        pending[src.key] = new_src
        pending[dst.key] = new_dst
        entries.append(EntryRecord(src.id, p.source, p.currency, index, -p.amount, new_src))
        entries.append(EntryRecord(dst.id, p.destination, p.currency, index, p.amount, new_dst))

    _assert_balanced(entries)
    balances: dict[AccountKey, Balance] = {}
    for key, new_balance in pending.items():
        state = accounts[key]
        state.balance = new_balance
        state.dirty = True
        assert state.overdraft or state.balance >= state.held, key
        balances[key] = Balance(state.balance, state.held)
    return Transaction(
        id=tx_id,
        spec=spec,
        created_at=now,
        idempotency_key=idempotency_key,
        entries=tuple(entries),
        balances_after=balances,
    )


def apply_group(
    specs: Iterable[TransactionSpec],
    accounts: MutableMapping[AccountKey, AccountState],
    *,
    atomic: bool,
    new_id: Callable[[], str],
    now: datetime,
    idempotency_key: str | None = None,
) -> list[Outcome]:
    """Apply a caller's transactions; with ``atomic`` one refusal undoes the whole group."""
    specs = list(specs)
    snapshot: dict[AccountKey, tuple[int, bool]] = {}
    if atomic:
        for spec in specs:
            for key in spec.account_keys():
                state = accounts[key]
                snapshot.setdefault(key, (state.balance, state.dirty))
    outcomes: list[Outcome] = []
    for spec in specs:
        outcome = apply_transaction(
            spec, accounts, tx_id=new_id(), now=now, idempotency_key=idempotency_key
        )
        outcomes.append(outcome)
        if atomic and isinstance(outcome, Rejection):
            for key, (balance, dirty) in snapshot.items():
                accounts[key].balance = balance
                accounts[key].dirty = dirty
            failed = len(outcomes) - 1
            return [
                outcomes[failed] if i == failed else Rejection(
                    "batch_atomic_failed",
                    f"not applied because transfer {failed} was refused "
                    f"({outcome.code})",
                )
                for i in range(len(specs))
            ]
    return outcomes


def _assert_balanced(entries: list[EntryRecord]) -> None:
    """Debits equal credits per currency: the invariant the whole ledger rests on."""
    totals: dict[str, int] = {}
    for e in entries:
        totals[e.currency] = totals.get(e.currency, 0) + e.amount
    assert all(v == 0 for v in totals.values()), totals
