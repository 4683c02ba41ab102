"""The JSON and CSV API: shapes, same numbers as the pages, errors, cache headers, gzip."""

from __future__ import annotations

import csv
import gzip
import io
import json

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from maps import api
from maps.models import MapSnapshot
from maps.services import coin_result
from maps.templatetags.liq import usd

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


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
    assert btc_item["snapshot"]["proximity"] == api.proximity_out(snapshot.proximity)
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
    long = np.round(arrays["heat_long"].astype(np.float64), 2)
    short = np.round(arrays["heat_short"].astype(np.float64), 2)
    assert len(table) - 1 == int(((long > 0) | (short > 0)).sum())
    assert all(float(r[4]) > 0 or float(r[5]) > 0 for r in table[1:])
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


def without_confluence(cluster: dict | None) -> dict | None:
    """A served cluster as the engine stored it: the `confluence` it gained (maps/levels/) left
    out, so the stored fields are compared exactly."""
    return None if cluster is None else {k: v for k, v in cluster.items() if k != "confluence"}


def test_it_serves_the_same_clusters_as_the_page(client, btc):
    snapshot = btc.snapshots.get(window="7d")
    document = api_get(client, "clusters", btc).json()
    served = [without_confluence(c) for c in document["clusters"]]
    assert served == [api.cluster_out(c) for c in snapshot.clusters]
    stored = btc.levels.get(window="7d").confluence
    assert [c["confluence"]["score"] for c in document["clusters"]] == [c["score"] for c in stored]
    for served, stored in zip(document["clusters"], snapshot.clusters, strict=True):
        assert served["notional_usd"] == pytest.approx(stored["notional_usd"], abs=0.005)
        assert served["price_low"] == pytest.approx(stored["price_low"], rel=1e-9)
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
    served = {
        **document["proximity"],
        **{side: without_confluence(document["proximity"][side]) for side in ("long", "short")},
    }
    assert served == api.proximity_out(snapshot.proximity)
    for side in ("long", "short"):
        if document["proximity"][side]:
            assert "score" in document["proximity"][side]["confluence"]
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


def test_it_rounds_clusters_as_documented(client, btc):
    MapSnapshot.objects.filter(market=btc, window="7d").update(
        clusters=[
            {
                "side": "short",
                "price_low": 70859.04609999999,
                "price_high": 71768.3922,
                "peak_price": 71453.61855,
                "notional_usd": 423453412.7441,
                "share": 0.15260000000000001,
                "distance_pct": 1.2999999999999932,
            }
        ]
    )
    [cluster] = api_get(client, "clusters", btc).json()["clusters"]
    assert without_confluence(cluster) == {
        "side": "short",
        "price_low": 70859.0461,
        "price_high": 71768.3922,
        "peak_price": 71453.61855,
        "notional_usd": 423453412.74,
        "share": 0.1526,
        "distance_pct": 1.3,
    }
    assert set(cluster["confluence"]) == {"score", "reasons"}


# Coins: every tracked market of a coin summed on one grid.


@pytest.fixture
def btc_everywhere(tracked_market):
    return [
        tracked_market("BTCUSDT", "binance", seed=1, is_demo=True),
        tracked_market("BTCUSDT", "bybit", seed=2, price=60_050.0, is_demo=True),
    ]


def coin_get(client, kind: str, base: str = "btc", **query):
    return client.get(reverse(f"api:coin_{kind}", args=[base]), query)


def coin_aggregate(window: str = "7d"):
    snapshots = list(
        MapSnapshot.objects.filter(market__base="BTC", window=window)
        .select_related("market__exchange")
        .order_by("market__exchange__name", "market__symbol")
    )
    return coin_result(snapshots=snapshots)


