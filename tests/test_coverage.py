"""Whole-exchange coverage: track_markets, its admin action and its daily run, on recorded lists.

The lists are tests/fixtures/exchanges/<exchange>/listing/day1 and day2 (the exchanges'
documented instrument and open-interest payloads, see make_listing_fixtures.py): day 2 is the day
after day 1, when some markets were delisted or lost open interest and one gained it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from maps import connectors, tasks
from maps.connectors import ConnectorError
from maps.coverage.services import exchange_markets_track
from maps.models import Bar, Exchange, LiquidationEvent, MapSnapshot, Market

RECORDINGS = Path(__file__).parent / "fixtures" / "exchanges"
DIRS = {"binanceusdm": "binance", "bybit": "bybit", "okx": "okx"}
DAY1 = datetime(2025, 1, 15, 6, 2, tzinfo=UTC)
DAY2 = datetime(2025, 1, 16, 6, 2, tzinfo=UTC)


@pytest.fixture
def eager():
    """Tasks run in-process, .get() raising a failure."""
    from liqsite.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def listing(replay_connector):
    """listing(ccxt_id, day) -> a connector answering the exchange's list of that day; it is
    also this process's connector (what the command and the tasks use)."""

    def make(ccxt_id: str, day: str, *extra: dict):
        manifest = RECORDINGS / DIRS[ccxt_id] / "listing" / day / "routes.json"
        routes = json.loads(manifest.read_text())["routes"]
        connector = replay_connector(ccxt_id, *extra, *routes)
        connectors._cache[ccxt_id] = connector
        return connector

    return make


def track(listing, ccxt_id: str, day: str, **kwargs):
    slug = DIRS[ccxt_id]
    connector = listing(ccxt_id, day)
    return exchange_markets_track(
        exchange=slug, connector=connector, now=DAY1 if day == "day1" else DAY2, **kwargs
    )


def tracked(exchange: str) -> list[str]:
    return sorted(
        Market.objects.filter(exchange__slug=exchange, tracked=True).values_list(
            "symbol", flat=True
        )
    )


@pytest.mark.parametrize(
    ("ccxt_id", "expected"),
    [
        ("binanceusdm", ["ALPACAUSDT", "BTCUSDT", "ETHUSDT", "FTMUSDT", "WIFUSDT"]),
        ("bybit", ["BTCUSDT", "ETHUSDT", "WIFUSDT"]),
        ("okx", ["BTC-USDT-SWAP", "ETH-USDT-SWAP", "WIF-USDT-SWAP"]),
    ],
)
def test_it_tracks_every_usdt_perpetual_at_or_above_the_threshold(db, listing, ccxt_id, expected):
    report = track(listing, ccxt_id, "day1", quote="USDT", min_oi_usd=5e6)

    slug = DIRS[ccxt_id]
    assert tracked(slug) == expected
    assert sorted(report.tracked) == expected
    assert Market.objects.filter(exchange__slug=slug).count() == len(expected)
    exchange = Exchange.objects.get(slug=slug)
    assert exchange.ccxt_id == ccxt_id and not exchange.is_demo
    assert all(m.auto_tracked and m.listed_at == DAY1 for m in exchange.markets.all())


def test_it_stores_each_exchanges_symbols_units_and_long_share_mode(db, listing):
    track(listing, "okx", "day1")
    track(listing, "bybit", "day1")
    track(listing, "binanceusdm", "day1")

    okx = Market.objects.get(exchange__slug="okx", symbol="BTC-USDT-SWAP")
    assert (okx.slug, okx.base, okx.quote, okx.contract_size) == ("btcusdt", "BTC", "USDT", 0.01)
    assert okx.ccxt_symbol == "BTC/USDT:USDT"
    assert okx.listed_oi_usd == pytest.approx(3.3e9)
    bybit = Market.objects.get(exchange__slug="bybit", symbol="WIFUSDT")
    assert bybit.long_share == "ratio"  # Bybit publishes no taker volume
    binance = Market.objects.get(exchange__slug="binance", symbol="WIFUSDT")
    assert binance.long_share == "taker"
    assert binance.listed_oi_usd == pytest.approx(6_000_000 * 2.0)
    assert binance.tracking_note == "tracked on 2025-01-15: open interest $12M"


def test_it_leaves_out_other_quotes_dated_futures_inverse_swaps_and_small_markets(db, listing):
    report = track(listing, "binanceusdm", "day1", min_oi_usd=5e6)
    track(listing, "okx", "day1")

    symbols = set(Market.objects.values_list("symbol", flat=True))
    assert not symbols & {"BTCUSDC", "BTCUSDT_250328", "BTC-USD-SWAP", "BTC-USDC-SWAP"}
    assert "GHSTUSDT" not in symbols  # $1.2M of open interest
    assert report.listed == 6 and report.below == 1


