"""/healthz: database, broker and data freshness for load balancers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from maps.models import Exchange, Market


@pytest.fixture
def live(db):
    exchange = Exchange.objects.create(slug="binance", name="Binance", ccxt_id="binanceusdm")

    def make(symbol: str = "BTCUSDT", age_seconds: float | None = 60, **extra) -> Market:
        last = None
        if age_seconds is not None:
            last = timezone.now() - timedelta(seconds=age_seconds) - timedelta(minutes=5)
        return Market.objects.create(
            exchange=exchange,
            symbol=symbol,
            slug=symbol.lower(),
            base=symbol.removesuffix("USDT"),
            quote="USDT",
            last_bar_at=last,
            **extra,
        )

    return make


@pytest.mark.parametrize("path", ["/healthz", "/healthz/"])
def test_it_answers_200_when_everything_is_fine(client, live, path):
    live()

    response = client.get(path)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True}
    assert body["broker"]["ok"] is True
    assert body["freshness"]["ok"] is True
    assert body["freshness"]["tracked"] == 1
    assert response["Cache-Control"].startswith("max-age=0")


def test_it_answers_503_and_names_the_markets_whose_data_is_old(client, live, settings):
    settings.LIQSITE_STALE_AFTER_SECONDS = 900
    live("BTCUSDT", age_seconds=60)
    live("ETHUSDT", age_seconds=1000)
    live("SOLUSDT", age_seconds=None)

    response = client.get("/healthz")

    assert response.status_code == 503
    freshness = response.json()["freshness"]
    assert response.json()["status"] == "failing"
    assert freshness["stale_count"] == 2
    assert [s["market"] for s in freshness["stale"]] == ["binance/ETHUSDT", "binance/SOLUSDT"]
    assert 1000 <= freshness["stale"][0]["age_seconds"] <= 1010
    assert freshness["stale"][1] == {
        "market": "binance/SOLUSDT",
        "data_until": None,
        "age_seconds": None,
        "reason": "no data yet",
        "detail": "never ingested",
    }


def test_it_ignores_demo_untracked_and_unfed_markets(client, live, market_factory):
    live("ETHUSDT", age_seconds=None, tracked=False)
    live("SOLUSDT", age_seconds=None, is_demo=True)
    market_factory("BTCUSDT", "vision")

    response = client.get("/healthz/")

    assert response.status_code == 200
    assert response.json()["freshness"]["tracked"] == 0


def test_it_answers_503_when_the_broker_does_not(client, live, settings):
    live()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"] == {"ok": False, "error": "ConnectionError"}


class Unreachable:
    """A database connection whose every cursor fails, as when PostgreSQL is down."""

    def cursor(self):
        raise OperationalError("connection refused")


def test_it_answers_503_when_the_database_does_not(db, client, monkeypatch):
    monkeypatch.setattr("maps.health.connection", Unreachable())

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["database"] == {"ok": False, "error": "OperationalError"}


def test_it_is_exempt_from_the_https_redirect(client, live, settings):
    live()
    settings.SECURE_SSL_REDIRECT = True

    plain = client.get("/healthz")
    slash = client.get("/healthz/")
    other = client.get("/admin/")

    assert (plain.status_code, slash.status_code) == (200, 200)
    assert other.status_code == 301


def test_it_costs_two_queries_whatever_the_number_of_markets(
    client, live, django_assert_max_num_queries
):
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"):
        live(symbol)

    with django_assert_max_num_queries(2):
        assert client.get("/healthz").status_code == 200


def test_it_answers_head_and_refuses_post(client, live):
    live()

    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_it_ignores_markets_of_exchanges_without_a_connector(client, live):
    live()
    kraken = Exchange.objects.create(slug="kraken", name="Kraken", ccxt_id="krakenfutures")
    Market.objects.create(exchange=kraken, symbol="PF_XBTUSD", slug="xbtusd", base="BTC")

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["freshness"]["tracked"] == 1


def test_it_watches_a_real_market_added_to_a_demo_exchange(client, live, settings):
    settings.LIQSITE_STALE_AFTER_SECONDS = 900
    market = live(age_seconds=5000)
    Exchange.objects.filter(pk=market.exchange_id).update(is_demo=True)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert [s["market"] for s in response.json()["freshness"]["stale"]] == ["binance/BTCUSDT"]
