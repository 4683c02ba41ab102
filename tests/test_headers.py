"""Headers: a strict Content-Security-Policy (no inline script anywhere), a Permissions-Policy,
DEBUG off unless set, and the Procfile trusting only the proxies it is told to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

BASE_DIR = Path(__file__).resolve().parent.parent
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
JS_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


def policy(response) -> dict[str, list[str]]:
    directives = [d.split() for d in response["Content-Security-Policy"].split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


@pytest.fixture
def btc(tracked_market, empty_cache):
    return tracked_market("BTCUSDT", "binance", windows=("7d",))


@pytest.mark.parametrize(
    "path", ["/", "/coin/", "/binance/", "/model/", "/accounts/login/", "/api/v1/markets/"]
)
def test_it_sends_a_strict_content_security_policy(client, btc, path):
    csp = policy(client.get(path))

    assert csp["script-src"] == ["'self'"]
    assert csp["default-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert not any("unsafe-eval" in v or "*" in v for values in csp.values() for v in values)


@pytest.mark.parametrize("path", ["/binance/btcusdt/", "/coin/btc/"])
def test_it_lets_only_the_chart_pages_compile_bokehs_formatters(client, btc, path):
    csp = policy(client.get(path))

    assert csp["script-src"] == ["'self'", "'unsafe-eval'"], "BokehJS's CustomJS models"
    assert csp["default-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]


def test_it_sends_a_permissions_policy_denying_unused_features(client, db):
    response = client.get("/")

    features = dict(item.strip().split("=") for item in response["Permissions-Policy"].split(","))
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert features[feature] == "()"


@pytest.mark.parametrize(
    "path",
    ["/", "/api/v1/markets/", "/healthz", "/no/such/page/", "/_/markets/?window=5d"],
)
def test_it_sends_the_policies_with_every_kind_of_answer(client, db, path):
    response = client.get(path)

    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "camera=()" in response["Permissions-Policy"]


def rendered_pages(client: Client, btc, user_factory) -> dict[str, str]:
    anonymous = [
        "/",
        "/coin/",
        "/coin/btc/",
        "/binance/",
        "/binance/btcusdt/",
        "/binance/btcusdt/proximity/",
        "/_/markets/",
        "/model/",
        "/api/",
        "/accounts/login/",
        "/accounts/signup/",
        "/accounts/signup/sent/",
        "/accounts/password/reset/",
        "/no/such/page/",
        "/binance/btcusdt/?window=5d",
    ]
    pages = {path: client.get(path).content.decode() for path in anonymous}
    client.force_login(user_factory("alice"))
    signed_in = ["/watchlist/", "/watchlist/alerts/", "/accounts/profile/", "/accounts/email/"]
    signed_in += ["/accounts/password/change/", "/accounts/notifications/", "/"]
    pages |= {f"{path} (signed in)": client.get(path).content.decode() for path in signed_in}
    return pages


def test_it_renders_no_inline_script_on_any_page(client, btc, user_factory):
    pages = rendered_pages(client, btc, user_factory)

    for path, body in pages.items():
        assert not INLINE_SCRIPT.search(body), path
        assert not INLINE_HANDLER.search(body), path
        assert not JS_URL.search(body), path
    assert len(pages) == 22


def test_it_keeps_inline_script_out_of_every_template():
    templates = [*BASE_DIR.glob("templates/**/*.html"), *BASE_DIR.glob("*/templates/**/*.html")]

    offenders = [
        str(path.relative_to(BASE_DIR))
        for path in templates
        if INLINE_SCRIPT.search(path.read_text())
        or INLINE_HANDLER.search(path.read_text())
        or JS_URL.search(path.read_text())
    ]

    assert len(templates) > 30
    assert offenders == []


def test_it_runs_with_debug_off_unless_debug_is_set():
    from tests.test_settings import settings_values

    assert settings_values({}, "DEBUG") == ["False"]
    assert settings_values({"DEBUG": "1"}, "DEBUG") == ["True"]
    assert settings.DEBUG is False


def test_it_says_in_make_run_and_the_readme_that_debug_is_an_explicit_opt_in():
    makefile = (BASE_DIR / "Makefile").read_text()
    readme = (BASE_DIR / "README.md").read_text()

    assert "DEBUG=$(DEBUG) $(PY) manage.py serve" in makefile
    assert re.search(r"^DEBUG \?=\s*$", makefile, re.MULTILINE)
    assert "make run DEBUG=1" in readme


def test_it_trusts_only_the_proxies_it_is_told_to_in_the_procfile():
    web = next(
        line for line in (BASE_DIR / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    unit = (BASE_DIR / "deploy" / "systemd" / "liqsite-web.service").read_text()

    assert "'*'" not in web and '"*"' not in web
    assert '--forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1,::1}"' in web
    assert "--forwarded-allow-ips 127.0.0.1" in unit


# In the browser: the policy is enforced and nothing on the pages trips it.

WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${where}`);
});
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_draws_charts_and_swaps_views_under_the_policy_without_a_violation(
    live_server, tracked_market, empty_cache, monkeypatch
):
    from playwright.sync_api import sync_playwright

    from tests.browser import chromium_launch

    tracked_market("BTCUSDT", "binance", windows=("24h", "7d"), is_demo=True)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = chromium_launch(playwright)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.add_init_script(WATCH_VIOLATIONS)
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        seen = {}
        for path in ("/binance/btcusdt/", "/coin/btc/", "/", "/admin/login/"):
            response = page.goto(live_server.url + path)
            assert "script-src 'self'" in response.headers["content-security-policy"]
            if path != "/" and not path.startswith("/admin"):
                page.wait_for_selector(".charts__canvas.is-ready", timeout=20_000)
            if path == "/binance/btcusdt/":
                page.click("a.seg__item:text-is('24h')")
                page.wait_for_url("**window=24h**")
                page.wait_for_selector(".charts__canvas.is-ready", timeout=20_000)
            seen[path] = page.evaluate("window.__violations")
        browser.close()

    assert seen == {path: [] for path in seen}
    assert [e for e in errors if "Security Policy" in e or "Refused to" in e] == []
