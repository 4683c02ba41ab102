"""The admin: staff manage exchanges and markets and inspect the rest; everyone else is refused."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from maps import tasks
from maps.models import (
    Bar,
    Calibration,
    Exchange,
    LiquidationEvent,
    MapSnapshot,
    Market,
    MetricsRow,
)

MODELS = [Exchange, Market, Bar, MetricsRow, LiquidationEvent, MapSnapshot, Calibration]
pytestmark = pytest.mark.django_db


def changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def add_event(
    market, hours_ago: float, side: str = "long", price: float = 99.5
) -> LiquidationEvent:
    return LiquidationEvent.objects.create(
        market=market,
        time=timezone.now() - timedelta(hours=hours_ago),
        side=side,
        price=price,
        quantity=2,
        notional_usd=price * 2,
        source="binance-vision",
    )


def market_form(market: Market, **changes) -> dict:
    """The market's change form as a browser posts it (is_demo left unticked)."""
    form = {
        "exchange": market.exchange_id,
        "symbol": market.symbol,
        "slug": market.slug,
        "base": market.base,
        "quote": market.quote,
        "ccxt_symbol": "",
        "tracked": "on",
        "step_ms": 300_000,
        "contract_size": 1,
        "tiers": json.dumps(market.tiers),
        "mmr": 0.004,
        "long_share": "taker",
        "holding_hours": 24,
        "bin_bps": 10,
        "metrics_stamp": "auto",
    }
    return form | changes


@pytest.fixture
def markets(market_factory, snapshot_factory, bar_factory):
    btc = market_factory("BTCUSDT", is_demo=True, last_bar_at=timezone.now())
    eth = market_factory("ETHUSDT", exchange="okx", long_share="ratio")
    bar_factory(btc, (timezone.now() - timedelta(minutes=10)).replace(second=0, microsecond=0))
    add_event(btc, hours_ago=1)
    add_event(btc, hours_ago=2, side="short", price=100.8)
    add_event(btc, hours_ago=30)
    snapshot_factory(btc, window="7d")
    snapshot_factory(btc, window="24h")
    Calibration.objects.create(
        market=btc,
        period_start=timezone.now() - timedelta(days=30),
        period_end=timezone.now(),
        engine_version="test",
        prior=btc.tiers,
        weights=[0.2, 0.2, 0.2, 0.2, 0.2],
        scale=0.4,
        corr_long=0.6,
        corr_short=0.5,
        hit_rate=0.7,
        coverage=0.3,
        events_used=3,
    )
    return btc, eth


def test_it_shows_every_changelist_to_staff(staff_client, markets) -> None:
    for model in MODELS:
        response = staff_client.get(changelist(model))
        assert response.status_code == 200, model


def test_it_shows_every_change_page_to_staff(staff_client, markets) -> None:
    btc, _ = markets
    objects = [
        btc.exchange,
        btc,
        btc.bars.get(),
        btc.events.first(),
        btc.snapshots.first(),
        btc.calibrations.get(),
    ]
    for obj in objects:
        response = staff_client.get(change(obj))
        assert response.status_code == 200, obj


def test_it_lists_markets_with_their_counts_and_a_demo_marker(staff_client, markets) -> None:
    response = staff_client.get(changelist(Market))

    rows = {m.symbol: m for m in response.context["cl"].result_list}
    assert rows["BTCUSDT"].events_24h == 2
    assert rows["BTCUSDT"].snapshot_count == 2
    assert rows["ETHUSDT"].events_24h == 0
    assert rows["ETHUSDT"].snapshot_count == 0
    assert response.content.decode().count(">DEMO</span>") == 1


def test_it_lists_markets_in_a_constant_number_of_queries(
    staff_client, markets, market_factory, django_assert_max_num_queries
) -> None:
    staff_client.get(changelist(Market))
    for symbol in ("SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"):
        market_factory(symbol, exchange="bybit")

    with django_assert_max_num_queries(12):
        response = staff_client.get(changelist(Market))
    assert len(response.context["cl"].result_list) == 6


def test_it_filters_and_searches_markets(staff_client, markets) -> None:
    def symbols(query: str) -> set[str]:
        response = staff_client.get(changelist(Market) + query)
        return {m.symbol for m in response.context["cl"].result_list}

    assert symbols("?demo=yes") == {"BTCUSDT"}
    assert symbols("?demo=no") == {"ETHUSDT"}
    assert symbols("?long_share__exact=ratio") == {"ETHUSDT"}
    assert symbols("?q=okx") == {"ETHUSDT"}
    assert symbols("?q=btc") == {"BTCUSDT"}
    assert symbols("?tracked__exact=1") == {"BTCUSDT", "ETHUSDT"}


