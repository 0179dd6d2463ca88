"""Apply transactions to locked account states, in memory.

The engine decides; the store only writes what it decided. A transaction applies whole or
not at all; a refused one leaves the states exactly as they were, so the rest of the batch
goes on. Postings apply in order, so a transaction may pass money through an account.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from datetime import datetime

from coinpurse.ledger.model import (
    AMOUNT_MAX,
    BALANCE_MIN,
    AccountKey,
    AccountState,
    Balance,
    CaptureHold,
    EntryRecord,
    HoldOutcome,
    HoldState,
    Operation,
    Outcome,
    PlaceHold,
    Posting,
    Rejection,
    ReleaseHold,
    Transaction,
    TransactionSpec,
    touch,
)


def apply_transaction(
    spec: TransactionSpec,
    accounts: Mapping[AccountKey, AccountState],
    *,
    tx_id: str,
    now: datetime,
    idempotency_key: str | None = None,
) -> Transaction | Rejection:
    """Post one transaction or return why not; ``accounts`` change only when it posts."""
    pending: dict[AccountKey, int] = {}
    entries: list[EntryRecord] = []
    for index, p in enumerate(spec.postings):
        if p.source == p.destination or p.amount <= 0:
            # Validation refuses these first; the engine must never count them anyway.
            return Rejection("invalid_posting",
                             f"posting {index} must move a positive amount between two "
                             "different accounts", index)
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
        assert state.overdraft or state.balance >= state.held, key
        balances[key] = touch(state)
    return Transaction(
        id=tx_id,
        spec=spec,
        created_at=now,
        idempotency_key=idempotency_key,
        entries=tuple(entries),
        balances_after=balances,
    )


def place_hold(
    op: PlaceHold, accounts: Mapping[AccountKey, AccountState],
    holds: MutableMapping[str, HoldState], *, now: datetime,
) -> Outcome:
    account = accounts[(op.address, op.currency)]
    if not account.overdraft and account.available < op.amount:
        return Rejection(
            "insufficient_funds",
            f"{op.address} has {max(account.available, 0)} {op.currency} available, "
            f"{op.amount} needed",
        )
    if account.held + op.amount > AMOUNT_MAX:
        return Rejection("balance_overflow", "the held total would leave the 64-bit range")
    account.held += op.amount
    after = touch(account)
    hold = HoldState(
        id=op.hold_id, address=op.address, currency=op.currency, amount=op.amount,
        destination=op.destination, status="held", service=op.service, kind=op.kind,
        description=op.description, reference_id=op.reference_id, metadata=op.metadata,
        created_at=now, expires_at=op.expires_at, is_new=True, dirty=True,
    )
    holds[hold.id] = hold
    return HoldOutcome(dataclasses.replace(hold), after)


def _open_hold(
    hold_id: str, service: str | None, holds: Mapping[str, HoldState], now: datetime
) -> HoldState | Rejection:
    hold = holds.get(hold_id)
    if hold is None or (service is not None and hold.service != service):
        return Rejection("hold_not_found", f"no hold {hold_id!r}")
    if hold.status != "held":
        return Rejection("hold_not_open", f"the hold is {hold.status}")
    return hold


def capture_hold(
    op: CaptureHold, accounts: Mapping[AccountKey, AccountState],
    holds: Mapping[str, HoldState], *, tx_id: str, now: datetime,
    idempotency_key: str | None,
) -> Outcome:
    hold = _open_hold(op.hold_id, op.service, holds, now)
    if isinstance(hold, Rejection):
        return hold
    if now >= hold.expires_at:
        return Rejection("hold_not_open", "the hold has expired")
    amount = hold.amount if op.amount is None else op.amount
    if amount > hold.amount:
        return Rejection("capture_exceeds_hold",
                         f"{amount} is more than the {hold.amount} held")
    if (hold.destination, hold.currency) not in accounts:  # placed in this very batch
        return Rejection("hold_not_found", f"no hold {hold.id!r}")
    account = accounts[(hold.address, hold.currency)]
    account.held -= hold.amount
    spec = TransactionSpec(
        kind=hold.kind,
        postings=(Posting(hold.address, hold.destination, amount, hold.currency),),
        description=hold.description,
        reference_id=hold.reference_id,
        initiator=f"service:{hold.service}",
        metadata={**hold.metadata, "hold_id": hold.id},
        service=hold.service,
    )
    tx = apply_transaction(spec, accounts, tx_id=tx_id, now=now,
                           idempotency_key=idempotency_key)
    if isinstance(tx, Rejection):  # cannot happen: the amount was reserved
        account.held += hold.amount
        return tx
    # The capture's transaction counted the change of the account (held and balance at once).
    hold.status, hold.captured_amount, hold.transaction_id = "captured", amount, tx.id
    hold.closed_at, hold.dirty = now, True
    return HoldOutcome(dataclasses.replace(hold), tx.balances_after[account.key], tx)


def release_hold(
    op: ReleaseHold, accounts: Mapping[AccountKey, AccountState],
    holds: Mapping[str, HoldState], *, now: datetime,
) -> Outcome:
    hold = _open_hold(op.hold_id, op.service, holds, now)
    if isinstance(hold, Rejection):
        return hold
    account = accounts[(hold.address, hold.currency)]
    account.held -= hold.amount
    assert account.held >= 0
    after = touch(account)
    hold.status, hold.closed_at, hold.dirty = op.status, now, True
    return HoldOutcome(dataclasses.replace(hold), after)


def apply_operation(
    op: Operation, accounts: Mapping[AccountKey, AccountState],
    holds: MutableMapping[str, HoldState], *, new_id: Callable[[], str], now: datetime,
    idempotency_key: str | None,
) -> Outcome:
    if isinstance(op, TransactionSpec):
        return apply_transaction(op, accounts, tx_id=new_id(), now=now,
                                 idempotency_key=idempotency_key)
    if isinstance(op, PlaceHold):
        return place_hold(op, accounts, holds, now=now)
    if isinstance(op, CaptureHold):
        return capture_hold(op, accounts, holds, tx_id=new_id(), now=now,
                            idempotency_key=idempotency_key)
    return release_hold(op, accounts, holds, now=now)


def apply_group(
    ops: Iterable[Operation],
    accounts: MutableMapping[AccountKey, AccountState],
    *,
    atomic: bool,
    new_id: Callable[[], str],
    now: datetime,
    idempotency_key: str | None = None,
    holds: MutableMapping[str, HoldState] | None = None,
) -> list[Outcome]:
    """Apply a caller's operations; with ``atomic`` one refusal undoes the whole group."""
    ops = list(ops)
    holds = {} if holds is None else holds
    account_snapshot: dict[AccountKey, AccountState] = {}
    hold_snapshot: dict[str, HoldState | None] = {}
    if atomic:
        account_snapshot = {k: dataclasses.replace(v) for k, v in accounts.items()}
        hold_snapshot = {k: dataclasses.replace(v) for k, v in holds.items()}
    outcomes: list[Outcome] = []
    for op in ops:
        outcome = apply_operation(op, accounts, holds, new_id=new_id, now=now,
                                  idempotency_key=idempotency_key)
        outcomes.append(outcome)
        if atomic and isinstance(outcome, Rejection):
            for key, saved in account_snapshot.items():
                accounts[key] = saved
            for hold_id in list(holds):
                saved_hold = hold_snapshot.get(hold_id)
                if saved_hold is None:
                    del holds[hold_id]
                else:
                    holds[hold_id] = saved_hold
            failed = len(outcomes) - 1
            return [
                outcomes[failed] if i == failed else Rejection(
                    "batch_atomic_failed",
                    f"not applied because operation {failed} was refused ({outcome.code})",
                )
                for i in range(len(ops))
            ]
    return outcomes


def _assert_balanced(entries: list[EntryRecord]) -> None:
    """Debits equal credits per currency: the invariant the whole ledger rests on."""
    totals: dict[str, int] = {}
    for e in entries:
        totals[e.currency] = totals.get(e.currency, 0) + e.amount
    assert all(v == 0 for v in totals.values()), totals
