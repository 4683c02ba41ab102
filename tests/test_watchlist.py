from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Alert, WatchlistItem
from accounts.selectors import watchlist_rows

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def btc(market_factory):
    return market_factory("BTCUSDT")


@pytest.fixture
def eth(market_factory):
    return market_factory("ETHUSDT")


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def toggle(client: Client, market, **extra):
    return client.post(reverse("accounts:watch_toggle", args=[market.pk]), **extra)


# The watch button


def test_it_adds_and_removes_a_market_with_one_htmx_post(alice, btc):
    client = client_for(alice)

    added = toggle(client, btc, data={"next": "/binance/btcusdt/"}, **HTMX)

    assert added.status_code == 200
    body = added.content.decode()
    assert 'aria-pressed="true"' in body
    assert "Watching" in body
    assert f'id="watch-{btc.pk}"' in body
    assert 'hx-swap="outerHTML"' in body
    assert 'value="/binance/btcusdt/"' in body
    assert list(alice.watchlist.values_list("market", flat=True)) == [btc.pk]

    removed = toggle(client, btc, **HTMX)

    assert 'aria-pressed="false"' in removed.content.decode()
    assert not alice.watchlist.exists()


def test_it_works_without_javascript_and_redirects_back(alice, btc):
    client = client_for(alice)

    response = toggle(client, btc, data={"next": "/binance/btcusdt/?window=30d"})

    assert response.status_code == 302
    assert response.url == "/binance/btcusdt/?window=30d"
    assert alice.watchlist.filter(market=btc).exists()


def test_it_never_redirects_off_site_after_a_toggle(alice, btc):
    response = toggle(client_for(alice), btc, data={"next": "https://evil.test/"})

    assert response.url == btc.get_absolute_url()


def test_it_renders_the_button_for_watched_and_unwatched_markets(alice, btc, eth, rf):
    from django.template.loader import render_to_string

    WatchlistItem.objects.create(user=alice, market=btc)
    request = rf.get("/binance/")
    request.user = alice

    watched = render_to_string("accounts/_watch_button.html", {"market": btc}, request)
    other = render_to_string("accounts/_watch_button.html", {"market": eth}, request)

    assert "Watching" in watched
    assert 'aria-pressed="false"' in other
    assert 'value="/binance/"' in other


def test_it_offers_anonymous_users_a_log_in_link_back_to_the_page(btc, rf):
    from django.contrib.auth.models import AnonymousUser
    from django.template.loader import render_to_string

    request = rf.get("/binance/btcusdt/")
    request.user = AnonymousUser()

    html = render_to_string("accounts/_watch_button.html", {"market": btc}, request)

    assert "Log in to watch" in html
    assert f"{reverse('accounts:login')}?next=/binance/btcusdt/" in html
    assert "<form" not in html


