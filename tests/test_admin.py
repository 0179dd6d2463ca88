"""The admin API: roles on every route, adjustments, reversals, stats, keys, audit log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from coinpurse.app import create_app
from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from tests.conftest import TEST_JWT_SECRET, MakeKey, auth, user_token

ADMIN = auth(user_token("adm1", role="admin", mfa=True))
ADMIN2 = auth(user_token("adm2", role="admin", mfa=True))
AUDITOR = auth(user_token("aud1", role="auditor", mfa=True))


@pytest.fixture
async def aclient(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                        currencies="points:0,usdt:2", adjustment_approval_above=1000)
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        yield c


async def _credit(c: httpx.AsyncClient, key: str, user: str, amount: int) -> str:
    r = await c.post("/internal/v1/wallet/credit",
                     headers={"X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex},
                     json={"user_id": user, "currency": "points", "amount": amount,
                           "description": "fund", "reference_id": "fund",
                           "internal_notes": "campaign 7"})
    assert r.status_code == 201, r.text
    tx_id: str = r.json()["id"]
    return tx_id


def _idem() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


# (method, path, body): every admin route, reads first.
READS = [
    ("GET", "/admin/v1/transactions", None),
    ("GET", "/admin/v1/users/u1/ledger", None),
    ("GET", "/admin/v1/stats", None),
    ("GET", "/admin/v1/accounts/user:u1", None),
    ("GET", "/admin/v1/keys", None),
    ("GET", "/admin/v1/adjustments", None),
    ("GET", "/admin/v1/audit-log", None),
    ("GET", "/admin/v1/gifts", None),
]
WRITES = [
    ("POST", "/admin/v1/keys", {"service": "x", "scopes": ["wallet:read"]}),
    ("POST", "/admin/v1/adjustments", {"user_id": "u1", "currency": "points", "amount": 5,
                                       "direction": "credit", "reason": "goodwill"}),
]
ROLES = {
    "user": (auth(user_token("u1")), 403, 403),
    "merchant": (auth(user_token("m1", role="merchant", mfa=True)), 403, 403),
    "auditor": (AUDITOR, 200, 403),
    "admin": (ADMIN, 200, 201),
    "none": ({}, 401, 401),
}


@pytest.mark.parametrize("role", list(ROLES))
async def test_every_role_against_every_admin_route(aclient: httpx.AsyncClient,
                                                    role: str) -> None:
    headers, read_status, write_status = ROLES[role]
    for method, path, body in READS + WRITES:
        expected = read_status if method == "GET" else write_status
        r = await aclient.request(method, path, json=body, headers={**headers, **_idem()})
        assert r.status_code == expected, (role, path, r.text)
        if expected >= 400:
            assert r.headers["content-type"] == "application/problem+json"


async def test_users_never_reach_internal_or_others_data(
    aclient: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key()
    await _credit(aclient, key, "u1", 10)
    await _credit(aclient, key, "u2", 20)
    for headers in (auth(user_token("u1")), ADMIN):
        r = await aclient.get("/internal/v1/wallet/balance/u2", headers=headers)
        assert r.status_code == 401
    mine = await aclient.get("/api/v1/wallet/transactions", headers=auth(user_token("u1")))
    assert [e["amount"] for e in mine.json()["data"]] == [10]
    # An admin's token is a user token for the user API: their own wallet only.
    own = await aclient.get("/api/v1/wallet/balance", headers=ADMIN)
    assert own.json()["user_id"] == "adm1"


async def test_admins_need_two_factor_with_builtin_accounts(db_url: str) -> None:
    settings = Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                        auth="builtin")
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        no_mfa = await c.get("/admin/v1/stats",
                             headers=auth(user_token("a", role="admin", mfa=False)))
        assert no_mfa.status_code == 403 and no_mfa.json()["reason"] == "mfa_required"
        ok = await c.get("/admin/v1/stats", headers=auth(user_token("a", role="admin",
                                                                      mfa=True)))
        assert ok.status_code == 200


async def test_small_adjustment_applies_and_large_one_waits_for_another_admin(
    aclient: httpx.AsyncClient
) -> None:
    body = {"user_id": "u1", "currency": "points", "amount": 500, "direction": "credit",
            "reason": "support ticket 42"}
    key = _idem()
    r = await aclient.post("/admin/v1/adjustments", json=body, headers={**ADMIN, **key})
    assert r.status_code == 201 and r.json()["status"] == "applied", r.text
    again = await aclient.post("/admin/v1/adjustments", json=body, headers={**ADMIN, **key})
    assert again.json()["id"] == r.json()["id"]
    other = await aclient.post("/admin/v1/adjustments", json={**body, "amount": 501},
                               headers={**ADMIN, **key})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    tx = r.json()["transaction_id"]

    big = await aclient.post("/admin/v1/adjustments", json={**body, "amount": 5000},
                             headers={**ADMIN, **_idem()})
    assert big.json()["status"] == "pending" and big.json()["transaction_id"] is None
    adj = big.json()["id"]
    self_ok = await aclient.post(f"/admin/v1/adjustments/{adj}/approve", headers=ADMIN)
    assert self_ok.status_code == 403
    auditor = await aclient.post(f"/admin/v1/adjustments/{adj}/approve", headers=AUDITOR)
    assert auditor.status_code == 403
    balance = await aclient.get("/admin/v1/accounts/user:u1", headers=ADMIN)
    assert balance.json()["balances"]["points"]["balance"] == 500

    approvals = await asyncio.gather(
        aclient.post(f"/admin/v1/adjustments/{adj}/approve", headers=ADMIN2),
        aclient.post(f"/admin/v1/adjustments/{adj}/approve",
                     headers=auth(user_token("adm3", role="admin", mfa=True))))
    assert sorted(a.status_code for a in approvals) == [200, 409]
    balance = await aclient.get("/admin/v1/accounts/user:u1", headers=ADMIN)
    assert balance.json()["balances"]["points"]["balance"] == 5500

    rejected = await aclient.post("/admin/v1/adjustments", json={**body, "amount": 9000},
                                  headers={**ADMIN, **_idem()})
    r = await aclient.post(f"/admin/v1/adjustments/{rejected.json()['id']}/reject",
                           headers=ADMIN2, json={"note": "not justified"})
    assert r.json()["status"] == "rejected"
    late = await aclient.post(f"/admin/v1/adjustments/{rejected.json()['id']}/approve",
                              headers=ADMIN2)
    assert late.status_code == 409

    debit = await aclient.post("/admin/v1/adjustments", json={
        **body, "direction": "debit", "amount": 999}, headers={**ADMIN, **_idem()})
    assert debit.json()["status"] == "applied"
    ledger = await aclient.get("/admin/v1/users/u1/ledger", headers=AUDITOR)
    assert ledger.status_code == 200
    totals = {t["kind"]: t for t in ledger.json()["totals"]}
    assert totals["adjustment"]["in"] == 5500 and totals["adjustment"]["out"] == 999
    entry = next(e for e in ledger.json()["data"] if e["transaction_id"] == tx)
    assert entry["internal_notes"] == "support ticket 42" and entry["service"] == "adjustments"
    audit = await aclient.get("/admin/v1/audit-log", headers=AUDITOR,
                              params={"action": "admin.adjustment_approve"})
    assert [e["actor"] for e in audit.json()["data"]] == ["adm2"] or \
        [e["actor"] for e in audit.json()["data"]] == ["adm3"]


async def test_adjustment_resumed_after_its_claim_was_purged_posts_nothing_again(
    aclient: httpx.AsyncClient, db_url: str
) -> None:
    """An apply whose status update was lost (a crash after the ledger commit) is resumed by
    its admin; a day later the idempotency claim that guarded it has been purged. The ledger
    itself must say it was posted: the resume used to credit the user a second time."""
    body = {"user_id": "u1", "currency": "points", "amount": 500, "direction": "credit",
            "reason": "support ticket 43"}
    key = _idem()
    first = await aclient.post("/admin/v1/adjustments", json=body, headers={**ADMIN, **key})
    assert first.json()["status"] == "applied", first.text
    engine = create_engine(db_url, pool_size=1)
    try:
        async with engine.begin() as conn:  # the crash, then the purge
            await conn.execute(text("UPDATE adjustments SET status = 'approving', "
                                    "transaction_id = NULL, decided_at = NULL"))
            await conn.execute(text("DELETE FROM idempotency_keys WHERE scope = 'adjustment'"))
    finally:
        await engine.dispose()
    resumed = await aclient.post("/admin/v1/adjustments", json=body, headers={**ADMIN, **key})
    assert resumed.status_code == 201, resumed.text
    assert resumed.json()["status"] == "applied"
    assert resumed.json()["transaction_id"] == first.json()["transaction_id"]
    balance = await aclient.get("/admin/v1/accounts/user:u1", headers=ADMIN)
    assert balance.json()["balances"]["points"]["balance"] == 500
    too_much = await aclient.post("/admin/v1/adjustments", headers={**ADMIN, **_idem()},
                                  json={**body, "direction": "debit", "amount": 501})
    assert too_much.status_code == 422 and too_much.json()["status"] == "failed"
    assert "available" in too_much.json()["decision_note"]


async def test_same_adjustment_sent_twice_at_once(aclient: httpx.AsyncClient) -> None:
    """Both found no row and both inserted it: the loser's duplicate key was a 500."""
    body = {"user_id": "u1", "currency": "points", "amount": 50, "direction": "credit",
            "reason": "double click"}
    key = _idem()
    answers = await asyncio.gather(*(
        aclient.post("/admin/v1/adjustments", json=body, headers={**ADMIN, **key})
        for _ in range(4)))
    # Each is the adjustment, or 409 while another request applies it.
    assert {a.status_code for a in answers} <= {201, 409}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers if a.status_code == 201}) == 1
    balance = await aclient.get("/admin/v1/accounts/user:u1", headers=ADMIN)
    assert balance.json()["balances"]["points"]["balance"] == 50


