"""The account journey in headless Chromium: sign up, log in, watch a market from its pair page,
see it on the watchlist, set an alert and watch the notification badge pick it up by htmx."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connections

from accounts.models import Alert, Notification, User, WatchlistItem
from accounts.services import market_alerts_check
from maps.models import Bar, Exchange, Market
from maps.services import market_snapshots_compute
from tests.browser import chromium_launch

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fast_password_hashing"),
]

PASSWORD = "correct horse battery"


@pytest.fixture
def market() -> Market:
    """A market with three days of 5-minute bars and its computed maps."""
    exchange = Exchange.objects.create(slug="binance", name="Binance")
    market = Market.objects.create(
        exchange=exchange, symbol="BTCUSDT", slug="btcusdt", base="BTC", quote="USDT"
    )
    rng = np.random.default_rng(7)
    steps = 3 * 288
    closes = 60_000 * np.exp(np.cumsum(rng.normal(0, 0.0015, steps)))
    opens = np.concatenate([closes[:1], closes[:-1]])
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5 * steps)
    start -= timedelta(minutes=start.minute % 5)
    Bar.objects.bulk_create(
        Bar(
            market=market,
            time=start + timedelta(minutes=5 * i),
            open=float(opens[i]),
            high=float(max(opens[i], closes[i]) * 1.001),
            low=float(min(opens[i], closes[i]) * 0.999),
            close=float(closes[i]),
            volume=float(rng.uniform(800, 1200)),
            taker_buy_volume=float(rng.uniform(380, 620)),
            open_interest=float(80_000 + 20 * i),
        )
        for i in range(steps)
    )
    market_snapshots_compute(market=market)
    return market


@pytest.fixture
def page(live_server, monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = chromium_launch(playwright)
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1400, "height": 900}
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.clock.install()
        yield page
        context.close()
        browser.close()
        # The test's queries ran while Playwright's loop was running, in a context of their own:
        # close that context's connection here, or the test database cannot be dropped.
        connections.close_all()


def emailed_link(address: str) -> str:
    """The path of the sign-up link emailed to `address` (sent just after the response)."""
    import time

    from django.core import mail

    for _ in range(100):
        bodies = [m.body for m in mail.outbox if m.to == [address]]
        if bodies:
            return re.search(r"https?://[^/\s]+(/accounts/signup/\S+/)", bodies[-1]).group(1)
        time.sleep(0.05)
    raise AssertionError(f"no sign-up email to {address}")


def test_it_signs_up_watches_a_market_and_gets_an_alert(page, market, tmp_path):
    from playwright.sync_api import expect

    # Sign up: a link goes to the address; following it makes the account, logged in, on its
    # empty watchlist.
    page.goto("/accounts/signup/")
    page.fill("input[name=username]", "hana")
    page.fill("input[name=email]", "hana@example.com")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("form.account-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/accounts/signup/sent/$"))
    expect(page.locator("body")).to_contain_text("hana@example.com")
    page.goto(emailed_link("hana@example.com"))
    expect(page.locator("input[name=username]")).to_have_value("hana")
    page.click("form.account-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/watchlist/$"))
    expect(page.locator("body")).to_contain_text("You are not watching any market yet")

    # Log out through the user menu, then log in again by email.
    page.click(".account-menu__toggle")
    page.click("button.account-menu__logout")
    expect(page.locator(".account-nav")).to_contain_text("Log in")
    page.goto("/accounts/login/")
    page.fill("input[name=username]", "HANA@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.account-form button[type=submit]")
    expect(page.locator(".account-menu__name")).to_have_text("hana")

    # Watch the market from its pair page: one htmx POST, the button swaps in place.
    page.goto(market.get_absolute_url())
    button = page.locator(f"#watch-{market.pk} button")
    expect(button).to_have_attribute("aria-pressed", "false")
    button.click()
    expect(page.locator(f"#watch-{market.pk} button")).to_have_attribute("aria-pressed", "true")
    expect(page.locator(f"#watch-{market.pk} button")).to_contain_text("Watching")
    assert page.url.endswith(market.get_absolute_url())
    user = User.objects.get(username="hana")
    assert list(WatchlistItem.objects.filter(user=user).values_list("market", flat=True)) == [
        market.pk
    ]

    # The watchlist shows it with its price and clusters.
    page.goto("/watchlist/")
    row = page.locator("#watchlist-rows tr").first
    expect(row).to_contain_text("BTC")
    expect(row).to_contain_text("Binance")
    expect(row.locator(".watchlist__price")).to_have_text(re.compile(r"\d{2},\d{3}\.\d"))
    page.screenshot(path=tmp_path / "watchlist.png", full_page=True)

    # Set an alert that the current map satisfies.
    row.get_by_text("Add alert").click()
    page.check("input[name=kind][value=proximity]")
    page.fill("input[name=within_pct]", "50")
    page.fill("input[name=min_notional_usd]", "1")
    page.click("form.alert-form button[type=submit]")
    expect(page.locator(".alert-list")).to_contain_text("Price within 50% of a cluster")
    assert Alert.objects.filter(watch__user=user, armed=True).count() == 1

    # The check runs (as after a snapshot); the badge's next htmx poll shows the notification.
    expect(page.locator("#notification-badge .notification-badge__count")).to_have_count(0)
    assert len(market_alerts_check(market_id=market.pk)) == 1
    page.clock.run_for(31_000)
    badge = page.locator("#notification-badge .notification-badge__count")
    expect(badge).to_have_text("1")

    # Open the list from the badge and mark it read in place; the badge clears.
    page.click("#notification-badge")
    item = page.locator(".notification").first
    expect(item).to_contain_text("BTCUSDT on Binance: price near a cluster")
    page.screenshot(path=tmp_path / "notifications.png", full_page=True)
    expect(page.locator("#notifications-unread")).to_have_text("1 unread.")
    item.get_by_role("button", name="Mark read").click()
    expect(page.locator(".notification--unread")).to_have_count(0)
    expect(badge).to_have_count(0)
    expect(page.locator("#notifications-unread")).to_have_text("All caught up.")
    assert Notification.objects.get(user=user).read_at is not None
