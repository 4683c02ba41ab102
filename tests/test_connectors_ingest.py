"""Ingestion: recorded exchange series turned into bars, backfill, incremental runs and gaps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.cache import cache

from maps.connectors import Candle, ConnectorError, Point, TakerBucket
from maps.ingest import Series, day_chunks, market_gaps, market_ingest, steps_to_bars
from maps.models import Bar, Exchange, Market

RECORDINGS = Path(__file__).parent / "fixtures" / "exchanges"
START = 1736877600000  # 2025-01-14T18:00:00Z
END = 1736920800000  # 2025-01-15T06:00:00Z
STEP = 300_000
MINUTE = 60_000


def candles(t: int, count: int = 5, taker: float | None = 1.0) -> list[Candle]:
    return [
        Candle(t + i * MINUTE, 100 + i, 102 + i, 99 + i, 101 + i, 10.0, taker) for i in range(count)
    ]


def dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@pytest.fixture(autouse=True)
def clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def live_market(db, settings, replay_connector):
    """make(ccxt_id) -> a tracked market on that exchange, fed from the recordings."""
    settings.LIQSITE_BACKFILL_DAYS = 1
    venues = {"binanceusdm": "binance", "bybit": "bybit", "okx": "okx"}
    symbols = {"binanceusdm": "BTCUSDT", "bybit": "BTCUSDT", "okx": "BTC-USDT-SWAP"}

    def make(ccxt_id: str) -> Market:
        slug = venues[ccxt_id]
        exchange, _ = Exchange.objects.get_or_create(
            slug=slug, defaults={"name": slug.title(), "ccxt_id": ccxt_id}
        )
        return Market.objects.create(
            exchange=exchange, symbol=symbols[ccxt_id], slug="btcusdt", base="BTC", quote="USDT"
        )

    return make


def test_it_aggregates_five_klines_and_the_open_interest_at_the_step_end():
    series = Series(candles=candles(START), open_interest=[Point(START + STEP, 500.0)])

    bars, skipped = steps_to_bars(
        start=START, end=START + STEP, step_ms=STEP, series=series, long_share="taker"
    )

    assert skipped == []
    assert bars == [
        {
            "ts": START,
            "open": 100,
            "high": 106,
            "low": 99,
            "close": 105,
            "volume": 50.0,
            "taker_buy_volume": 5.0,
            "open_interest": 500.0,
            "long_short_ratio": None,
            "funding_rate": None,
        }
    ]


def test_it_skips_and_names_a_step_with_missing_klines_or_open_interest():
    series = Series(
        candles=candles(START, 4) + candles(START + STEP),
        open_interest=[Point(START + STEP, 1.0), Point(START + 3 * STEP, 1.0)],
    )

    bars, skipped = steps_to_bars(
        start=START, end=START + 2 * STEP, step_ms=STEP, series=series, long_share="taker"
    )

    assert bars == []
    assert skipped == [
        "2025-01-14T18:00:00Z: 4 of 5 klines",
        "2025-01-14T18:05:00Z: no open interest at 2025-01-14T18:10:00Z",
    ]


def test_it_needs_the_ratio_in_ratio_mode_and_keeps_it_otherwise():
    series = Series(
        candles=candles(START, taker=None) + candles(START + STEP, taker=None),
        open_interest=[Point(START + STEP, 1.0), Point(START + 2 * STEP, 1.0)],
        ratios=[Point(START + 2 * STEP, 1.5)],
    )

    ratio_bars, skipped = steps_to_bars(
        start=START, end=START + 2 * STEP, step_ms=STEP, series=series, long_share="ratio"
    )
    candle_bars, _ = steps_to_bars(
        start=START, end=START + 2 * STEP, step_ms=STEP, series=series, long_share="candle"
    )

    assert [b["ts"] for b in ratio_bars] == [START + STEP]
    assert ratio_bars[0]["long_short_ratio"] == 1.5
    assert skipped == ["2025-01-14T18:00:00Z: no long/short ratio at 2025-01-14T18:05:00Z"]
    assert [b["long_short_ratio"] for b in candle_bars] == [None, 1.5]
    assert [b["taker_buy_volume"] for b in candle_bars] == [25.0, 25.0]


def test_it_sums_taker_periods_and_needs_them_all_in_taker_mode():
    series = Series(
        candles=candles(START, taker=None) + candles(START + STEP, taker=None),
        open_interest=[Point(START + STEP, 1.0), Point(START + 2 * STEP, 1.0)],
        taker=[TakerBucket(START, STEP, 20.0), TakerBucket(START + 2 * STEP, STEP, 1.0)],
        taker_expected=True,
    )

    bars, skipped = steps_to_bars(
        start=START, end=START + 2 * STEP, step_ms=STEP, series=series, long_share="taker"
    )

    assert [(b["ts"], b["taker_buy_volume"]) for b in bars] == [(START, 20.0)]
    assert skipped == ["2025-01-14T18:05:00Z: taker volume incomplete"]


def test_it_waits_for_taker_volume_an_exchange_publishes_late(live_market, replay_connector):
    market = live_market("okx")
    late = replay_connector(
        "okx",
        {"path": "/api/v5/rubik/stat/taker-volume-contract", "match": {}, "file": "empty.json"},
    )

    report = market_ingest(market=market, connector=late)
    later = market_ingest(market=market)

    assert report.written == 0
    assert report.skipped[-1] == "2025-01-15T05:55:00Z: taker volume incomplete"
    assert later.written == 144


def test_it_clips_taker_volume_to_the_volume():
    series = Series(
        candles=candles(START, taker=None),
        open_interest=[Point(START + STEP, 1.0)],
        taker=[TakerBucket(START, STEP, 51.0)],
    )

    bars, _ = steps_to_bars(
        start=START, end=START + STEP, step_ms=STEP, series=series, long_share="taker"
    )

    assert bars[0]["taker_buy_volume"] == 50.0


def test_it_carries_the_last_funding_rate_settled_by_each_step_end():
    series = Series(
        candles=candles(START) + candles(START + STEP) + candles(START + 2 * STEP),
        open_interest=[Point(START + k * STEP, 1.0) for k in (1, 2, 3)],
        funding=[Point(START - 3_600_000, 0.0001), Point(START + 2 * STEP, 0.0003)],
    )

    bars, _ = steps_to_bars(
        start=START, end=START + 3 * STEP, step_ms=STEP, series=series, long_share="taker"
    )

    assert [b["funding_rate"] for b in bars] == [0.0001, 0.0003, 0.0003]


def test_it_cuts_ranges_at_utc_midnight():
    midnight = 1736899200000

    assert day_chunks(START, END) == [(START, midnight), (midnight, END)]


@pytest.mark.parametrize(
    ("ccxt_id", "long_share", "contract_size"),
    [("binanceusdm", "taker", 1.0), ("bybit", "ratio", 1.0), ("okx", "taker", 0.01)],
)
def test_it_backfills_a_new_market_from_each_exchange(
    live_market, ccxt_id, long_share, contract_size
):
    market = live_market(ccxt_id)

    report = market_ingest(market=market)

    market.refresh_from_db()
    times = list(market.bars.values_list("time", flat=True))
    assert report.written == 144
    assert times == [dt(t) for t in range(START, END, STEP)]
    assert market.last_bar_at == dt(END - STEP)
    assert market.last_ingest_at is not None
    assert market.ccxt_symbol == "BTC/USDT:USDT"
    assert market.long_share == long_share
    assert market.contract_size == contract_size
    assert report.skipped[0].endswith("0 of 5 klines")


def test_it_stores_binance_bars_in_base_units_from_the_recorded_rows(live_market):
    market = live_market("binanceusdm")

    market_ingest(market=market)

    klines = json.loads((RECORDINGS / "binance" / "klines_1m.json").read_text())[:5]
    oi = json.loads((RECORDINGS / "binance" / "open_interest_hist_5m.json").read_text())[1]
    ratio = json.loads(
        (RECORDINGS / "binance" / "global_long_short_account_ratio_5m.json").read_text()
    )[1]
    bar = market.bars.get(time=dt(START))
    assert bar.open == float(klines[0][1])
    assert bar.high == max(float(k[2]) for k in klines)
    assert bar.low == min(float(k[3]) for k in klines)
    assert bar.close == float(klines[-1][4])
    assert bar.volume == pytest.approx(sum(float(k[5]) for k in klines))
    assert bar.taker_buy_volume == pytest.approx(sum(float(k[9]) for k in klines))
    assert oi["timestamp"] == START  # stamped with its period's start, taken at START + STEP
    assert bar.open_interest == float(oi["sumOpenInterest"])
    assert bar.long_short_ratio == float(ratio["longShortRatio"])
    assert bar.funding_rate == 0.00008213
    assert market.bars.get(time=dt(END - STEP)).funding_rate == 0.00011894


def test_it_stores_okx_open_interest_and_taker_volume_in_base_units(live_market):
    market = live_market("okx")

    market_ingest(market=market)

    oi = json.loads((RECORDINGS / "okx" / "open_interest_history_5m.json").read_text())["data"]
    taker = json.loads((RECORDINGS / "okx" / "taker_volume_contract_5m.json").read_text())["data"]
    bar = market.bars.get(time=dt(START))
    assert oi[-2][0] == str(START + STEP)
    assert bar.open_interest == pytest.approx(float(oi[-2][2]))
    assert taker[-1][0] == str(START)
    assert bar.taker_buy_volume == pytest.approx(min(float(taker[-1][2]) * 0.01, bar.volume))


def test_it_writes_nothing_twice_and_fetches_nothing_when_up_to_date(live_market):
    market = live_market("binanceusdm")
    market_ingest(market=market)
    first = list(market.bars.values_list("id", "time", "close"))

    report = market_ingest(market=market)

    assert report.ranges == []
    assert report.written == 0
    assert list(market.bars.values_list("id", "time", "close")) == first


def test_it_fetches_only_the_steps_after_the_last_bar(live_market):
    market = live_market("binanceusdm")
    market_ingest(market=market)
    market.bars.filter(time__gte=dt(END - 10 * STEP)).delete()

    report = market_ingest(market=market)

    assert report.ranges == [(END - 10 * STEP, END)]
    assert report.written == 10
    assert market.bars.count() == 144


def test_it_finds_gaps_and_refills_them_once(live_market):
    market = live_market("binanceusdm")
    market_ingest(market=market)
    hole = (START + 20 * STEP, START + 26 * STEP)
    market.bars.filter(time__gte=dt(hole[0]), time__lt=dt(hole[1])).delete()

    assert market_gaps(market=market) == [hole]
    report = market_ingest(market=market)
    again = market_ingest(market=market)

    assert report.ranges == [hole]
    assert report.written == 6
    assert report.refilled_gap
    assert market_gaps(market=market) == []
    assert again.ranges == []
    assert Bar.objects.filter(market=market).count() == 144


def test_it_does_not_ask_again_for_a_gap_the_exchange_cannot_fill(live_market, replay_connector):
    market = live_market("binanceusdm")
    market_ingest(market=market)
    hole = (START + 20 * STEP, START + 26 * STEP)
    market.bars.filter(time__gte=dt(hole[0]), time__lt=dt(hole[1])).delete()
    empty = replay_connector(
        "binanceusdm", {"path": "/fapi/v1/klines", "match": {}, "file": "empty.json"}
    )

    first = market_ingest(market=market, connector=empty)
    second = market_ingest(market=market, connector=empty)

    assert first.ranges == [hole]
    assert first.written == 0
    assert second.ranges == []
    assert market_gaps(market=market) == [hole]


def test_it_backfills_again_on_request_without_duplicating(live_market):
    market = live_market("bybit")
    market_ingest(market=market)
    Bar.objects.filter(market=market, time=dt(START)).update(close=1.0, high=1e9)

    report = market_ingest(market=market, backfill=True)

    assert report.written == 144
    assert market.bars.count() == 144
    assert market.bars.get(time=dt(START)).close != 1.0


def test_it_refuses_an_exchange_without_a_ccxt_id(db, market_factory):
    market = market_factory("BTCUSDT", "vision")

    with pytest.raises(ConnectorError, match="no ccxt id"):
        market_ingest(market=market)


def test_it_stops_before_the_current_step(live_market):
    market = live_market("okx")

    market_ingest(market=market)

    last = market.bars.order_by("-time").first()
    assert last.time + timedelta(milliseconds=2 * STEP) > dt(1736920950000)


# --- MODEL.md v2.1: which row closes a step, the rows kept, the stamping checked ---------------


def test_it_reads_a_row_stamped_with_its_periods_start_as_closing_that_period():
    series = Series(candles=candles(START), open_interest=[Point(START, 500.0)])

    ended, _ = steps_to_bars(
        start=START, end=START + STEP, step_ms=STEP, series=series, long_share="taker"
    )
    started, _ = steps_to_bars(
        start=START,
        end=START + STEP,
        step_ms=STEP,
        series=series,
        long_share="taker",
        stamping="start",
    )

    assert ended == []  # read as taken at START, the row closes the step before
    assert started[0]["ts"] == START and started[0]["open_interest"] == 500.0


def test_it_keeps_every_fetched_row_as_stamped_and_confirms_binances_stamping(live_market):
    market = live_market("binanceusdm")

    report = market_ingest(market=market)

    market.refresh_from_db()
    recorded = json.loads((RECORDINGS / "binance" / "open_interest_hist_5m.json").read_text())
    rows = market.metrics_rows.order_by("stamped_at")
    first = rows.get(stamped_at=dt(START))
    assert first.snapshot_at == dt(START + STEP) and first.source == "rest"
    assert first.open_interest == float(recorded[1]["sumOpenInterest"])
    assert first.open_interest_value == float(recorded[1]["sumOpenInterestValue"])
    assert first.long_short_ratio is not None
    check = market.metrics_check
    assert check["stamping"] == "auto" and check["contradicted"] == 0
    assert check["files"][0]["median_rule"] < 1e-9 < check["files"][0]["median_other"]
    assert report.warnings == []


def test_it_warns_when_the_data_contradict_the_stamping_the_market_forces(live_market):
    market = live_market("binanceusdm")
    market.metrics_stamp = "end"
    market.save()

    report = market_ingest(market=market)

    market.refresh_from_db()
    assert market.metrics_check["contradicted"] >= 1
    assert any("contradict the stamping applied (end)" in w for w in report.warnings)
    # read as taken at their stamp, the rows give each step the next step's open interest
    recorded = json.loads((RECORDINGS / "binance" / "open_interest_hist_5m.json").read_text())
    assert market.bars.get(time=dt(START)).open_interest == float(recorded[2]["sumOpenInterest"])


def test_it_stores_bybits_one_sided_open_interest_from_the_current_payload(
    live_market, replay_connector
):
    two_sided = {
        "path": "/v5/market/open-interest",
        "match": {"category": "linear", "symbol": "BTCUSDT", "intervalTime": "5min"},
        "file": "open_interest_5min_two_sided.json",
    }
    connector = replay_connector("bybit", two_sided)
    market = live_market("bybit")

    market_ingest(market=market, connector=connector)

    old = json.loads((RECORDINGS / "bybit" / "open_interest_5min.json").read_text())
    one_side = {int(r["timestamp"]): float(r["openInterest"]) for r in old["result"]["list"]}
    bar = market.bars.get(time=dt(START))
    assert bar.open_interest == one_side[START + STEP]
