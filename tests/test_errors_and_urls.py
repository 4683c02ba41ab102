"""Errors and URLs: the site's own 404 and 500 pages (Django's debug pages only with DEBUG=1),
an index at /api/v1/, and market URLs that take the exchange's own symbol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client

from tests.test_settings import run_python

BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
def lenient():
    return Client(raise_request_exception=False)


@pytest.fixture
def markets(tracked_market, empty_cache):
    tracked_market("BTCUSDT", "binance", windows=("7d",))
    tracked_market("BTCUSDT", "bybit", windows=("7d",))
    return tracked_market("SOL-USDT-SWAP", "okx", slug="solusdt", base="SOL", windows=("7d",))


# The 404 and 500 pages


@pytest.mark.parametrize(
    "path", ["/no/such/page/", "/binance/btcusdt/nope/", "/coin/btc.usdt/", "/coin/btc/x/y/"]
)
def test_it_never_shows_an_exception_class_name_on_the_404_page(lenient, db, path):
    response = lenient.get(path)

    body = response.content.decode()
    assert response.status_code == 404
    assert "Nothing here" in body
    assert "This page does not exist." in body
    for name in ("Resolver404", "Http404", "DoesNotExist", "Traceback"):
        assert name not in body


def test_it_keeps_the_404_pages_own_sentence_for_an_unknown_market(lenient, markets):
    body = lenient.get("/binance/dogeusdt/").content.decode()

    assert "No market binance/dogeusdt is tracked here." in body


def test_it_hides_a_generic_lookups_sentence(lenient, db, user_factory):
    lenient.force_login(user_factory("alice"))

    body = lenient.get("/watchlist/alerts/999/edit/").content.decode()

    assert "matches the given query" not in body
    assert "This page does not exist." in body


def test_it_serves_the_sites_500_page_and_json_under_the_api(lenient, db, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("maps.pages.listing_rows", broken)

    page, document = lenient.get("/"), lenient.get("/api/v1/markets/")

    assert page.status_code == 500
    assert "Something broke on our side" in page.content.decode()
    assert "RuntimeError" not in page.content.decode()
    assert document.status_code == 500
    assert document.json() == {"error": "server error: it was logged, try again later"}


def client_in(env: dict[str, str], path: str) -> dict:
    """GET `path` with Django's test client in a process whose environment is only `env`."""
    code = (
        "import django, json; django.setup(); from django.test import Client; "
        f"r = Client(raise_request_exception=False, HTTP_HOST='127.0.0.1').get({path!r}); "
        "print(json.dumps({'status': r.status_code, 'body': r.content.decode()}))"
    )
    result = run_python(env, "-c", code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_it_serves_the_sites_404_page_in_the_default_run():
    answer = client_in({}, "/no/such/page/at/all/")

    assert answer["status"] == 404
    assert "Nothing here" in answer["body"]
    assert "Resolver404" not in answer["body"]
    assert "URLconf" not in answer["body"]


def test_it_shows_djangos_debug_page_only_to_a_developer_who_asks():
    answer = client_in({"DEBUG": "1"}, "/no/such/page/at/all/")

    assert answer["status"] == 404
    assert "URLconf" in answer["body"]


# /api/v1/


def test_it_answers_an_index_of_the_documents_at_api_v1(client, db):
    response = client.get("/api/v1/")

    body = response.json()
    assert response.status_code == 200
    assert body["markets"] == "http://testserver/api/v1/markets/"
    assert body["documentation"] == "http://testserver/api/"
    assert body["market"]["heatmap"] == "http://testserver/api/v1/{exchange}/{symbol}/heatmap"
    assert set(body["market"]) == set(body["coin"]) == {"heatmap", "map", "clusters", "proximity"}
    assert body["coin"]["map"] == "http://testserver/api/v1/coin/{base}/map"
    assert body["options"]["format"] == ["json", "csv"]
    assert "7d" in body["options"]["window"]


# The exchange's own symbol


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/okx/sol-usdt-swap/", "/okx/solusdt/"),
        ("/okx/SOL-USDT-SWAP/", "/okx/solusdt/"),
        ("/OKX/Sol-Usdt-Swap/?window=7d&side=long", "/okx/solusdt/?window=7d&side=long"),
        ("/binance/BTCUSDT/", "/binance/btcusdt/"),
        ("/bybit/BTCUSDT/", "/bybit/btcusdt/"),
        ("/Bybit/btcusdt/", "/bybit/btcusdt/"),
    ],
)
def test_it_redirects_the_exchanges_own_symbol_to_the_canonical_page(
    client, markets, path, location
):
    response = client.get(path)

    assert response.status_code == 301
    assert response["Location"] == location
    assert client.get(location).status_code == 200


def test_it_gives_404_for_a_symbol_no_market_has(lenient, markets):
    assert lenient.get("/okx/eth-usdt-swap/").status_code == 404
    assert lenient.get("/binance/sol-usdt-swap/").status_code == 404


def test_it_redirects_the_exchanges_own_symbol_in_the_api(client, markets):
    response = client.get("/api/v1/okx/SOL-USDT-SWAP/clusters?format=csv")

    assert response.status_code == 301
    assert response["Location"] == "/api/v1/okx/solusdt/clusters?format=csv"
    assert client.get(response["Location"]).status_code == 200
