"""Unit tests of the ledger engine: in-memory account states, no database."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import pytest

from coinpurse.ledger.engine import apply_group, apply_transaction
from coinpurse.ledger.model import (
    AMOUNT_MAX,
    BALANCE_MIN,
    AccountKey,
    AccountState,
    Balance,
    EntryRecord,
    Posting,
    Rejection,
    Transaction,
    TransactionSpec,
)

NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_accounts(*specs: tuple[str, str, int] | tuple[str, str, int, int]
                  ) -> dict[AccountKey, AccountState]:
    """(address, currency, balance[, held]) -> states; overdraft for non-user addresses."""
    accounts: dict[AccountKey, AccountState] = {}
    for i, spec in enumerate(specs, start=1):
        address, currency, balance = spec[0], spec[1], spec[2]
        held = spec[3] if len(spec) == 4 else 0
        accounts[(address, currency)] = AccountState(
            id=i, address=address, currency=currency, balance=balance, held=held,
            overdraft=not address.startswith("user:"),
        )
    return accounts


def tx(*postings: tuple[str, str, int, str], kind: str = "transfer") -> TransactionSpec:
    return TransactionSpec(
        kind=kind,
        postings=tuple(Posting(s, d, a, c) for s, d, a, c in postings),
        description="test",
        reference_id="ref",
        initiator="service:games",
        service="games",
    )


def snapshot(accounts: dict[AccountKey, AccountState]) -> dict[AccountKey, tuple[int, int, bool]]:
    return {k: (s.balance, s.held, s.dirty) for k, s in accounts.items()}


def ids() -> itertools.count[int]:
    return itertools.count(1)


def id_factory() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"tx{next(counter)}"


def assert_zero_sum(entries: Iterable[EntryRecord]) -> None:
    totals: dict[str, int] = {}
    for e in entries:
        totals[e.currency] = totals.get(e.currency, 0) + e.amount
    assert totals, "no entries"
    assert all(v == 0 for v in totals.values()), totals


# --- apply_transaction -------------------------------------------------------------------


def test_single_posting_moves_money_and_records_entries() -> None:
    accounts = make_accounts(("service:games", "points", 0), ("user:1", "points", 0))
    out = apply_transaction(tx(("service:games", "user:1", 100, "points")), accounts,
                            tx_id="t1", now=NOW, idempotency_key="k1")
    assert isinstance(out, Transaction)
    assert out.id == "t1"
    assert out.created_at == NOW
    assert out.idempotency_key == "k1"
    assert accounts[("service:games", "points")].balance == -100
    assert accounts[("user:1", "points")].balance == 100
    assert accounts[("service:games", "points")].dirty
    assert accounts[("user:1", "points")].dirty
    assert [(e.address, e.amount, e.balance_after, e.posting_index, e.account_id)
            for e in out.entries] == [
        ("service:games", -100, -100, 0, 1),
        ("user:1", 100, 100, 0, 2),
    ]
    assert out.balances_after == {
        ("service:games", "points"): Balance(-100, 0, version=1),
        ("user:1", "points"): Balance(100, 0, version=1),
    }
    assert_zero_sum(out.entries)


def test_entries_are_signed_per_side() -> None:
    accounts = make_accounts(("user:1", "points", 500), ("user:2", "points", 7))
    out = apply_transaction(tx(("user:1", "user:2", 200, "points")), accounts,
                            tx_id="t", now=NOW)
    assert isinstance(out, Transaction)
    src, dst = out.entries
    assert src.address == "user:1" and src.amount == -200 and src.balance_after == 300
    assert dst.address == "user:2" and dst.amount == 200 and dst.balance_after == 207
    assert accounts[("user:1", "points")].balance == 300
    assert accounts[("user:2", "points")].balance == 207


def test_insufficient_funds_leaves_states_untouched() -> None:
    accounts = make_accounts(("user:1", "points", 50), ("user:2", "points", 10))
    before = snapshot(accounts)
    out = apply_transaction(tx(("user:1", "user:2", 51, "points")), accounts,
                            tx_id="t", now=NOW)
    assert isinstance(out, Rejection)
    assert out.code == "insufficient_funds"
    assert out.posting_index == 0
    assert "50" in out.detail and "51" in out.detail
    assert snapshot(accounts) == before


def test_exact_balance_can_be_spent() -> None:
    accounts = make_accounts(("user:1", "points", 50), ("user:2", "points", 0))
    out = apply_transaction(tx(("user:1", "user:2", 50, "points")), accounts,
                            tx_id="t", now=NOW)
    assert isinstance(out, Transaction)
    assert accounts[("user:1", "points")].balance == 0
    assert accounts[("user:2", "points")].balance == 50


def test_held_funds_are_not_available() -> None:
    accounts = make_accounts(("user:1", "points", 100, 60), ("user:2", "points", 0))
    before = snapshot(accounts)
    out = apply_transaction(tx(("user:1", "user:2", 41, "points")), accounts,
                            tx_id="t", now=NOW)
    assert isinstance(out, Rejection) and out.code == "insufficient_funds"
    assert "40" in out.detail
    assert snapshot(accounts) == before
    ok = apply_transaction(tx(("user:1", "user:2", 40, "points")), accounts,
                           tx_id="t2", now=NOW)
    assert isinstance(ok, Transaction)
    assert ok.balances_after[("user:1", "points")] == Balance(60, 60, version=1)


def test_failing_second_posting_undoes_the_first() -> None:
    accounts = make_accounts(("user:1", "points", 100), ("user:2", "points", 0),
                             ("user:3", "points", 0))
    before = snapshot(accounts)
    out = apply_transaction(
        tx(("user:1", "user:2", 60, "points"), ("user:1", "user:3", 60, "points")),
        accounts, tx_id="t", now=NOW,
    )
    assert isinstance(out, Rejection)
    assert out.code == "insufficient_funds"
    assert out.posting_index == 1
    assert "40" in out.detail
    assert snapshot(accounts) == before


def test_overdraft_account_may_go_negative() -> None:
    accounts = make_accounts(("world", "usdt", 0), ("provider:stripe", "usdt", 5),
                             ("user:1", "usdt", 0))
    out = apply_transaction(
        tx(("world", "user:1", 1_000, "usdt"), ("provider:stripe", "user:1", 10, "usdt")),
        accounts, tx_id="t", now=NOW,
    )
    assert isinstance(out, Transaction)
    assert accounts[("world", "usdt")].balance == -1_000
    assert accounts[("provider:stripe", "usdt")].balance == -5
    assert accounts[("user:1", "usdt")].balance == 1_010
    assert_zero_sum(out.entries)


def test_user_account_may_not_go_negative_even_by_one() -> None:
    accounts = make_accounts(("user:1", "points", 0), ("service:games", "points", 0))
    before = snapshot(accounts)
    out = apply_transaction(tx(("user:1", "service:games", 1, "points")), accounts,
                            tx_id="t", now=NOW)
    assert isinstance(out, Rejection) and out.code == "insufficient_funds"
    assert "0 points available" in out.detail
    assert snapshot(accounts) == before


def test_non_overdraft_flag_is_what_counts() -> None:
    """A system account configured without overdraft is refused like a user."""
    accounts = make_accounts(("platform:fees", "points", 3), ("user:1", "points", 0))
    accounts[("platform:fees", "points")].overdraft = False
    out = apply_transaction(tx(("platform:fees", "user:1", 4, "points")), accounts,
                            tx_id="t", now=NOW)
    assert isinstance(out, Rejection) and out.code == "insufficient_funds"
    assert accounts[("platform:fees", "points")].balance == 3


def test_sequential_postings_pass_through_an_intermediate_account() -> None:
    # user:2 starts empty; it receives 100 then forwards 90 within the same transaction.
    accounts = make_accounts(("user:1", "points", 100), ("user:2", "points", 0),
                             ("agency:7", "points", 0))
    out = apply_transaction(
        tx(("user:1", "user:2", 100, "points"), ("user:2", "agency:7", 90, "points")),
        accounts, tx_id="t", now=NOW,
    )
    assert isinstance(out, Transaction)
    assert accounts[("user:1", "points")].balance == 0
    assert accounts[("user:2", "points")].balance == 10
    assert accounts[("agency:7", "points")].balance == 90
    assert [(e.address, e.posting_index, e.amount, e.balance_after) for e in out.entries] == [
        ("user:1", 0, -100, 0),
        ("user:2", 0, 100, 100),
        ("user:2", 1, -90, 10),
        ("agency:7", 1, 90, 90),
    ]
    # user:2 is touched by two postings of one transaction: one version step.
    assert out.balances_after[("user:2", "points")] == Balance(10, 0, version=1)
    assert_zero_sum(out.entries)


def test_postings_apply_in_order_so_reversed_order_is_refused() -> None:
    accounts = make_accounts(("user:1", "points", 100), ("user:2", "points", 0),
                             ("agency:7", "points", 0))
    before = snapshot(accounts)
    out = apply_transaction(
        tx(("user:2", "agency:7", 90, "points"), ("user:1", "user:2", 100, "points")),
        accounts, tx_id="t", now=NOW,
    )
    assert isinstance(out, Rejection)
    assert out.code == "insufficient_funds" and out.posting_index == 0
    assert snapshot(accounts) == before


def test_multi_currency_transaction_sums_to_zero_per_currency() -> None:
    accounts = make_accounts(
        ("user:1", "points", 1_000), ("user:1", "usdt", 500), ("user:2", "points", 0),
        ("user:2", "usdt", 0), ("platform:fees", "usdt", 0),
    )
    out = apply_transaction(
        tx(("user:1", "user:2", 700, "points"), ("user:1", "user:2", 450, "usdt"),
           ("user:1", "platform:fees", 50, "usdt")),
        accounts, tx_id="t", now=NOW,
    )
    assert isinstance(out, Transaction)
    assert len(out.entries) == 6
    assert_zero_sum(out.entries)
    assert {e.currency for e in out.entries} == {"points", "usdt"}
    assert accounts[("user:1", "usdt")].balance == 0
    assert accounts[("user:2", "usdt")].balance == 450
    assert accounts[("platform:fees", "usdt")].balance == 50
    assert accounts[("user:2", "points")].balance == 700
    assert accounts[("user:1", "points")].balance == 300
    assert set(out.balances_after) == set(accounts)


def test_currencies_are_separate_accounts() -> None:
    accounts = make_accounts(("user:1", "points", 1_000), ("user:1", "usdt", 0),
                             ("user:2", "usdt", 0))
    before = snapshot(accounts)
    out = apply_transaction(tx(("user:1", "user:2", 1, "usdt")), accounts,
                            tx_id="t", now=NOW)
    assert isinstance(out, Rejection) and out.code == "insufficient_funds"
    assert snapshot(accounts) == before


def test_balance_overflow_on_destination() -> None:
    accounts = make_accounts(("world", "points", 0), ("user:1", "points", AMOUNT_MAX - 5))
    before = snapshot(accounts)
    out = apply_transaction(tx(("world", "user:1", 6, "points")), accounts,
                            tx_id="t", now=NOW)
    assert isinstance(out, Rejection)
    assert out.code == "balance_overflow"
    assert out.posting_index == 0
    assert snapshot(accounts) == before
    ok = apply_transaction(tx(("world", "user:1", 5, "points")), accounts,
                           tx_id="t2", now=NOW)
    assert isinstance(ok, Transaction)
    assert accounts[("user:1", "points")].balance == AMOUNT_MAX == 2**63 - 1


def test_balance_overflow_on_overdraft_source() -> None:
    accounts = make_accounts(("world", "points", BALANCE_MIN + 10), ("user:1", "points", 0))
    before = snapshot(accounts)
    out = apply_transaction(tx(("world", "user:1", 11, "points")), accounts,
                            tx_id="t", now=NOW)
    assert isinstance(out, Rejection) and out.code == "balance_overflow"
    assert snapshot(accounts) == before
    ok = apply_transaction(tx(("world", "user:1", 10, "points")), accounts,
                           tx_id="t2", now=NOW)
    assert isinstance(ok, Transaction)
    assert accounts[("world", "points")].balance == -(2**63)


def test_overflow_in_a_later_posting_undoes_earlier_ones() -> None:
    accounts = make_accounts(("world", "points", 0), ("user:1", "points", 0),
                             ("user:2", "points", AMOUNT_MAX))
    before = snapshot(accounts)
    out = apply_transaction(
        tx(("world", "user:1", 10, "points"), ("user:1", "user:2", 1, "points")),
        accounts, tx_id="t", now=NOW,
    )
    assert isinstance(out, Rejection)
    assert out.code == "balance_overflow" and out.posting_index == 1
    assert snapshot(accounts) == before


def test_insufficient_funds_takes_precedence_over_overflow() -> None:
    accounts = make_accounts(("user:1", "points", 0), ("user:2", "points", AMOUNT_MAX))
    out = apply_transaction(tx(("user:1", "user:2", 1, "points")), accounts,
                            tx_id="t", now=NOW)
    assert isinstance(out, Rejection) and out.code == "insufficient_funds"


# --- apply_group ---------------------------------------------------------------------------


def test_group_non_atomic_applies_the_others() -> None:
    accounts = make_accounts(("user:1", "points", 100), ("user:2", "points", 0),
                             ("user:3", "points", 5))
    specs = [
        tx(("user:1", "user:2", 30, "points")),
        tx(("user:3", "user:2", 6, "points")),  # refused: user:3 has 5
        tx(("user:1", "user:2", 70, "points")),
    ]
    outcomes = apply_group(specs, accounts, atomic=False, new_id=id_factory(), now=NOW)
    assert [type(o) for o in outcomes] == [Transaction, Rejection, Transaction]
    assert isinstance(outcomes[1], Rejection) and outcomes[1].code == "insufficient_funds"
    assert [o.id for o in outcomes if isinstance(o, Transaction)] == ["tx1", "tx3"]
    assert accounts[("user:1", "points")].balance == 0
    assert accounts[("user:2", "points")].balance == 100
    assert accounts[("user:3", "points")].balance == 5
    assert not accounts[("user:3", "points")].dirty


def test_group_atomic_one_refusal_undoes_all() -> None:
    accounts = make_accounts(("user:1", "points", 100), ("user:2", "points", 0),
                             ("user:3", "points", 5), ("world", "points", 0))
    before = snapshot(accounts)
    specs = [
        tx(("user:1", "user:2", 30, "points")),
        tx(("world", "user:3", 1_000, "points")),
        tx(("user:2", "user:3", 31, "points")),  # refused: user:2 has 30 by now
        tx(("user:1", "user:2", 10, "points")),  # never tried
    ]
    outcomes = apply_group(specs, accounts, atomic=True, new_id=id_factory(), now=NOW)
    assert len(outcomes) == 4
    assert all(isinstance(o, Rejection) for o in outcomes)
    codes = [o.code for o in outcomes if isinstance(o, Rejection)]
    assert codes == ["batch_atomic_failed", "batch_atomic_failed", "insufficient_funds",
                     "batch_atomic_failed"]
    first = outcomes[0]
    assert isinstance(first, Rejection)
    # Names the refused one by its index, and why.
    assert re.search(r"\b2\b", first.detail) and "insufficient_funds" in first.detail
    assert snapshot(accounts) == before


def test_group_atomic_restores_dirty_flag_of_accounts_already_dirty() -> None:
    accounts = make_accounts(("user:1", "points", 100), ("user:2", "points", 0))
    accounts[("user:1", "points")].dirty = True  # changed earlier in the same batch
    before = snapshot(accounts)
    outcomes = apply_group(
        [tx(("user:1", "user:2", 10, "points")), tx(("user:2", "user:1", 11, "points"))],
        accounts, atomic=True, new_id=id_factory(), now=NOW,
    )
    assert [o.code for o in outcomes if isinstance(o, Rejection)] == [
        "batch_atomic_failed", "insufficient_funds"]
    assert snapshot(accounts) == before


def test_group_atomic_all_good_applies_all() -> None:
    accounts = make_accounts(("user:1", "points", 100), ("user:2", "points", 0),
                             ("world", "points", 0))
    outcomes = apply_group(
        [tx(("user:1", "user:2", 100, "points")), tx(("user:2", "world", 40, "points")),
         tx(("world", "user:1", 7, "points"))],
        accounts, atomic=True, new_id=id_factory(), now=NOW, idempotency_key="k",
    )
    assert all(isinstance(o, Transaction) for o in outcomes)
    assert [o.id for o in outcomes if isinstance(o, Transaction)] == ["tx1", "tx2", "tx3"]
    assert all(o.idempotency_key == "k" for o in outcomes if isinstance(o, Transaction))
    assert accounts[("user:1", "points")].balance == 7
    assert accounts[("user:2", "points")].balance == 60
    assert accounts[("world", "points")].balance == 33
    assert sum(s.balance for s in accounts.values()) == 100
    every_entry = [e for o in outcomes if isinstance(o, Transaction) for e in o.entries]
    assert_zero_sum(every_entry)


def test_group_atomic_first_refused_gives_others_batch_atomic_failed() -> None:
    accounts = make_accounts(("user:1", "points", 0), ("user:2", "points", 50))
    before = snapshot(accounts)
    outcomes = apply_group(
        [tx(("user:1", "user:2", 1, "points")), tx(("user:2", "user:1", 1, "points"))],
        accounts, atomic=True, new_id=id_factory(), now=NOW,
    )
    assert [o.code for o in outcomes if isinstance(o, Rejection)] == [
        "insufficient_funds", "batch_atomic_failed"]
    assert snapshot(accounts) == before


def test_group_atomic_overflow_refusal() -> None:
    accounts = make_accounts(("world", "points", 0), ("user:1", "points", AMOUNT_MAX - 1))
    before = snapshot(accounts)
    outcomes = apply_group(
        [tx(("world", "user:1", 1, "points")), tx(("world", "user:1", 1, "points"))],
        accounts, atomic=True, new_id=id_factory(), now=NOW,
    )
    assert [o.code for o in outcomes if isinstance(o, Rejection)] == [
        "batch_atomic_failed", "balance_overflow"]
    assert snapshot(accounts) == before


@pytest.mark.parametrize("atomic", [True, False])
def test_group_zero_sum_across_random_transfers(atomic: bool) -> None:
    addresses = ["user:1", "user:2", "user:3", "world", "service:games"]
    accounts = make_accounts(*[(a, c, 0) for a in addresses for c in ("points", "usdt")])
    specs = []
    for i in range(60):
        src = addresses[(i * 7) % len(addresses)]
        dst = addresses[(i * 3 + 1) % len(addresses)]
        if src == dst:
            dst = "world"
        if src == dst:
            dst = "user:1"
        currency = "points" if i % 2 else "usdt"
        specs.append(tx((src, dst, (i * 37) % 500 + 1, currency)))
    outcomes = apply_group(specs, accounts, atomic=atomic, new_id=id_factory(), now=NOW)
    assert len(outcomes) == len(specs)
    for currency in ("points", "usdt"):
        assert sum(s.balance for s in accounts.values() if s.currency == currency) == 0
    for s in accounts.values():
        if s.address.startswith("user:"):
            assert s.balance >= 0
    posted = [o for o in outcomes if isinstance(o, Transaction)]
    if atomic and any(isinstance(o, Rejection) for o in outcomes):
        assert posted == []
        assert all(s.balance == 0 for s in accounts.values())
    else:
        assert posted
        assert_zero_sum([e for o in posted for e in o.entries])
        # The last entry of each account is its final balance.
        last: dict[AccountKey, int] = {}
        for o in posted:
            for e in o.entries:
                last[(e.address, e.currency)] = e.balance_after
        for key, balance in last.items():
            assert accounts[key].balance == balance


def test_group_new_id_called_per_transaction() -> None:
    accounts = make_accounts(("world", "points", 0), ("user:1", "points", 0))
    counter = ids()
    outcomes = apply_group(
        [tx(("world", "user:1", 1, "points")) for _ in range(3)], accounts, atomic=False,
        new_id=lambda: f"id-{next(counter)}", now=NOW,
    )
    assert [o.id for o in outcomes if isinstance(o, Transaction)] == ["id-1", "id-2", "id-3"]
    assert accounts[("user:1", "points")].balance == 3
