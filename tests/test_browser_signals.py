"""Signals, backtest and replay in headless Chromium: the panels load, the replay controls move
the page through time without a reload, and nothing logs an error.

`LIQSITE_WRITE_SCREENSHOTS=1` also saves, from the demo data, docs/screenshots/signals-panel.png,
backtest-panel.png and replay.png.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.shock_market import Shock

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("empty_cache"),
]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
CHARTS_READY = ".charts__canvas.is-ready"
DAY = 288


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    context.close()


@pytest.fixture
def market(shocked_market):
    shocks = [
        Shock(step=3 * DAY + 40, side="long", depth=0.05, flush=0.12, steps=3),
        Shock(step=6 * DAY + 100, side="short", depth=0.04, flush=0.09, steps=2),
    ]
    market, _ = shocked_market(days=8, shocks=shocks, windows=("24h", "7d"))
    return market


def test_it_shows_the_panels_and_replays_the_map_from_its_controls(page, live_server, market):
    page.goto(f"{live_server.url}/binance/btcusdt/?window=7d")
    page.wait_for_selector(CHARTS_READY, timeout=30_000)
    page.evaluate("window.__sameDocument = true")
    assert "reversal checklist" in page.inner_text("#signals").lower()
    page.wait_for_selector("#backtest .backtest__lines", timeout=30_000)
    assert "random level at the same distance" in page.inner_text("#backtest")
    page.click(".replay__steps a:text-is('\u22121 d')")
    page.wait_for_url("**at=**")
    page.wait_for_selector(".replay__banner", timeout=20_000)
    page.wait_for_selector(f"{CHARTS_READY}[data-embedded*='at=']", timeout=30_000)
    page.wait_for_selector("#signals .signals__grid", timeout=30_000)
    names = page.evaluate(
        "() => Array.from(Bokeh.documents.at(-1).all_models).map(m => m.name).filter(n => n)"
    )
    assert "layer:replay" in names and "layer:cascades" in names
    assert page.evaluate("window.__sameDocument") is True
    page.click(".replay__banner a")
    page.wait_for_function("() => !document.querySelector('.replay__banner')", timeout=20_000)
    assert "at=" not in page.url
    assert page.errors == []


def test_it_replays_the_moment_the_slider_is_moved_to(page, live_server, market):
    page.goto(f"{live_server.url}/binance/btcusdt/?window=7d")
    page.wait_for_selector(CHARTS_READY, timeout=30_000)
    page.evaluate("window.__sameDocument = true")
    before = page.inner_text(".replay__moment")
    page.locator(".replay__slider").focus()
    page.keyboard.press("PageDown")
    moved = page.inner_text(".replay__moment")
    assert moved != before and moved.endswith("Z")
    page.wait_for_url("**at=**", timeout=20_000)
    page.wait_for_selector(".replay__banner", timeout=20_000)
    assert page.evaluate("window.__sameDocument") is True
    assert "the map as it stood at" in page.inner_text(".replay__banner")
    assert page.errors == []


def test_it_fits_the_replay_controls_on_a_phone(browser, live_server, market):
    phone = browser.new_context(viewport={"width": 390, "height": 844})
    page = phone.new_page()
    page.goto(f"{live_server.url}/binance/btcusdt/?window=7d&at=2030-01-01T00:00Z")
    assert "is not in the past" in page.content()
    page.goto(f"{live_server.url}/binance/btcusdt/?window=24h")
    page.wait_for_selector(".replay__slider")
    page.wait_for_selector(CHARTS_READY, timeout=30_000)  # measured once laid out
    wide = page.evaluate(
        "() => Array.from(document.querySelectorAll('body *'))"
        ".filter(e => e.getBoundingClientRect().right > 392)"
        ".slice(0, 12).map(e => e.tagName + '.' + e.className)"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, wide
    phone.close()


@pytest.mark.slow
def test_it_screenshots_the_signal_panels(page, live_server, tmp_path):
    call_command("seed_demo", days=14, verbosity=0)
    shots = {
        "signals-panel": ("/binance/btcusdt/?window=7d", "#signals"),
        "backtest-panel": ("/binance/btcusdt/?window=7d", "#backtest"),
        "replay": ("/binance/btcusdt/?window=7d&at={at}", None),
    }
    page.goto(f"{live_server.url}/binance/btcusdt/?window=7d")
    at = page.get_attribute(".replay__slider", "max")
    for name, (path, selector) in shots.items():
        page.goto(f"{live_server.url}{path.format(at=int(at) - 2 * 86_400_000)}")
        page.wait_for_selector(CHARTS_READY, timeout=30_000)
        page.wait_for_selector("#backtest .backtest__lines", timeout=30_000)
        page.wait_for_timeout(500)
        target = tmp_path / f"{name}.png"
        if selector:
            page.locator(selector).screenshot(path=str(target))
        else:
            page.screenshot(path=str(target))
        assert target.stat().st_size > 20_000
    assert page.errors == []
    if os.environ.get("LIQSITE_WRITE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name in shots:
            shutil.copyfile(tmp_path / f"{name}.png", SCREENSHOTS / f"{name}.png")
