"""``/admin/v1/reconciliations``: start a run, list runs, read one with its discrepancies."""

from __future__ import annotations

from typing import Any

import httpx

from coinpurse.config import Settings
from coinpurse.payments.errors import ProviderNotEnabled
from tests.conftest import TEST_JWT_SECRET
from tests.payments.conftest import ADMIN, AUDITOR
from tests.reconcile.conftest import Book, reconciler, seal, tamper

BASE = "/admin/v1/reconciliations"


async def test_an_admin_starts_a_run_and_reads_it(client: httpx.AsyncClient, book: Book,
                                                  settings: Settings, app: Any) -> None:
    await seal(settings)
    r = await client.post(BASE, json={"mode": "full"}, headers=ADMIN)
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["status"] == "running" and started["kind"] == "ledger"
    assert started["trigger"] == "admin:ops-1"
    # the run goes on after the answer (here, before the test client returns)
    r = await client.get(f"{BASE}/{started['id']}", headers=AUDITOR)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "passed" and done["discrepancies"] == []
    assert done["counts"]["transactions"] == 5 and done["finished_at"].endswith("Z")
    audit = await client.get("/admin/v1/audit-log", params={"action": "reconciliation.start"},
                             headers=ADMIN)
    (entry,) = audit.json()["data"]
    assert entry["target"] == f"reconciliation:{started['id']}"


async def test_a_failed_run_shows_its_discrepancies(client: httpx.AsyncClient, book: Book,
                                                    settings: Settings) -> None:
    await tamper(settings.database_url, (
        "UPDATE accounts SET balance = 3 WHERE address = 'user:carol'", {}))
    started = (await client.post(BASE, json={}, headers=ADMIN)).json()
    done = (await client.get(f"{BASE}/{started['id']}", headers=ADMIN)).json()
    assert done["status"] == "failed" and done["discrepancy_count"] == 3
    by_check = {d["check"]: d for d in done["discrepancies"]}
    assert by_check["balance_not_sum_of_entries"] == {
        "check": "balance_not_sum_of_entries", "subject_type": "account",
        "subject": "user:carol (points)", "expected": 30, "actual": 3,
        "detail": "user:carol (points): balance 3, its entries sum to 30"}


async def test_runs_are_listed_newest_first(client: httpx.AsyncClient,
                                            settings: Settings) -> None:
    ids = []
    for kind in ("ledger", "chain", "ledger"):
        ids.append((await client.post(BASE, json={"kind": kind}, headers=ADMIN)).json()["id"])
    page = (await client.get(BASE, params={"limit": 2}, headers=AUDITOR)).json()
    assert [r["id"] for r in page["data"]] == ids[::-1][:2]
    rest = (await client.get(BASE, params={"limit": 2, "cursor": page["next_cursor"]},
                             headers=AUDITOR)).json()
    assert [r["id"] for r in rest["data"]] == [ids[0]] and rest["next_cursor"] is None
    chains = (await client.get(BASE, params={"kind": "chain"}, headers=AUDITOR)).json()
    assert [r["id"] for r in chains["data"]] == [ids[1]]
    passed = (await client.get(BASE, params={"status": "passed"}, headers=AUDITOR)).json()
    assert len(passed["data"]) == 3


async def test_refusals(client: httpx.AsyncClient, settings: Settings) -> None:
    assert (await client.post(BASE, json={}, headers=AUDITOR)).status_code == 403
    assert (await client.get(BASE)).status_code == 401
    missing = await client.get(f"{BASE}/nope", headers=ADMIN)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    for body in ({"kind": "provider"}, {"kind": "ledger", "provider": "stripe"},
                 {"kind": "provider", "provider": "stripe", "period_from": "2026-01-02",
                  "period_to": "2026-01-01"},
                 {"kind": "provider", "provider": "stripe", "period_from": "2020-01-01",
                  "period_to": "2020-12-31"},
                 {"kind": "provider", "provider": "mock"}, {"mode": "sometimes"},
                 {"kind": "ledger", "extra": 1}):
        r = await client.post(BASE, json=body, headers=ADMIN)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", body
    bad = await client.get(BASE, params={"kind": "everything"}, headers=ADMIN)
    assert bad.status_code == 422
    bad = await client.get(BASE, params={"cursor": "!!"}, headers=ADMIN)
    assert bad.status_code == 422
    async with reconciler(settings) as rec:
        assert await rec.start("ledger", mode="full", trigger="cli") is not None
    busy = await client.post(BASE, json={}, headers=ADMIN)
    assert busy.status_code == 409 and busy.json()["code"] == "reconciliation_running"


async def test_a_provider_that_is_not_enabled_is_refused(settings: Settings) -> None:
    plain = Settings(database_url=settings.database_url,
                     jwt_secret=TEST_JWT_SECRET)  # type: ignore[arg-type]
    async with reconciler(plain) as rec:
        try:
            rec.check_provider("stripe")
        except ProviderNotEnabled as exc:
            assert "COINPURSE_TOPUP_PROVIDERS" in exc.detail
        else:
            raise AssertionError("stripe is not enabled here")
