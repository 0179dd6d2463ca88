"""KYC: submit, review, and the tier that follows."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from coinpurse.core.audit import audit_log
from tests.conftest import auth, user_token
from tests.payments.conftest import ADMIN, AUDITOR

USER = auth(user_token("kyc-user"))
TIER1 = {"tier": 1, "full_name": "Ada Lovelace", "date_of_birth": "1990-12-10",
         "country": "GB"}


async def test_submit_review_and_status(client: httpx.AsyncClient, app: Any) -> None:
    status = (await client.get("/api/v1/kyc", headers=USER)).json()
    assert status["tier"] == 0 and status["withdrawals"] is False
    assert status["limits"]["coins"]["topup_max"] == 1200
    assert status["next_tier"]["requires"] == ["full_name", "date_of_birth", "country"]
    assert status["submission"] is None

    missing = await client.post("/api/v1/kyc", headers=USER, json={"tier": 1,
                                                                   "full_name": "Ada"})
    assert missing.status_code == 422
    assert {e["loc"][1] for e in missing.json()["errors"]} == {"date_of_birth", "country"}
    for bad in ({**TIER1, "country": "gb"}, {**TIER1, "date_of_birth": "yesterday"},
                {**TIER1, "tier": 7}, {**TIER1, "selfie": b"x".hex()},
                {**TIER1, "full_name": "x" * 201}):
        r = await client.post("/api/v1/kyc", headers=USER, json=bad)
        assert r.status_code == 422, bad
    sent = await client.post("/api/v1/kyc", headers=USER, json=TIER1)
    assert sent.status_code == 201 and sent.json()["status"] == "pending"
    twice = await client.post("/api/v1/kyc", headers=USER, json=TIER1)
    assert twice.status_code == 409 and twice.json()["code"] == "kyc_submission_pending"

    queue = await client.get("/admin/v1/kyc/submissions?status=pending", headers=AUDITOR)
    (item,) = queue.json()["data"]
    assert item["user_id"] == "kyc-user" and item["data"]["full_name"] == "Ada Lovelace"
    assert (await client.post(f"/admin/v1/kyc/submissions/{item['id']}/approve",
                              headers=AUDITOR)).status_code == 403
    assert (await client.get("/admin/v1/kyc/submissions", headers=USER)).status_code == 403
    ok = await client.post(f"/admin/v1/kyc/submissions/{item['id']}/approve", headers=ADMIN)
    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    again = await client.post(f"/admin/v1/kyc/submissions/{item['id']}/reject",
                              headers=ADMIN, json={"reason": "late"})
    assert again.status_code == 409 and again.json()["code"] == "kyc_submission_not_pending"
    status = (await client.get("/api/v1/kyc", headers=USER)).json()
    assert status["tier"] == 1 and status["withdrawals"] is True
    assert status["submission"]["status"] == "approved"

    same = await client.post("/api/v1/kyc", headers=USER, json=TIER1)
    assert same.status_code == 422  # already at tier 1
    tier2 = await client.post("/api/v1/kyc", headers=USER, json={
        **TIER1, "tier": 2, "id_document_ref": "s3://kyc/ada/passport.jpg",
        "selfie_ref": "s3://kyc/ada/selfie.jpg"})
    assert tier2.status_code == 201
    rej = await client.post(f"/admin/v1/kyc/submissions/{tier2.json()['id']}/reject",
                            headers=ADMIN, json={"reason": "The selfie is blurred"})
    assert rej.status_code == 200 and rej.json()["reason"] == "The selfie is blurred"
    status = (await client.get("/api/v1/kyc", headers=USER)).json()
    assert status["tier"] == 1 and status["submission"]["status"] == "rejected"
    assert status["submission"]["reason"] == "The selfie is blurred"
    unknown = await client.post("/admin/v1/kyc/submissions/0000/approve", headers=ADMIN)
    assert unknown.status_code == 404
    async with app.state.coinpurse.db.connect() as conn:
        actions = (await conn.execute(select(audit_log.c.action, audit_log.c.actor)
                                      .order_by(audit_log.c.id))).all()
    assert [tuple(a) for a in actions] == [("kyc.approve", "ops-1"), ("kyc.reject", "ops-1")]


async def test_a_tier_dropped_from_the_configuration_grants_the_next_lower_one(
    client: httpx.AsyncClient, settings: Any
) -> None:
    from tests.payments.conftest import set_tier

    await set_tier(settings, "legacy", 7)  # a level no configured tier has
    r = await client.get("/api/v1/kyc", headers=auth(user_token("legacy")))
    assert r.status_code == 200, r.text
    assert r.json()["tier"] == 2
