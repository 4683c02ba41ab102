"""The planner in headless Chromium: it loads on the pair page, updates as you type with the inputs
in the address bar, and works as a plain form with JavaScript off."""

from __future__ import annotations

import re

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("empty_cache"),
]

LIQUIDATION = "#planner-result .pr-tile .bigprice"


@pytest.fixture
def btc(tracked_market):
    return tracked_market("BTCUSDT", "binance", is_demo=True, windows=("7d",))


def errors_of(page) -> list[str]:
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(str(e)))
    return found


def test_it_plans_as_you_type_and_keeps_the_plan_in_the_url(browser, live_server, btc):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = errors_of(page)
    page.goto(f"{live_server.url}/binance/btcusdt/?window=7d&plan=long&leverage=10&size=1")
    page.wait_for_selector(LIQUIDATION, timeout=20_000)
    first = page.locator(LIQUIDATION).first.inner_text()
    page.fill("#planner-form input[name=leverage]", "40")
    page.wait_for_function(
        f"document.querySelector('{LIQUIDATION}').innerText !== {first!r}", timeout=10_000
    )
    page.wait_for_url(re.compile(r"/binance/btcusdt/\?.*leverage=40"), timeout=10_000)
    assert "plan=long" in page.url and "size=1" in page.url
    page.fill("#planner-form input[name=leverage]", "900")
    page.wait_for_selector(".planner-errors", timeout=10_000)
    assert "above" in page.locator(".planner-errors").inner_text()
    assert page.locator("#planner-form input[name=leverage]").input_value() == "900"
    assert errors == []
    context.close()


def test_it_works_as_a_form_without_javascript(browser, live_server, btc):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server.url}/binance/btcusdt/?window=7d")
    page.select_option("#planner select[name=plan]", "short")
    page.fill("#planner input[name=leverage]", "25")
    page.click("#planner button[type=submit]")
    page.wait_for_url(re.compile(r"/binance/btcusdt/plan/\?.*plan=short"))
    assert "Liquidation price" in page.content()
    assert page.locator(LIQUIDATION).first.inner_text().strip() != ""
    context.close()
