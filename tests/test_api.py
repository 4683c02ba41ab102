"""The JSON and CSV API: shapes, same numbers as the pages, errors, cache headers, gzip."""

from __future__ import annotations

import csv
import gzip
import io
import json

import numpy as np
import pytest
from django.core.cache import cache
from django.urls import reverse

from maps.templatetags.liq import usd

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def btc(tracked_market):
    return tracked_market("BTCUSDT", "binance", is_demo=True)


def api_get(client, kind: str, market, **query):
    url = reverse(f"api:{kind}", args=[market.exchange.slug, market.slug])
    return client.get(url, query)


def rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_it_lists_markets_with_their_latest_snapshot(client, btc, market_factory):
    market_factory("XRPUSDT", "binance")
    response = client.get(reverse("api:markets"), {"window": "24h"})
    assert response.status_code == 200
    document = response.json()
    assert document["window"] == "24h"
    by_symbol = {m["symbol"]: m for m in document["markets"]}
    btc_item = by_symbol["BTCUSDT"]
    snapshot = btc.snapshots.get(window="24h")
    assert btc_item["exchange"] == "binance"
    assert btc_item["is_demo"] is True
    assert btc_item["url"] == "http://testserver/binance/btcusdt/"
    assert btc_item["api"]["heatmap"] == "http://testserver/api/v1/binance/btcusdt/heatmap"
    assert btc_item["snapshot"]["last_close"] == snapshot.last_close
    assert btc_item["snapshot"]["proximity"] == snapshot.proximity
    assert btc_item["snapshot"]["stale"] is False
    assert by_symbol["XRPUSDT"]["snapshot"] is None


