"""Bonus wallets agree with the bonus rows (issue 15: "bonus and order rows agree with the
ledger where those exist"), on SQLite and PostgreSQL: grants, spends and conversions made
through the API pass; a bonus row edited with raw SQL, and a bonus wallet whose bonuses
were moved to another user, are found with the wallet named."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from coinpurse.config import Settings
from tests.bonuses.conftest import activity, debit, fund, granted, promotion
from tests.bonuses.conftest import settings as bonus_settings
from tests.conftest import MakeKey
from tests.reconcile.conftest import found, run, seal, tamper


@pytest.fixture
def settings(db_url: str) -> Settings:
    base: Settings = bonus_settings.__wrapped__(db_url)  # type: ignore[attr-defined]
    return Settings(**{**base.model_dump(exclude_unset=True), "seal_interval_s": 0})


@pytest.fixture
async def bonuses(client: httpx.AsyncClient, make_key: MakeKey, settings: Settings
                  ) -> dict[str, Any]:
    """u1: a bonus of 100 coins, 70 of it spent (30 left, active); u2: a bonus of 40 whose
    wagering was met at once, converted to cash (completed, 0 left)."""
    key = await make_key("games", "*")
    wagered = await promotion(client, amount=100, wagering_multiplier=5,
                              contributions={"slots": 10000})
    easy = await promotion(client, amount=40, wagering_multiplier=1,
                           contributions={"slots": 10000})
    await granted(client, key, "u1", wagered["code"])
    await fund(client, key, "u1", 50)
    spent = await debit(client, key, "u1", 120)
    assert spent.status_code == 201, spent.text
    assert (spent.json()["from_cash"], spent.json()["from_bonus"]) == (50, 70)
    await granted(client, key, "u2", easy["code"])
    r = await activity(client, key, "u2", 40)
    assert r.status_code in (200, 201), r.text
    await seal(settings)
    return {"key": key}


async def test_bonuses_moved_through_the_api_agree_with_their_wallets(
        bonuses: dict[str, Any], client: httpx.AsyncClient, settings: Settings) -> None:
    detail = await run(settings, "ledger", "full")
    assert detail.run.status == "passed", detail.discrepancies
    assert detail.run.counts["bonus_users"] == 2
    spent = await debit(client, bonuses["key"], "u1", 10)  # 10 more bonus coins
    assert spent.status_code == 201 and spent.json()["from_bonus"] == 10, spent.text
    await seal(settings)
    # Incremental: the users whose bonuses changed since the last clean run, with an hour of
    # margin (as for orders), so both users here.
    after = await run(settings)
    assert after.run.status == "passed", after.discrepancies
    assert after.run.counts["bonus_users"] == 2


async def test_an_incremental_run_finds_a_spend_that_left_the_rows_behind(
        bonuses: dict[str, Any], client: httpx.AsyncClient, settings: Settings) -> None:
    """The bonus row is put back after a spend (as if the ledger had moved the money and the
    row had not): the incremental run checks u1, whose bonuses changed, and finds it."""
    assert (await run(settings, "ledger", "full")).run.status == "passed"
    spent = await debit(client, bonuses["key"], "u1", 10)
    assert spent.status_code == 201 and spent.json()["from_bonus"] == 10, spent.text
    await seal(settings)
    await tamper(settings.database_url, (
        "UPDATE bonuses SET remaining = 30 WHERE user_id = 'u1'", {}))
    detail = await run(settings)
    assert detail.run.scope["mode"] == "incremental"
    (wrong,) = found(detail, "bonus_wallet_mismatch")
    assert wrong.subject == "user:u1:bonus (coins)" and (wrong.expected, wrong.actual) == (30, 20)


async def test_a_bonus_row_edited_in_the_database_is_found(
        bonuses: dict[str, Any], settings: Settings) -> None:
    await tamper(settings.database_url, (
        "UPDATE bonuses SET remaining = remaining + 5 WHERE user_id = 'u1'", {}))
    detail = await run(settings, "ledger", "full")
    assert detail.run.status == "failed"
    (wrong,) = found(detail, "bonus_wallet_mismatch")
    assert wrong.subject == "user:u1:bonus (coins)"
    assert (wrong.expected, wrong.actual) == (35, 30)


async def test_a_bonus_wallet_whose_bonuses_were_moved_away_is_found(
        bonuses: dict[str, Any], settings: Settings) -> None:
    await tamper(settings.database_url, (
        "UPDATE bonuses SET user_id = 'ghost' WHERE user_id = 'u1'", {}))
    detail = await run(settings, "ledger", "full")
    wrong = {d.subject: (d.expected, d.actual) for d in found(detail, "bonus_wallet_mismatch")}
    # u1's wallet holds 30 with no bonus left; the ghost's bonus has 30 and no wallet.
    assert wrong == {"user:u1:bonus (coins)": (0, 30), "user:ghost:bonus (coins)": (30, 0)}
