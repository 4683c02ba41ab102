"""Markets stored under the v2.0 alignment, re-aligned from their rows (MODEL.md v2.1): nothing
lost, each bar given the open interest of the row whose snapshot closes it, maps recomputed."""

from __future__ import annotations

import importlib
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.core.management import call_command

from maps import tasks
from maps.metrics_rows import market_open_interest_realign
from maps.models import Bar, MetricsRow

START = datetime(2025, 5, 30, 10, 30, tzinfo=UTC)
STEP = timedelta(minutes=5)
MIGRATION = importlib.import_module("maps.migrations.0005_metrics_rows_from_v20_bars")


@pytest.fixture
def v20_market(market_factory, bar_factory):
    """A real Binance market whose 12 bars were stored by the v2.0 rule: bar k holds the open
    interest 1000 + k of the row stamped at its end, which Binance took 5 minutes later."""
    market = market_factory("HYPEUSDT", exchange="binance")
    market.exchange.ccxt_id = "binanceusdm"
    market.exchange.save()
    for k in range(12):
        bar_factory(market, START + k * STEP, open_interest=1000.0 + k, long_short_ratio=1 + k / 10)
    MIGRATION.rebuild_rows(apps, None)
    market.refresh_from_db()
    return market


@pytest.mark.django_db
def test_the_migration_keeps_every_stored_value_as_a_raw_row(v20_market, market_factory):
    demo = market_factory("BTCUSDT", exchange="binance", is_demo=True)
    MIGRATION.rebuild_rows(apps, None)

    rows = list(v20_market.metrics_rows.order_by("stamped_at"))
    assert v20_market.oi_realign_pending is True
    assert [r.stamped_at for r in rows] == [START + (k + 1) * STEP for k in range(12)]
    assert [r.open_interest for r in rows] == [1000.0 + k for k in range(12)]
    assert {r.source for r in rows} == {"bars-v2.0"}
    assert not MetricsRow.objects.filter(market=demo).exists()
    demo.refresh_from_db()
    assert demo.oi_realign_pending is False


@pytest.mark.django_db
def test_it_gives_each_bar_the_row_whose_snapshot_closes_it_and_loses_nothing(v20_market):
    report = market_open_interest_realign(market=v20_market)

    bars = list(Bar.objects.filter(market=v20_market).order_by("time"))
    assert len(bars) == 12 and report.bars == 12 and report.rows == 12
    # the row stamped t (taken at t + 5 min) closes the step opening at t: bar k takes row k,
    # which the v2.0 rule had given to bar k - 1; the first bar has no row and keeps its prices
    assert bars[0].open_interest is None and bars[0].close == 100.5
    assert [b.open_interest for b in bars[1:]] == [1000.0 + k for k in range(11)]
    assert report.without_oi == 1 and report.changed == 12
    assert report.rows_without_bar == 1  # the last value waits for its step's klines
    v20_market.refresh_from_db()
    assert v20_market.oi_realign_pending is False
    assert MetricsRow.objects.filter(market=v20_market).count() == 12
    assert market_open_interest_realign(market=v20_market).changed == 0  # idempotent


@pytest.mark.django_db
def test_the_command_realigns_pending_markets_and_recomputes_their_maps(v20_market):
    out = io.StringIO()

    call_command("realign_open_interest", stdout=out)

    text = out.getvalue()
    assert "12 bars from 12 stored rows: 12 changed, 1 left without open interest" in text
    assert "maps recomputed: 12h, 24h, 3d, 7d, 30d, 90d" in text
    snapshot = v20_market.snapshots.get(window="7d")
    assert snapshot.as_of == START + 11 * STEP
    assert snapshot.report["steps"] == 11  # the bar without open interest is left out
    out = io.StringIO()
    call_command("realign_open_interest", stdout=out)
    assert out.getvalue() == "no market awaits re-alignment\n"


@pytest.mark.django_db
def test_the_minute_refresh_realigns_a_pending_market_first(v20_market):
    assert tasks.market_snapshots_refresh(v20_market.pk, only_if_stale=True) == 6

    v20_market.refresh_from_db()
    assert v20_market.oi_realign_pending is False
    assert Bar.objects.get(market=v20_market, time=START + STEP).open_interest == 1000.0


@pytest.mark.django_db
def test_a_stamping_given_to_the_command_reads_the_rows_again(v20_market):
    call_command("realign_open_interest", stamping="end", no_compute=True, stdout=io.StringIO())

    v20_market.refresh_from_db()
    bars = list(Bar.objects.filter(market=v20_market).order_by("time"))
    assert v20_market.metrics_stamp == "end"
    assert [b.open_interest for b in bars] == [1000.0 + k for k in range(12)]  # v2.0 again
