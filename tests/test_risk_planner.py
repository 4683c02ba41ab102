"""The planner through the API, the pages and saved positions with their alerts."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.forms import AlertForm
from accounts.models import Alert, AlertEvent, WatchlistItem
from accounts.services import market_alerts_check
from maps.models import Exchange, MapSnapshot, SavedPosition

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


@pytest.fixture
def btc(tracked_market):
    return tracked_market("BTCUSDT", "binance", is_demo=True)


def get(client, kind: str, market, **query):
    name = kind.replace("-", "_")
    return client.get(reverse(f"api:{name}", args=[market.exchange.slug, market.slug]), query)


def last_close(market, window: str = "7d") -> float:
    return MapSnapshot.objects.get(market=market, window=window).last_close


# The API.


def test_it_answers_a_position_with_the_documented_fields(client, btc):
    close = last_close(btc)
    response = get(client, "position", btc, side="long", entry=close, leverage=10, size=0.5)
    assert response.status_code == 200
    body = response.json()
    for key in (
        "liquidation_price",
        "maintenance_rate",
        "distance_pct",
        "inside_cluster",
        "notional_before",
        "suggested_stop",
        "loss_at_stop_usd",
        "max_safe_leverage",
    ):
        assert key in body
    # One bracket at the market's rate (no table loaded): MODEL.md's formula.
    assert body["liquidation_price"] == pytest.approx(close * 0.9 / 0.996, rel=1e-9)
    assert body["maintenance_rate"] == 0.004 and body["formula"] == "binance"
    assert body["distance_pct"] == pytest.approx(100 * (0.9 / 0.996 - 1), abs=1e-4)
    assert body["margin_usd"] == pytest.approx(round(0.5 * close / 10, 2))
    assert body["window"] == "7d" and body["market"]["symbol"] == "BTCUSDT"
    assert response.headers["Cache-Control"].startswith("public, max-age=")


@pytest.mark.parametrize(
    "query, field",
    [
        ({"entry": "0", "leverage": "10"}, "entry"),
        ({"entry": "-5", "leverage": "10"}, "entry"),
        ({"entry": "abc", "leverage": "10"}, "entry"),
        ({"entry": "nan", "leverage": "10"}, "entry"),
        ({"leverage": "0"}, "leverage"),
        ({"leverage": "-3"}, "leverage"),
        ({"leverage": "0.5"}, "leverage"),
        ({"leverage": "150"}, "leverage"),
        ({"size": "0", "leverage": "10"}, "size"),
        ({}, "leverage"),
        ({"size": "1", "leverage": "10", "margin": "1"}, "margin"),
        ({"leverage": "10", "stop": "999999"}, "stop"),
        ({"leverage": "10", "window": "2d"}, "window"),
        ({"leverage": "10", "side": "up"}, "side"),
        ({"leverage": "10", "side": ""}, "side"),
    ],
)
def test_it_refuses_a_bad_position_with_a_400_naming_the_field(client, btc, query, field):
    query = {"side": "long", "entry": str(last_close(btc)), **query}
    response = get(client, "position", btc, **query)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert field in response.json()["error"]


def test_it_refuses_an_entry_far_from_the_price(client, btc):
    response = get(client, "position", btc, side="short", entry=last_close(btc) * 2, leverage=5)
    assert response.status_code == 400
    assert response.json()["field"] == "entry"
    assert "more than 50% from the last price" in response.json()["error"]


def test_it_refuses_a_leverage_above_the_exchanges_maximum_for_the_size(client, btc):
    Exchange.objects.filter(slug="binance").update(ccxt_id="binanceusdm")
    call_command("load_brackets", stdout=StringIO())
    close = last_close(btc)
    # 10 BTC is above 250,000 USDT: Binance allows 50x there, 125x below 50,000 USDT.
    response = get(client, "position", btc, side="long", entry=close, leverage=75, size=10)
    assert response.status_code == 400
    assert response.json()["field"] == "leverage"
    assert "maximum of 50x" in response.json()["error"]
    ok = get(client, "position", btc, side="long", entry=close, leverage=75, size=0.1)
    assert ok.status_code == 200 and ok.json()["bracket"] == 1


def test_it_answers_404_for_an_unknown_market_and_a_missing_window(client, btc):
    assert client.get("/api/v1/binance/dogeusdt/position?side=long&entry=1").status_code == 404
    response = get(client, "what-if", btc, price=last_close(btc), window="30d")
    assert response.status_code == 404


def test_it_answers_what_if_with_the_maps_cumulative_curve_within_a_bin(client, btc):
    document = client.get(reverse("api:map", args=["binance", "btcusdt"])).json()
    bins, close = document["bins"], document["last_close"]
    edges = bins["start"] + bins["width"] * np.arange(bins["count"] + 1)
    cum_long, cum_short = document["cum_long"], document["cum_short"]
    rng = np.random.default_rng(2)
    for price in rng.uniform(close * 0.9, close * 1.1, 25):
        body = get(client, "what-if", btc, price=f"{price:.2f}").json()
        k = int(np.searchsorted(edges, body["price"], side="right")) - 1
        if body["price"] < close:
            low, high = cum_long[min(k + 1, len(cum_long) - 1)], cum_long[k]
            assert low - 0.02 <= body["long_usd"] <= high + 0.02
            assert sum(body["by_tier"]["long"]) == pytest.approx(body["long_usd"], rel=1e-6)
        else:
            low, high = cum_short[max(k - 1, 0)], cum_short[k]
            assert low - 0.02 <= body["short_usd"] <= high + 0.02
        assert set(body["impact"]) == {"per_usd", "r2", "steps"}
        if body["price"] < close:
            assert body["cascade_to"] <= body["price"]
        else:
            assert body["cascade_to"] >= body["price"]


@pytest.mark.parametrize("query, field", [({"price": "0"}, "price"), ({}, "price")])
def test_it_refuses_a_bad_what_if_price(client, btc, query, field):
    response = get(client, "what-if", btc, **query)
    assert response.status_code == 400 and response.json()["field"] == field
    far = get(client, "what-if", btc, price=last_close(btc) * 100)
    assert far.status_code == 400 and "outside the map" in far.json()["error"]


def test_it_puts_a_longs_stop_below_the_nearest_long_cluster_and_a_safe_leverage_below_it(
    client, btc
):
    close = last_close(btc)
    body = get(client, "position", btc, side="long", entry=close, leverage=50, size=1).json()
    cluster = body["stop_cluster"]
    assert cluster["side"] == "long" and cluster["price_low"] < close
    assert body["suggested_stop"] < cluster["price_low"]
    nearer = [
        c
        for c in MapSnapshot.objects.get(market=btc, window="7d").clusters
        if c["side"] == "long" and c["share"] >= 0.05 and cluster["price_high"] < c["price_low"]
    ]
    assert all(c["price_low"] >= close for c in nearer)  # no significant long cluster in between
    safe = body["max_safe_leverage"]
    assert safe is not None
    at_safe = get(client, "position", btc, side="long", entry=close, leverage=safe, size=1)
    assert at_safe.json()["liquidation_price"] < body["suggested_stop"]
    above = get(client, "position", btc, side="long", entry=close, leverage=safe + 1, size=1)
    assert above.json()["liquidation_price"] >= body["suggested_stop"]
    assert body["loss_at_stop_usd"] == pytest.approx(close - body["suggested_stop"], abs=0.02)


def test_it_uses_each_exchanges_own_formula(client, tracked_market):
    bybit = tracked_market("BTCUSDT", "bybit", is_demo=True)
    okx = tracked_market("ETH-USDT-SWAP", "okx", price=3_000.0, slug="ethusdt", contract_size=0.1)
    Exchange.objects.filter(slug="bybit").update(ccxt_id="bybit")
    Exchange.objects.filter(slug="okx").update(ccxt_id="okx")
    call_command("load_brackets", stdout=StringIO())
    close = last_close(bybit)
    body = get(client, "position", bybit, side="long", entry=close, leverage=50, size=1).json()
    assert body["formula"] == "bybit"
    assert body["liquidation_price"] == pytest.approx(
        close - (close / 50 - close * 0.005), rel=1e-9
    )
    close = last_close(okx)
    body = get(client, "position", okx, side="short", entry=close, leverage=20, size=10).json()
    assert body["formula"] == "okx" and body["maintenance_rate"] == 0.004
    expected = (close + close / 20) / (1 + 0.004 + 0.0005)
    assert body["liquidation_price"] == pytest.approx(expected, rel=1e-9)


# The pages.


def test_it_includes_the_planner_in_the_pair_page_with_a_form_that_works_without_js(client, btc):
    page = client.get(btc.get_absolute_url(), {"plan": "short", "entry": "61000", "leverage": "7"})
    html = page.content.decode()
    planner = reverse("maps:planner", args=["binance", "btcusdt"])
    assert f'hx-get="{planner}?view=pair&amp;' in html
    assert f'action="{planner}"' in html
    assert 'value="61000"' in html and 'value="7"' in html


def test_it_serves_the_plan_as_a_page_without_js(client, btc):
    close = last_close(btc)
    planner = reverse("maps:planner", args=["binance", "btcusdt"])
    page = client.get(planner, {"plan": "long", "entry": f"{close:.2f}", "leverage": "20"})
    html = page.content.decode()
    assert page.status_code == 200 and "<html" in html
    assert "Liquidation price" in html and "What if price reaches" in html
    assert "Share this plan" in html and "plan=long" in html


def test_it_updates_the_panel_by_htmx_and_puts_the_inputs_in_the_url(client, btc):
    planner = reverse("maps:planner", args=["binance", "btcusdt"])
    response = client.get(
        planner, {"view": "pair", "plan": "long", "leverage": "15"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "<html" not in html and 'id="planner-result"' in html
    assert response.headers["HX-Replace-Url"] == (
        f"{btc.get_absolute_url()}?window=7d&plan=long&leverage=15"
    )
    assert "no-cache" in response.headers["Cache-Control"]
    # The pair page's own side filter stays; before any input the address is left alone.
    response = client.get(
        planner,
        {"view": "pair", "side": "short", "window": "7d", "plan": "long"},
        HTTP_HX_REQUEST="true",
    )
    assert response.headers["HX-Replace-Url"] == (
        f"{btc.get_absolute_url()}?window=7d&side=short&plan=long"
    )
    assert 'name="side" value="short"' in response.content.decode()
    response = client.get(planner, {"view": "pair", "window": "7d"}, HTTP_HX_REQUEST="true")
    assert "HX-Replace-Url" not in response.headers


def test_it_shows_a_bad_input_beside_its_field(client, btc):
    planner = reverse("maps:planner", args=["binance", "btcusdt"])
    response = client.get(planner, {"plan": "long", "leverage": "500"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert "planner-errors" in html and "leverage 500x is above" in html
    assert 'pf pf--error"><span class="pf__label">Leverage' in html


# Saved positions and their alerts.


def save(client, market, **fields):
    data = {"window": "7d", "plan": "long", "leverage": "10", "size": "0.2", **fields}
    url = reverse("maps:planner_save", args=[market.exchange.slug, market.slug])
    return client.post(url, data)


def test_it_saves_a_position_with_its_alerts_for_a_signed_in_user_only(client, btc, alice, bob):
    assert save(client, btc).status_code == 302  # to the login page
    assert not SavedPosition.objects.exists()
    client.force_login(alice)
    response = save(
        client,
        btc,
        near_stop="on",
        near_stop_pct="0.5",
        near_liquidation="on",
        near_liquidation_pct="1",
        stop_cluster="on",
        cluster_min_usd="1000000",
        note="swing",
    )
    position = SavedPosition.objects.get()
    assert response.url == reverse("maps:position", args=[position.pk])
    assert (position.user, position.side, position.quantity, position.note) == (
        alice,
        "long",
        0.2,
        "swing",
    )
    assert position.stop is not None and position.liquidation_price > 0
    kinds = sorted(position.alerts.values_list("kind", flat=True))
    assert kinds == sorted(Alert.POSITION_KINDS)
    assert WatchlistItem.objects.filter(user=alice, market=btc).exists()
    assert client.get(reverse("maps:positions")).status_code == 200
    client.force_login(bob)
    assert client.get(reverse("maps:position", args=[position.pk])).status_code == 404
    assert client.post(reverse("maps:position_delete", args=[position.pk])).status_code == 404
    client.force_login(alice)
    client.post(reverse("maps:position_delete", args=[position.pk]))
    assert not SavedPosition.objects.exists() and not Alert.objects.exists()


def test_it_refuses_to_save_a_bad_position_and_keeps_nothing(client, btc, alice):
    client.force_login(alice)
    response = save(client, btc, leverage="0")
    assert response.status_code == 302 and "leverage=0" in response.url
    response = save(client, btc, near_stop="on", near_stop_pct="-1")
    assert not SavedPosition.objects.exists() and not Alert.objects.exists()


def position_with_alert(user, market, kind: str, **fields) -> Alert:
    close = last_close(market)
    values = {"side": "long", "entry": close, "leverage": 10, "quantity": 1, "margin": close / 10}
    values["liquidation_price"] = close * 0.9
    position = SavedPosition.objects.create(user=user, market=market, **(values | fields))
    watch, _ = WatchlistItem.objects.get_or_create(user=user, market=market)
    extra = {"min_notional_usd": 1.0} if kind == Alert.STOP_CLUSTER else {"within_pct": 1.0}
    return Alert.objects.create(watch=watch, kind=kind, position=position, window="7d", **extra)


def test_it_alerts_when_price_nears_the_stop_or_the_liquidation(btc, alice, mailoutbox):
    close = last_close(btc)
    near_stop = position_with_alert(alice, btc, Alert.NEAR_STOP, stop=close * 0.995)
    far_stop = position_with_alert(alice, btc, Alert.NEAR_STOP, stop=close * 0.95)
    near_liq = position_with_alert(
        alice,
        btc,
        Alert.NEAR_LIQUIDATION,
        side="short",
        stop=close * 1.05,
        liquidation_price=close * 1.004,
    )
    events = market_alerts_check(market_id=btc.pk)
    fired = {e.alert_id: e for e in events}
    assert set(fired) == {near_stop.pk, near_liq.pk}
    assert "0.50% from your stop" in fired[near_stop.pk].message
    assert "your liquidation price" in fired[near_liq.pk].message
    assert far_stop.pk not in fired
    # Once fired, the same snapshot fires nothing again.
    assert market_alerts_check(market_id=btc.pk) == []
    assert AlertEvent.objects.count() == 2 and len(mailoutbox) == 1


def test_it_alerts_when_a_cluster_lies_between_price_and_the_stop(btc, alice):
    snapshot = MapSnapshot.objects.get(market=btc, window="7d")
    longs = [
        c
        for c in snapshot.clusters
        if c["side"] == "long" and c["price_high"] < snapshot.last_close
    ]
    assert longs
    deep = min(c["price_low"] for c in longs) * 0.99
    hit = position_with_alert(alice, btc, Alert.STOP_CLUSTER, stop=deep)
    miss = position_with_alert(alice, btc, Alert.STOP_CLUSTER, stop=snapshot.last_close * 0.9999)
    events = market_alerts_check(market_id=btc.pk)
    assert [e.alert_id for e in events] == [hit.pk]
    assert "lies between price and your stop" in events[0].message
    assert miss.describe().startswith("a cluster of at least $1 between price and the stop")


def test_it_keeps_position_alerts_out_of_the_watchlist_alert_form(client, btc, alice):
    alert = position_with_alert(alice, btc, Alert.NEAR_STOP, stop=last_close(btc) * 0.99)
    kinds = [k for k, _ in AlertForm(instance=Alert(watch=alert.watch)).fields["kind"].choices]
    assert kinds == [Alert.PROXIMITY, Alert.LIQUIDATIONS, *Alert.SIGNAL_KINDS, *Alert.WHALE_KINDS]
    client.force_login(alice)
    response = client.get(reverse("accounts:alert_edit", args=[alert.pk]))
    assert response.url == reverse("maps:position", args=[alert.position_id])
    page = client.get(reverse("maps:position", args=[alert.position_id]))
    assert "Price near my stop" in page.content.decode()