def test_it_sends_an_expired_session_to_log_in_from_htmx(btc, db):
    response = Client().post(
        reverse("accounts:watch_toggle", args=[btc.pk]),
        HTTP_HX_CURRENT_URL="http://testserver/binance/btcusdt/",
        **HTMX,
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{reverse('accounts:login')}?next=/binance/btcusdt/"


def test_it_sends_an_anonymous_post_to_log_in_and_back_to_the_page(btc, db):
    response = Client().post(
        reverse("accounts:watch_toggle", args=[btc.pk]), {"next": "/binance/btcusdt/"}
    )

    assert response.url == f"{reverse('accounts:login')}?next=/binance/btcusdt/"
    assert not WatchlistItem.objects.exists()


def test_it_refuses_a_get_on_the_toggle(alice, btc):
    response = client_for(alice).get(reverse("accounts:watch_toggle", args=[btc.pk]))

    assert response.status_code == 405


def test_it_answers_404_for_an_unknown_market(alice):
    assert toggle(client_for(alice), type("M", (), {"pk": 999_999})()).status_code == 404


# The watchlist page


def test_it_lists_price_clusters_and_data_age(alice, btc, eth, snapshot_factory):
    WatchlistItem.objects.create(user=alice, market=btc)
    WatchlistItem.objects.create(user=alice, market=eth)
    fresh = timezone.now() - timedelta(minutes=6)
    snapshot_factory(
        btc,
        last_close=97_412.5,
        clusters=[("long", 95_000.0, 95_500.0, 12e6), ("short", 99_000.0, 99_400.0, 30e6)],
        as_of=fresh,
    )

    response = client_for(alice).get(reverse("accounts:watchlist"))

    assert response.status_code == 200
    rows = response.context["rows"]
    assert [r.market.symbol for r in rows] == ["BTCUSDT", "ETHUSDT"]
    btc_row, eth_row = rows
    assert btc_row.last_close == 97_412.5
    assert btc_row.below["notional_usd"] == 12e6
    assert btc_row.below["distance_pct"] == pytest.approx(-1.963, abs=1e-3)
    assert btc_row.above["distance_pct"] == pytest.approx(1.629, abs=1e-3)
    assert btc_row.stale is False
    assert eth_row.snapshot is None
    body = response.content.decode()
    assert "97,412.5" in body
    assert "$12M" in body
    assert "-1.96%" in body
    assert "+1.63%" in body
    assert "no map yet" in body
    assert 'hx-trigger="every 15s' in body
    assert reverse("accounts:watchlist_rows") in body


def test_it_reads_the_watchlist_in_a_fixed_number_of_queries(
    alice, market_factory, snapshot_factory, django_assert_max_num_queries
):
    for symbol in ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]:
        market = market_factory(symbol)
        WatchlistItem.objects.create(user=alice, market=market)
        snapshot_factory(market, clusters=[("long", 90.0, 91.0, 1e6)])
    client = client_for(alice)

    with django_assert_max_num_queries(8):
        response = client.get(reverse("accounts:watchlist_rows"), **HTMX)

    assert response.content.decode().count('<tr id="watch-row-') == 5


def test_it_flags_stale_data(alice, btc, snapshot_factory):
    WatchlistItem.objects.create(user=alice, market=btc)
    snapshot_factory(btc, as_of=datetime(2020, 1, 1, tzinfo=UTC))

    [row] = watchlist_rows(user=alice)

    assert row.stale is True
    assert "stale" in client_for(alice).get(reverse("accounts:watchlist")).content.decode()


def test_it_refreshes_the_rows_as_a_fragment(alice, btc, snapshot_factory):
    WatchlistItem.objects.create(user=alice, market=btc)
    snapshot_factory(btc, last_close=123.25)

    response = client_for(alice).get(reverse("accounts:watchlist_rows"), **HTMX)

    body = response.content.decode()
    assert body.lstrip().startswith('<tbody id="watchlist-rows"')
    assert "123.25" in body
    assert "<html" not in body


def test_it_shows_an_empty_watchlist_helpfully(alice):
    body = client_for(alice).get(reverse("accounts:watchlist")).content.decode()

    assert "You are not watching any market yet" in body


def test_it_removes_a_row_in_place(alice, btc):
    item = WatchlistItem.objects.create(user=alice, market=btc)

    response = client_for(alice).post(reverse("accounts:watch_remove", args=[item.pk]), **HTMX)

    assert response.status_code == 200
    assert response.content == b""
    assert "watchlist-changed" in json.loads(response["HX-Trigger-After-Settle"])
    assert not WatchlistItem.objects.exists()


def test_it_removes_a_row_without_javascript(alice, btc):
    item = WatchlistItem.objects.create(user=alice, market=btc)

    response = client_for(alice).post(reverse("accounts:watch_remove", args=[item.pk]))

    assert response.url == reverse("accounts:watchlist")
    assert not WatchlistItem.objects.exists()