def test_it_filters_exchanges_by_demo_data(staff_client, markets) -> None:
    response = staff_client.get(changelist(Exchange) + "?demo=yes")

    assert [e.slug for e in response.context["cl"].result_list] == []
    Exchange.objects.filter(slug="binance").update(is_demo=True)
    response = staff_client.get(changelist(Exchange) + "?demo=yes")
    assert [e.slug for e in response.context["cl"].result_list] == ["binance"]
    assert ">DEMO</span>" in response.content.decode()


def run_action(client, action: str, markets) -> object:
    data = {"action": action, "_selected_action": [m.pk for m in markets]}
    return client.post(changelist(Market), data, follow=True)


def test_it_tracks_and_untracks_markets(staff_client, markets) -> None:
    response = run_action(staff_client, "untrack", markets)
    assert not Market.objects.filter(tracked=True).exists()
    assert "2 market(s) no longer tracked." in response.content.decode()

    run_action(staff_client, "track", markets[:1])
    assert list(Market.objects.filter(tracked=True)) == [markets[0]]


def test_it_queues_a_recompute_after_the_commit(
    staff_client, markets, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    queued = []
    monkeypatch.setattr(tasks.market_snapshots_refresh, "delay", queued.append)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = run_action(staff_client, "recompute_now", markets)
    assert queued == []
    for callback in callbacks:
        callback()

    assert sorted(queued) == sorted(m.pk for m in markets)
    assert "Recompute queued for 2 market(s)." in response.content.decode()


def test_it_queues_a_backfill_of_real_markets_only(
    staff_client, markets, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    _, eth = markets
    queued = []
    monkeypatch.setattr(tasks.market_backfill, "delay", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(staff_client, "backfill_now", markets)

    assert queued == [eth.pk]
    page = response.content.decode()
    assert "1 demo market(s) left out" in page
    assert "Backfill queued for 1 market(s)." in page


def test_it_makes_a_demo_exchange_real_when_a_real_market_is_added(staff_client, markets) -> None:
    btc, _ = markets
    btc.exchange.is_demo = True
    btc.exchange.save()
    form = market_form(btc, symbol="SOLUSDT", slug="solusdt", base="SOL", tiers="[[10, 1.0]]")

    response = staff_client.post(reverse("admin:maps_market_add"), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    btc.exchange.refresh_from_db()
    assert btc.exchange.is_demo is False


def test_it_deletes_the_simulated_rows_of_a_demo_market_made_real(staff_client, markets) -> None:
    btc, _ = markets
    Exchange.objects.filter(pk=btc.exchange_id).update(is_demo=True)
    form = market_form(btc, ccxt_symbol="BTC/USDT:USDT")

    response = staff_client.post(change(btc), {**form, "is_demo": "on"})
    assert response.status_code == 302
    assert btc.bars.count() == 1

    response = staff_client.post(change(btc), form, follow=True)

    assert "its simulated data was deleted" in response.content.decode()
    btc.refresh_from_db()
    assert not btc.is_demo and btc.last_bar_at is None
    assert (btc.bars.count(), btc.events.count(), btc.snapshots.count()) == (0, 0, 0)
    assert not btc.calibrations.exists()
    assert Exchange.objects.get(pk=btc.exchange_id).is_demo is False


def test_it_shows_the_model_parameters_and_their_validation(staff_client, markets) -> None:
    btc, _ = markets
    page = staff_client.get(change(btc)).content.decode()
    assert "Model parameters" in page

    form = market_form(btc, tiers="[[10, 0.5], [25, 0.4]]")
    response = staff_client.post(change(btc), form)
    assert response.status_code == 200
    assert "tier weights must sum to 1, not 0.9" in response.content.decode()
    btc.refresh_from_db()
    assert btc.tiers != [[10, 0.5], [25, 0.4]]

    form["tiers"] = "[[10, 0.5], [300, 0.5]]"
    response = staff_client.post(change(btc), form)
    assert "leverage 300 x mmr 0.004 must stay below 1" in response.content.decode()

    form["tiers"] = "[[10, 0.6], [25, 0.4]]"
    response = staff_client.post(change(btc), form)
    assert response.status_code == 302
    btc.refresh_from_db()
    assert btc.tiers == [[10, 0.6], [25, 0.4]]


@pytest.mark.parametrize(
    ("slug", "message"),
    [("admin", "is the name of a section of the site"), ("Kraken", "Use lowercase: 'kraken'")],
)
def test_it_refuses_an_exchange_url_name_the_site_cannot_serve(staff_client, slug, message) -> None:
    add = reverse("admin:maps_exchange_add")
    response = staff_client.post(add, {"slug": slug, "name": "Kraken", "ccxt_id": "kraken"})

    assert response.status_code == 200
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not Exchange.objects.filter(name="Kraken").exists()


@pytest.mark.parametrize("model", [Bar, LiquidationEvent, MapSnapshot, Calibration])
def test_it_keeps_stored_data_read_only(staff_client, markets, model) -> None:
    obj = model.objects.first()
    meta = model._meta
    add = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
    delete = reverse(f"admin:{meta.app_label}_{meta.model_name}_delete", args=[obj.pk])

    assert staff_client.get(add).status_code == 403
    assert staff_client.get(delete).status_code == 403
    page = staff_client.get(change(obj)).content.decode()
    assert 'name="_save"' not in page


def test_it_browses_bars_and_events_by_date(staff_client, markets) -> None:
    for model in (Bar, LiquidationEvent):
        response = staff_client.get(changelist(model))
        assert response.context["cl"].date_hierarchy == "time"
        assert not response.context["cl"].show_full_result_count
    year = timezone.now().year
    response = staff_client.get(changelist(LiquidationEvent) + f"?time__year={year}")
    assert response.status_code == 200


def test_it_shows_a_snapshot_age(staff_client, markets) -> None:
    snapshot = markets[0].snapshots.get(window="7d")
    MapSnapshot.objects.filter(pk=snapshot.pk).update(as_of=timezone.now() - timedelta(hours=3))

    page = staff_client.get(changelist(MapSnapshot)).content.decode()

    assert "3\xa0hours ago" in page


def test_it_shows_users_to_a_superuser(admin_client, user_factory) -> None:
    user_factory("bob")

    response = admin_client.get(reverse("admin:accounts_user_changelist"))

    assert response.status_code == 200
    assert "bob@example.com" in response.content.decode()


@pytest.mark.parametrize("model", MODELS)
def test_it_sends_anonymous_visitors_to_the_login(client, markets, model) -> None:
    url = changelist(model)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_it_refuses_users_who_are_not_staff(client, user_factory, markets) -> None:
    client.force_login(user_factory("mallory"))

    for url in [changelist(Market), change(markets[0]), reverse("admin:index")]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    run_action(client, "untrack", markets)
    assert Market.objects.filter(tracked=True).count() == 2


def test_it_shows_the_stamping_check_and_flags_a_contradiction(staff_client, markets) -> None:
    _, eth = markets
    eth.metrics_check = {
        "checked_at": "2026-12-03T08:00:00+00:00",
        "stamping": "auto",
        "contradicted": 1,
        "files": [
            {
                "source": "ETHUSDT-metrics-2025-05-30.csv",
                "contradicts": True,
                "message": "ETHUSDT-metrics-2025-05-30.csv: the data contradict the stamping "
                "applied (start): 96 % of 161 checked rows sit closer to the other reading",
            }
        ],
    }
    eth.save()

    listing = staff_client.get(changelist(Market)).content.decode()
    page = staff_client.get(change(eth)).content.decode()

    assert "contradicted" in listing
    assert "Checked 2026-12-03T08:00:00+00:00 under stamping <code>auto</code>: 1 of 1" in page
    assert "96 % of 161 checked rows sit closer to the other reading" in page


def test_it_realigns_open_interest_from_the_admin_and_queues_a_recompute(
    staff_client, markets, bar_factory, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    _, eth = markets
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    start -= timedelta(minutes=start.minute % 5)
    for k in range(3):
        bar_factory(eth, start + k * timedelta(minutes=5), open_interest=10.0 + k)
        MetricsRow.objects.create(
            market=eth,
            stamped_at=start + k * timedelta(minutes=5),
            snapshot_at=start + (k + 1) * timedelta(minutes=5),
            source="rest",
            open_interest=20.0 + k,
        )
    eth.metrics_stamp = "start"
    eth.save()
    queued = []
    monkeypatch.setattr(tasks.market_snapshots_refresh, "delay", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(staff_client, "realign_now", [eth])

    assert "3 bars from 3 stored rows: 3 changed" in response.content.decode()
    assert list(eth.bars.order_by("time").values_list("open_interest", flat=True)) == [
        20.0,
        21.0,
        22.0,
    ]
    assert queued == [eth.pk]
