"""``coinpurse serve --demo`` (what ./scripts/demo runs): built-in accounts that sign in to the
wallet and the console as printed, the README's curl walk-through, and a public URL that
follows --port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyotp

from tests.pgserver import free_port


def test_demo_prints_working_sign_ins(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COINPURSE_")}
    env["COINPURSE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.db'}"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "coinpurse", "serve", "--demo",
                                 "--port", str(port)], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        assert f"{base}/wallet" in text and f"{base}/console" in text
        accounts = dict(re.findall(r"^  (\S+@example\.com)\s+(\S+)", text, re.M))
        assert set(accounts) == {"alice@example.com", "bob@example.com",
                                 "merchant@example.com", "admin@example.com",
                                 "auditor@example.com"}
        admin_secret = re.search(r"admin@example\.com.*2FA secret (\w+)", text)
        assert admin_secret is not None

        with httpx.Client(base_url=base) as alice:
            r = alice.post("/api/v1/auth/session", json={
                "email": "alice@example.com", "password": accounts["alice@example.com"]})
            assert r.status_code == 200, r.text
            me = alice.get("/api/v1/me").json()
            assert (me["id"], me["role"]) == ("alice", "user")
            assert alice.get("/api/v1/wallet/balance").json()["wallets"]["points"][
                "balance"] == 1000
            order = alice.post("/api/v1/topups", json={"package_id": "small"}, headers={
                "Idempotency-Key": "demo-1", "X-CSRF-Token": alice.cookies["cp_csrf"]})
            assert order.status_code == 201, order.text
            assert order.json()["checkout_url"].startswith(f"{base}/mock-checkout/")

        with httpx.Client(base_url=base) as merchant:
            r = merchant.post("/api/v1/auth/session", json={
                "email": "merchant@example.com",
                "password": accounts["merchant@example.com"]})
            assert r.json()["user"]["role"] == "merchant"
            mine = merchant.get("/api/v1/merchant/products").json()["data"]
            assert sorted(p["name"] for p in mine) == ["Dragon egg", "Health potion",
                                                       "Silver shield"]
            catalog = httpx.get(base + "/api/v1/products", params={"merchant_id": "shop"})
            assert {p["id"] for p in catalog.json()["data"]} == {p["id"] for p in mine}

        with httpx.Client(base_url=base) as admin:
            r = admin.post("/api/v1/auth/session", json={
                "email": "admin@example.com", "password": accounts["admin@example.com"],
                "totp_code": pyotp.TOTP(admin_secret.group(1)).now()})
            assert r.status_code == 200, r.text
            assert r.json()["mfa"] is True
            assert admin.get("/admin/v1/stats/pending").status_code == 200

        # The README's walk-through: source .coinpurse-demo.env, then curl.
        env_file = dict(re.findall(r"export (\w+)=(\S+)", (tmp_path / ".coinpurse-demo.env")
                                   .read_text()))
        assert env_file["BASE"] == base
        bal = httpx.get(base + "/api/v1/wallet/balance",
                        headers={"Authorization": f"Bearer {env_file['TOKEN']}"})
        assert bal.json()["user_id"] == "alice"
        credit = httpx.post(base + "/internal/v1/wallet/credit", headers={
            "X-API-Key": env_file["KEY"], "Idempotency-Key": "quest-42-alice"}, json={
            "user_id": "alice", "currency": "points", "amount": 50,
            "description": "Quest reward", "reference_id": "quest_42"})
        assert credit.status_code == 201, credit.text
        assert credit.json()["balance_after"] == 1050
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
