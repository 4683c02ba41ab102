"""What the pair and coin pages say beside the charts: the clusters ladder, the proximity widget's
edges and magnet rule, real liquidations beside the estimated ones, honest windows, and how the
charts load (preloaded data, content-named BokehJS kept for a year)."""

from __future__ import annotations

import gzip
import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse

from maps import pages
from maps.engine.clusters import MIN_DISTANCE_PCT
from maps.formatting import distance, price, usd
from maps.models import LiquidationEvent, MapSnapshot

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


@pytest.fixture
def btc(tracked_market):
    """About two days of bars: the 24h window is full, the 7d one is not."""
    return tracked_market("BTCUSDT", "binance", steps=600, windows=("24h", "7d"), is_demo=True)


def pair_page(client, market, window="7d") -> str:
    url = reverse("maps:pair", args=[market.exchange.slug, market.slug])
    return client.get(f"{url}?window={window}").content.decode()


def liquidation(market, *, minutes_back: int, side: str, usd_value: float) -> LiquidationEvent:
    snapshot = MapSnapshot.objects.get(market=market, window="7d")
    at = snapshot.as_of - timedelta(minutes=minutes_back)
    level = snapshot.last_close * (0.995 if side == "long" else 1.005)
    return LiquidationEvent.objects.create(
        market=market,
        time=at,
        side=side,
        price=level,
        quantity=usd_value / level,
        notional_usd=usd_value,
        source="stream",
    )


def test_it_lays_the_clusters_out_as_a_ladder_around_the_price():
    clusters = [
        {"side": "long", "price_low": 90.0, "price_high": 92.0, "notional_usd": 5.0},
        {"side": "short", "price_low": 104.0, "price_high": 105.0, "notional_usd": 10.0},
        {"side": "long", "price_low": 96.0, "price_high": 97.0, "notional_usd": 2.0},
        {"side": "short", "price_low": 110.0, "price_high": 111.0, "notional_usd": 1.0},
        {"side": "long", "price_low": 99.0, "price_high": 101.0, "notional_usd": 4.0},
    ]
    ladder = pages.cluster_ladder(clusters, last_close=100.0)
    assert [c["price_low"] for c in ladder["above"]] == [110.0, 104.0]
    assert [c["price_low"] for c in ladder["at"]] == [99.0]
    assert [c["price_low"] for c in ladder["below"]] == [96.0, 90.0]
    assert [c["bar"] for c in ladder["above"]] == [0.1, 1.0]


def test_it_shows_the_ladder_and_keeps_the_sort_by_size(client, btc):
    body = pair_page(client, btc)
    snapshot = MapSnapshot.objects.get(market=btc, window="7d")
    ladder = body[
        body.index('data-cluster-panel="ladder"') : body.index('data-cluster-panel="size"')
    ]
    assert "Last close" in ladder
    prices = [
        float(p.replace(",", "")) for p in re.findall(r'ladder__price mono">([\d,.]+)', ladder)
    ]
    assert prices == sorted(prices, reverse=True)
    assert price(snapshot.last_close) in ladder
    assert 'data-cluster-view="size"' in body and 'data-cluster-panel="size" hidden' in body
    for cluster in snapshot.clusters[:3]:
        assert usd(cluster["notional_usd"]) in body


def test_it_states_the_near_edge_the_peak_and_the_magnet_rule(client, btc):
    snapshot = MapSnapshot.objects.get(market=btc, window="7d")
    proximity = snapshot.proximity
    assert proximity["long"] or proximity["short"]
    body = pair_page(client, btc)
    widget = body[
        body.index('id="proximity"') : body.index("</section>", body.index('id="proximity"'))
    ]
    for side, edge in (("long", "price_high"), ("short", "price_low")):
        cluster = proximity[side]
        if cluster is None:
            continue
        peak = cluster["peak_price"]
        peak_pct = 100 * (peak - snapshot.last_close) / snapshot.last_close
        assert f"to its near edge {price(cluster[edge])}" in widget
        assert f"peak {price(peak)} ({distance(peak_pct)})" in widget
        score = cluster["notional_usd"] / max(abs(cluster["distance_pct"]), MIN_DISTANCE_PCT)
        assert f"{usd(cluster['notional_usd'])} ÷ {abs(cluster['distance_pct']):.2f}%" in widget
        assert f"= {usd(score)}/%" in widget


def test_it_puts_real_liquidations_beside_the_estimated_ones(client, btc):
    liquidation(btc, minutes_back=30, side="long", usd_value=2_500_000.0)
    liquidation(btc, minutes_back=90, side="short", usd_value=700_000.0)
    body = pair_page(client, btc)
    totals = body[body.index('id="liquidations-title"') :]
    assert "Estimated" in totals and "Real" in totals
    assert "$2.5M" in totals and "$700K" in totals
    assert "Real: 2 orders reported by the exchange" in body
    feed = body[body.index('id="real-title"') :]
    assert feed.index("$2.5M") < feed.index("$700K")
    url = reverse("maps:pair_charts", args=["binance", "btcusdt"])
    data = client.get(url, {"window": "7d", "side": "both"}, HTTP_ACCEPT_ENCODING="gzip")
    text = gzip.decompress(data.content).decode()
    assert '"markers"' in text and '"layer:real"' in text


