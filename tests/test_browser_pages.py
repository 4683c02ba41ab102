"""The pages in headless Chromium (Debian's, through Playwright): charts, htmx swaps, copy link.

`LIQSITE_WRITE_SCREENSHOTS=1` also saves the screenshots of the demo pages under
docs/screenshots/ (pair.png, coin.png, home.png).
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from maps.models import MapSnapshot
from tests.browser import context_close

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("empty_cache"),
]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
CHARTS_READY = ".charts__canvas.is-ready"


@pytest.fixture
def context(browser, live_server):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    yield context
    context_close(context)


@pytest.fixture
def page(context):
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


@pytest.fixture
def btc(tracked_market):
    return tracked_market("BTCUSDT", "binance", is_demo=True, windows=("12h", "24h", "3d", "7d"))


def open_pair(page, live_server, query: str = "window=7d&side=both") -> None:
    page.goto(f"{live_server.url}/binance/btcusdt/?{query}")
    page.wait_for_selector(CHARTS_READY, timeout=20_000)
    page.evaluate("window.__sameDocument = true")


def large_canvases(page) -> list[dict]:
    boxes = [c.bounding_box() for c in page.locator(".charts__canvas canvas").all()]
    return [b for b in boxes if b and b["width"] > 250 and b["height"] > 250]


def plot_titles(page) -> list[str]:
    return page.evaluate(
        """() => Array.from(Bokeh.documents.at(-1).all_models)
            .filter(m => m.constructor.__name__ === "Title" && m.text)
            .map(m => m.text)"""
    )


def heatmap_span_hours(page) -> float:
    return page.evaluate(
        """() => {
            const ranges = Array.from(Bokeh.documents.at(-1).all_models)
                .filter(m => m.constructor.__name__ === "Range1d" && m.start > 1e12);
            return (ranges[0].end - ranges[0].start) / 3.6e6;
        }"""
    )


def test_it_renders_both_bokeh_plots_without_console_errors(page, live_server, btc):
    open_pair(page, live_server)
    assert len(large_canvases(page)) >= 2
    assert any("BTCUSDT" in title for title in plot_titles(page))
    assert page.title() == "BTCUSDT Binance liquidation heatmap (7d) — liqsite"
    assert page.errors == []


def test_it_swaps_the_proximity_widget_in_place(page, live_server, btc, settings):
    settings.LIQSITE_REFRESH_SECONDS = 1
    open_pair(page, live_server)
    page.evaluate("document.querySelector('#proximity').dataset.marker = 'first'")
    snapshot = MapSnapshot.objects.get(market=btc, window="7d")
    proximity = dict(snapshot.proximity)
    proximity["magnet"], proximity["direction"] = "long", "down"
    proximity["long"] = {
        "price_low": 50_000.0,
        "price_high": 51_000.0,
        "peak_price": 50_500.0,
        "notional_usd": 123_400_000.0,
        "share": 0.5,
        "distance_pct": -4.25,
    }
    MapSnapshot.objects.filter(pk=snapshot.pk).update(
        proximity=proximity, computed_at=timezone.now() + timedelta(seconds=1)
    )
    # A poll already on its way when the map changed brings the old numbers: wait for the next.
    page.wait_for_function(
        """() => !document.querySelector('#proximity').dataset.marker
            && document.querySelector('#proximity').innerText.includes('4.25% below')""",
        timeout=10_000,
    )
    widget = page.inner_text("#proximity")
    assert "4.25% below" in widget
    assert "$123M" in widget
    assert "New map — reload charts" in widget
    assert page.evaluate("window.__sameDocument") is True
    assert len(large_canvases(page)) >= 2
    assert page.errors == []


def test_it_changes_the_plot_with_the_window_selector(page, live_server, btc):
    open_pair(page, live_server)
    week = heatmap_span_hours(page)
    page.click(".seg a:text-is('24h')")
    page.wait_for_url("**/binance/btcusdt/?window=24h&side=both")
    page.wait_for_selector(f"{CHARTS_READY}[data-embedded*='window=24h']", timeout=20_000)
    assert page.evaluate("window.__sameDocument") is True
    assert page.title() == "BTCUSDT Binance liquidation heatmap (24h) — liqsite"
    assert any("24h" in title for title in plot_titles(page))
    assert heatmap_span_hours(page) < week
    assert 20 <= heatmap_span_hours(page) <= 25
    assert page.get_attribute(".seg a:text-is('24h')", "aria-current") == "true"
    assert len(large_canvases(page)) >= 2
    assert page.errors == []


def test_it_reopens_the_same_view_from_the_copied_link(page, context, live_server, btc):
    open_pair(page, live_server)
    page.click(".seg a:text-is('3d')")
    page.wait_for_url("**window=3d**")
    page.click(".seg a:text-is('Shorts')")
    page.wait_for_url("**window=3d&side=short")
    page.wait_for_selector(f"{CHARTS_READY}[data-embedded*='side=short']", timeout=20_000)
    page.click(".copy-link")
    page.wait_for_selector(".copy-link.is-copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"{live_server.url}/binance/btcusdt/?window=3d&side=short"
    other = context.new_page()
    other.goto(copied)
    other.wait_for_selector(CHARTS_READY, timeout=20_000)
    assert other.title() == page.title() == "BTCUSDT Binance liquidation heatmap (3d) — liqsite"
    assert other.get_attribute(".seg a:text-is('3d')", "aria-current") == "true"
    assert other.get_attribute(".seg a:text-is('Shorts')", "aria-current") == "true"
    assert plot_titles(other) == plot_titles(page)
    assert page.errors == []


def test_it_refreshes_the_home_table_in_place(page, live_server, btc, settings):
    settings.LIQSITE_REFRESH_SECONDS = 1
    page.goto(f"{live_server.url}/")
    page.evaluate(
        "window.__sameDocument = true; document.querySelector('#markets').dataset.marker = 'x'"
    )
    page.wait_for_function(
        "() => !document.querySelector('#markets').dataset.marker", timeout=10_000
    )
    assert page.evaluate("window.__sameDocument") is True
    assert "BTCUSDT" in page.inner_text("#markets")
    assert page.errors == []


def test_it_works_without_javascript_links(page, live_server, btc):
    page.goto(f"{live_server.url}/binance/btcusdt/?window=7d")
    href = page.get_attribute(".seg a:text-is('12h')", "href")
    page.goto(f"{live_server.url}{href}")
    assert page.title() == "BTCUSDT Binance liquidation heatmap (12h) — liqsite"


@pytest.fixture
def btc_everywhere(tracked_market):
    windows = ("24h", "7d")
    return [
        tracked_market("BTCUSDT", "binance", seed=1, is_demo=True, windows=windows),
        tracked_market("BTCUSDT", "bybit", seed=2, price=60_050.0, is_demo=True, windows=windows),
    ]


def test_it_swaps_the_coin_proximity_widget_in_place(page, live_server, btc_everywhere, settings):
    settings.LIQSITE_REFRESH_SECONDS = 1
    page.goto(f"{live_server.url}/coin/btc/?window=7d&side=both")
    page.wait_for_selector(CHARTS_READY, timeout=20_000)
    page.evaluate(
        "window.__sameDocument = true; document.querySelector('#proximity').dataset.marker = 'x'"
    )
    assert "refreshes every 1 s" in page.inner_text("#proximity")
    MapSnapshot.objects.filter(market=btc_everywhere[1], window="7d").update(
        computed_at=timezone.now() + timedelta(seconds=1)
    )
    page.wait_for_function(
        "() => !document.querySelector('#proximity').dataset.marker", timeout=10_000
    )
    page.wait_for_selector("#proximity .prox__newer", timeout=10_000)
    reload = page.get_attribute("#proximity .prox__newer", "href")
    assert reload == f"{live_server.url}/coin/btc/?window=7d"
    assert page.evaluate("window.__sameDocument") is True
    assert len(large_canvases(page)) >= 2
    assert page.errors == []


@pytest.mark.parametrize("path", ["/binance/btcusdt/?window=7d", "/", "/api/"])
def test_it_fits_a_phone_screen(browser, live_server, btc, path):
    phone = browser.new_context(viewport={"width": 390, "height": 844})
    page = phone.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server.url}{path}")
    if "btcusdt" in path:
        page.wait_for_selector(CHARTS_READY, timeout=20_000)
        page.wait_for_timeout(500)
        boxes = [c.bounding_box() for c in page.locator(".charts__canvas canvas").all()]
        widths = sorted(b["width"] for b in boxes if b and b["height"] > 250)
        assert widths[-1] >= 340, widths
        assert len([w for w in widths if w >= 300]) >= 2, widths
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    signup = page.locator(".account-nav__signup").bounding_box()
    assert signup["x"] + signup["width"] <= 390
    assert page.locator(".mainnav a:text-is('API')").bounding_box()["x"] < 390
    assert errors == []
    phone.close()


@pytest.mark.slow
def test_it_screenshots_the_demo_pages(page, live_server, tmp_path):
    call_command("seed_demo", days=10, verbosity=0)
    shots = {
        "pair": "/binance/btcusdt/?window=7d&side=both",
        "coin": "/coin/btc/?window=7d&side=both",
        "home": "/?window=7d",
    }
    for name, path in shots.items():
        page.goto(f"{live_server.url}{path}")
        if name != "home":
            page.wait_for_selector(CHARTS_READY, timeout=30_000)
            page.wait_for_timeout(500)
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": 1440, "height": height})
        page.wait_for_timeout(800)
        target = tmp_path / f"{name}.png"
        page.screenshot(path=str(target))
        page.set_viewport_size({"width": 1440, "height": 1000})
        assert target.stat().st_size > 20_000
    assert page.errors == []
    if os.environ.get("LIQSITE_WRITE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name in shots:
            shutil.copyfile(tmp_path / f"{name}.png", SCREENSHOTS / f"{name}.png")