def test_it_untracks_a_market_dropped_from_the_list_and_keeps_its_data(db, listing):
    track(listing, "binanceusdm", "day1")
    ftm = Market.objects.get(symbol="FTMUSDT")
    Bar.objects.create(
        market=ftm,
        time=DAY1,
        open=0.7,
        high=0.71,
        low=0.69,
        close=0.7,
        volume=1e5,
        taker_buy_volume=5e4,
        open_interest=2e7,
    )
    LiquidationEvent.objects.create(
        market=ftm,
        time=DAY1,
        side="long",
        price=0.69,
        quantity=1000,
        notional_usd=690,
        source="stream",
    )

    report = track(listing, "binanceusdm", "day2")

    ftm.refresh_from_db()
    assert not ftm.tracked and not ftm.auto_tracked
    assert ftm.delisted_at == DAY2
    assert ftm.tracking_note == "untracked on 2025-01-16: no longer listed (data kept)"
    assert "FTMUSDT" in report.delisted
    assert ftm.bars.count() == 1 and ftm.events.count() == 1


def test_it_untracks_markets_that_fell_below_or_stopped_trading_and_tracks_those_that_rose(
    db, listing
):
    track(listing, "binanceusdm", "day1")

    report = track(listing, "binanceusdm", "day2")

    assert tracked("binance") == ["BTCUSDT", "ETHUSDT", "GHSTUSDT"]
    assert report.untracked == ["WIFUSDT"]
    assert sorted(report.delisted) == ["ALPACAUSDT", "FTMUSDT"]
    assert report.tracked == ["GHSTUSDT"]
    assert sorted(report.kept) == ["BTCUSDT", "ETHUSDT"]
    wif = Market.objects.get(symbol="WIFUSDT")
    assert wif.tracking_note == "untracked on 2025-01-16: open interest $2.4M below $5M (data kept)"
    assert wif.listed_oi_usd == pytest.approx(2.4e6) and wif.delisted_at is None
    alpaca = Market.objects.get(symbol="ALPACAUSDT")
    assert alpaca.delisted_at == DAY2 and "no longer trading" in alpaca.tracking_note


def test_it_tracks_again_a_market_that_came_back(db, listing):
    track(listing, "binanceusdm", "day1")
    track(listing, "binanceusdm", "day2")

    report = track(listing, "binanceusdm", "day1")

    assert "WIFUSDT" in report.tracked
    wif = Market.objects.get(symbol="WIFUSDT")
    assert wif.tracked and wif.auto_tracked
    assert Market.objects.filter(symbol="WIFUSDT").count() == 1


def test_it_leaves_markets_tracked_by_hand_and_demo_markets_alone(db, listing, market_factory):
    exchange = Exchange.objects.create(slug="binance", name="Binance", ccxt_id="binanceusdm")
    manual = Market.objects.create(
        exchange=exchange, symbol="GHSTUSDT", slug="ghstusdt", base="GHST", quote="USDT"
    )
    demo = Market.objects.create(
        exchange=exchange,
        symbol="BTCUSDT",
        slug="btcusdt",
        base="BTC",
        quote="USDT",
        is_demo=True,
        tracked=True,
    )

    report = track(listing, "binanceusdm", "day1")

    manual.refresh_from_db()
    demo.refresh_from_db()
    assert manual.tracked and not manual.auto_tracked
    assert report.by_hand == ["GHSTUSDT"]
    assert report.demo == ["BTCUSDT"]
    assert demo.is_demo and demo.listed_at is None
    assert Market.objects.filter(symbol="BTCUSDT").count() == 1


def test_it_takes_the_threshold_given(db, listing):
    track(listing, "binanceusdm", "day1", min_oi_usd=1e9)

    assert tracked("binance") == ["BTCUSDT", "ETHUSDT"]


def test_it_changes_nothing_when_the_exchange_answers_an_error(db, listing):
    track(listing, "bybit", "day1")
    before = sorted(Market.objects.values_list("symbol", "tracked", "listed_at"))
    error = {"path": "/v5/market/tickers", "file": "error_params.json"}

    with pytest.raises(Exception, match=r"10001|Params error|parameter"):
        exchange_markets_track(exchange="bybit", connector=listing("bybit", "day2", error))

    assert sorted(Market.objects.values_list("symbol", "tracked", "listed_at")) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exchange": "kraken"}, "unknown exchange 'kraken': use one of binance, bybit, okx"),
        ({"exchange": "binance", "quote": "US DT"}, "quote 'US DT' is not a currency code"),
        ({"exchange": "binance", "min_oi_usd": -1.0}, "must be a USD amount >= 0"),
        ({"exchange": "binance", "min_oi_usd": float("nan")}, "must be a USD amount >= 0"),
    ],
)
def test_it_refuses_bad_arguments_before_asking_the_exchange(db, kwargs, message):
    with pytest.raises(ConnectorError, match=message):
        exchange_markets_track(**kwargs)

    assert not Market.objects.exists()


