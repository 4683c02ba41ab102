"""Tasks called in-process (Celery eager): the minute chain, locks, retries, errors, calibration."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import ccxt
import psycopg
import pytest
from celery.exceptions import MaxRetriesExceededError
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from liqsite.celery import app
from maps import connectors
from maps.levels.tasks import market_levels_compute
from maps.market_signals.tasks import market_signals_refresh
from maps.models import Calibration, Exchange, LiquidationEvent, MapSnapshot, Market
from maps.signals import snapshots_computed
from maps.tasks import (
    BACKOFF_CAP_SECONDS,
    backoff,
    cooldown_key,
    market_backfill,
    market_calibrate_task,
    market_error_record,
    market_ingest,
    market_lock_key,
    market_snapshots_refresh,
    markets_calibrate_tracked,
    markets_ingest_tracked,
)
from maps.whales.tasks import market_positioning_refresh

WINDOWS = ["12h", "24h", "3d", "7d", "30d", "90d"]
START = 1736877600000  # 2025-01-14T18:00:00Z
END = 1736920800000  # 2025-01-15T06:00:00Z


def dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@pytest.fixture(autouse=True)
def eager(settings, replay_connector):
    """Tasks run in-process (a retry runs at once, .get() raises a failure), exchanges answer
    from the recordings, and a backfill reaches one day back."""
    settings.LIQSITE_BACKFILL_DAYS = 1
    settings.LIQSITE_WINDOWS = WINDOWS
    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, False
    cache.clear()
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved
    cache.clear()


@pytest.fixture
def live(db):
    def make(ccxt_id: str = "binanceusdm", slug: str = "binance", **extra) -> Market:
        exchange, _ = Exchange.objects.get_or_create(
            slug=slug, defaults={"name": slug.title(), "ccxt_id": ccxt_id}
        )
        symbol = extra.pop("symbol", "BTCUSDT")
        return Market.objects.create(
            exchange=exchange, symbol=symbol, slug=symbol.lower(), base="BTC", quote="USDT", **extra
        )

    return make


def add_real_events(market: Market) -> None:
    """Streamed long liquidations at the low of every seventh bar from the tenth on."""
    for bar in list(market.bars.order_by("time"))[10::7]:
        LiquidationEvent.objects.create(
            market=market,
            time=bar.time + timedelta(seconds=90),
            side="long",
            price=bar.low,
            quantity=2.0,
            notional_usd=2.0 * bar.low,
            source="stream",
        )


def serve(replay_connector, ccxt_id: str, *routes: dict) -> None:
    """Make this process's connector for ccxt_id answer `routes` before the recordings."""
    connectors._cache[ccxt_id] = replay_connector(ccxt_id, *routes)


def test_it_ingests_then_computes_every_window_for_tracked_live_markets_only(
    live, market_factory, django_capture_on_commit_callbacks
):
    market = live()
    live(symbol="ETHUSDT", tracked=False)
    market_factory("BTCUSDT", "demo", is_demo=True)
    sent = []
    snapshots_computed.connect(lambda **kw: sent.append(kw), weak=False, dispatch_uid="t1")

    with django_capture_on_commit_callbacks(execute=True):
        count = markets_ingest_tracked.delay().get()

    snapshots_computed.disconnect(dispatch_uid="t1")
    assert count == 1
    assert market.bars.count() == 144
    snapshots = MapSnapshot.objects.filter(market=market)
    assert sorted(s.window for s in snapshots) == sorted(WINDOWS)
    assert {s.as_of for s in snapshots} == {dt(END - 300_000)}
    assert sent == [
        {"signal": snapshots_computed, "sender": Market, "market_id": market.pk, "windows": WINDOWS}
    ]


def test_it_computes_only_what_is_stale_unless_forced(live):
    market = live()
    market_ingest.delay(market.pk).get()

    first = market_snapshots_refresh.delay(market.pk, only_if_stale=True).get()
    second = market_snapshots_refresh.delay(market.pk, only_if_stale=True).get()
    forced = market_snapshots_refresh.delay(market.pk).get()

    assert (first, second, forced) == (len(WINDOWS), 0, len(WINDOWS))


def test_it_recomputes_after_a_new_bar(live):
    market = live()
    market_ingest.delay(market.pk).get()
    market_snapshots_refresh.delay(market.pk).get()
    market.bars.order_by("-time").first().delete()
    market_snapshots_refresh.delay(market.pk).get()
    market_ingest.delay(market.pk).get()

    again = market_snapshots_refresh.delay(market.pk, only_if_stale=True).get()

    assert again == len(WINDOWS)
    assert MapSnapshot.objects.get(market=market, window="12h").as_of == dt(END - 300_000)


