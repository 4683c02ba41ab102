"""The signals and backtest panels on the pair and coin pages, their fragments, the signal API
documents, the chart marks, and the tasks that keep them fresh."""

from __future__ import annotations

import gzip
import io
import json
from unittest import mock

import pytest
from django.core.management import call_command
from django.urls import reverse

from liqsite.celery import app
from maps.analytics.signals import DAY_MS
from maps.market_signals import services, tasks
from maps.models import MarketBacktest, MarketSignals, datetime_to_ms
from maps.signals import snapshots_computed
from tests.shock_market import Shock

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]
DAY = 288
SHOCKS = [
    Shock(step=3 * DAY + 40, side="long", depth=0.05, flush=0.12, steps=3),
    Shock(step=5 * DAY + 100, side="short", depth=0.04, flush=0.09, steps=2),
    Shock(step=7 * DAY + 60, side="long", depth=0.04, flush=0.08, steps=2),
]


@pytest.fixture
def market(shocked_market):
    market, _ = shocked_market(days=9, shocks=SHOCKS)
    return market


def args(market) -> list[str]:
    return [market.exchange.slug, market.slug]


# The pair page


def test_it_shows_the_signals_panel_with_the_latest_cascade_sweep_and_checklist(client, market):
    response = client.get(market.get_absolute_url(), {"window": "7d"})
    assert response.status_code == 200
    panel = response.context["signals"]
    assert panel.source == "real"
    assert panel.cascade["side"] == "long" and panel.counts["cascades"] >= 2
    assert panel.checklist is not None and len(panel.checklist["lines"]) == 6
    body = response.content.decode()
    assert "Signals" in body and "Last cascade" in body and "Reversal checklist" in body
    assert "no line here is advice to buy or sell" in body
    assert body.count("checklist__item") == 6
    assert reverse("api:cascades", args=args(market)) in body


def test_it_lists_the_cascades_of_the_pages_window_only(client, market):
    week = client.get(market.get_absolute_url(), {"window": "7d"}).context["signals"]
    stored = MarketSignals.objects.get(market=market)
    assert len(stored.cascades) >= week.counts["cascades"]
    start = week.as_of + market.step_ms - 7 * DAY_MS
    assert all(c["end"] >= start for c in week.cascades)