def test_it_serves_a_coins_clusters_and_proximity_as_the_coin_page(client, btc_everywhere):
    result = coin_aggregate()
    clusters = coin_get(client, "clusters").json()
    proximity = coin_get(client, "proximity").json()
    assert clusters["clusters"] == [api.cluster_out(c) for c in result.clusters]
    assert proximity["proximity"] == api.proximity_out(result.proximity)
    assert clusters["coin"] == {
        "base": "BTC",
        "is_demo": True,
        "url": "http://testserver/coin/btc/",
    }
    assert [(m["exchange"], m["summed"]) for m in clusters["markets"]] == [
        ("binance", True),
        ("bybit", True),
    ]
    assert clusters["window"] == "7d"
    assert clusters["last_close"] == result.last_close
    page = client.get(reverse("maps:coin", args=["btc"])).content.decode()
    for cluster in clusters["clusters"]:
        assert usd(cluster["notional_usd"]) in page
    for side in ("long", "short"):
        if proximity["proximity"][side]:
            assert usd(proximity["proximity"][side]["notional_usd"]) in page


def test_it_sums_a_coins_map_over_its_markets(client, btc_everywhere):
    document = coin_get(client, "map").json()
    markets = MapSnapshot.objects.filter(market__base="BTC", window="7d")
    expected = sum(float(s.arrays["map_long"].sum()) for s in markets)
    assert sum(document["long_total"]) == pytest.approx(expected, rel=1e-6)
    assert document["leverages"] == [5, 10, 25, 50, 100]
    assert len(document["long"]) == 5
    assert all(len(tier) == document["bins"]["count"] for tier in document["long"])
    table = rows(coin_get(client, "map", format="csv"))
    assert table[0][:3] == ["price_low", "price_high", "long_5x"]
    assert len(table) - 1 == document["bins"]["count"]


def test_it_serves_a_coins_heatmap_on_the_reference_columns(client, btc_everywhere):
    result = coin_aggregate("24h")
    document = coin_get(client, "heatmap", window="24h").json()
    assert document["times"] == result.heat_times.tolist()
    np.testing.assert_allclose(document["long"], result.heat_long, atol=0.006)
    response = coin_get(client, "heatmap", window="24h", format="csv")
    assert 'filename="coin-btc-24h-heatmap.csv"' in response["Content-Disposition"]
    assert rows(response)[0] == [
        "time",
        "time_ms",
        "price_low",
        "price_high",
        "long_usd",
        "short_usd",
    ]


def test_it_accepts_any_case_for_a_coin(client, btc_everywhere):
    assert client.get("/api/v1/coin/BTC/proximity").status_code == 200


def test_it_gives_404_for_an_unknown_coin(client, btc_everywhere):
    response = coin_get(client, "map", base="doge")
    assert response.status_code == 404
    assert response.json()["error"] == "no coin DOGE is tracked here"


def test_it_gives_404_before_a_coins_first_snapshot(client, market_factory):
    market_factory("XRPUSDT", "binance")
    response = coin_get(client, "clusters", base="xrp")
    assert response.status_code == 404
    assert response.json() == {"error": "no data yet for XRP over 7d", "window": "7d"}


def test_it_rejects_bad_options_for_a_coin(client, btc_everywhere):
    response = coin_get(client, "proximity", window="1w")
    assert response.status_code == 400
    assert response.json()["allowed"] == ["12h", "24h", "3d", "7d", "30d", "90d"]


def test_it_sends_cache_headers_for_a_coin_and_a_new_etag_after_a_snapshot(client, btc_everywhere):
    response = coin_get(client, "clusters")
    assert "public" in response["Cache-Control"]
    url = reverse("api:coin_clusters", args=["btc"])
    assert client.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    snapshot = btc_everywhere[1].snapshots.get(window="7d")
    MapSnapshot.objects.filter(pk=snapshot.pk).update(computed_at=timezone.now())
    assert client.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 200


def test_it_gzips_a_coins_documents(client, btc_everywhere):
    url = reverse("api:coin_map", args=["btc"])
    response = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(response.content))["coin"]["base"] == "BTC"
