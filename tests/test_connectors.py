"""Connectors on recorded exchange payloads (tests/fixtures/exchanges): ccxt parses them, the
connectors normalise units and order, and error and rate-limit answers become the right errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import ccxt
import pytest

from maps.connectors import ConnectorError, RateLimited
from maps.connectors.bybit import one_sided_open_interest
from maps.connectors.replay import ReplayMissing

RECORDINGS = Path(__file__).parent / "fixtures" / "exchanges"
START = 1736877600000  # 2025-01-14T18:00:00Z, the first recorded kline
END = 1736920800000  # 2025-01-15T06:00:00Z, the end of the last recorded step
STEP = 300_000
BTC = "BTC/USDT:USDT"


def recorded(exchange: str, name: str):
    return json.loads((RECORDINGS / exchange / name).read_text())


def route(path: str, file: str, status: int = 200, headers: dict | None = None, **match) -> dict:
    return {"path": path, "match": match, "status": status, "headers": headers or {}, "file": file}


def test_it_reads_binance_klines_with_their_taker_buy_volume(replay_connector):
    candles = replay_connector("binanceusdm").candles(BTC, START, END)

    rows = recorded("binance", "klines_1m.json")
    assert len(candles) == len(rows) == 720
    first = rows[0]
    assert candles[0].ts == first[0]
    assert (candles[0].open, candles[0].high, candles[0].low, candles[0].close) == tuple(
        float(v) for v in first[1:5]
    )
    assert candles[0].volume == float(first[5])
    assert candles[0].taker_buy == float(first[9])


def test_it_parses_the_documented_binance_kline(replay_connector):
    connector = replay_connector(
        "binanceusdm", route("/fapi/v1/klines", "doc_klines.json", symbol="BTCUSDT")
    )

    (candle,) = connector.candles(BTC, 1499040000000, 1499040060000)

    assert candle.ts == 1499040000000
    assert (candle.open, candle.high, candle.low, candle.close) == (
        0.0163479,
        0.8,
        0.015758,
        0.015771,
    )
    assert candle.volume == 148976.11427815
    assert candle.taker_buy == 1756.87402397


@pytest.mark.parametrize("ccxt_id", ["bybit", "okx"])
def test_it_returns_newest_first_klines_oldest_first(replay_connector, ccxt_id):
    candles = replay_connector(ccxt_id).candles(BTC, START, END)

    assert len(candles) == 720
    assert [c.ts for c in candles] == list(range(START, END, 60_000))
    assert all(c.taker_buy is None for c in candles)


def test_it_reads_okx_candle_volume_in_base_units(replay_connector):
    candles = replay_connector("okx").candles(BTC, START, END)

    oldest = recorded("okx", "candles_1m.json")["data"][-1]
    assert candles[0].ts == int(oldest[0])
    assert candles[0].volume == pytest.approx(float(oldest[5]) * 0.01)
    assert candles[0].volume == pytest.approx(float(oldest[6]))


def test_it_keeps_only_rows_inside_the_window_asked_for(replay_connector):
    connector = replay_connector("binanceusdm")

    candles = connector.candles(BTC, START + 60 * 60_000, START + 70 * 60_000)

    assert [c.ts for c in candles] == list(range(START + 3_600_000, START + 4_200_000, 60_000))


def test_it_reads_open_interest_in_base_units_on_every_exchange(replay_connector):
    binance = replay_connector("binanceusdm").open_interest(BTC, START, END + STEP)
    bybit = replay_connector("bybit").open_interest(BTC, START, END + STEP)
    okx = replay_connector("okx").open_interest(BTC, START, END + STEP)

    first_binance = recorded("binance", "open_interest_hist_5m.json")[1]  # [0] is stamped 17:55
    first_bybit = recorded("bybit", "open_interest_5min.json")["result"]["list"][-1]
    first_okx = recorded("okx", "open_interest_history_5m.json")["data"][-1]
    assert [p.ts for p in binance] == list(range(START, END + STEP - 300_000, STEP))
    assert binance[0].value == float(first_binance["sumOpenInterest"])
    assert binance[0].usd == float(first_binance["sumOpenInterestValue"])
    assert [p.ts for p in bybit] == list(range(START, END + STEP, STEP))
    assert bybit[0].value == float(first_bybit["openInterest"])
    assert okx[0].ts == int(first_okx[0])
    assert okx[0].value == pytest.approx(float(first_okx[1]) * 0.01)
    assert okx[0].value == pytest.approx(float(first_okx[2]))


def test_it_reads_the_global_long_short_account_ratio(replay_connector):
    binance = replay_connector("binanceusdm").long_short_ratio(BTC, START, END + STEP)
    bybit = replay_connector("bybit").long_short_ratio(BTC, START, END + STEP)
    okx = replay_connector("okx").long_short_ratio(BTC, START, END + STEP)

    row = recorded("binance", "global_long_short_account_ratio_5m.json")[1]
    assert binance[0].ts == START
    assert binance[0].value == float(row["longShortRatio"])
    oldest = recorded("bybit", "account_ratio_5min.json")["result"]["list"][-1]
    assert bybit[0].ts == START
    assert bybit[0].value == pytest.approx(float(oldest["buyRatio"]) / float(oldest["sellRatio"]))
    assert okx[0].ts == START
    assert okx[0].value == float(recorded("okx", "long_short_account_ratio_5m.json")["data"][-1][1])
    assert len(bybit) == len(okx) == 145
    assert len(binance) == 144  # Binance stamps a row with its period's start: one less inside


def test_it_reads_okx_taker_buy_volume_per_period_in_base_units(replay_connector):
    buckets = replay_connector("okx").taker_volume(BTC, START, END)

    oldest = recorded("okx", "taker_volume_contract_5m.json")["data"][-1]
    assert [b.ts for b in buckets] == list(range(START, END, STEP))
    assert buckets[0].buy == pytest.approx(float(oldest[2]) * 0.01)
    assert buckets[0].span_ms == STEP


@pytest.mark.parametrize("ccxt_id", ["binanceusdm", "bybit"])
def test_it_takes_taker_volume_from_the_klines_or_nowhere(replay_connector, ccxt_id):
    assert replay_connector(ccxt_id).taker_volume(BTC, START, END) == []


@pytest.mark.parametrize("ccxt_id", ["binanceusdm", "bybit", "okx"])
def test_it_reads_funding_rates(replay_connector, ccxt_id):
    points = replay_connector(ccxt_id).funding(BTC, START - 86_400_000, END)

    assert [p.ts for p in points] == [1736841600000, 1736870400000, 1736899200000]
    assert points[0].value == 0.0001


def test_it_knows_okx_contract_sizes_and_the_others_count_base_units(replay_connector):
    assert replay_connector("okx").contract_size(BTC) == 0.01
    assert replay_connector("okx").contract_size("ETH-USDT-SWAP") == 0.1
    assert replay_connector("binanceusdm").contract_size(BTC) == 1.0
    assert replay_connector("bybit").market("BTCUSDT")["symbol"] == BTC


@pytest.mark.parametrize(
    ("ccxt_id", "path", "file", "match", "good"),
    [
        ("binanceusdm", "/fapi/v1/klines", "klines_malformed.json", {"symbol": "BTCUSDT"}, 1),
        ("bybit", "/v5/market/kline", "kline_malformed.json", {"symbol": "BTCUSDT"}, 1),
        ("okx", "/api/v5/market/candles", "candles_malformed.json", {"instId": "BTC-USDT-SWAP"}, 1),
    ],
)
def test_it_skips_and_logs_malformed_klines(
    replay_connector, caplog, ccxt_id, path, file, match, good
):
    connector = replay_connector(ccxt_id, route(path, file, **match))

    with caplog.at_level(logging.WARNING):
        candles = connector.candles(BTC, START, START + 6 * 60_000)

    assert len(candles) == good
    assert candles[0].ts in (START, START + 120_000)
    assert "malformed" in caplog.text


def test_it_reads_empty_pages_as_no_rows(replay_connector):
    binance = replay_connector(
        "binanceusdm",
        route("/fapi/v1/klines", "empty.json", symbol="BTCUSDT"),
        route("/futures/data/openInterestHist", "empty.json", symbol="BTCUSDT"),
    )
    bybit = replay_connector("bybit", route("/v5/market/kline", "empty_kline.json"))
    okx = replay_connector("okx", route("/api/v5/rubik/stat/taker-volume-contract", "empty.json"))

    assert binance.candles(BTC, START, END) == []
    assert binance.open_interest(BTC, START, END) == []
    assert bybit.candles(BTC, START, END) == []
    assert okx.taker_volume(BTC, START, END) == []


def test_it_raises_bad_symbol_for_binance_invalid_symbol(replay_connector):
    connector = replay_connector(
        "binanceusdm", route("/fapi/v1/klines", "error_invalid_symbol.json", status=400)
    )

    with pytest.raises(ccxt.BadSymbol, match="Invalid symbol"):
        connector.candles(BTC, START, END)


def test_it_waits_as_long_as_binance_says_after_a_429(replay_connector):
    connector = replay_connector(
        "binanceusdm",
        route("/fapi/v1/klines", "error_too_many_requests.json", 429, headers={"Retry-After": "7"}),
    )

    with pytest.raises(RateLimited) as caught:
        connector.candles(BTC, START, END)

    assert caught.value.retry_after == 7


def test_it_waits_until_a_binance_ip_ban_ends_after_a_418(replay_connector):
    connector = replay_connector(
        "binanceusdm",
        route("/futures/data/openInterestHist", "error_ip_banned.json", 418),
    )

    with pytest.raises(RateLimited) as caught:
        connector.open_interest(BTC, START, END)

    assert caught.value.retry_after == (1736921070000 - 1736920950000) / 1000


@pytest.mark.parametrize(
    ("file", "status", "error"),
    [
        ("error_too_many_visits.json", 200, RateLimited),
        ("error_ip_forbidden.html", 403, RateLimited),
        ("error_params.json", 200, ccxt.BadRequest),
    ],
)
def test_it_maps_bybit_ret_codes_and_http_errors(replay_connector, file, status, error):
    connector = replay_connector(
        "bybit", route("/v5/market/open-interest", file, status, headers={})
    )

    with pytest.raises(error):
        connector.open_interest(BTC, START, END)


@pytest.mark.parametrize(
    ("file", "status", "error"),
    [
        ("error_too_many_requests.json", 429, RateLimited),
        ("error_instrument.json", 200, ccxt.BadSymbol),
    ],
)
def test_it_maps_okx_codes(replay_connector, file, status, error):
    connector = replay_connector(
        "okx", route("/api/v5/rubik/stat/contracts/open-interest-history", file, status)
    )

    with pytest.raises(error):
        connector.open_interest(BTC, START, END)


def test_it_rejects_a_payload_that_is_not_a_list(replay_connector):
    connector = replay_connector("binanceusdm", route("/fapi/v1/klines", "exchange_info.json"))

    with pytest.raises(ConnectorError, match="expected a list"):
        connector.candles(BTC, START, END)


def test_it_never_goes_to_the_network_for_an_unrecorded_request(replay_connector):
    connector = replay_connector("binanceusdm")

    with pytest.raises(ReplayMissing):
        connector.candles("ETH/USDT:USDT", START, END)


@pytest.mark.parametrize(
    ("ccxt_id", "path", "file", "match"),
    [
        ("bybit", "/v5/market/kline", "doc_kline.json", {"symbol": "BTCUSDT"}),
        ("okx", "/api/v5/market/history-candles", "doc_candles.json", {"bar": "1m"}),
    ],
)
def test_it_parses_the_documented_kline_examples(replay_connector, ccxt_id, path, file, match):
    connector = replay_connector(ccxt_id, route(path, file, **match))
    rows = recorded(ccxt_id, file)
    first = (rows["result"]["list"] if ccxt_id == "bybit" else rows["data"])[-1]
    stamp = int(first[0])

    candles = connector.candles(BTC, stamp, stamp + 60_000)

    assert [c.ts for c in candles] == [stamp]
    assert candles[0].close == float(first[4])


def test_it_takes_bybits_one_sided_open_interest_from_the_documented_example():
    doc = recorded("bybit", "doc_open_interest_two_sided.json")["result"]["list"][0]

    assert one_sided_open_interest(doc) == 64523.108
    assert one_sided_open_interest(doc) == float(doc["openInterest"]) / 2


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"openInterest": "10", "singleOpenInterest": "", "timestamp": "1"}, 5.0),
        ({"openInterest": "10", "singleOpenInterest": None, "timestamp": "1"}, 5.0),
        ({"openInterest": "10", "timestamp": "1"}, 10.0),  # the older, one-sided shape
        ({"openInterest": "x", "timestamp": "1"}, None),
        ({"openInterest": "-1", "singleOpenInterest": "-1"}, None),
        (["10"], None),
    ],
)
def test_it_halves_bybits_two_sided_figure_only_by_the_payloads_fields(row, expected):
    assert one_sided_open_interest(row) == expected


def test_it_reads_one_side_of_bybits_current_payload_through_ccxt(replay_connector):
    route = {
        "path": "/v5/market/open-interest",
        "match": {"category": "linear", "symbol": "BTCUSDT", "intervalTime": "5min"},
        "file": "open_interest_5min_two_sided.json",
    }
    current = replay_connector("bybit", route).open_interest(BTC, START, END + STEP)
    older = replay_connector("bybit").open_interest(BTC, START, END + STEP)

    assert current == older and len(current) == 145