def test_it_says_when_there_are_no_real_liquidations_or_calibration(client, btc):
    body = pair_page(client, btc)
    assert "No real liquidations stored for this window" in body
    assert "Not calibrated yet" in body
    assert "None stored for this window." in body


def test_it_says_when_a_window_is_longer_than_its_data(client, btc):
    body = pair_page(client, btc, window="7d")
    note = re.search(r'<p class="coverage" role="note">(.*?)</p>', body, re.S)
    assert note is not None
    assert "This 7d window holds only 2.1 days of data: since" in note.group(1)
    assert 'id="window-7d"' in body and re.search(r'id="window-7d"[^>]*is-partial', body)
    assert not re.search(r'id="window-24h"[^>]*is-partial', body)
    full = pair_page(client, btc, window="24h")
    assert 'class="coverage"' not in full
    url = reverse("maps:pair_charts", args=["binance", "btcusdt"])
    data = client.get(url, {"window": "7d"}, HTTP_ACCEPT_ENCODING="gzip")
    text = json.loads(gzip.decompress(data.content))["doc"]["roots"][0]
    assert "BTCUSDT · Binance · 7d · both · data since " in json.dumps(text, ensure_ascii=False)


def test_it_starts_the_chart_data_with_the_page_and_names_bokeh_by_content(client, btc):
    body = pair_page(client, btc)
    charts_url = re.search(r'data-charts-url="([^"]+)"', body).group(1)
    assert f'<link rel="preload" href="{charts_url}" as="fetch"' in body
    assert 'crossorigin="anonymous"' in body
    bokeh = re.search(r'src="(/static/bokeh/js/bokeh\.min\.js\?v=[0-9a-f]{12})"', body)
    assert bokeh is not None
    assert re.search(r'src="/static/js/charts\.js\?v=[0-9a-f]{12}"', body)
    assert '<a class="skip-link" href="#main">' in body and '<main id="main"' in body


def test_it_lets_browsers_keep_bokeh_for_a_year(client):
    bokeh = client.get("/static/bokeh/js/bokeh.min.js", {"v": "0123456789ab"})
    assert bokeh.status_code == 200
    assert bokeh["Cache-Control"] == "public, max-age=31536000, immutable"
    css = client.get("/static/css/liqsite.css")
    assert css.status_code == 200 and "immutable" not in css["Cache-Control"]


def test_it_scales_a_new_alerts_amounts_to_the_market(client, alice, btc):
    from accounts.models import WatchlistItem
    from accounts.selectors import market_alert_defaults, nice_floor

    watch = WatchlistItem.objects.create(user=alice, market=btc)
    snapshot = MapSnapshot.objects.get(market=btc, window="7d")
    sizes = sorted((c["notional_usd"] for c in snapshot.clusters), reverse=True)[:5]
    typical = (
        sorted(sizes)[len(sizes) // 2]
        if len(sizes) % 2
        else sum(sorted(sizes)[len(sizes) // 2 - 1 : len(sizes) // 2 + 1]) / 2
    )
    defaults = market_alert_defaults(market=btc)
    assert defaults["min_notional_usd"] == nice_floor(typical * 0.25)
    assert defaults["threshold_usd"] == nice_floor(typical * 0.1)
    client.force_login(alice)
    form = client.get(reverse("accounts:alert_create", args=[watch.pk])).context["form"]
    assert form.initial["min_notional_usd"] == defaults["min_notional_usd"]
    assert form.initial["threshold_usd"] == defaults["threshold_usd"]
    assert [nice_floor(v) for v in (0.4, 7.0, 2_345.0, 19_999_999.0)] == [1.0, 5.0, 2_000.0, 1e7]


def test_it_keeps_the_old_defaults_for_a_market_without_a_map(client, alice, market_factory):
    from accounts.models import WatchlistItem

    watch = WatchlistItem.objects.create(user=alice, market=market_factory("ETHUSDT"))
    client.force_login(alice)
    form = client.get(reverse("accounts:alert_create", args=[watch.pk])).context["form"]
    assert form.initial["min_notional_usd"] == 1_000_000


def test_it_serves_the_chart_json_with_its_metadata(client, btc):
    url = reverse("maps:pair_charts", args=["binance", "btcusdt"])
    data = client.get(url, {"window": "24h"}, HTTP_ACCEPT_ENCODING="gzip")
    item = json.loads(gzip.decompress(data.content))
    tags = item["doc"]["roots"][0]["attributes"]["tags"][0]
    entries = dict(tags["entries"])
    assert entries["liqsite"] == 1
    assert entries["candle_ms"] == 900_000
    names = [dict(layer["entries"])["name"] for layer in entries["layers"]]
    # candles and the cumulative curves, and the signal marks this market has (maps/figures)
    assert names[:2] == ["candles", "cumulative"]
    assert set(names[2:]) <= {"cascades", "sweeps"}
    text = json.dumps(item)
    assert all(f'"layer:{name}"' in text for name in names)