def test_it_removes_the_alerts_of_an_unwatched_market(alice, btc):
    item = WatchlistItem.objects.create(user=alice, market=btc)
    Alert.objects.create(watch=item, kind="liquidations", threshold_usd=1e6)

    toggle(client_for(alice), btc)

    assert not Alert.objects.exists()


# Isolation between users


def test_it_shows_each_user_only_their_own_watchlist(alice, bob, btc, eth):
    WatchlistItem.objects.create(user=alice, market=btc)
    WatchlistItem.objects.create(user=bob, market=eth)

    alice_rows = client_for(alice).get(reverse("accounts:watchlist")).context["rows"]
    bob_fragment = client_for(bob).get(reverse("accounts:watchlist_rows"), **HTMX)

    assert [r.market.symbol for r in alice_rows] == ["BTCUSDT"]
    assert "ETHUSDT" in bob_fragment.content.decode()
    assert "BTCUSDT" not in bob_fragment.content.decode()


def test_it_toggles_only_the_users_own_entry(alice, bob, btc):
    WatchlistItem.objects.create(user=alice, market=btc)

    toggle(client_for(bob), btc)

    assert alice.watchlist.filter(market=btc).exists()
    assert bob.watchlist.filter(market=btc).exists()
    toggle(client_for(bob), btc)
    assert alice.watchlist.filter(market=btc).exists()
    assert not bob.watchlist.exists()


def test_it_answers_404_when_removing_another_users_item(alice, bob, btc):
    item = WatchlistItem.objects.create(user=alice, market=btc)
    client = client_for(bob)

    for pk in [item.pk, item.pk + 1, item.pk - 1, 0]:
        response = client.post(reverse("accounts:watch_remove", args=[pk]), **HTMX)
        assert response.status_code == 404

    assert WatchlistItem.objects.filter(pk=item.pk).exists()


def test_it_answers_404_when_adding_alerts_to_another_users_item(alice, bob, btc):
    item = WatchlistItem.objects.create(user=alice, market=btc)
    url = reverse("accounts:alert_create", args=[item.pk])
    data = {"kind": "liquidations", "side": "any", "window": "7d", "threshold_usd": "1000"}

    assert client_for(bob).get(url).status_code == 404
    assert client_for(bob).post(url, data | {"cooldown_minutes": "60"}).status_code == 404
    assert not Alert.objects.exists()


def test_it_labels_demo_markets_on_the_watchlist(alice, btc, market_factory, snapshot_factory):
    demo = market_factory("SOLUSDT", is_demo=True)
    for market in (btc, demo):
        WatchlistItem.objects.create(user=alice, market=market)
        snapshot_factory(market, last_close=132.26, clusters=[("long", 128.0, 128.4, 5e7)])

    body = client_for(alice).get(reverse("accounts:watchlist")).content.decode()

    demo_row = body[body.index(f'id="watch-row-{demo.watchers.get().pk}"') :]
    assert "DEMO" in demo_row[: demo_row.index("</tr>")]
    btc_row = body[body.index(f'id="watch-row-{btc.watchers.get().pk}"') :]
    assert "DEMO" not in btc_row[: btc_row.index("</tr>")]
    assert "132.26" in body


def test_it_writes_prices_as_the_pages_do(alice, btc, snapshot_factory):
    WatchlistItem.objects.create(user=alice, market=btc)
    snapshot_factory(btc, last_close=3693.88, clusters=[("long", 3620.04, 3638.47, 5e7)])

    body = client_for(alice).get(reverse("accounts:watchlist")).content.decode()

    assert "3,693.88" in body
    assert "3,620.04 \u2013 3,638.47" in body


def test_it_never_flags_demo_data_as_stale(alice, btc, snapshot_factory):
    btc.is_demo = True
    btc.save(update_fields=["is_demo"])
    WatchlistItem.objects.create(user=alice, market=btc)
    snapshot_factory(btc, as_of=datetime(2020, 1, 1, tzinfo=UTC))

    [row] = watchlist_rows(user=alice)

    assert row.stale is False
