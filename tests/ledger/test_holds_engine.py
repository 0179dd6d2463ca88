"""Hold operations in the engine, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from coinpurse.ledger import engine
from coinpurse.ledger.model import (
    AccountState,
    CaptureHold,
    HoldOutcome,
    HoldState,
    PlaceHold,
    Rejection,
    ReleaseHold,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _accounts() -> dict[tuple[str, str], AccountState]:
    return {
        ("user:u", "points"): AccountState(1, "user:u", "points", 100, 0, False),
        ("service:s", "points"): AccountState(2, "service:s", "points", -100, 0, True),
    }


def _place(amount: int, expires_in_s: int = 60) -> PlaceHold:
    return PlaceHold(hold_id="h1", address="user:u", currency="points", amount=amount,
                     destination="service:s", description="d", reference_id="r",
                     service="s", expires_at=NOW + timedelta(seconds=expires_in_s))


def test_capture_after_expiry_is_refused_even_before_the_sweeper() -> None:
    accounts, holds = _accounts(), {}
    placed = engine.place_hold(_place(50, expires_in_s=1), accounts, holds, now=NOW)
    assert isinstance(placed, HoldOutcome)
    later = NOW + timedelta(seconds=1)
    out = engine.capture_hold(CaptureHold("h1", service="s"), accounts, holds, tx_id="t",
                              now=later, idempotency_key=None)
    assert isinstance(out, Rejection) and out.code == "hold_not_open"
    assert accounts[("user:u", "points")].held == 50  # untouched until released


def test_place_capture_release_keep_held_consistent() -> None:
    accounts: dict[tuple[str, str], AccountState] = _accounts()
    holds: dict[str, HoldState] = {}
    assert isinstance(engine.place_hold(_place(60), accounts, holds, now=NOW), HoldOutcome)
    assert accounts[("user:u", "points")].available == 40
    refused = engine.place_hold(_place(41), accounts, holds, now=NOW)
    assert isinstance(refused, Rejection) and refused.code == "insufficient_funds"
    out = engine.capture_hold(CaptureHold("h1", service="s", amount=25), accounts, holds,
                              tx_id="t1", now=NOW, idempotency_key="k")
    assert isinstance(out, HoldOutcome) and out.transaction is not None
    user = accounts[("user:u", "points")]
    assert (user.balance, user.held) == (75, 0)
    assert accounts[("service:s", "points")].balance == -75
    again = engine.release_hold(ReleaseHold("h1", service="s"), accounts, holds, now=NOW)
    assert isinstance(again, Rejection) and again.code == "hold_not_open"


def test_other_service_cannot_touch_a_hold() -> None:
    accounts: dict[tuple[str, str], AccountState] = _accounts()
    holds: dict[str, HoldState] = {}
    engine.place_hold(_place(10), accounts, holds, now=NOW)
    out = engine.release_hold(ReleaseHold("h1", service="other"), accounts, holds, now=NOW)
    assert isinstance(out, Rejection) and out.code == "hold_not_found"
    assert accounts[("user:u", "points")].held == 10


def test_atomic_group_undoes_a_hold_placed_before_a_refusal() -> None:
    accounts: dict[tuple[str, str], AccountState] = _accounts()
    holds: dict[str, HoldState] = {}
    ids = iter(["a", "b"])
    second = PlaceHold(hold_id="h2", address="user:u", currency="points", amount=1000,
                       destination="service:s", description="d", reference_id="r",
                       service="s", expires_at=NOW + timedelta(seconds=5))
    outs = engine.apply_group([_place(60), second], accounts, atomic=True,
                              new_id=lambda: next(ids), now=NOW, holds=holds)
    assert [getattr(o, "code", None) for o in outs] == ["batch_atomic_failed",
                                                        "insufficient_funds"]
    assert holds == {}
    assert accounts[("user:u", "points")].held == 0


def test_a_posting_to_its_own_source_is_refused_not_counted_twice() -> None:
    from coinpurse.ledger.model import Posting, TransactionSpec

    accounts = _accounts()
    spec = TransactionSpec(kind="x", postings=(Posting("user:u", "user:u", 10, "points"),),
                           description="d", reference_id="r", initiator="t")
    out = engine.apply_transaction(spec, accounts, tx_id="t", now=NOW)
    assert isinstance(out, Rejection) and out.code == "invalid_posting"
    assert accounts[("user:u", "points")].balance == 100


def test_capture_to_the_users_own_wallet_is_refused_by_the_engine() -> None:
    accounts = _accounts()
    holds: dict[str, HoldState] = {}
    op = PlaceHold(hold_id="h1", address="user:u", currency="points", amount=30,
                   destination="user:u", description="d", reference_id="r", service="s",
                   expires_at=NOW + timedelta(seconds=60))
    engine.place_hold(op, accounts, holds, now=NOW)
    out = engine.capture_hold(CaptureHold("h1", service="s"), accounts, holds, tx_id="t",
                              now=NOW, idempotency_key=None)
    assert isinstance(out, Rejection) and out.code == "invalid_posting"
    user = accounts[("user:u", "points")]
    assert (user.balance, user.held) == (100, 30)


def test_every_change_of_an_account_counts_one_version() -> None:
    """Place, refuse, capture: the versions events carry, so receivers can order them."""
    accounts: dict[tuple[str, str], AccountState] = _accounts()
    holds: dict[str, HoldState] = {}
    user, service = accounts[("user:u", "points")], accounts[("service:s", "points")]
    placed = engine.place_hold(_place(60), accounts, holds, now=NOW)
    assert isinstance(placed, HoldOutcome) and placed.balance.version == 1
    assert (user.version, service.version) == (1, 0)
    refused = engine.place_hold(_place(41), accounts, holds, now=NOW)
    assert isinstance(refused, Rejection) and user.version == 1  # a refusal changes nothing
    out = engine.capture_hold(CaptureHold("h1", service="s", amount=25), accounts, holds,
                              tx_id="t1", now=NOW, idempotency_key="k")
    assert isinstance(out, HoldOutcome) and out.transaction is not None
    assert (user.version, service.version) == (2, 1)
    after = out.transaction.balances_after
    assert after[("user:u", "points")].version == 2 and out.balance.version == 2
    assert after[("service:s", "points")].version == 1
    engine.place_hold(PlaceHold(hold_id="h2", address="user:u", currency="points", amount=5,
                                destination="service:s", description="d", reference_id="r",
                                service="s", expires_at=NOW + timedelta(seconds=60)),
                      accounts, holds, now=NOW)
    released = engine.release_hold(ReleaseHold("h2", service="s"), accounts, holds, now=NOW)
    assert isinstance(released, HoldOutcome) and released.balance.version == 4
