"""The levels on the site: stored per snapshot, the API's `levels` and `orderbook` documents and
the clusters' `confluence`, the pair page (cluster table, proximity widget, card, layer switches,
chart layers) and the levels page, with bad options refused by name."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from liqsite.celery import app
from maps.analytics import levels as lv
from maps.levels import demo, services, tasks
from maps.levels.selectors import market_price_bars
from maps.models import LevelsSnapshot, MapSnapshot, ms_to_datetime
from maps.pages import snapshot_version
from maps.signals import snapshots_computed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]

HOUR = 3_600_000


@pytest.fixture(scope="module")
def stored_btc(django_db_setup, django_db_blocker):
    """Ten days of synthetic bars up to now, maps for 24h and 7d and a day of simulated books,
    made once for the module's tests (each runs in its own transaction beside them)."""
    from django.utils import timezone

    from maps.models import Bar, Exchange, Market
    from maps.services import market_snapshots_compute
    from tests.conftest import synthetic_bars

    with django_db_blocker.unblock():
        exchange = Exchange.objects.create(slug="binance", name="Binance")
        market = Market.objects.create(
            exchange=exchange, symbol="BTCUSDT", slug="btcusdt", base="BTC", quote="USDT"
        )
        now = int(timezone.now().timestamp() * 1000)
        end = now // market.step_ms * market.step_ms - market.step_ms
        bars = synthetic_bars(steps=10 * 288, seed=7, price=60_000.0, end_ms=end)
        fields = ("open", "high", "low", "close", "volume", "taker_buy_volume", "open_interest")
        Bar.objects.bulk_create(
            Bar(market=market, time=ms_to_datetime(int(t)), **dict(zip(fields, row, strict=True)))
            for t, *row in zip(bars.ts, *(getattr(bars, f).tolist() for f in fields), strict=True)
        )
        market_snapshots_compute(market=market, windows=["24h", "7d"])
        demo.demo_books_refill(market=market, bars=bars, seed=3, days=1)
        yield market
        exchange.delete()


@pytest.fixture
def btc(stored_btc, db):
    return stored_btc


def body(response) -> dict:
    content = response.content
    if response.get("Content-Encoding") == "gzip":
        content = gzip.decompress(content)
    return json.loads(content)


def snapshot_of(market, window: str = "7d") -> MapSnapshot:
    return MapSnapshot.objects.select_related("market").get(market=market, window=window)


# Stored once per snapshot.


def test_it_stores_a_snapshots_levels_once_per_version(btc):
    snapshot = snapshot_of(btc)
    first = services.levels_for(snapshot=snapshot)
    again = services.levels_for(snapshot=snapshot)
    assert first.pk == again.pk and first.computed_at == again.computed_at
    assert first.snapshot_version == f"{snapshot_version(snapshot)}~L{services.LEVELS_VERSION}"
    assert len(first.confluence) == len(snapshot.clusters)
    assert first.atr_1h > 0 and first.atr_4h > first.atr_1h
    assert first.walls and all(w["standing"] for w in first.walls)


def test_the_signal_after_a_recompute_stores_the_levels(btc):
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        snapshots_computed.send(sender=None, market_id=btc.pk, windows=["24h", "7d"])
    finally:
        app.conf.task_always_eager = saved
    assert set(LevelsSnapshot.objects.filter(market=btc).values_list("window", flat=True)) == {
        "24h",
        "7d",
    }
    assert tasks.market_levels_compute(10**9, ["7d"]) == 0


# The API.


def test_it_serves_the_levels_document(client, btc):
    response = client.get("/api/v1/binance/btcusdt/levels?window=7d")
    doc = body(response)
    assert response.status_code == 200
    assert "max-age" in response["Cache-Control"] and response["ETag"]
    assert doc["market"]["symbol"] == "BTCUSDT" and doc["window"] == "7d"
    levels = doc["support_resistance"]
    assert levels and all(level["touches"] >= 2 for level in levels)
    assert {level["kind"] for level in levels} <= {"support", "resistance"}
    assert all(level["last_touch"].endswith("Z") for level in levels)
    profile = doc["volume_profile"]
    assert len(profile["edges"]) == len(profile["volume"]) + 1
    top = int(np.argmax(profile["volume"]))
    assert profile["edges"][top] <= profile["poc"] <= profile["edges"][top + 1]
    assert profile["value_area"]["share"] >= 0.7
    assert set(doc["rsi"]) == {"1h", "4h"}
    assert len(doc["rsi"]["1h"]["times"]) == len(doc["rsi"]["1h"]["values"]) >= 160
    assert isinstance(doc["divergences"], list)
    assert doc["walls"] and {"side", "price", "usd", "stood_ms", "appeared"} <= set(doc["walls"][0])


def test_its_rsi_equals_a_plain_wilder_rsi_of_the_stored_hourly_closes(client, btc):
    doc = body(client.get("/api/v1/binance/btcusdt/levels?window=7d"))
    bars = market_price_bars(
        market_id=btc.pk, start=ms_to_datetime(0), end=ms_to_datetime(2 * 10**12)
    )
    hours = lv.candles(
        ts=bars.ts,
        open=bars.open,
        high=bars.high,
        low=bars.low,
        close=bars.close,
        volume=bars.volume,
        period_ms=HOUR,
    )
    from tests.test_levels import reference_rsi

    reference = dict(zip(hours.ts.tolist(), reference_rsi(hours.close.tolist()), strict=True))
    series = doc["rsi"]["1h"]
    for time, value in zip(series["times"], series["values"], strict=True):
        assert value == pytest.approx(reference[time], abs=0.01)
    assert series["last"] == pytest.approx(reference[hours.ts[-1]], abs=0.01)