def test_it_loads_the_backtest_panel_on_demand_then_shows_it_in_plain_words(client, market):
    page = client.get(market.get_absolute_url())
    assert page.context["backtest"] is None
    body = page.content.decode()
    fragment_url = reverse("maps:pair_backtest", args=args(market))
    assert f'hx-get="{fragment_url}"' in body and 'hx-trigger="load"' in body
    fragment = client.get(fragment_url, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    text = fragment.content.decode()
    assert "price reached the larger cluster first in" in text
    assert "random level at the same distance" in text and "90% interval" in text
    assert "too few to say" in text  # nine days: too few cascades to judge
    assert MarketBacktest.objects.filter(market=market).exists()
    again = client.get(market.get_absolute_url()).context["backtest"]
    assert again is not None and len(again["lines"]) == 5


def test_it_marks_cascades_and_sweeps_on_the_heatmap(client, market):
    page = client.get(market.get_absolute_url())
    response = client.get(page.context["charts_url"], HTTP_ACCEPT_ENCODING="gzip")
    text = json.dumps(json.loads(gzip.decompress(response.content)))
    assert text.count('"layer:cascades"') >= 2  # the stretches and the extremes' markers
    assert '"layer:sweeps"' in text


def test_it_shows_the_signals_of_each_exchange_on_the_coin_page(client, shocked_market):
    btc, _ = shocked_market(days=9, shocks=SHOCKS)
    other, _ = shocked_market("BTCUSDT", "bybit", days=9, shocks=SHOCKS, seed=9)
    services.market_signals_refresh(market=btc)
    response = client.get(reverse("maps:coin", args=["btc"]))
    rows = {r["market"].pk: r for r in response.context["coin_signals"]}
    assert rows[btc.pk]["signals"] is not None and rows[btc.pk]["cascade"]["side"] == "long"
    assert rows[other.pk]["signals"] is None
    body = response.content.decode()
    assert "Signals by exchange" in body and "No signals yet" in body


# The API documents


def test_it_serves_the_cascades_with_the_documented_fields(client, market):
    body = client.get(reverse("api:cascades", args=args(market)), {"window": "7d"}).json()
    assert body["window"] == "7d" and body["source"] == "real"
    assert body["market"]["symbol"] == "BTCUSDT"
    cascade = body["cascades"][0]
    for key in (
        "start",
        "end",
        "side",
        "notional_usd",
        "source",
        "price_start",
        "price_extreme",
        "oi_change_pct",
        "cluster",
    ):
        assert key in cascade
    assert isinstance(cascade["start"], int) and cascade["start"] <= cascade["end"]
    assert cascade["notional_usd"] == round(cascade["notional_usd"], 2)
    assert cascade["reversal"]["reasons"][0]["key"] == "exhausted"


def test_it_serves_sweeps_and_the_signals_summary(client, market):
    sweeps = client.get(reverse("api:sweeps", args=args(market))).json()["sweeps"]
    if sweeps:
        assert {"time", "side", "cluster", "depth_pct", "fake", "return_1h_pct"} <= set(sweeps[0])
    summary = client.get(reverse("api:signals", args=args(market))).json()
    assert {"current_cascade", "last_cascade", "last_sweep", "reversal", "thresholds"} <= set(
        summary
    )
    assert summary["last_cascade"]["side"] == "long"


def test_it_serves_cascades_and_sweeps_as_csv(client, market):
    url = reverse("api:cascades", args=args(market))
    response = client.get(url, {"format": "csv"})
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("start,end,side,notional_usd,source,price_start")
    assert len(lines) >= 2
    assert 'filename="binance-btcusdt-7d-cascades.csv"' in response["Content-Disposition"]
    sweeps = client.get(reverse("api:sweeps", args=args(market)), {"format": "csv"})
    assert sweeps.content.decode().startswith("time,side,cluster_price_low")


@pytest.mark.parametrize(
    ("kind", "query", "words"),
    [
        ("cascades", {"window": "2d"}, "window='2d' is not allowed"),
        ("sweeps", {"format": "xml"}, "format='xml' is not allowed"),
        ("signals", {"format": "csv"}, "JSON only"),
        ("cascades", {"at": "soon"}, "is not a time"),
    ],
)
def test_it_rejects_bad_options_with_a_clear_400(client, market, kind, query, words):
    response = client.get(reverse(f"api:{kind}", args=args(market)), query)
    assert response.status_code == 400 and words in response.json()["error"]


def test_it_gives_404_for_an_unknown_market_or_one_without_data(client, market, market_factory):
    assert client.get(reverse("api:cascades", args=["binance", "dogeusdt"])).status_code == 404
    assert client.get(reverse("api:backtest", args=["binance", "dogeusdt"])).status_code == 404
    empty = market_factory("XRPUSDT")
    response = client.get(reverse("api:cascades", args=args(empty)))
    assert response.status_code == 404 and "no data yet" in response.json()["error"]


def test_it_lists_a_windows_cascades_even_before_that_windows_map_is_computed(client, market):
    assert not market.snapshots.filter(window="30d").exists()
    body = client.get(reverse("api:cascades", args=args(market)), {"window": "30d"}).json()
    week = client.get(reverse("api:cascades", args=args(market)), {"window": "7d"}).json()
    assert body["window"] == "30d" and len(body["cascades"]) >= len(week["cascades"]) >= 2


# Tasks and triggers


def test_it_refreshes_the_signals_after_the_snapshots_are_recomputed(market):
    now = mock.patch("maps.market_signals.receivers.transaction.on_commit", lambda f: f())
    with mock.patch.object(tasks.market_signals_refresh, "apply_async") as queue, now:
        snapshots_computed.send(sender=object, market_id=market.pk, windows=["7d"])
        services.market_signals_refresh(market=market)
        snapshots_computed.send(sender=object, market_id=market.pk, windows=["7d"])
    # in full while none are stored, extended after: queued at once either way, on the queue the
    # compute workers take from only once every market's maps are fresh
    assert queue.call_args_list == [mock.call((market.pk,), {})] * 2
    assert app.amqp.router.route({}, tasks.market_signals_refresh.name)["queue"].name == "followup"


def test_it_stores_signals_and_backtests_through_the_tasks(market):
    assert tasks.market_signals_refresh(market.pk) >= 2
    assert MarketSignals.objects.get(market=market).version == services.VERSION
    backtest_id = tasks.market_backtest_refresh(market.pk)
    assert MarketBacktest.objects.get(pk=backtest_id).market == market
    assert tasks.market_signals_refresh(10**9) == 0


def test_it_extends_the_stored_signals_to_the_same_result_as_a_full_computation(market):
    from maps.models import Bar

    later = list(Bar.objects.filter(market=market).order_by("-time")[:40])
    Bar.objects.filter(pk__in=[b.pk for b in later]).delete()
    first = services.market_signals_refresh(market=market)
    for bar in later:
        bar.pk = None
    Bar.objects.bulk_create(later)
    with mock.patch.object(services, "market_study", wraps=services.market_study) as study:
        extended = services.market_signals_refresh(market=market)
    assert extended.as_of > first.as_of
    moment = study.call_args.kwargs["start_ms"]
    assert moment >= datetime_to_ms(first.as_of) - DAY_MS  # only the last day was redone
    full = services.market_signals_refresh(market=market, full=True)
    assert extended.cascades == full.cascades and extended.sweeps == full.sweeps
    assert extended.reversal == full.reversal


def test_it_queues_a_backtest_for_every_tracked_market_each_day(market, market_factory):
    market_factory("ETHUSDT")  # no bars: nothing to backtest
    with mock.patch.object(tasks.market_backtest_refresh, "delay") as delay:
        assert tasks.markets_backtest_tracked() == 1
    delay.assert_called_once_with(market.pk)


def test_it_forgets_the_signals_with_the_markets_rows(market):
    from maps.services import market_rows_delete

    services.signals_summary(market)
    market_rows_delete(market=market)
    assert not MarketSignals.objects.exists() and not MarketBacktest.objects.exists()


def test_it_computes_signals_and_backtests_when_seeding_the_demo(db):
    call_command("seed_demo", days=3, end="2026-11-26T12:00:00Z", stdout=io.StringIO())
    assert MarketBacktest.objects.count() == MarketSignals.objects.count() == 11


def test_it_keeps_the_page_and_the_api_up_when_the_signals_cannot_be_computed(client, market):
    from maps.engine.types import EngineError

    broken = EngineError("the price grid would need 25000 bins (more than 20000); raise bin_bps")
    with (
        mock.patch.object(services, "market_signals_refresh", side_effect=broken),
        mock.patch.object(services, "backtest_compute", side_effect=broken),
    ):
        page = client.get(market.get_absolute_url())
        assert page.status_code == 200 and page.context["signals"] is None
        assert "No signals yet" in page.content.decode()
        response = client.get(reverse("api:backtest", args=args(market)))
        assert response.status_code == 404 and "raise bin_bps" in response.json()["error"]
        cascades = client.get(reverse("api:cascades", args=args(market)))
        assert cascades.status_code == 404
        fragment = client.get(reverse("maps:pair_backtest", args=args(market)))
        assert fragment.status_code == 200 and fragment.context["backtest_missing"]