async def test_reversal_once_and_refused_when_money_is_gone(
    aclient: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key()
    tx = await _credit(aclient, key, "u1", 100)
    spend = await aclient.post("/internal/v1/wallet/debit",
                               headers={"X-API-Key": key, **_idem()},
                               json={"user_id": "u1", "currency": "points", "amount": 60,
                                     "description": "shop", "reference_id": "o1"})
    assert spend.status_code == 201
    refused = await aclient.post(f"/admin/v1/transactions/{tx}/reverse", headers=ADMIN,
                                 json={"reason": "fraud"})
    assert refused.status_code == 422 and refused.json()["code"] == "insufficient_funds"
    await _credit(aclient, key, "u1", 60)
    first, second = await asyncio.gather(
        aclient.post(f"/admin/v1/transactions/{tx}/reverse", headers=ADMIN,
                     json={"reason": "fraud"}),
        aclient.post(f"/admin/v1/transactions/{tx}/reverse", headers=ADMIN2,
                     json={"reason": "fraud too"}))
    codes = sorted([first.status_code, second.status_code])
    assert codes == [201, 409], (first.text, second.text)
    winner = first if first.status_code == 201 else second
    assert winner.json()["kind"] == "reversal"
    assert winner.json()["postings"] == [{"source": "user:u1", "destination": "service:games",
                                          "amount": 100, "currency": "points"}]
    third = await aclient.post(f"/admin/v1/transactions/{tx}/reverse", headers=ADMIN,
                               json={"reason": "again"})
    assert third.status_code == 409 and third.json()["code"] == "already_reversed"
    balance = await aclient.get("/admin/v1/accounts/user:u1", headers=ADMIN)
    assert balance.json()["balances"]["points"]["balance"] == 0
    missing = await aclient.post("/admin/v1/transactions/nope/reverse", headers=ADMIN,
                                 json={"reason": "x" * 5})
    assert missing.status_code == 404
    rev = await aclient.post(f"/admin/v1/transactions/{winner.json()['id']}/reverse",
                             headers=ADMIN, json={"reason": "undo the undo"})
    assert rev.status_code == 409


async def test_stats_equal_sums_from_entries(
    aclient: httpx.AsyncClient, make_key: MakeKey, db_url: str
) -> None:
    games = await make_key("games", "*")
    shop = await make_key("shop", "*")
    for i in range(6):
        await _credit(aclient, games, f"u{i}", 100 + i)
    await aclient.post("/internal/v1/wallet/debit", headers={"X-API-Key": shop, **_idem()},
                       json={"user_id": "u1", "currency": "points", "amount": 40,
                             "description": "buy", "reference_id": "o"})
    await aclient.post("/internal/v1/holds", headers={"X-API-Key": shop, **_idem()},
                       json={"user_id": "u2", "currency": "points", "amount": 30,
                             "description": "call", "reference_id": "c"})
    stats = (await aclient.get("/admin/v1/stats", headers=AUDITOR)).json()
    engine = create_engine(db_url, pool_size=1)
    async with engine.connect() as conn:
        entries = (await conn.execute(text(
            "SELECT a.address, a.currency, e.amount, t.kind FROM entries e "
            "JOIN accounts a ON a.id = e.account_id "
            "JOIN transactions t ON t.id = e.transaction_id"))).all()
    await engine.dispose()
    in_wallets = sum(e.amount for e in entries if e.address.startswith("user:"))
    issued = {s: sum(-e.amount for e in entries if e.address == f"service:{s}" and e.amount < 0)
              for s in ("games", "shop")}
    collected = {s: sum(e.amount for e in entries if e.address == f"service:{s}"
                        and e.amount > 0) for s in ("games", "shop")}
    volume: dict[str, int] = {}
    for e in entries:
        if e.amount > 0:
            volume[e.kind] = volume.get(e.kind, 0) + e.amount
    points = stats["currencies"]["points"]
    assert points["in_user_wallets"] == in_wallets == sum(100 + i for i in range(6)) - 40
    assert points["held"] == 30
    for s in ("games", "shop"):
        assert points["services"][s]["issued"] == issued[s]
        assert points["services"][s]["collected"] == collected[s]
    assert points["volume_24h"] == volume == points["volume_7d"]
    assert stats["users_with_wallet"] == 6
    assert stats["currencies"]["usdt"]["in_user_wallets"] == 0


async def test_transaction_search_filters_and_summary(
    aclient: httpx.AsyncClient, make_key: MakeKey
) -> None:
    games = await make_key("games", "*")
    shop = await make_key("shop", "*")
    for amount in (10, 20, 30, 40):
        await _credit(aclient, games, "u1", amount)
    await _credit(aclient, shop, "u2", 50)
    everything = (await aclient.get("/admin/v1/transactions", headers=AUDITOR,
                                    params={"limit": 2})).json()
    assert len(everything["data"]) == 2 and everything["next_cursor"]
    assert everything["summary"] == [{"kind": "credit", "currency": "points", "count": 5,
                                      "total": 150}]
    page2 = (await aclient.get("/admin/v1/transactions", headers=AUDITOR, params={
        "limit": 2, "cursor": everything["next_cursor"]})).json()
    assert not {t["id"] for t in page2["data"]} & {t["id"] for t in everything["data"]}
    ranged = (await aclient.get("/admin/v1/transactions", headers=AUDITOR, params={
        "user_id": "u1", "amount_min": 20, "amount_max": 30, "service": "games"})).json()
    assert sorted(t["amounts"]["points"] for t in ranged["data"]) == [20, 30]
    assert ranged["summary"][0]["total"] == 50
    by_shop = (await aclient.get("/admin/v1/transactions", headers=AUDITOR,
                                 params={"service": "shop"})).json()
    assert [t["amounts"] for t in by_shop["data"]] == [{"points": 50}]
    assert by_shop["data"][0]["internal_notes"] == "campaign 7"
    bad = await aclient.get("/admin/v1/transactions", headers=AUDITOR,
                            params={"amount_min": "1.5"})
    assert bad.status_code == 422
    bad = await aclient.get("/admin/v1/transactions", headers=AUDITOR,
                            params={"currency": "gold"})
    assert bad.json()["code"] == "unknown_currency"


async def test_key_rotation_with_grace_and_revocation(aclient: httpx.AsyncClient) -> None:
    created = await aclient.post("/admin/v1/keys", headers=ADMIN,
                                 json={"service": "games", "scopes": ["wallet:read"]})
    assert created.status_code == 201
    old = created.json()
    probe = "/internal/v1/wallet/balance/u1"
    assert (await aclient.get(probe, headers={"X-API-Key": old["key"]})).status_code == 200
    rotated = await aclient.post(f"/admin/v1/keys/{old['id']}/rotate", headers=ADMIN,
                                 json={"grace_s": 60})
    assert rotated.status_code == 201
    new = rotated.json()
    assert new["scopes"] == ["wallet:read"] and new["previous"]["expires_at"]
    for k in (old["key"], new["key"]):
        assert (await aclient.get(probe, headers={"X-API-Key": k})).status_code == 200
    now = await aclient.post(f"/admin/v1/keys/{new['id']}/rotate", headers=ADMIN,
                             json={"grace_s": 0})
    assert (await aclient.get(probe, headers={"X-API-Key": new["key"]})).status_code == 401
    newest = now.json()["key"]
    assert (await aclient.get(probe, headers={"X-API-Key": newest})).status_code == 200
    revoke = await aclient.post(f"/admin/v1/keys/{now.json()['id']}/revoke", headers=ADMIN)
    assert revoke.status_code == 200
    assert (await aclient.get(probe, headers={"X-API-Key": newest})).status_code == 401
    listed = (await aclient.get("/admin/v1/keys", headers=AUDITOR)).json()["data"]
    assert len(listed) == 3 and all("key" not in k for k in listed)
    log = (await aclient.get("/admin/v1/audit-log", headers=AUDITOR)).json()["data"]
    actions = [e["action"] for e in log]
    assert actions[:4] == ["admin.key_revoke", "admin.key_rotate", "admin.key_rotate",
                           "admin.key_create"]
    bad = await aclient.post("/admin/v1/keys", headers=ADMIN,
                             json={"service": "games", "scopes": ["root"]})
    assert bad.status_code == 422


async def test_admin_gift_report(aclient: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await _credit(aclient, key, "fan", 2000)
    await aclient.put("/internal/v1/users/host/agency", headers={"X-API-Key": key},
                      json={"agency_id": "a1"})
    for gift in ("rose", "rose", "car"):
        r = await aclient.post("/api/v1/gifts", json={"to_user_id": "host", "gift_type": gift},
                               headers={**auth(user_token("fan")), **_idem()})
        assert r.status_code == 201
    report: dict[str, Any] = (await aclient.get("/admin/v1/gifts", headers=AUDITOR)).json()
    by_type = {t["gift_type"]: t for t in report["totals_by_gift_type"]}
    assert by_type["rose"]["count"] == 2 and by_type["rose"]["amount"] == 20
    assert by_type["car"]["platform_fee"] == 200 and by_type["car"]["agency_commission"] == 100
    assert report["totals_by_agency"][0]["agency_id"] == "a1"
    assert report["totals_by_receiver"][0]["amount"] == 1020
    assert len(report["data"]) == 3


async def test_reserved_service_names_are_refused(aclient: httpx.AsyncClient) -> None:
    for name in ("withdrawals", "adjustments", "payments", "promotions"):
        r = await aclient.post("/admin/v1/keys", headers=ADMIN,
                               json={"service": name, "scopes": ["*"]})
        assert r.status_code == 422 and "reserved" in r.json()["detail"], name
    ok = await aclient.post("/admin/v1/keys", headers=ADMIN,
                            json={"service": "games", "scopes": ["*"]})
    assert ok.status_code == 201


async def test_flow_transactions_are_not_reversed_by_hand(
    aclient: httpx.AsyncClient, db_url: str
) -> None:
    """A top-up credit reversed by an admin would be taken again by a provider refund."""
    from coinpurse.ledger.model import Posting, TransactionSpec
    from coinpurse.ledger.service import Ledger

    engine = create_engine(db_url, pool_size=1)
    ledger = Ledger(engine, may_go_negative=lambda a: not a.startswith("user:"),
                    idempotency_ttl_s=3600)
    await ledger.start()
    try:
        spec = TransactionSpec(kind="topup", postings=(
            Posting("provider:mock", "user:u1", 100, "points"),), description="Top-up",
            reference_id="order-1", initiator="provider:mock", service="payments")
        from coinpurse.ledger.idempotency import StoredResponse

        result = await ledger.submit([spec], render=lambda o: StoredResponse(201, b"{}"))
    finally:
        await ledger.stop()
        await engine.dispose()
    assert result.outcomes is not None
    tx_id = result.outcomes[0].id  # type: ignore[union-attr]
    r = await aclient.post(f"/admin/v1/transactions/{tx_id}/reverse", headers=ADMIN,
                           json={"reason": "customer complaint"})
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    balance = await aclient.get("/admin/v1/accounts/user:u1", headers=ADMIN)
    assert balance.json()["balances"]["points"]["balance"] == 100


async def test_answers_keep_their_formats(aclient: httpx.AsyncClient, make_key: MakeKey) -> None:
    """The answers come from the schemas now (they were hand-built dicts): ids of BIGINT rows
    are strings, times end in Z (service keys keep the +00:00 they always had), and a gift
    total has only the field it is grouped by."""
    key = await make_key()
    await _credit(aclient, key, "fan", 100)
    gift = await aclient.post("/api/v1/gifts", json={"to_user_id": "host", "gift_type": "rose"},
                              headers={**auth(user_token("fan")), **_idem()})
    assert gift.status_code == 201, gift.text
    adj = (await aclient.post("/admin/v1/adjustments", headers={**ADMIN, **_idem()}, json={
        "user_id": "fan", "currency": "points", "amount": 5, "direction": "credit",
        "reason": "goodwill"})).json()
    assert adj["created_at"].endswith("Z") and adj["decided_at"].endswith("Z")
    assert adj["status"] == "applied" and adj["decision_note"] is None
    listed = (await aclient.get("/admin/v1/adjustments", headers=AUDITOR)).json()["data"]
    assert listed == [adj]

    created = (await aclient.post("/admin/v1/keys", headers=ADMIN,
                                  json={"service": "shop", "scopes": ["wallet:read"]})).json()
    assert created["created_at"].endswith("+00:00") and created["revoked_at"] is None
    assert set(created) == {"id", "service", "scopes", "key_prefix", "created_at",
                            "revoked_at", "expires_at", "key"}

    ledger = (await aclient.get("/admin/v1/users/fan/ledger", headers=AUDITOR,
                                params={"limit": 1})).json()
    line = ledger["data"][0]
    assert isinstance(line["id"], str) and line["id"].isdigit()
    assert line["created_at"].endswith("Z") and ledger["next_cursor"]
    assert {t["kind"] for t in ledger["totals"]} == {"credit", "gift", "adjustment"}
    assert all(set(t) == {"kind", "currency", "in", "out", "entries"} for t in ledger["totals"])

    log = (await aclient.get("/admin/v1/audit-log", headers=AUDITOR)).json()
    assert log["data"][0]["id"].isdigit() and log["data"][0]["at"].endswith("Z")
    assert log["data"][0]["action"] == "admin.key_create"

    report = (await aclient.get("/admin/v1/gifts", headers=AUDITOR)).json()
    assert report["data"][0]["created_at"] == gift.json()["created_at"]
    for name, field in (("totals_by_gift_type", "gift_type"),
                        ("totals_by_receiver", "to_user_id"),
                        ("totals_by_agency", "agency_id")):
        (total,) = report[name]
        assert set(total) == {field, "currency", "count", "amount", "receiver_amount",
                              "agency_commission", "platform_fee"}, name
    stats = (await aclient.get("/admin/v1/stats", headers=AUDITOR)).json()
    assert stats["generated_at"].endswith("Z")
    search = (await aclient.get("/admin/v1/transactions", headers=AUDITOR,
                                params={"kind": "gift"})).json()
    assert search["data"][0]["created_at"].endswith("Z")
    posting = search["data"][0]["postings"][0]
    assert set(posting) == {"source", "destination", "amount", "currency"}
    assert (posting["source"], posting["destination"]) == ("user:fan", "user:host")