@pytest.mark.postgres
def test_it_skips_a_market_another_session_holds(live):
    market = live()
    market_ingest.delay(market.pk).get()
    params = connection.get_connection_params()
    other = psycopg.connect(
        **{k: params[k] for k in ("dbname", "user", "host", "port", "password") if k in params}
    )
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [market_lock_key("compute", market.pk)])
        skipped = market_snapshots_refresh.delay(market.pk).get()
    finally:
        other.close()
    computed = market_snapshots_refresh.delay(market.pk).get()

    assert skipped == 0
    assert computed == len(WINDOWS)


def test_it_records_an_ingest_error_and_clears_it_on_the_next_success(live, replay_connector):
    market = live()
    serve(
        replay_connector,
        "binanceusdm",
        {"path": "/fapi/v1/klines", "status": 400, "file": "error_invalid_symbol.json", "times": 1},
    )

    with pytest.raises(ccxt.BadSymbol):
        market_ingest.delay(market.pk).get()
    market.refresh_from_db()
    failed = (market.last_error, market.last_error_at)
    written = market_ingest.delay(market.pk).get()
    market.refresh_from_db()

    assert failed[0].startswith("ingest: BadSymbol: binanceusdm")
    assert failed[1] is not None
    assert written == 144
    assert (market.last_error, market.last_error_at) == ("", None)


