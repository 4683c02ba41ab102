"""Accessibility in headless Chromium: axe-core (served from the site's static files) finds no
serious or critical issue on the main pages, signed out and in, on a desk and on a phone; the
skip link, the account menu's name and the 360 px layout are checked by hand."""

from __future__ import annotations

import pytest
from django.db import connections

from accounts.models import Alert, WatchlistItem, WebhookChannel
from accounts.services import market_alerts_check
from maps.models import LiquidationEvent, MapSnapshot
from tests.browser import axe_violations

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("empty_cache", "fast_password_hashing"),
]

PASSWORD = "correct horse battery"
DESK = {"viewport": {"width": 1440, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
PUBLIC = [
    "/?window=7d",
    "/binance/btcusdt/?window=7d",
    "/coin/btc/?window=7d",
    "/coin/",
    "/binance/",
    "/model/",
    "/api/",
    "/accounts/login/",
    "/accounts/signup/",
    "/accounts/webhook/docs/",
]
SIGNED_IN = [
    "/watchlist/",
    "/watchlist/alerts/",
    "/accounts/profile/",
    "/accounts/webhook/",
    "/accounts/notifications/",
]


@pytest.fixture
def site(tracked_market, alice):
    """A demo-like market with real liquidations, watched by alice with a fired alert and a
    webhook."""
    market = tracked_market("BTCUSDT", "binance", is_demo=True, steps=700, windows=("7d",))
    snapshot = MapSnapshot.objects.get(market=market, window="7d")
    LiquidationEvent.objects.create(
        market=market,
        time=snapshot.as_of,
        side="long",
        price=snapshot.last_close * 0.997,
        quantity=3.0,
        notional_usd=snapshot.last_close * 3.0,
        source="stream",
    )
    watch = WatchlistItem.objects.create(user=alice, market=market)
    Alert.objects.create(watch=watch, kind="proximity", within_pct=50, min_notional_usd=1)
    market_alerts_check(market_id=market.pk)
    WebhookChannel.objects.create(user=alice, url="https://example.com/hook")
    return market


def check(browser, live_server, paths, options, login=False):
    context = browser.new_context(**options)
    page = context.new_page()
    if login:
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("form.account-form button[type=submit]")
        page.wait_for_url("**/")
    found = {}
    for path in paths:
        page.goto(f"{live_server.url}{path}")
        if page.locator(".charts__canvas").count():
            page.wait_for_selector(".charts__canvas.is-ready", timeout=30_000)
        violations = axe_violations(page, live_server.url)
        if violations:
            found[path] = violations
    context.close()
    connections.close_all()
    return found


@pytest.mark.parametrize("device", ["desk", "phone"])
def test_it_has_no_serious_accessibility_issue_signed_out(browser, live_server, site, device):
    assert check(browser, live_server, PUBLIC, DESK if device == "desk" else PHONE) == {}


@pytest.mark.parametrize("device", ["desk", "phone"])
def test_it_has_no_serious_accessibility_issue_signed_in(browser, live_server, site, device):
    alert = Alert.objects.get()
    paths = [*SIGNED_IN, f"/watchlist/alerts/{alert.pk}/edit/", "/binance/btcusdt/?window=7d"]
    options = DESK if device == "desk" else PHONE
    assert check(browser, live_server, paths, options, login=True) == {}


def test_it_skips_to_the_content_and_names_the_account_menu(browser, live_server, site):
    context = browser.new_context(**DESK)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.account-form button[type=submit]")
    page.wait_for_url("**/")
    page.goto(f"{live_server.url}/binance/btcusdt/?window=7d")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert page.locator(".skip-link").bounding_box()["y"] >= 0
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    menu = page.locator(".account-menu__toggle")
    spoken = page.evaluate(
        """() => Array.from(document.querySelector(".account-menu__toggle").childNodes)
            .filter(n => !(n.getAttribute && n.getAttribute("aria-hidden") === "true"))
            .map(n => n.textContent).join("").replace(/\\s+/g, " ").trim()"""
    )
    shown = page.locator(".account-menu__name").inner_text()
    assert shown == "alice"
    assert spoken.startswith(shown) and "account menu" in spoken
    assert menu.get_attribute("aria-label") is None
    link = page.locator(".card__foot a").first
    assert "underline" in link.evaluate("a => getComputedStyle(a).textDecorationLine")
    context.close()
    connections.close_all()


@pytest.mark.parametrize(
    ("path", "login"),
    [
        ("/?window=7d", False),
        ("/binance/btcusdt/?window=7d", False),
        ("/accounts/signup/", False),
        ("/watchlist/", True),
        ("/watchlist/alerts/", True),
        ("/accounts/webhook/", True),
    ],
)
def test_it_fits_a_360_pixel_screen(browser, live_server, site, path, login):
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    page = context.new_page()
    if login:
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("form.account-form button[type=submit]")
        page.wait_for_url("**/")
    page.goto(f"{live_server.url}{path}")
    if page.locator(".charts__canvas").count():
        page.wait_for_selector(".charts__canvas.is-ready", timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    for selector in (".topbar", ".account-nav", "form", "main"):
        for box in [b for b in (e.bounding_box() for e in page.locator(selector).all()) if b]:
            assert box["x"] >= -0.5 and box["x"] + box["width"] <= 360.5, (selector, box)
    wide = page.evaluate(
        """() => Array.from(document.querySelectorAll(".table-wrap"))
            .filter(w => w.scrollWidth > w.clientWidth + 2)
            .map(w => w.classList.contains("is-overflowing")
                 && getComputedStyle(w.nextElementSibling).display !== "none")"""
    )
    assert all(wide), wide
    context.close()
    connections.close_all()