def test_it_lists_markets_as_csv(client, btc):
    response = client.get(reverse("api:markets"), {"format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    table = rows(response)
    assert table[0][:3] == ["exchange", "symbol", "slug"]
    assert table[1][:3] == ["binance", "BTCUSDT", "btcusdt"]


def test_it_serves_the_heatmap_as_stored(client, btc):
    snapshot = btc.snapshots.get(window="7d")
    document = api_get(client, "heatmap", btc, window="7d").json()
    arrays = snapshot.arrays
    assert document["window"] == "7d"
    assert document["market"]["symbol"] == "BTCUSDT"
    assert document["bins"] == {
        "start": snapshot.bin_start,
        "width": snapshot.bin_width,
        "count": snapshot.bin_count,
    }
    assert document["times"] == arrays["heat_times"].tolist()
    assert len(document["long"]) == len(document["times"])
    assert all(len(column) == snapshot.bin_count for column in document["long"])
    np.testing.assert_allclose(document["long"], arrays["heat_long"], atol=0.006)
    np.testing.assert_allclose(document["short"], arrays["heat_short"], atol=0.006)


def test_it_serves_the_heatmap_as_csv_of_nonzero_cells(client, btc):
    snapshot = btc.snapshots.get(window="12h")
    table = rows(api_get(client, "heatmap", btc, window="12h", format="csv"))
    assert table[0] == ["time", "time_ms", "price_low", "price_high", "long_usd", "short_usd"]
    arrays = snapshot.arrays
    nonzero = int(((arrays["heat_long"] > 0) | (arrays["heat_short"] > 0)).sum())
    assert len(table) - 1 == nonzero
    total = sum(float(r[4]) + float(r[5]) for r in table[1:])
    expected = float(arrays["heat_long"].sum() + arrays["heat_short"].sum())
    assert total == pytest.approx(expected, rel=1e-4)


def test_it_serves_the_map_per_tier_with_the_curves(client, btc):
    snapshot = btc.snapshots.get(window="7d")
    document = api_get(client, "map", btc).json()
    assert document["leverages"] == [5, 10, 25, 50, 100]
    assert len(document["long"]) == 5
    np.testing.assert_allclose(
        document["long_total"], snapshot.arrays["map_long"].sum(0), atol=0.01
    )
    np.testing.assert_allclose(document["cum_short"], snapshot.arrays["cum_short"], atol=0.006)


def test_it_serves_the_map_as_csv(client, btc):
    snapshot = btc.snapshots.get(window="7d")
    table = rows(api_get(client, "map", btc, format="csv"))
    assert table[0][:4] == ["price_low", "price_high", "long_5x", "long_10x"]
    assert table[0][-4:] == ["long_total", "short_total", "cum_long", "cum_short"]
    assert len(table) - 1 == snapshot.bin_count


def test_it_serves_the_same_clusters_as_the_page(client, btc):
    snapshot = btc.snapshots.get(window="7d")
    document = api_get(client, "clusters", btc).json()
    assert document["clusters"] == snapshot.clusters
    page = client.get(btc.get_absolute_url()).content.decode()
    for cluster in document["clusters"]:
        assert usd(cluster["notional_usd"]) in page


def test_it_serves_clusters_as_csv(client, btc):
    snapshot = btc.snapshots.get(window="7d")
    table = rows(api_get(client, "clusters", btc, format="csv"))
    assert table[0] == [
        "rank",
        "side",
        "price_low",
        "price_high",
        "peak_price",
        "notional_usd",
        "share",
        "distance_pct",
    ]
    assert len(table) - 1 == len(snapshot.clusters)
    assert float(table[1][5]) == pytest.approx(snapshot.clusters[0]["notional_usd"])


def test_it_serves_the_same_proximity_as_the_widget(client, btc):
    snapshot = btc.snapshots.get(window="24h")
    document = api_get(client, "proximity", btc, window="24h").json()
    assert document["proximity"] == snapshot.proximity
    widget = client.get(
        reverse("maps:pair_proximity", args=["binance", "btcusdt"]), {"window": "24h"}
    ).content.decode()
    for side in ("long", "short"):
        if document["proximity"][side]:
            assert usd(document["proximity"][side]["notional_usd"]) in widget


def test_it_serves_proximity_as_csv(client, btc):
    table = rows(api_get(client, "proximity", btc, format="csv"))
    assert [r[0] for r in table[1:]] == ["long", "short"]
    assert "magnet" in table[0]


def test_it_accepts_any_case_in_api_urls(client, btc):
    assert client.get("/api/v1/BINANCE/BTCUSDT/clusters").status_code == 200


@pytest.mark.parametrize(
    ("query", "name", "allowed"),
    [
        ({"window": "1w"}, "window", ["12h", "24h", "3d", "7d", "30d", "90d"]),
        ({"format": "xml"}, "format", ["json", "csv"]),
    ],
)
def test_it_rejects_bad_options_with_the_allowed_values(client, btc, query, name, allowed):
    response = api_get(client, "heatmap", btc, **query)
    assert response.status_code == 400
    document = response.json()
    assert document["allowed"] == allowed
    assert document["error"].startswith(f"{name}=")


def test_it_gives_404_for_an_unknown_market(client, btc):
    response = client.get("/api/v1/binance/dogeusdt/map")
    assert response.status_code == 404
    assert "no market" in response.json()["error"]


def test_it_gives_404_before_the_first_snapshot(client, market_factory):
    market = market_factory("XRPUSDT", "binance")
    response = api_get(client, "proximity", market)
    assert response.status_code == 404
    assert response.json()["error"] == "no data yet for XRPUSDT over 7d"


def test_it_sends_cache_headers_and_honours_them(client, btc):
    response = api_get(client, "clusters", btc)
    assert "public" in response["Cache-Control"]
    assert "max-age=" in response["Cache-Control"]
    assert response["Last-Modified"]
    url = reverse("api:clusters", args=["binance", "btcusdt"])
    assert client.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    assert client.get(url, HTTP_IF_MODIFIED_SINCE=response["Last-Modified"]).status_code == 304


def test_it_gzips_api_responses(client, btc):
    url = reverse("api:heatmap", args=["binance", "btcusdt"])
    response = client.get(url, HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert response["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(response.content))["window"] == "7d"
    assert "Accept-Encoding" in response["Vary"]


def test_it_names_the_csv_file(client, btc):
    response = api_get(client, "map", btc, window="24h", format="csv")
    assert 'filename="binance-btcusdt-24h-map.csv"' in response["Content-Disposition"]
