"""Hostile URLs: control characters and malformed API paths get a clear 4xx, never a 500.

The probes: `/_/markets/?exchange=%00` answered 500 (PostgreSQL refuses NUL in a query), and API
404s for slugs that fail the route pattern were the HTML page, not the JSON docs/api.md promises.
"""

from __future__ import annotations

import pytest
from django.test import Client

CONTROL = ["%00", "%01", "%08", "%0A", "%0D", "%1B", "%7F", "%C2%85", "%C2%9F"]
PAGES = [
    "/",
    "/_/markets/",
    "/coin/",
    "/coin/btc/",
    "/coin/btc/proximity/",
    "/coin/btc/charts.json",
    "/binance/",
    "/binance/btcusdt/",
    "/binance/btcusdt/proximity/",
    "/binance/btcusdt/charts.json",
    "/model/",
    "/api/",
    "/healthz",
    "/accounts/login/",
    "/accounts/signup/",
    "/accounts/password/reset/",
    "/watchlist/",
    "/admin/",
    "/api/v1/",
    "/api/v1/markets/",
    "/api/v1/binance/btcusdt/map",
    "/api/v1/coin/btc/clusters",
]


@pytest.fixture
def btc(tracked_market, empty_cache):
    return tracked_market("BTCUSDT", "binance", windows=("7d",))


@pytest.fixture
def lenient():
    return Client(raise_request_exception=False)


def test_it_answers_a_nul_in_the_markets_table_query_with_400(lenient, btc):
    response = lenient.get("/_/markets/?exchange=%00")

    assert response.status_code == 400
    assert "control character" in response.content.decode()


def test_it_answers_a_control_character_in_any_query_with_400(lenient, btc):
    answers = {
        (page, query): lenient.get(f"{page}?{query}").status_code
        for page in PAGES
        for char in CONTROL
        for query in (f"exchange={char}", f"window=7d{char}", f"side={char}both", f"x{char}=1")
    }

    assert answers == dict.fromkeys(answers, 400)


HOSTILE_PATHS = [
    "/binance/btc{c}usdt/",
    "/binance{c}/",
    "/coin/btc{c}/",
    "/api/v1/binance/btcusdt{c}/map",
    "/admin/maps/market/1{c}/change/",
    "/accounts/password/reset/MQ/a{c}b/",
    "/accounts/signup/tok{c}en/",
    "/{c}",
]


def test_it_answers_a_control_character_in_any_path_with_400(lenient, btc):
    answers = {
        path.format(c=char): lenient.get(path.format(c=char)).status_code
        for path in HOSTILE_PATHS
        for char in CONTROL
    }

    assert answers == dict.fromkeys(answers, 400)


def test_it_answers_json_for_a_control_character_under_the_api(lenient, btc):
    response = lenient.get("/api/v1/binance/btcusdt/map?window=%00")

    assert response.status_code == 400
    assert "control character" in response.json()["error"]


def test_it_drops_a_cookie_holding_a_control_character(lenient, btc):
    lenient.cookies["sessionid"] = "abcdefgh\x00ijkl"

    response = lenient.get("/binance/btcusdt/")

    assert response.status_code == 200


def test_it_refuses_nul_in_a_posted_log_in_with_the_form_error(lenient, db):
    response = lenient.post("/accounts/login/", {"username": "al\x00ice", "password": "x\x00"})

    assert response.status_code == 200
    assert "Null characters are not allowed" in response.content.decode()


# JSON 404s under /api/v1/


API_MISSES = [
    "/api/v1/binance/btc.usdt/map",
    "/api/v1/binance/btc%20usdt/map",
    "/api/v1/-binance/btcusdt/map",
    "/api/v1/binance/btcusdt/nothing",
    "/api/v1/binance/btcusdt/map/extra",
    "/api/v1/coin/b~tc/map",
    "/api/v1/nothing/",
    "/api/v1/markets/extra/",
]


def assert_json_404(response) -> None:
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "no API document at" in response.json()["error"]
    assert response.json()["index"] == "/api/v1/"


@pytest.mark.parametrize("path", [*API_MISSES, "/api/v2/markets/"])
def test_it_answers_json_404s_under_the_api_even_for_slugs_that_fail_the_route(lenient, db, path):
    assert_json_404(lenient.get(path))


def test_it_answers_json_404s_under_the_api_even_with_debug_on(lenient, db, settings):
    settings.DEBUG = True

    for path in API_MISSES:
        assert_json_404(lenient.get(path))


def test_it_keeps_the_documented_json_404_for_an_unknown_market(lenient, btc):
    response = lenient.get("/api/v1/binance/dogeusdt/map")

    assert response.status_code == 404
    assert response.json() == {"error": "no market binance/dogeusdt is tracked here"}


def test_it_adds_the_missing_final_slash_under_the_api(lenient, btc):
    response = lenient.get("/api/v1/markets?window=24h")

    assert response.status_code == 301
    assert response["Location"] == "/api/v1/markets/?window=24h"
