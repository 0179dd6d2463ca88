"""The wallet and the console in Debian's chromium (headless), against ``coinpurse serve``.

Controls are found by their accessible names, as a person with a screen reader would."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyotp
import pytest
from playwright.sync_api import expect

from tests.web.conftest import PASSWORD, Pages, Site, bearer, email, screenshot

XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


def sign_in(page: Any, site: Site, user_id: str, secret: str | None = None,
            path: str = "/wallet") -> None:
    page.goto(site.base + path)
    page.get_by_label("Email").fill(email(user_id))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if secret:
        code = page.get_by_label("Authentication code")
        expect(code).to_be_visible()
        code.fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Sign in").click()


def card(page: Any, currency: str = "points") -> Any:
    return page.get_by_role("region", name="Balances").get_by_role("article", name=currency)


def expect_balance(page: Any, text: str, timeout: int = 10_000) -> None:
    expect(card(page).locator("[data-field=balance]")).to_have_text(text, timeout=timeout)


# What shows once each view has loaded its data (the pages fetch after the load event, so
# Playwright's load states say nothing about them).
WALLET_VIEWS = {
    "Buy coins": lambda p: p.get_by_text(re.compile("No top-ups yet|succeeded|created")),
    "Send gift": lambda p: p.get_by_text(re.compile("No gifts sent yet")).or_(
        p.get_by_role("group", name="Gifts sent")),
    "Withdraw": lambda p: p.get_by_role("heading", name="What you can withdraw"),
}
WALLET_LINKS = {
    "Shop": lambda p: p.get_by_text("No product matches.").or_(p.locator("article.product")),
    "My orders": lambda p: p.get_by_text(re.compile("No orders yet")).or_(
        p.get_by_role("group", name="Your orders")),
    "Verify identity": lambda p: p.get_by_text(re.compile(r"^Your tier: \d")),
    "Security": lambda p: p.get_by_role("button", name="Set up two-factor authentication"),
}
CONSOLE_LINKS = {
    "Dashboard": lambda p: p.get_by_role("img", name=re.compile("points: volume per day")),
    "Transactions": lambda p: p.get_by_role("heading", name="Totals for the whole search"),
    "Users": lambda p: p.get_by_role("button", name="Open ledger"),
    "Approvals": lambda p: p.get_by_role("heading", name="Recent adjustments"),
    "Keys": lambda p: p.get_by_role("group", name="Keys issued"),
    "Payments": lambda p: p.get_by_role("group", name="Payment orders").or_(
        p.get_by_text("No order matches.")),
    "Orders": lambda p: p.get_by_role("group", name="Orders", exact=True).or_(
        p.get_by_text("No order matches.")),
    "Audit log": lambda p: p.get_by_role("group", name="Audit log"),
}


def visit(page: Any, role: str, name: str, loaded: Any) -> None:
    page.get_by_role(role, name=name, exact=True).click()
    expect(loaded(page).first).to_be_visible()


def session_cookies(page: Any) -> dict[str, str]:
    return {c["name"]: c["value"] for c in page.context.cookies()}


def test_sign_in_and_balances(pages: Pages, site: Site) -> None:
    user = site.user(1234)
    page = pages.new()
    page.goto(site.base + "/")
    assert page.url == site.base + "/wallet"  # / leads to the wallet
    sign_in(page, site, user)
    expect_balance(page, "1,234")
    expect(card(page, "usdt").locator("[data-field=balance]")).to_have_text("0.00")  # scale 2
    expect(page.get_by_role("row", name=re.compile("Welcome"))).to_be_visible()
    for name in ("Buy coins", "Send gift", "Withdraw", "Sign out"):
        expect(page.get_by_role("button", name=name)).to_be_visible()
    screenshot(page, "wallet-desktop")


# Counts the sign-in forms put on the page (a MutationObserver from before the page's own
# scripts run).
_COUNT_SIGN_IN_FORMS = """
window.__signInForms = 0;
new MutationObserver((changes) => {
  for (const c of changes) for (const n of c.addedNodes) {
    if (n.nodeType === 1) window.__signInForms += (n.matches('form.signin') ? 1 : 0)
      + n.querySelectorAll('form.signin').length;
  }
}).observe(document, { childList: true, subtree: true });
"""


@pytest.mark.parametrize("path", ["/wallet", "/console"])
def test_the_sign_in_form_is_shown_once_and_keeps_what_was_typed(pages: Pages, site: Site,
                                                                 path: str) -> None:
    # A signed-out page learns it from a 401, which both the API helper and the page's
    # start-up answer by showing the form: shown twice, the second form wiped what a quick
    # user (or a test) had already typed into the first.
    page = pages.new()
    page.add_init_script(_COUNT_SIGN_IN_FORMS)
    page.goto(site.base + path)
    page.get_by_label("Email").fill("quick@example.com")
    page.wait_for_load_state("networkidle")
    expect(page.get_by_label("Email")).to_have_value("quick@example.com")
    assert page.evaluate("window.__signInForms") == 1


def test_wrong_password_is_refused(pages: Pages, site: Site) -> None:
    user = site.user()
    page = pages.new()
    page.goto(site.base + "/wallet")
    page.get_by_label("Email").fill(email(user))
    page.get_by_label("Password").fill("not the password")
    page.get_by_label("Password").press("Enter")  # the keyboard submits the form
    expect(page.get_by_role("alert")).to_contain_text("wrong e-mail or password")
    expect(page.get_by_role("region", name="Balances")).to_have_count(0)


def test_buy_coins_through_the_mock_checkout(pages: Pages, site: Site) -> None:
    user = site.user(5)
    page = pages.new()
    sign_in(page, site, user)
    expect_balance(page, "5")
    page.get_by_role("button", name="Buy coins").click()
    page.get_by_role("button", name=re.compile(r"^Buy 100 points for")).click()
    page.wait_for_url(re.compile(r"/mock-checkout/"))
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url(re.compile(r"/wallet/topup-return\?"))
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Your coins have arrived")
    expect_balance(page, "105")
    assert site.balance(user) == 105
    page.get_by_role("button", name="Buy coins").click()
    expect(page.get_by_role("row", name=re.compile("succeeded"))).to_be_visible()


def test_cancelled_checkout(pages: Pages, site: Site) -> None:
    user = site.user()
    page = pages.new()
    sign_in(page, site, user)
    page.get_by_role("button", name="Buy coins").click()
    page.get_by_role("button", name=re.compile(r"^Buy 100 points for")).click()
    page.get_by_role("button", name="Decline").click()
    expect(page.get_by_role("heading", name="Payment cancelled")).to_be_visible()
    expect_balance(page, "0")


def test_a_gift_arriving_updates_the_page_live(pages: Pages, site: Site) -> None:
    receiver, giver = site.user(), site.user(100)
    page = pages.new()
    with page.expect_response(site.base + "/api/v1/events/stream") as opened:
        sign_in(page, site, receiver)
    assert opened.value.status == 200  # the wallet follows the live stream (session cookie)
    expect_balance(page, "0")
    page.wait_for_timeout(1_000)  # the reload the stream's opening asks for
    polls = sum(u.endswith("/api/v1/wallet/balance") for u in pages.requests)
    page.wait_for_timeout(4_000)  # longer than the fallback poll's period: no poll meanwhile
    assert sum(u.endswith("/api/v1/wallet/balance") for u in pages.requests) == polls
    r = site.http.post("/api/v1/gifts", headers={**bearer(site.token(giver)),
                                                 "Idempotency-Key": "live-1"},
                       json={"to_user_id": receiver, "gift_type": "rose"})
    assert r.status_code == 201, r.text
    # rose 10: 2 to the platform, 8 to the receiver; no reload, no poll: the stream said so
    expect_balance(page, "8")
    expect(page.get_by_role("row", name=re.compile("Gift: rose"))).to_be_visible()


def test_send_a_gift_with_confirmation(pages: Pages, site: Site) -> None:
    giver, receiver = site.user(600), site.user()
    page = pages.new()
    sign_in(page, site, giver)
    page.get_by_role("button", name="Send gift").click()
    page.get_by_label("Recipient").fill(receiver)
    page.get_by_label("Gift").select_option("rocket")
    page.get_by_label("Message").fill("Great stream!")
    page.get_by_role("button", name="Review gift").click()
    confirm = page.get_by_role("group", name="Confirm your gift")
    expect(confirm).to_contain_text("You pay500 points")
    expect(confirm).to_contain_text("They receive400 points")
    expect(confirm).to_contain_text("Platform fee100 points")
    screenshot(page, "wallet-gift-confirm")
    page.get_by_role("button", name="Confirm gift").click()
    expect(page.get_by_role("status")).to_contain_text(f"{receiver} received 400 points")
    expect_balance(page, "100")
    assert site.balance(receiver) == 400
    expect(page.get_by_role("row", name=re.compile("Great stream!"))).to_be_visible()


def test_gift_message_markup_renders_as_text(pages: Pages, site: Site) -> None:
    receiver, giver = site.user(), site.user(50)
    r = site.http.post("/api/v1/gifts", headers={**bearer(site.token(giver)),
                                                 "Idempotency-Key": "xss-1"},
                       json={"to_user_id": receiver, "gift_type": "rose", "message": XSS})
    assert r.status_code == 201, r.text
    page = pages.new()
    sign_in(page, site, receiver)
    page.get_by_role("button", name="Send gift").click()
    received = page.get_by_role("group", name="Gifts received")
    expect(received.locator("td.message-text")).to_have_text(XSS)  # the markup, as text
    assert page.evaluate("window.__xss") is None  # nothing ran
    assert received.locator("img, script").count() == 0
    assert not [u for u in pages.requests if urlsplit(u).path.endswith("/x")]


def test_pages_request_nothing_from_other_origins(pages: Pages, site: Site) -> None:
    user = site.user(10)
    page = pages.new()
    sign_in(page, site, user)
    expect_balance(page, "10")
    for name, loaded in WALLET_VIEWS.items():
        visit(page, "button", name, loaded)
    for name, loaded in WALLET_LINKS.items():
        visit(page, "link", name, loaded)
    console = pages.new()
    sign_in(console, site, "admin", site.admin_secret, path="/console")
    expect(CONSOLE_LINKS["Dashboard"](console)).to_be_visible()
    for name, loaded in CONSOLE_LINKS.items():
        visit(console, "link", name, loaded)
    origin = urlsplit(site.base)
    foreign = [u for u in pages.requests if not u.startswith("data:")
               and (urlsplit(u).scheme, urlsplit(u).netloc) != (origin.scheme, origin.netloc)]
    assert foreign == []
    assert len(pages.requests) > 20  # it did record the pages' requests


def test_admin_approves_a_withdrawal_and_the_user_sees_it_paid(pages: Pages,
                                                               site: Site) -> None:
    user = site.user(500, prefix="w")
    token = site.token(user)
    admin_token = site.token("admin", site.admin_secret)
    kyc = site.http.post("/api/v1/kyc", headers=bearer(token), json={
        "tier": 1, "full_name": "Ada Lovelace", "date_of_birth": "1990-12-10",
        "country": "GB"})
    assert kyc.status_code == 201, kyc.text
    approved = site.http.post(f"/admin/v1/kyc/submissions/{kyc.json()['id']}/approve",
                              headers=bearer(admin_token))
    assert approved.status_code == 200, approved.text

    page = pages.new()
    sign_in(page, site, user)
    page.get_by_role("button", name="Withdraw").click()
    expect(page.get_by_text("Verification tier 1: you can withdraw.")).to_be_visible()
    page.get_by_label("Amount").fill("120")
    page.get_by_label("Payout details").fill("IBAN DE89 3704 0044 0532 0130 00")
    page.get_by_role("button", name="Request payout").click()
    expect(page.get_by_role("status")).to_contain_text("120 points is held")
    expect(card(page).locator("[data-field=held]")).to_have_text("120")

    console = pages.new()
    sign_in(console, site, "admin", site.admin_secret, path="/console")
    console.get_by_role("link", name="Approvals").click()
    row = console.get_by_role("group", name="Withdrawals waiting").get_by_role(
        "row", name=re.compile(user))
    expect(row).to_contain_text("120 points")
    screenshot(console, "console-approvals")
    row.get_by_role("button", name="Approve").click()
    expect(console.get_by_role("status")).to_contain_text("Approve: done")

    page.reload()
    page.get_by_role("button", name="Withdraw").click()
    expect(page.get_by_role("group", name="Your withdrawals").get_by_role(
        "row", name=re.compile("120 points"))).to_contain_text("paid")
    expect_balance(page, "380")


def test_an_auditor_sees_but_cannot_approve(pages: Pages, site: Site) -> None:
    user = site.user(300, prefix="a")
    token = site.token(user)
    admin_token = site.token("admin", site.admin_secret)
    kyc = site.http.post("/api/v1/kyc", headers=bearer(token), json={
        "tier": 1, "full_name": "Grace Hopper", "date_of_birth": "1906-12-09",
        "country": "US"})
    site.http.post(f"/admin/v1/kyc/submissions/{kyc.json()['id']}/approve",
                   headers=bearer(admin_token))
    w = site.http.post("/api/v1/withdrawals", headers={**bearer(token),
                                                       "Idempotency-Key": "aud-1"},
                       json={"currency": "points", "amount": 50,
                             "destination": {"details": "x"}})
    assert w.status_code == 201, w.text

    console = pages.new()
    sign_in(console, site, "auditor", site.auditor_secret, path="/console")
    expect(console.get_by_role("note")).to_contain_text("change nothing")
    console.get_by_role("link", name="Approvals").click()
    row = console.get_by_role("group", name="Withdrawals waiting").get_by_role(
        "row", name=re.compile(user))
    expect(row).to_contain_text("50 points")
    expect(row.get_by_role("button")).to_have_count(0)  # no control at all
    console.get_by_role("link", name="Keys").click()
    expect(console.get_by_role("button", name="Create key")).to_have_count(0)
    # The API refuses the auditor's own session too, even with a valid CSRF token.
    csrf = session_cookies(console)["cp_csrf"]
    refused = console.request.post(
        f"{site.base}/admin/v1/withdrawals/{w.json()['id']}/approve",
        headers={"X-CSRF-Token": csrf})
    assert refused.status == 403
    assert refused.json()["code"] == "forbidden"
    assert site.balance(user) == 300


def test_sign_out_ends_the_session(pages: Pages, site: Site) -> None:
    user = site.user(1)
    page = pages.new()
    sign_in(page, site, user)
    expect_balance(page, "1")
    old = session_cookies(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert "cp_session" not in session_cookies(page)
    r = httpx.get(site.base + "/api/v1/wallet/balance",
                  cookies={"cp_session": old["cp_session"]})
    assert r.status_code == 401  # the old cookie is refused at once
    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_state_change_without_csrf_token_is_refused(pages: Pages, site: Site) -> None:
    giver, receiver = site.user(40), site.user()
    page = pages.new()
    sign_in(page, site, giver)
    expect_balance(page, "40")
    body = {"to_user_id": receiver, "gift_type": "rose"}
    refused = page.request.post(f"{site.base}/api/v1/gifts", data=body,
                                headers={"Idempotency-Key": "csrf-1"})
    assert refused.status == 403
    assert refused.json()["code"] == "csrf_failed"
    # The page's own fetch from another origin's point of view cannot read the token; the
    # same request with it (as the wallet sends it) goes through.
    csrf = session_cookies(page)["cp_csrf"]
    ok = page.request.post(f"{site.base}/api/v1/gifts", data=body,
                           headers={"Idempotency-Key": "csrf-1", "X-CSRF-Token": csrf})
    assert ok.status == 201
    assert site.balance(giver) == 30


def test_two_factor_enrolment_shows_a_qr_code(pages: Pages, site: Site) -> None:
    user = site.user()
    page = pages.new()
    sign_in(page, site, user)
    page.get_by_role("link", name="Security").click()
    page.get_by_role("button", name="Set up two-factor authentication").click()
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    assert qr.evaluate("img => img.naturalWidth") > 0  # the CSP allowed it, and it drew
    secret = page.locator("code.secret").inner_text()
    page.get_by_label("Authentication code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_text("recovery codes")).to_be_visible()
    assert page.locator("ul.codes li").count() == 10


def test_narrow_screens_do_not_scroll_sideways(pages: Pages, site: Site) -> None:
    user = site.user(2500)
    page = pages.new(width=320, height=720)
    sign_in(page, site, user)
    expect_balance(page, "2,500")

    def fits(p: Any) -> None:
        width = p.evaluate("document.documentElement.scrollWidth")
        assert width <= 320, p.url

    expect(page.get_by_role("row", name=re.compile("Welcome"))).to_be_visible()
    fits(page)
    screenshot(page, "wallet-320")
    for name, loaded in WALLET_VIEWS.items():
        visit(page, "button", name, loaded)
        fits(page)
    for name, loaded in WALLET_LINKS.items():
        visit(page, "link", name, loaded)
        fits(page)
    console = pages.new(width=320, height=720)
    sign_in(console, site, "admin", site.admin_secret, path="/console")
    expect(CONSOLE_LINKS["Dashboard"](console)).to_be_visible()
    fits(console)
    screenshot(console, "console-320")
    for name, loaded in CONSOLE_LINKS.items():
        visit(console, "link", name, loaded)
        fits(console)


def test_console_dashboard_keys_and_search(pages: Pages, site: Site) -> None:
    user = site.user(77)
    console = pages.new()
    sign_in(console, site, "admin", site.admin_secret, path="/console")
    expect(console.get_by_role("img", name=re.compile("points: volume per day"))).to_be_visible()
    screenshot(console, "console-desktop")
    console.get_by_role("link", name="Transactions").click()
    console.get_by_label("User id").fill(user)
    console.get_by_role("button", name="Search").click()
    expect(console.get_by_role("link", name="Export CSV")).to_have_attribute(
        "href", f"/admin/v1/transactions/export.csv?user_id={user}")
    totals = console.get_by_role("group", name="Totals")
    credit = totals.get_by_role("row", name=re.compile("credit"))
    expect(credit.get_by_role("cell")).to_have_text(["credit", "points", "1", "77 points"])
    console.get_by_role("link", name="Keys").click()
    expect(console.get_by_role("group", name="Keys issued")).to_be_visible()
    console.get_by_label("Service", exact=True).fill("shop")
    console.get_by_label("Scopes").fill("wallet:read")
    console.get_by_role("button", name="Create key").click()
    secret = console.locator("[data-secret]").inner_text()
    assert secret.startswith("cpk_")
    assert httpx.get(site.base + f"/internal/v1/wallet/balance/{user}",
                     headers={"X-API-Key": secret}).status_code == 200
    console.get_by_role("button", name="I have copied it").click()
    expect(console.locator("[data-secret]")).to_have_count(0)  # shown once
    revoke = console.get_by_role("button", name=re.compile(r"^Revoke shop key"))
    revoke.click()
    console.get_by_role("button", name=re.compile(r"^Confirm revoke shop key")).click()
    expect(console.get_by_role("status")).to_contain_text("Revoked the shop key")
    assert httpx.get(site.base + f"/internal/v1/wallet/balance/{user}",
                     headers={"X-API-Key": secret}).status_code == 401


def test_an_expired_access_cookie_is_renewed_without_signing_out(pages: Pages,
                                                                 site: Site) -> None:
    receiver, giver = site.user(), site.user(100)
    page = pages.new()
    sign_in(page, site, receiver)
    expect_balance(page, "0")
    first_refresh = session_cookies(page)["cp_refresh"]
    page.context.clear_cookies(name="cp_session")  # as when the access token runs out
    r = site.http.post("/api/v1/gifts", headers={**bearer(site.token(giver)),
                                                 "Idempotency-Key": "renew-1"},
                       json={"to_user_id": receiver, "gift_type": "rose"})
    assert r.status_code == 201, r.text
    expect_balance(page, "8")  # the poll got 401, renewed the session, and went on
    cookies = session_cookies(page)
    assert "cp_session" in cookies and cookies["cp_refresh"] != first_refresh
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_the_balance_card_shows_bonus_money(pages: Pages, site: Site) -> None:
    """Bonus money (not in the balance) shows on the card once the user has some."""
    user = site.user(300, prefix="bonus")
    from tests.conftest import user_token

    admin = bearer(user_token("ops-web", role="admin", mfa=True))
    code = f"WEB{user.upper()}"
    r = site.http.post("/admin/v1/promotions", headers=admin, json={
        "code": code, "kind": "manual", "currency": "points", "description": "Welcome",
        "amount": 75})
    assert r.status_code == 201, r.text
    page = pages.new()
    sign_in(page, site, user)
    expect_balance(page, "300")
    expect(card(page).locator("[data-field=bonus]")).to_have_count(0)  # none yet
    g = site.http.post("/internal/v1/bonuses", headers={
        "X-API-Key": site.key, "Idempotency-Key": f"web-bonus-{user}"},
        json={"user_id": user, "promotion_code": code})
    assert g.status_code == 201, g.text
    page.reload()
    expect(card(page).locator("[data-field=bonus]")).to_have_text("75", timeout=10_000)
    expect_balance(page, "300")