def test_clusters_and_proximity_gain_their_confluence(client, btc):
    clusters = body(client.get("/api/v1/binance/btcusdt/clusters?window=7d"))["clusters"]
    assert clusters and all("confluence" in c for c in clusters)
    scored = [c for c in clusters if c["confluence"]["reasons"]]
    assert scored
    for c in clusters:
        reasons = c["confluence"]["reasons"]
        assert c["confluence"]["score"] == sum(r["weight"] for r in reasons)
        assert all(r["kind"] and r["text"] for r in reasons)
    proximity = body(client.get("/api/v1/binance/btcusdt/proximity?window=7d"))["proximity"]
    for side in ("long", "short"):
        if proximity[side]:
            assert "score" in proximity[side]["confluence"]


def test_it_serves_the_order_book_document(client, btc):
    response = client.get("/api/v1/binance/btcusdt/orderbook?window=24h&columns=60")
    doc = body(response)
    assert response.status_code == 200
    assert doc["retention_days"] == 7
    count = doc["bins"]["count"]
    assert 0 < len(doc["times"]) <= 60 and doc["step_ms"] % 60_000 == 0
    assert len(doc["bids"]) == len(doc["asks"]) == len(doc["mid"]) == len(doc["times"])
    shown = [row for row in doc["bids"] if row is not None]
    assert shown and all(len(row) == count for row in shown)
    assert all(w["standing"] for w in doc["walls"])
    assert all(w["stood_ms"] >= 0 for w in doc["wall_history"])


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/binance/btcusdt/levels?window=2d", "window"),
        ("/api/v1/binance/btcusdt/levels?format=csv", "format"),
        ("/api/v1/binance/btcusdt/orderbook?window=1y", "window"),
        ("/api/v1/binance/btcusdt/orderbook?columns=5", "columns"),
        ("/api/v1/binance/btcusdt/orderbook?columns=2000", "columns"),
        ("/api/v1/binance/btcusdt/orderbook?columns=ten", "columns"),
        ("/api/v1/binance/btcusdt/orderbook?columns=-20", "columns"),
    ],
)
def test_it_refuses_a_bad_option_with_a_400_naming_it(client, btc, url, field):
    response = client.get(url)
    doc = response.json()
    assert response.status_code == 400
    assert doc["field"] == field
    assert doc["error"].startswith(f"{field}=")


def test_it_answers_404_without_market_snapshot_or_books(client, btc, market_factory):
    assert client.get("/api/v1/binance/dogeusdt/levels").status_code == 404
    assert client.get("/api/v1/binance/btcusdt/levels?window=30d").status_code == 404
    market_factory("ETHUSDT")
    missing = client.get("/api/v1/binance/ethusdt/orderbook")
    assert missing.status_code == 404
    assert missing.json()["error"] == "no order book is recorded for ETHUSDT"


def test_the_exchanges_own_symbol_redirects_to_the_slug(client, btc):
    response = client.get("/api/v1/binance/BTCUSDT/levels?window=7d")
    assert response.status_code in (200, 301)
    btc.slug = "btc-perp"
    btc.save()
    moved = client.get("/api/v1/binance/BTCUSDT/orderbook?window=24h")
    assert moved.status_code == 301
    assert moved["Location"] == "/api/v1/binance/btc-perp/orderbook?window=24h"


# The pages.


def test_the_pair_page_shows_confluence_levels_and_layer_switches(client, btc):
    html = client.get("/binance/btcusdt/?window=7d").content.decode()
    assert 'data-layers-for="charts-' in html
    for layer in ("sr", "profile", "depth", "walls"):
        assert f'value="{layer}"' in html
    assert "js/levels.js" in html and "css/levels.css" in html
    assert 'id="levels"' in html and "Walls standing" in html
    assert "confluence__score" in html
    assert "/api/v1/binance/btcusdt/levels?window=7d" in html


def test_the_proximity_widget_shows_the_confluence(client, btc):
    html = client.get("/binance/btcusdt/proximity/?window=7d").content.decode()
    assert "confluence--compact" in html


def test_the_coin_page_has_no_confluence_and_still_renders(client, btc):
    response = client.get("/coin/btc/?window=7d")
    assert response.status_code == 200
    assert b"confluence" not in response.content


def test_the_pair_chart_carries_the_layers_and_the_indicator_pane(client, btc):
    response = client.get("/binance/btcusdt/charts.json?window=7d&side=both")
    text = (
        gzip.decompress(response.content).decode()
        if response.get("Content-Encoding") == "gzip"
        else response.content.decode()
    )
    for tag in ("levels:sr", "levels:profile", "levels:depth", "levels:walls"):
        assert tag in text
    for name in ("levels-rsi", "levels-flow", "levels-depth", "levels-sr", "Volume profile"):
        assert name in text


def test_the_levels_page_and_its_card(client, btc):
    page = client.get("/binance/btcusdt/levels/?window=7d")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Every level" in html and "Walls of the last day" in html
    assert "Clusters and their confluence" in html
    card = client.get("/binance/btcusdt/levels/?window=7d", HTTP_HX_REQUEST="true")
    assert card.status_code == 200
    assert b'id="levels"' in card.content and b"<html" not in card.content
    bad = client.get("/binance/btcusdt/levels/?window=2d")
    assert bad.status_code == 400
    assert b"window" in bad.content


def test_a_market_without_books_shows_levels_and_no_walls(client, tracked_market):
    tracked_market("ETHUSDT", "binance", steps=4 * 288, windows=("24h",), price=3_000.0)
    doc = body(client.get("/api/v1/binance/ethusdt/levels?window=24h"))
    assert doc["walls"] == []
    assert client.get("/binance/ethusdt/?window=24h").status_code == 200
    html = client.get("/binance/ethusdt/levels/?window=24h").content.decode()
    assert "No order book recorded in the last day" in html
