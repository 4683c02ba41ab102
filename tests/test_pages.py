"""The pages through the test client: full pages, htmx fragments, chart data, errors, headers."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.http import http_date

from maps import charts
from maps.models import Calibration, MapSnapshot, Market
from maps.templatetags.liq import distance, markdown, usd

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


@pytest.fixture
def btc(tracked_market):
    return tracked_market("BTCUSDT", "binance", is_demo=True)


def pair_url(market, **query) -> str:
    url = reverse("maps:pair", args=[market.exchange.slug, market.slug])
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


# Home, exchange and coins.


def test_it_lists_tracked_markets_on_home(client, btc):
    snapshot = btc.snapshots.get(window="7d")
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "BTCUSDT" in body
    assert btc.get_absolute_url() in body
    assert "DEMO" in body
    below = snapshot.proximity["long"]
    if below:
        assert usd(below["notional_usd"]) in body
    assert '<meta name="description"' in body
    assert "<title>Crypto liquidation heatmaps and maps (7d)" in body


def test_it_says_plainly_when_every_market_on_home_is_demo_data(client, btc):
    body = client.get("/").content.decode()
    assert 'class="demo-banner"' in body
    assert "Every market shown here is simulated" in body


def test_it_drops_the_demo_banner_once_a_real_market_is_tracked(client, btc, tracked_market):
    tracked_market("ETHUSDT", "bybit", price=3000.0, seed=3)
    body = client.get("/").content.decode()
    assert "demo-banner" not in body
    assert "DEMO" in body


def test_it_keeps_the_other_options_in_the_400_choices(client, btc):
    response = client.get(pair_url(btc), {"window": "5d", "side": "short"})
    assert response.status_code == 400
    body = response.content.decode()
    for window in ("12h", "24h", "3d", "7d", "30d", "90d"):
        assert f'href="/binance/btcusdt/?side=short&amp;window={window}"' in body


def test_it_refreshes_the_home_table_every_15_seconds(client, btc):
    body = client.get("/").content.decode()
    assert 'hx-trigger="every 15s"' in body
    assert f'hx-get="{reverse("maps:markets_table")}?window=7d"' in body


def test_it_serves_the_home_table_alone_as_a_fragment(client, btc):
    response = client.get(reverse("maps:markets_table"), {"window": "24h"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert body.lstrip().startswith('<section id="markets"')
    assert "BTCUSDT" in body
    assert "Window 24h" in body
    assert "no-cache" in response["Cache-Control"]


def test_it_filters_the_table_fragment_by_exchange(client, tracked_market):
    tracked_market("BTCUSDT", "binance")
    tracked_market("ETHUSDT", "bybit", price=3000.0, seed=3)
    response = client.get(reverse("maps:markets_table"), {"exchange": "bybit"})
    body = response.content.decode()
    assert "ETHUSDT" in body
    assert "BTCUSDT" not in body
    assert client.get(reverse("maps:markets_table"), {"exchange": "nope"}).status_code == 404


def test_it_rejects_a_bad_window_on_home(client, btc):
    response = client.get("/", {"window": "5d"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "window=&#x27;5d&#x27; is not allowed" in body
    for window in ("12h", "24h", "3d", "7d", "30d", "90d"):
        assert f"?window={window}" in body


def test_it_shows_an_empty_home_without_markets(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "No markets tracked yet" in response.content.decode()


def test_it_lists_an_exchanges_markets(client, tracked_market):
    tracked_market("BTCUSDT", "binance")
    tracked_market("ETHUSDT", "bybit", price=3000.0, seed=3)
    response = client.get("/bybit/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "ETHUSDT" in body
    assert "BTCUSDT" not in body
    assert "<title>Bybit liquidation heatmaps (7d)" in body


def test_it_gives_404_for_an_unknown_exchange(client, btc):
    response = client.get("/kraken/")
    assert response.status_code == 404
    assert "No exchange &#x27;kraken&#x27; is tracked here" in response.content.decode()


def test_it_redirects_an_uppercase_exchange_to_lowercase(client, btc):
    response = client.get("/Binance/?window=24h")
    assert response.status_code == 301
    assert response["Location"] == "/binance/?window=24h"


def test_it_lists_coins(client, tracked_market):
    tracked_market("BTCUSDT", "binance")
    tracked_market("BTCUSDT", "bybit", seed=5)
    body = client.get(reverse("maps:coins")).content.decode()
    assert reverse("maps:coin", args=["btc"]) in body
    assert "2 exchanges" in body


# The pair page.


def test_it_renders_the_pair_page(client, btc):
    snapshot = btc.snapshots.get(window="7d")
    response = client.get(pair_url(btc))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<title>BTCUSDT Binance liquidation heatmap (7d) — liqsite</title>" in body
    assert 'name="description" content="Estimated liquidation levels for BTCUSDT on Binance' in body
    assert "DEMO DATA" in body
    assert 'hx-headers=\'{"X-CSRFToken": "' in body
    assert "bokeh/js/bokeh.min.js" in body
    assert "django_htmx/htmx-2.min.js" in body
    charts_url = reverse("maps:pair_charts", args=["binance", "btcusdt"])
    assert f'data-charts-url="{charts_url}?window=7d&amp;side=both&amp;v=' in body
    for cluster in snapshot.clusters[:3]:
        assert usd(cluster["notional_usd"]) in body
    assert "Maintenance margin" in body
    assert "0.40%" in body
    assert reverse("maps:model") in body
    assert "As of" in body


def test_it_links_every_window_and_side_with_a_real_href(client, btc):
    body = client.get(pair_url(btc, window="24h", side="long")).content.decode()
    for window in ("12h", "24h", "3d", "7d", "30d", "90d"):
        link = f"/binance/btcusdt/?window={window}&amp;side=long"
        assert f'href="{link}" hx-get="{link}"' in body
    for side in ("both", "long", "short"):
        link = f"/binance/btcusdt/?window=24h&amp;side={side}"
        assert f'href="{link}" hx-get="{link}"' in body
    assert 'hx-target="#market-view"' in body
    assert 'hx-push-url="true"' in body


def test_it_carries_the_view_in_the_copy_link(client, btc):
    body = client.get(pair_url(btc, window="3d", side="short")).content.decode()
    assert 'data-copy-url="http://testserver/binance/btcusdt/?window=3d&amp;side=short"' in body
    canonical = "http://testserver/binance/btcusdt/?window=3d&amp;side=short"
    assert f'<link rel="canonical" href="{canonical}">' in body


def test_it_shows_only_the_chosen_sides_clusters(client, btc):
    snapshot = btc.snapshots.get(window="7d")
    body = client.get(pair_url(btc, side="short")).content.decode()
    assert "pill--short" in body or not any(c["side"] == "short" for c in snapshot.clusters)
    assert "pill--long" not in body


def test_it_includes_the_proximity_widget_polling_every_15_seconds(client, btc):
    snapshot = btc.snapshots.get(window="7d")
    body = client.get(pair_url(btc)).content.decode()
    proximity = reverse("maps:pair_proximity", args=["binance", "btcusdt"])
    assert f'hx-get="{proximity}?window=7d&amp;v=' in body
    assert 'hx-trigger="every 15s"' in body
    long = snapshot.proximity["long"]
    if long:
        assert distance(long["distance_pct"]) in body


def test_it_takes_the_refresh_interval_from_settings(client, btc, settings):
    settings.LIQSITE_REFRESH_SECONDS = 2
    assert 'hx-trigger="every 2s"' in client.get(pair_url(btc)).content.decode()


def test_it_serves_the_proximity_widget_alone(client, btc):
    snapshot = btc.snapshots.get(window="24h")
    url = reverse("maps:pair_proximity", args=["binance", "btcusdt"])
    response = client.get(url, {"window": "24h"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.startswith('<section id="proximity"')
    assert "<html" not in body
    assert "no-cache" in response["Cache-Control"]
    for side in ("long", "short"):
        if snapshot.proximity[side]:
            assert usd(snapshot.proximity[side]["notional_usd"]) in body
    page = client.get(pair_url(btc, window="24h")).content.decode()
    start = page.index('<section id="proximity"')
    widget = page[start : page.index("</section>", start)]
    fragment = body[: body.index("</section>")]
    assert widget.split('hx-get="')[0] == fragment.split('hx-get="')[0]


def test_it_says_when_the_widget_sees_a_newer_map(client, btc):
    url = reverse("maps:pair_proximity", args=["binance", "btcusdt"])
    body = client.get(url, {"window": "7d", "v": "1.1"}).content.decode()
    assert "New map — reload charts" in body
    assert 'href="http://testserver/binance/btcusdt/?window=7d"' in body


def test_it_keeps_the_side_in_the_widgets_urls(client, btc):
    page = client.get(pair_url(btc, window="24h", side="short")).content.decode()
    proximity = reverse("maps:pair_proximity", args=["binance", "btcusdt"])
    assert f'hx-get="{proximity}?window=24h&amp;side=short&amp;v=' in page
    widget = client.get(proximity, {"window": "24h", "side": "short", "v": "1.1"}).content.decode()
    assert 'href="http://testserver/binance/btcusdt/?window=24h&amp;side=short"' in widget
    assert f'hx-get="{proximity}?window=24h&amp;side=short&amp;v=1.1"' in widget
    bad = client.get(proximity, {"window": "24h", "side": "up"})
    assert bad.status_code == 400


def test_it_swaps_only_the_market_view_for_htmx(client, btc):
    response = client.get(pair_url(btc, window="24h"), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert body.startswith("<title>BTCUSDT Binance liquidation heatmap (24h)")
    assert '<div id="market-view"' in body
    assert "HX-Request" in response["Vary"]
    assert "no-store" in response["Cache-Control"]
    assert not response.has_header("ETag")


def test_it_never_answers_an_htmx_swap_with_304(client, btc):
    page = client.get(pair_url(btc))
    swap = client.get(pair_url(btc), HTTP_HX_REQUEST="true", HTTP_IF_NONE_MATCH=page["ETag"])
    assert swap.status_code == 200


def test_it_renders_the_full_page_for_an_htmx_history_restore(client, btc):
    response = client.get(
        pair_url(btc), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert "<html" in response.content.decode()


def test_it_redirects_an_uppercase_pair_to_lowercase(client, btc):
    response = client.get("/BINANCE/BTCUSDT/?window=24h&side=long")
    assert response.status_code == 301
    assert response["Location"] == "/binance/btcusdt/?window=24h&side=long"


@pytest.mark.parametrize("path", ["/binance/ethusdt/", "/kraken/btcusdt/"])
def test_it_gives_404_for_an_unknown_market(client, btc, path):
    response = client.get(path)
    assert response.status_code == 404
    body = response.content.decode()
    assert "Nothing here" in body
    assert "is tracked here" in body


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"window": "5d"}, "window=&#x27;5d&#x27; is not allowed"),
        ({"side": "up"}, "side=&#x27;up&#x27; is not allowed: use one of both, long, short"),
    ],
)
def test_it_gives_400_for_a_bad_option(client, btc, query, message):
    response = client.get(pair_url(btc), query)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_it_accepts_options_in_any_case(client, btc):
    assert client.get(pair_url(btc), {"window": "24H", "side": "Long"}).status_code == 200


def test_it_shows_an_empty_state_without_snapshots(client, market_factory):
    market = market_factory("XRPUSDT", "binance")
    response = client.get(pair_url(market))
    assert response.status_code == 200
    body = response.content.decode()
    assert "No data yet" in body
    assert "The first map appears a few minutes after the market is tracked" in body
    assert "data-charts-url" not in body
    assert "no-cache" in response["Cache-Control"]


def test_it_warns_when_the_data_is_stale(client, btc, settings):
    Market.objects.filter(pk=btc.pk).update(is_demo=False)
    old = timezone.now() - timedelta(hours=3, minutes=5)
    MapSnapshot.objects.filter(market=btc, window="7d").update(as_of=old)
    body = client.get(pair_url(btc)).content.decode()
    assert "Stale: no new data for 3 h" in body


def test_it_never_calls_demo_data_stale(client, btc):
    assert btc.is_demo
    old = timezone.now() - timedelta(hours=3, minutes=5)
    MapSnapshot.objects.filter(market=btc, window="7d").update(as_of=old)
    body = client.get(pair_url(btc)).content.decode()
    assert "Stale" not in body
    assert "DEMO DATA" in body


def test_it_shows_the_latest_calibration(client, btc):
    Calibration.objects.create(
        market=btc,
        period_start=timezone.now() - timedelta(days=30),
        period_end=timezone.now(),
        engine_version="2.0.0",
        prior=btc.tiers,
        weights=[0.1, 0.2, 0.3, 0.3, 0.1],
        scale=1.8,
        corr_long=0.62,
        corr_short=0.55,
        hit_rate=0.41,
        coverage=0.18,
        events_used=1234,
    )
    body = client.get(pair_url(btc)).content.decode()
    assert "1234 real liquidations" in body
    assert "\u00d71.80" in body
    assert "41.0% vs 18.0%" in body
    assert "25x 30.0%" in body


# Cache headers and conditional GET.


def test_it_sends_cache_headers_from_the_snapshot(client, btc):
    snapshot = btc.snapshots.get(window="7d")
    response = client.get(pair_url(btc))
    assert response["ETag"]
    assert response["Last-Modified"] == http_date(snapshot.computed_at.timestamp())
    control = response["Cache-Control"]
    assert "private" in control
    max_age = int(control.split("max-age=")[1].split(",")[0])
    assert 15 <= max_age <= btc.step_ms // 1000


def test_it_answers_304_to_a_current_etag(client, btc):
    first = client.get(pair_url(btc))
    again = client.get(pair_url(btc), HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again["ETag"] == first["ETag"]
    assert "max-age=" in again["Cache-Control"]


def test_it_answers_304_to_if_modified_since(client, btc):
    first = client.get(pair_url(btc))
    again = client.get(pair_url(btc), HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert again.status_code == 304


def test_it_sends_the_page_again_after_a_new_snapshot(client, btc):
    first = client.get(pair_url(btc))
    MapSnapshot.objects.filter(market=btc, window="7d").update(
        computed_at=timezone.now() + timedelta(minutes=5)
    )
    again = client.get(pair_url(btc), HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200
    assert again["ETag"] != first["ETag"]


def test_it_never_caches_a_signed_in_users_page(client, btc, user_factory):
    user = user_factory()
    client.force_login(user)
    response = client.get(pair_url(btc))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    assert not response.has_header("ETag")
    assert client.get(pair_url(btc), HTTP_IF_NONE_MATCH='"x"').status_code == 200


def test_it_gzips_the_page(client, btc):
    response = client.get(pair_url(btc), HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"
    assert b"<title>BTCUSDT" in gzip.decompress(response.content)


# Chart data.


def charts_get(client, market, **query):
    url = reverse("maps:pair_charts", args=[market.exchange.slug, market.slug])
    return client.get(url, query, HTTP_ACCEPT_ENCODING="gzip")


def test_it_serves_the_charts_as_bokeh_json(client, btc):
    response = charts_get(client, btc, window="7d", side="both")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Encoding"] == "gzip"
    item = json.loads(gzip.decompress(response.content))
    assert {"doc", "root_id", "version"} <= set(item)
    text = json.dumps(item)
    assert '"type": "ndarray"' in text
    assert '"dtype": "float32"' in text


def test_it_sends_plain_json_to_a_client_without_gzip(client, btc):
    url = reverse("maps:pair_charts", args=["binance", "btcusdt"])
    response = client.get(url, {"window": "7d"})
    assert not response.has_header("Content-Encoding")
    assert "doc" in json.loads(response.content)


def test_it_lets_clients_keep_versioned_charts(client, btc):
    page = client.get(pair_url(btc)).content.decode()
    url = page.split('data-charts-url="')[1].split('"')[0].replace("&amp;", "&")
    response = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert "immutable" in response["Cache-Control"]
    again = client.get(url, HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    unversioned = charts_get(client, btc, window="7d")
    assert "immutable" not in unversioned["Cache-Control"]


def test_it_names_the_drawing_code_in_the_kept_charts_url(client, btc, monkeypatch):
    def charts_url() -> str:
        page = client.get(pair_url(btc)).content.decode()
        return page.split('data-charts-url="')[1].split('"')[0].replace("&amp;", "&")

    before = charts_url()
    monkeypatch.setattr(charts, "CHARTS_VERSION", charts.CHARTS_VERSION + 1)
    after = charts_url()
    assert after != before
    assert "immutable" in client.get(after)["Cache-Control"]
    assert "immutable" not in client.get(before)["Cache-Control"]


def test_it_builds_the_charts_once_per_snapshot(client, btc, monkeypatch):
    charts_get(client, btc, window="24h", side="long")
    monkeypatch.setattr(charts, "chart_json", lambda *a, **k: pytest.fail("rebuilt"))
    assert charts_get(client, btc, window="24h", side="long").status_code == 200


def test_it_gives_a_json_404_for_charts_without_a_snapshot(client, market_factory):
    market = market_factory("XRPUSDT", "binance")
    response = charts_get(client, market, window="7d")
    assert response.status_code == 404
    assert "no snapshot" in json.loads(response.content)["error"]


def test_it_rejects_a_bad_side_for_charts(client, btc):
    assert charts_get(client, btc, side="sideways").status_code == 400


def test_it_keeps_the_pair_page_under_the_transfer_budget(client, tracked_market):
    """HTML + chart data + JS + CSS, gzip, for the largest window: under 1.5 MB."""
    market = tracked_market("BTCUSDT", "binance", steps=3000, windows=("90d",))
    page = client.get(pair_url(market, window="90d"), HTTP_ACCEPT_ENCODING="gzip")
    html = gzip.decompress(page.content).decode()
    url = html.split('data-charts-url="')[1].split('"')[0].replace("&amp;", "&")
    data = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    static = 0
    for name in (
        "bokeh/js/bokeh.min.js",
        "django_htmx/htmx-2.min.js",
        "css/liqsite.css",
        "js/liqsite.js",
    ):
        assert f"/static/{name}" in html
        static += len(gzip.compress(Path(finders.find(name)).read_bytes(), compresslevel=9))
    total = len(page.content) + len(data.content) + static
    assert total < 1_500_000


# The coin page.


@pytest.fixture
def btc_everywhere(tracked_market):
    return [
        tracked_market("BTCUSDT", "binance", seed=1),
        tracked_market("BTCUSDT", "bybit", seed=2, price=60_050.0),
    ]


def test_it_aggregates_a_coin_across_exchanges(client, btc_everywhere):
    response = client.get(reverse("maps:coin", args=["btc"]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<title>BTC liquidation heatmap across exchanges (7d)" in body
    assert "2 markets summed on one grid" in body
    for market in btc_everywhere:
        assert f"{market.exchange.name} BTCUSDT" in body
        assert market.get_absolute_url() in body
    assert body.count("Log in to watch") == 2
    assert reverse("maps:coin_charts", args=["btc"]) in body


def test_it_sums_a_coin_with_the_tiers_its_maps_were_made_with(client, btc_everywhere):
    bybit = btc_everywhere[1]
    bybit.tiers = [[20, 0.5], [75, 0.5]]  # edited after the maps were computed
    bybit.save(update_fields=["tiers"])

    response = client.get(reverse("maps:coin_charts", args=["btc"]))

    assert response.status_code == 200
    assert (
        "2 markets summed on one grid"
        in client.get(reverse("maps:coin", args=["btc"])).content.decode()
    )


def test_it_polls_the_coin_proximity_widget_every_15_seconds(client, btc_everywhere):
    body = client.get(reverse("maps:coin", args=["btc"]), {"side": "long"}).content.decode()
    widget_url = reverse("maps:coin_proximity", args=["btc"])
    polling = f'hx-get="{widget_url}?window=7d&amp;side=long&amp;v='
    assert f'<section id="proximity" class="proximity" {polling}' in body
    assert 'hx-trigger="every 15s"' in body
    assert "refreshes every 15 s" in body
    for kind in ("heatmap", "map", "clusters", "proximity"):
        assert f'href="{reverse(f"api:coin_{kind}", args=["btc"])}?window=7d"' in body


def test_it_serves_the_coin_proximity_widget_alone(client, btc_everywhere):
    page = client.get(reverse("maps:coin", args=["btc"]), {"window": "24h"}).content.decode()
    start = page.index('<section id="proximity"')
    widget = page[start : page.index("</section>", start)]
    url = reverse("maps:coin_proximity", args=["btc"])
    response = client.get(url, {"window": "24h"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.startswith('<section id="proximity"')
    assert "<html" not in body
    assert "no-cache" in response["Cache-Control"]
    fragment = body[: body.index("</section>")]
    assert widget.split('hx-get="')[0] == fragment.split('hx-get="')[0]
    assert widget.split("</section>")[0].split('">', 1)[1] == fragment.split('">', 1)[1]


def test_it_says_when_the_coin_widget_sees_a_newer_map(client, btc_everywhere):
    url = reverse("maps:coin_proximity", args=["btc"])
    body = client.get(url, {"window": "7d", "side": "short", "v": "1.1-2.2"}).content.decode()
    assert "New map — reload charts" in body
    assert 'href="http://testserver/coin/btc/?window=7d&amp;side=short"' in body


def test_it_answers_the_coin_widget_errors(client, btc_everywhere, market_factory):
    url = reverse("maps:coin_proximity", args=["btc"])
    assert client.get(url, {"window": "2d"}).status_code == 400
    assert client.get(reverse("maps:coin_proximity", args=["doge"])).status_code == 404
    market_factory("XRPUSDT", "binance")
    empty = client.get(reverse("maps:coin_proximity", args=["xrp"])).content.decode()
    assert "No data yet for this window." in empty
    assert "hx-get" not in empty


def test_it_serves_the_coins_charts(client, btc_everywhere):
    url = reverse("maps:coin_charts", args=["btc"])
    response = client.get(url, {"window": "7d", "side": "both"}, HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert "doc" in json.loads(gzip.decompress(response.content))


def test_it_redirects_an_uppercase_coin(client, btc_everywhere):
    response = client.get("/coin/BTC/?window=24h")
    assert response.status_code == 301
    assert response["Location"] == "/coin/btc/?window=24h"


def test_it_gives_404_for_an_unknown_coin(client, btc_everywhere):
    assert client.get("/coin/doge/").status_code == 404


def test_it_shows_the_coin_page_before_any_snapshot(client, market_factory):
    market_factory("BTCUSDT", "binance")
    response = client.get("/coin/btc/")
    assert response.status_code == 200
    assert "No data yet" in response.content.decode()


# The model page and the URL map.


def test_it_shows_the_model_document(client):
    response = client.get(reverse("maps:model"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>" in body
    assert "<title>How the liquidation model works — liqsite</title>" in body


def test_it_shows_the_api_document(client):
    response = client.get(reverse("maps:api_docs"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "<code>/api/v1/markets/</code>" in body
    assert '<table tabindex="0">' in body
    assert '<a href="/model/">model.md</a>' in body


def test_it_renders_the_docs_markdown():
    text = "\n".join(
        [
            "# Title",
            "",
            "Some *model* text with `a < b` and **bold**, see [the API](api.md).",
            "",
            "1. **Open.** First",
            "   - a long group",
            "   - a short group",
            "2. Second",
            "",
            "| a | b |",
            "| --- | --- |",
            "| 1 | <x> |",
            "",
            "```console",
            "$ curl '<url>'",
            "```",
        ]
    )
    html = markdown(text)
    assert "<h1>Title</h1>" in html
    assert "<em>model</em>" in html
    assert "<code>a &lt; b</code>" in html
    assert '<a href="/api/">the API</a>' in html
    assert "<ol><li><strong>Open.</strong> First<ul><li>a long group</li>" in html
    assert "<li>Second</li></ol>" in html
    assert "<td>&lt;x&gt;</td>" in html
    assert '<pre tabindex="0"><code>$ curl &#x27;&lt;url&gt;&#x27;</code></pre>' in html
    assert '<table tabindex="0">' in html


@pytest.mark.parametrize(
    "path", ["/admin/", "/api/", "/accounts/", "/watchlist/", "/healthz", "/coin/", "/static/"]
)
def test_it_never_reads_reserved_names_as_exchanges(path):
    try:
        match = resolve(path)
    except Resolver404:
        return
    assert match.view_name != "maps:exchange"
