"""The shop in the wallet (catalog, buying, my orders; a merchant's products, sales and
refunds) and the console's orders, in Debian's chromium against ``coinpurse serve``.

Every control is found by its accessible name; every outcome is checked in the page and,
where money moved, through the API too."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.web.conftest import Pages, Site, bearer, screenshot
from tests.web.test_browser import XSS, expect_balance, sign_in

FEE_BP = 500  # COINPURSE_SHOP_FEE_BP's default: 5%


def product(site: Site, merchant: str, **fields: Any) -> dict[str, Any]:
    """A product put up for sale through the API, by its merchant."""
    body = {"name": "Potion", "description": "", "price": 100, "currency": "points",
            "stock": 5, **fields}
    r = site.http.post("/api/v1/products", headers=bearer(site.token(merchant)), json=body)
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


def stock(site: Site, product_id: str) -> int:
    r = site.http.get(f"/api/v1/products/{product_id}")
    assert r.status_code == 200, r.text
    return int(r.json()["stock"])


def open_shop(page: Any, name: str) -> Any:
    """The shop, searched for one product; its card."""
    page.get_by_role("link", name="Shop", exact=True).click()
    page.get_by_label("Search products").fill(name)
    page.get_by_role("button", name="Search", exact=True).click()
    card = page.get_by_role("article", name=name, exact=True)
    expect(card).to_be_visible()
    return card


def fits(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 320, page.url


def test_a_merchant_sells_a_buyer_buys_and_the_merchant_refunds(pages: Pages,
                                                                site: Site) -> None:
    merchant = site.user(prefix="m", role="merchant")
    buyer = site.user(600, prefix="b")
    name = f"Golden sword {merchant}"

    seller = pages.new()
    sign_in(seller, site, merchant)
    seller.get_by_role("link", name="My products").click()
    new = seller.get_by_role("form", name="New product")
    new.get_by_label("Name").fill(name)
    new.get_by_label("Description").fill("Deals double damage.")
    new.get_by_label("Price").fill("250")
    new.get_by_label("Stock").fill("3")
    new.get_by_role("button", name="Add product").click()
    expect(seller.get_by_role("status")).to_contain_text(f"Added {name}")
    row = seller.get_by_role("group", name="Your products").get_by_role(
        "row", name=re.compile(name))
    expect(row.get_by_role("cell")).to_contain_text([name, "250 points", "3", "active"])
    screenshot(seller, "wallet-my-products")

    page = pages.new()
    sign_in(page, site, buyer)
    expect_balance(page, "600")
    card = open_shop(page, name)
    expect(card).to_contain_text("Deals double damage.")
    expect(card).to_contain_text("3 in stock")
    card.get_by_role("button", name=f"Buy {name}").click()
    confirm = card.get_by_role("group", name="Confirm your purchase")
    confirm.get_by_label("Quantity").fill("2")
    expect(confirm).to_contain_text("Total500 points")
    screenshot(page, "wallet-shop")
    confirm.get_by_role("button", name="Confirm purchase").click()
    expect(page.get_by_role("status")).to_contain_text(f"Bought 2 \u00d7 {name} for 500 points")
    expect_balance(page, "100")
    expect(page.get_by_role("article", name=name, exact=True)).to_contain_text("1 in stock")
    assert site.balance(buyer) == 100

    page.get_by_role("link", name="My orders").click()
    mine = page.get_by_role("group", name="Your orders").get_by_role(
        "row", name=re.compile(name))
    expect(mine).to_contain_text("500 points")
    expect(mine).to_contain_text("paid")

    seller.get_by_role("link", name="Sales").click()
    fee = 500 * FEE_BP // 10_000
    totals = seller.get_by_role("group", name="Totals per product").get_by_role(
        "row", name=re.compile(name))
    expect(totals.get_by_role("cell")).to_have_text(
        [name, "1", "2", "500 points", f"{fee} points", "0 points", f"{500 - fee} points"])
    seller.get_by_role("button", name=f"Refund {name} bought by {buyer}").click()
    refund = seller.get_by_role("group", name=f"Refund {name} to {buyer}")
    refund.get_by_label("Amount").fill("250")
    refund.get_by_label("Reason").fill("One was broken")
    refund.get_by_label("Put the units back in stock").check()
    screenshot(seller, "wallet-sales")
    refund.get_by_role("button", name="Confirm refund").click()
    expect(seller.get_by_role("status")).to_contain_text(
        f"Refunded 250 points to {buyer}; 1 back in stock.")
    expect(totals.get_by_role("cell").nth(5)).to_have_text("250 points")

    assert site.balance(buyer) == 350
    assert stock(site, card_id(site, merchant, name)) == 2
    expect_balance(page, "350")  # live, no reload
    page.get_by_role("link", name="My orders").click()
    expect(mine).to_contain_text("partially refunded")
    expect(mine).to_contain_text("refunded 250 points")


def card_id(site: Site, merchant: str, name: str) -> str:
    r = site.http.get("/api/v1/products", params={"merchant_id": merchant, "q": name})
    (found,) = r.json()["data"]
    return str(found["id"])


def test_product_text_from_merchants_renders_as_text(pages: Pages, site: Site) -> None:
    merchant = site.user(prefix="x", role="merchant")
    buyer = site.user(50)
    made = product(site, merchant, name=f"{merchant} {XSS}"[:120], description=XSS)
    page = pages.new()
    sign_in(page, site, buyer)
    card = open_shop(page, made["name"])
    expect(card.get_by_role("heading")).to_have_text(made["name"])
    expect(card.locator("p.description")).to_have_text(XSS)
    assert card.locator("img, script").count() == 0
    assert page.evaluate("window.__xss") is None  # nothing ran


def test_a_price_change_is_refused_then_bought_at_the_new_price(pages: Pages,
                                                                site: Site) -> None:
    merchant = site.user(prefix="p", role="merchant")
    buyer = site.user(500)
    made = product(site, merchant, name=f"Shield {merchant}", price=100)
    page = pages.new()
    sign_in(page, site, buyer)
    card = open_shop(page, made["name"])
    card.get_by_role("button", name=f"Buy {made['name']}").click()
    r = site.http.patch(f"/api/v1/products/{made['id']}", json={"price": 120},
                        headers=bearer(site.token(merchant)))
    assert r.status_code == 200, r.text
    card.get_by_role("button", name="Confirm purchase").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "The price changed: it is now 120 points. Nothing was charged")
    assert site.balance(buyer) == 500
    confirm = card.get_by_role("group", name="Confirm your purchase")
    expect(confirm).to_contain_text("Unit price120 points")  # redrawn at the new price
    confirm.get_by_role("button", name="Confirm purchase").click()
    expect(page.get_by_role("status")).to_contain_text("for 120 points")
    expect_balance(page, "380")


def test_only_merchants_have_the_merchant_area(pages: Pages, site: Site) -> None:
    user = site.user(5)
    page = pages.new()
    sign_in(page, site, user)
    expect_balance(page, "5")
    nav = page.get_by_role("navigation", name="Wallet")
    expect(nav.get_by_role("link", name="Shop", exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="My products")).to_have_count(0)
    expect(nav.get_by_role("link", name="Sales")).to_have_count(0)
    page.goto(site.base + "/wallet/products")
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    expect(page.get_by_role("form", name="New product")).to_have_count(0)


def test_merchant_pages_fit_a_narrow_screen(pages: Pages, site: Site) -> None:
    merchant = site.user(prefix="n", role="merchant")
    buyer = site.user(100)
    made = product(site, merchant, name=f"Lantern {merchant}", description="Bright. " * 20)
    r = site.http.post("/api/v1/orders", headers={**bearer(site.token(buyer)),
                                                  "Idempotency-Key": f"narrow-{buyer}"},
                       json={"product_id": made["id"], "quantity": 1})
    assert r.status_code == 201, r.text
    page = pages.new(width=320, height=720)
    sign_in(page, site, merchant)
    page.get_by_role("link", name="My products").click()
    expect(page.get_by_role("row", name=re.compile(made["name"]))).to_be_visible()
    fits(page)
    page.get_by_role("button", name=f"Edit {made['name']}").click()
    expect(page.get_by_role("group", name=f"Edit {made['name']}")).to_be_visible()
    fits(page)
    page.get_by_role("link", name="Sales").click()
    page.get_by_role("button", name=re.compile(f"^Refund {made['name']}")).click()
    expect(page.get_by_role("group", name=re.compile("^Refund "))).to_be_visible()
    fits(page)
    screenshot(page, "wallet-sales-320")
    buyer_page = pages.new(width=320, height=720)
    sign_in(buyer_page, site, buyer)
    card = open_shop(buyer_page, made["name"])
    card.get_by_role("button", name=f"Buy {made['name']}").click()
    expect(card.get_by_role("group", name="Confirm your purchase")).to_be_visible()
    fits(buyer_page)
    screenshot(buyer_page, "wallet-shop-320")


def test_a_merchant_edits_stock_with_if_match(pages: Pages, site: Site) -> None:
    merchant = site.user(prefix="e", role="merchant")
    buyer = site.user(100)
    made = product(site, merchant, name=f"Arrow {merchant}", price=10, stock=5)
    page = pages.new()
    sign_in(page, site, merchant)
    page.get_by_role("link", name="My products").click()
    page.get_by_role("button", name=f"Edit {made['name']}").click()
    editor = page.get_by_role("group", name=f"Edit {made['name']}")
    editor.get_by_label("Stock").fill("8")
    # A sale comes between reading and saving: the edit must not overwrite its stock.
    r = site.http.post("/api/v1/orders", headers={**bearer(site.token(buyer)),
                                                  "Idempotency-Key": f"edit-{buyer}"},
                       json={"product_id": made["id"], "quantity": 2})
    assert r.status_code == 201, r.text
    editor.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("alert")).to_contain_text("changed since you opened it")
    assert stock(site, made["id"]) == 3
    row = page.get_by_role("row", name=re.compile(made["name"]))
    expect(row.get_by_role("cell").nth(2)).to_have_text("3")
    page.get_by_role("button", name=f"Edit {made['name']}").click()
    editor.get_by_label("Stock").fill("8")
    editor.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_contain_text(f"Saved {made['name']}")
    assert stock(site, made["id"]) == 8
    page.get_by_role("button", name=f"Delete {made['name']}").click()
    page.get_by_role("button", name=f"Confirm delete {made['name']}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Deleted {made['name']}")
    assert site.http.get(f"/api/v1/products/{made['id']}").status_code == 404


def test_console_orders_admin_refunds_auditor_reads(pages: Pages, site: Site) -> None:
    merchant = site.user(300, prefix="c", role="merchant")
    buyer = site.user(200)
    made = product(site, merchant, name=f"Cloak {merchant}", price=80)
    r = site.http.post("/api/v1/orders", headers={**bearer(site.token(buyer)),
                                                  "Idempotency-Key": f"console-{buyer}"},
                       json={"product_id": made["id"], "quantity": 1})
    assert r.status_code == 201, r.text

    auditor = pages.new()
    sign_in(auditor, site, "auditor", site.auditor_secret, path="/console")
    auditor.get_by_role("link", name="Orders", exact=True).click()
    auditor.get_by_label("Buyer").fill(buyer)
    auditor.get_by_role("button", name="Filter").click()
    row = auditor.get_by_role("group", name="Orders", exact=True).get_by_role(
        "row", name=re.compile(made["name"]))
    expect(row).to_contain_text("80 points")
    expect(row.get_by_role("button")).to_have_count(0)  # auditors read only

    console = pages.new()
    sign_in(console, site, "admin", site.admin_secret, path="/console")
    console.get_by_role("link", name="Orders", exact=True).click()
    console.get_by_label("Buyer").fill(buyer)
    console.get_by_role("button", name="Filter").click()
    row = console.get_by_role("group", name="Orders", exact=True).get_by_role(
        "row", name=re.compile(made["name"]))
    expect(row).to_contain_text("paid")
    screenshot(console, "console-orders")
    row.get_by_role("button", name=f"Refund {made['name']} bought by {buyer}").click()
    form = console.get_by_role("group", name=f"Refund {made['name']} to {buyer}")
    form.get_by_label("Reason").fill("Charged twice by mistake")
    form.get_by_role("button", name="Confirm refund").click()
    expect(console.get_by_role("status")).to_contain_text(f"Refunded 80 points to {buyer}")
    expect(row).to_contain_text("refunded")
    assert site.balance(buyer) == 200