def test_it_refuses_an_exchange_slug_fed_by_another_source(db, listing):
    Exchange.objects.create(slug="binance", name="Binance files", ccxt_id="vision")

    with pytest.raises(ConnectorError, match="fed by 'vision', not 'binanceusdm'"):
        track(listing, "binanceusdm", "day1")

    assert not Market.objects.exists()


def test_the_command_tracks_and_says_what_changed(db, listing):
    listing("binanceusdm", "day1")
    out = StringIO()

    call_command("track_markets", "binance", "--quote", "USDT", "--min-oi-usd", "5e6", stdout=out)

    text = out.getvalue()
    assert "Binance: 6 USDT perpetuals listed, 5 at or above $5M tracked (5 newly)" in text
    assert "newly tracked: ALPACAUSDT, BTCUSDT, ETHUSDT, FTMUSDT, WIFUSDT" in text
    listing("binanceusdm", "day2")
    out = StringIO()
    call_command("track_markets", "binance", "--min-oi-usd", "5M", stdout=out)
    assert "untracked (open interest below $5M, data kept): WIFUSDT" in out.getvalue()
    assert "untracked (delisted, data kept): ALPACAUSDT, FTMUSDT" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["kraken"], "unknown exchange 'kraken'"),
        (["binance", "--min-oi-usd", "lots"], "'lots' is not a USD amount"),
        (["binance", "--min-oi-usd", "-5"], "must be a USD amount >= 0"),
        (["binance", "--quote", "$$"], "is not a currency code"),
    ],
)
def test_the_command_refuses_bad_arguments(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("track_markets", *args, stdout=StringIO())


def test_the_command_says_when_the_exchange_did_not_answer(db, listing):
    listing(
        "binanceusdm",
        "day1",
        {
            "path": "/fapi/v1/premiumIndex",
            "status": 429,
            "headers": {"Retry-After": "7"},
            "file": "error_too_many_requests.json",
        },
    )

    with pytest.raises(CommandError, match="did not answer, try again"):
        call_command("track_markets", "binance", stdout=StringIO())

    assert not Market.objects.exists()


def test_the_task_tracks_and_counts(db, listing, eager):
    listing("okx", "day1")

    counts = tasks.exchange_track_markets.delay("okx", "USDT", 5e6).get()

    assert counts == {"listed": 3, "tracked": 3, "kept": 0, "untracked": 0, "delisted": 0}


def test_the_daily_run_reads_every_configured_exchange(db, settings, monkeypatch, eager):
    settings.LIQSITE_COVERAGE_EXCHANGES = ["binance", "okx"]
    settings.LIQSITE_COVERAGE_MIN_OI_USD = 2e7
    queued = []
    monkeypatch.setattr(tasks.exchange_track_markets, "delay", lambda *a: queued.append(a))

    assert tasks.exchanges_track_markets.delay().get() == 2
    assert queued == [("binance", "USDT", 2e7), ("okx", "USDT", 2e7)]


def test_the_admin_action_asks_for_the_threshold_then_queues_a_listing(
    staff_client, monkeypatch, django_capture_on_commit_callbacks
):
    binance = Exchange.objects.create(slug="binance", name="Binance", ccxt_id="binanceusdm")
    files = Exchange.objects.create(slug="files", name="Files", ccxt_id="")
    url = reverse("admin:maps_exchange_changelist")
    selected = {"action": "track_markets", "_selected_action": [binance.pk, files.pk]}
    queued = []
    monkeypatch.setattr(tasks.exchange_track_markets, "delay", lambda *a: queued.append(a))

    form = staff_client.post(url, selected)
    assert form.status_code == 200
    assert "Minimum open interest (USD)" in form.content.decode()
    bad = staff_client.post(url, {**selected, "apply": "1", "quote": "USDT", "min_oi_usd": "-3"})
    assert "Ensure this value is greater than or equal to 0" in bad.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        done = staff_client.post(
            url, {**selected, "apply": "1", "quote": "usdt", "min_oi_usd": "20000000"}, follow=True
        )

    assert queued == [("binance", "USDT", 2e7)]
    page = done.content.decode()
    assert "Files: no connector for ccxt id" in page
    assert "Reading the USDT perpetuals of Binance" in page
    assert not MapSnapshot.objects.exists()