class Clock:
    """A clock that reads one second later each time it is read."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        self.now += 1
        return self.now


def test_it_retries_a_rate_limit_after_the_wait_asked_for(live, replay_connector, monkeypatch):
    market = live()
    monkeypatch.setattr("maps.tasks.time", Clock())
    serve(
        replay_connector,
        "binanceusdm",
        {
            "path": "/fapi/v1/klines",
            "status": 429,
            "headers": {"Retry-After": "0.01"},
            "file": "error_too_many_requests.json",
            "times": 1,
        },
    )

    written = market_ingest.delay(market.pk).get()

    requests = [path for path, _ in connectors._cache["binanceusdm"].exchange.session.requests]
    assert written == 144
    assert requests.count("/fapi/v1/klines") >= 2
    market.refresh_from_db()
    assert market.last_error == ""


def test_it_holds_back_every_market_of_a_rate_limited_exchange(live, replay_connector):
    market = live()
    serve(replay_connector, "binanceusdm")
    cache.set(cooldown_key("binanceusdm"), time.time() + 60, 60)

    skipped = market_ingest.delay(market.pk).get()
    with pytest.raises(MaxRetriesExceededError):
        market_backfill.delay(market.pk).get()

    assert skipped == 0
    assert connectors._cache["binanceusdm"].exchange.session.requests == []
    assert market.bars.count() == 0


def test_it_gives_up_after_bounded_retries_and_keeps_the_error(live, replay_connector):
    market = live()
    serve(
        replay_connector,
        "binanceusdm",
        {"path": "/fapi/v1/klines", "status": 503, "file": "empty.json"},
    )

    with pytest.raises(ccxt.NetworkError):
        market_ingest.delay(market.pk).get()

    requests = [path for path, _ in connectors._cache["binanceusdm"].exchange.session.requests]
    market.refresh_from_db()
    assert requests.count("/fapi/v1/klines") == 1 + market_ingest.max_retries
    assert market.last_error.startswith("ingest: ExchangeNotAvailable")


def test_it_keeps_an_ingest_error_when_compute_succeeds(live):
    market = live()
    market_ingest.delay(market.pk).get()
    market_error_record(market.pk, "ingest", RuntimeError("exchange down"))

    market_snapshots_refresh.delay(market.pk).get()

    market.refresh_from_db()
    assert market.last_error == "ingest: RuntimeError: exchange down"


def test_it_backfills_then_recomputes(live, django_capture_on_commit_callbacks):
    market = live("bybit", "bybit")

    with django_capture_on_commit_callbacks(execute=True):
        written = market_backfill.delay(market.pk).get()

    assert written == 144
    assert MapSnapshot.objects.filter(market=market).count() == len(WINDOWS)


def test_it_refreshes_snapshots_after_refilling_an_old_gap(
    live, django_capture_on_commit_callbacks
):
    market = live()
    market_ingest.delay(market.pk).get()
    market_snapshots_refresh.delay(market.pk).get()
    market.bars.filter(time__gte=dt(START + 6_000_000), time__lt=dt(START + 7_500_000)).delete()
    market_snapshots_refresh.delay(market.pk).get()
    before = MapSnapshot.objects.get(market=market, window="24h").computed_at

    with django_capture_on_commit_callbacks(execute=True):
        written = market_ingest.delay(market.pk).get()

    assert written == 5
    assert MapSnapshot.objects.get(market=market, window="24h").computed_at > before


def test_it_calibrates_markets_with_real_events_every_day(live):
    market = live()
    demo = live("bybit", "bybit")
    market_ingest.delay(market.pk).get()
    market_ingest.delay(demo.pk).get()
    add_real_events(market)
    bar = demo.bars.order_by("time").last()
    LiquidationEvent.objects.create(
        market=demo,
        time=bar.time,
        side="short",
        price=bar.high,
        quantity=1.0,
        notional_usd=bar.high,
        source="demo",
    )

    assert markets_calibrate_tracked.delay().get() == 1
    calibration = Calibration.objects.get(market=market)
    assert calibration.events_used > 0
    assert len(calibration.weights) == len(market.tiers)
    assert not Calibration.objects.filter(market=demo).exists()


def test_it_never_ingests_a_demo_market_even_when_asked(live):
    market = live(is_demo=True)

    result = market_backfill.delay(market.pk)

    assert result.failed()
    market.refresh_from_db()
    assert market.last_error.startswith("ingest: ConnectorError: ")
    assert "holds demo data" in market.last_error
    assert market.bars.count() == 0


def test_it_ingests_a_real_market_added_to_a_demo_exchange(live):
    market = live()
    Exchange.objects.filter(pk=market.exchange_id).update(is_demo=True)

    assert markets_ingest_tracked.delay().get() == 1
    assert market.bars.count() == 144


def test_a_calibration_grades_the_market_again_with_the_skill_it_measured(live):
    market = live()
    market_ingest.delay(market.pk).get()
    market_snapshots_refresh.delay(market.pk).get()
    market.refresh_from_db()
    before = {r["criterion"]: r for r in market.grade_reasons}
    add_real_events(market)

    calibration = Calibration.objects.get(pk=market_calibrate_task.delay(market.pk).get())

    market.refresh_from_db()
    skill = {r["criterion"]: r for r in market.grade_reasons}["skill"]
    assert before["skill"]["text"] == "Not scored: no real liquidations recorded for a calibration"
    assert skill["text"] == (
        f"Not scored: {calibration.events_used} real liquidations, fewer than 30"
    )  # the recorded half day holds too few to grade, but the grade reads this calibration
    assert market.graded_at == calibration.computed_at


def test_it_keeps_one_calibration_per_period_when_a_task_runs_again(live):
    market = live()
    market_ingest.delay(market.pk).get()
    add_real_events(market)

    first = market_calibrate_task.delay(market.pk).get()
    again = market_calibrate_task.delay(market.pk).get()

    assert first == again
    assert Calibration.objects.filter(market=market).count() == 1


def test_it_backs_off_exponentially_with_jitter_and_a_cap():
    assert 5 <= backoff(0) <= 10
    assert 20 <= backoff(2) <= 40
    assert BACKOFF_CAP_SECONDS / 2 <= backoff(30) <= BACKOFF_CAP_SECONDS


def test_it_routes_ingestion_computation_and_what_follows_it_to_their_queues():
    router = app.amqp.router

    def queue(name: str) -> str:
        return router.route({}, name)["queue"].name

    assert queue("maps.tasks.market_ingest") == "ingest"
    assert queue("maps.tasks.market_backfill") == "ingest"
    assert queue("maps.tasks.markets_ingest_tracked") == "ingest"
    assert queue("maps.tasks.market_snapshots_refresh") == "compute"
    assert queue("accounts.tasks.market_alerts_check") == "compute"
    followup = [
        "maps.tasks.market_calibrate_task",
        "maps.levels.tasks.market_levels_compute",
        "maps.market_signals.tasks.market_signals_refresh",
        "maps.market_signals.tasks.market_backtest_refresh",
        "maps.whales.tasks.market_positioning_refresh",
    ]
    assert [queue(name) for name in followup] == ["followup"] * len(followup)
    # superseded by the next step's: dropped when no worker started them in time
    expiring = [market_levels_compute, market_signals_refresh, market_positioning_refresh]
    assert [t.expires for t in expiring] == [settings.LIQSITE_FOLLOWUP_EXPIRES_SECONDS] * 3
    assert market_snapshots_refresh.expires is None
    assert app.conf.broker_transport_options["queue_order_strategy"] == "priority"
    assert app.conf.beat_schedule["ingest-tracked-markets"]["schedule"] == 60.0


def test_it_calibrates_past_stored_events_with_impossible_values_and_names_them(live, caplog):
    market = live()
    market_ingest.delay(market.pk).get()
    add_real_events(market)
    good = market_calibrate_task.delay(market.pk).get()
    bar = market.bars.order_by("time")[20]
    for price, quantity, notional in ((1e200, 1e200, float("inf")), (100.0, 1.0, float("nan"))):
        LiquidationEvent.objects.create(
            market=market,
            time=bar.time,
            side="short",
            price=price,
            quantity=quantity,
            notional_usd=notional,
            source="stream",
        )

    again = market_calibrate_task.delay(market.pk).get()

    assert again == good  # the same fit: the two bad rows are left out
    assert "leaves out 2 stored event(s) with impossible values" in caplog.text
    assert "price 1e+200 is above" in caplog.text
