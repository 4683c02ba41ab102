"""The chart layers in headless Chromium: the switches show and hide the tagged renderers, the
choice survives a reload, and the page raises no error."""

from __future__ import annotations

import pytest

from maps.levels import demo
from maps.selectors import market_bars_arrays

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("empty_cache"),
]

READY = ".charts__canvas.is-ready"
VISIBLE = """layer => {
  const found = [];
  for (const doc of window.Bokeh.documents) {
    for (const model of doc.all_models) {
      if (model.tags && model.tags.includes("levels:" + layer)) found.push(model.visible);
    }
  }
  return found;
}"""


@pytest.fixture
def btc(tracked_market):
    market = tracked_market("BTCUSDT", "binance", steps=4 * 288, windows=("24h",), is_demo=True)
    demo.demo_books_refill(
        market=market, bars=market_bars_arrays(market_id=market.pk), seed=4, days=1
    )
    return market


def test_it_switches_the_layers_and_keeps_the_choice(browser, live_server, btc):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server.url}/binance/btcusdt/?window=24h")
    page.wait_for_selector(READY, timeout=30_000)
    assert page.evaluate(VISIBLE, "depth") == [False]
    assert set(page.evaluate(VISIBLE, "sr")) == {True}
    assert set(page.evaluate(VISIBLE, "walls")) == {True}
    page.check("[data-layers-for] input[value=depth]")
    page.uncheck("[data-layers-for] input[value=sr]")
    assert page.evaluate(VISIBLE, "depth") == [True]
    assert set(page.evaluate(VISIBLE, "sr")) == {False}
    page.reload()
    page.wait_for_selector(READY, timeout=30_000)
    page.wait_for_function(f"({VISIBLE})('depth')[0] === true", timeout=10_000)
    assert page.is_checked("[data-layers-for] input[value=depth]")
    assert not page.is_checked("[data-layers-for] input[value=sr]")
    assert set(page.evaluate(VISIBLE, "sr")) == {False}
    assert page.locator(".prox .confluence").count() >= 1
    assert errors == []
    context.close()
