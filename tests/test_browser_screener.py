"""The screener and the z-score heatmap in headless Chromium: a sort header and a filter swap the
table in place and put their state in the address bar; the z-score colours load without errors."""

from __future__ import annotations

import time

import pytest

from maps.whales.services import market_positioning_refresh
from tests.browser import context_close

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("empty_cache"),
]


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    context_close(context)


@pytest.fixture
def markets(tracked_market):
    found = [
        tracked_market(symbol, exchange, is_demo=True, windows=("7d",))
        for symbol, exchange in (("BTCUSDT", "binance"), ("ETHUSDT", "bybit"))
    ]
    for market in found:
        market_positioning_refresh(market=market)
    return found


def url_wait(page, text: str, seconds: float = 10) -> None:
    """Wait until the address bar holds `text` (htmx pushes it without a page load)."""
    deadline = time.monotonic() + seconds
    while text not in page.url:
        assert time.monotonic() < deadline, f"{text!r} never reached the URL: {page.url}"
        page.wait_for_timeout(100)


def test_sorting_and_filtering_swap_the_table_and_keep_the_state_in_the_url(
    page, live_server, markets
) -> None:
    page.goto(f"{live_server.url}/?window=7d")
    page.evaluate("document.querySelector('#markets').dataset.marker = 'first'")
    page.locator("#markets thead a", has_text="Pair").click()
    url_wait(page, "sort=market")
    page.wait_for_selector("#markets thead [aria-sort='ascending']")
    assert page.evaluate("document.querySelector('#markets').dataset.marker") is None
    page.select_option("select[name=magnet]", "short")
    url_wait(page, "magnet=short")
    assert "sort=market" in page.evaluate("location.search")
    page.select_option("select[name=colour]", "all")
    url_wait(page, "colour=all")
    assert page.errors == []


def test_the_z_score_heatmap_loads_without_errors(page, live_server, markets) -> None:
    page.goto(f"{live_server.url}/binance/btcusdt/?window=7d&colour=zscore")
    page.wait_for_selector(".charts__canvas.is-ready", timeout=20_000)
    names = page.evaluate(
        """() => Array.from(Bokeh.documents.at(-1).all_models)
            .filter(m => m.name === 'heat-z-mapper').length"""
    )
    assert names == 1
    scales = """() => Object.fromEntries(Array.from(Bokeh.documents.at(-1).all_models)
        .filter(m => m.color_mapper !== undefined && typeof m.title === 'string')
        .map(m => [m.title, m.visible]))"""
    shown = page.evaluate(scales)
    notional = "Notional per cell (log)"
    zscore = next(title for title in shown if title.startswith("Z-score"))
    assert shown[notional] is False and shown[zscore] is True  # one scale, the one drawn
    page.locator("[data-layer-switches] button", has_text="Z-score colours").click()
    shown = page.evaluate(scales)
    assert shown[notional] is True and shown[zscore] is False
    assert page.errors == []
