"""Readers for Binance's bulk files and the step builder (MODEL.md's alignment rule)."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

from maps.engine import EngineError
from maps.engine.inputs import (
    aggregate_klines,
    build_bars,
    build_events,
    detect_kind,
    read_force_orders,
    read_klines,
    read_metrics,
)

FIXTURES = Path(__file__).parent / "fixtures" / "engine"
KLINES = FIXTURES / "BTCUSDT-1m-2024-01-01.csv"
METRICS = FIXTURES / "BTCUSDT-metrics-2024-01-01.csv"
ORDERS = FIXTURES / "BTCUSDT-forceOrder-2024-01-01.jsonl"
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MIN = 60_000
KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)
METRIC_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,"
    "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
    "count_long_short_ratio,sum_taker_long_short_vol_ratio"
)


def kline(open_time, o=100.0, h=101.0, lo=99.0, c=100.5, v=10.0, tb=4.0) -> str:
    return f"{open_time},{o},{h},{lo},{c},{v},{open_time + MIN - 1},{v * c},42,{tb},{tb * c},0"


def metric(stamp, oi="1000", value="100000", ratio="1.5", symbol="BTCUSDT") -> str:
    return f"{stamp},{symbol},{oi},{value},1.1,1.2,{ratio},0.9"


def write(tmp_path, name, lines, header=None) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(([header] if header else []) + lines) + "\n")
    return path


# --- klines ---------------------------------------------------------------------------------


def test_it_reads_a_kline_file_with_a_header():
    rows = list(read_klines(KLINES))
    assert len(rows) == 240
    first = rows[0]
    assert first.open_time == T0
    assert (first.open, first.high, first.low, first.close) == (42000.0, 42005.1, 41995.4, 42000.0)
    assert (first.volume, first.taker_buy_volume) == (42.521, 16.162)
    assert (first.source, first.line) == ("BTCUSDT-1m-2024-01-01.csv", 2)


def test_it_reads_a_header_behind_a_byte_order_mark_and_windows_line_ends(tmp_path):
    path = tmp_path / "BTCUSDT-1m-2024-01-01.csv"
    path.write_bytes(b"\xef\xbb\xbf" + KLINES.read_bytes().replace(b"\n", b"\r\n"))

    rows = list(read_klines(path))

    assert rows == [row._replace(source=path.name) for row in read_klines(KLINES)]


def test_it_reads_klines_without_header_in_microseconds_and_from_a_zip(tmp_path):
    lines = [kline((T0 + i * MIN) * 1000) for i in range(3)]
    plain = write(tmp_path, "ETHUSDT-1m-2024-01-01.csv", lines)
    assert [r.open_time for r in read_klines(plain)] == [T0, T0 + MIN, T0 + 2 * MIN]
    archive = tmp_path / "ETHUSDT-1m-2024-01-01.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(plain, "ETHUSDT-1m-2024-01-01.csv")
    rows = list(read_klines(archive))
    assert [r.close for r in rows] == [100.5] * 3
    assert rows[0].source == "ETHUSDT-1m-2024-01-01.csv"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (kline(T0, h=41000.0, lo=41200.0, o=41100, c=41100), "high 41000 is below low 41200"),
        (kline(T0, h=100.2), "high 100.2 is below open/close 100.5"),
        (kline(T0, lo=100.2), "low 100.2 is above open/close 100"),
        (kline(T0, o=0.0, lo=0.0), "open 0 is not positive"),
        (kline(T0, v=-1.0, tb=0.0), "volume -1 / taker_buy_volume 0 is negative"),
        (kline(T0, tb=11.0), "taker_buy_volume 11 exceeds volume 10"),
        (kline(T0 + 1), "open_time 1704067200001 is not on a whole minute"),
        (kline(T0).replace("100.5", "abc", 1), "close 'abc' is not a number"),
        (kline(T0).replace("100.5", "nan", 1), "close 'nan' is not a finite number"),
        ("1704067200000,1,2", "expected at least 10 fields, found 3"),
        ("yesterday,1,2,1,1,1,1,1,1,1,1,1", "open_time 'yesterday' is not a time"),
    ],
)
def test_it_rejects_bad_kline_rows_naming_file_and_line(tmp_path, line, reason):
    path = write(tmp_path, "BTCUSDT-1m-2024-01-01.csv", [kline(T0 - MIN), line], KLINE_HEADER)
    with pytest.raises(EngineError) as err:
        list(read_klines(path))
    assert str(err.value) == f"BTCUSDT-1m-2024-01-01.csv:3: {reason}"


def test_it_rejects_a_zip_without_exactly_one_file(tmp_path):
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.csv", kline(T0))
        zf.writestr("b.csv", kline(T0))
    with pytest.raises(EngineError, match=r"two\.zip: a zip must hold exactly one file, found 2"):
        list(read_klines(archive))
    broken = tmp_path / "broken.zip"
    broken.write_text("not a zip")
    with pytest.raises(EngineError, match=r"broken\.zip: not a readable zip file"):
        list(read_klines(broken))


# --- metrics --------------------------------------------------------------------------------


def test_it_reads_metrics_rows():
    rows = list(read_metrics(METRICS))
    assert len(rows) == 49
    first = rows[0]
    assert first.time == T0 and first.symbol == "BTCUSDT"
    assert first.open_interest == 80099.914
    assert first.long_short_ratio == 1.3419
    assert rows[1].time == T0 + 5 * MIN


def test_it_reads_missing_metrics_fields_as_unknown(tmp_path):
    path = write(tmp_path, "m.csv", [metric("2024-01-01 00:05:00", oi="", ratio="")], METRIC_HEADER)
    (row,) = read_metrics(path)
    assert math.isnan(row.open_interest) and math.isnan(row.long_short_ratio)
    assert row.open_interest_value == 100000.0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (metric("2024-01-01 00:05:00", oi="-3"), "sum_open_interest -3 is negative"),
        (metric("2024-01-01 00:05:00", ratio="0"), "count_long_short_ratio 0 is not positive"),
        (metric("2024-13-01 00:05:00"), "create_time '2024-13-01 00:05:00' is not a time"),
        (metric("2024-01-01 00:05:00", value="x"), "sum_open_interest_value 'x' is not a number"),
    ],
)
def test_it_rejects_bad_metrics_rows_naming_file_and_line(tmp_path, line, reason):
    path = write(tmp_path, "BTCUSDT-metrics-2024-01-01.csv", [line], METRIC_HEADER)
    with pytest.raises(EngineError) as err:
        list(read_metrics(path))
    assert str(err.value) == f"BTCUSDT-metrics-2024-01-01.csv:2: {reason}"


def test_it_rejects_a_header_that_lacks_columns(tmp_path):
    path = write(tmp_path, "m.csv", ["2024-01-01 00:05:00,BTCUSDT"], "create_time,symbol")
    with pytest.raises(EngineError, match=r"m.csv:1: header lacks sum_open_interest"):
        list(read_metrics(path))


# --- liquidations ---------------------------------------------------------------------------


def test_it_reads_force_orders_in_both_shapes():
    orders = list(read_force_orders(ORDERS))
    assert len(orders) == 31
    first = orders[0]  # bare inner object, BUY: a short was liquidated
    assert first.is_long is False and first.symbol == "BTCUSDT"
    assert first.time == 1704069052844
    assert first.notional == pytest.approx(1.358 * 41761.3)
    second = orders[1]  # full payload, SELL: a long was liquidated
    assert second.is_long is True and second.price == 41738.6


def test_it_takes_the_order_quantity_and_price_when_fill_fields_are_missing(tmp_path):
    line = json.dumps({"s": "BTCUSDT", "S": "SELL", "q": "2", "p": "9910", "T": 1568014460893})
    (order,) = read_force_orders(write(tmp_path, "l.jsonl", [line]))
    assert order.notional == 2 * 9910 and order.is_long


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"o": {"S": "SELL", "q": "1", "p": "1"}}), "missing field 'T'"),
        (json.dumps({"S": "HOLD", "T": T0, "q": "1", "p": "1"}), "side 'HOLD' is neither"),
        (json.dumps({"S": "BUY", "T": T0, "q": "1", "p": "0"}), "no positive price in ap or p"),
        (json.dumps({"S": "BUY", "T": T0, "q": "-1", "p": "5"}), "q -1 is negative"),
        (json.dumps(["x"]), "expected a JSON object"),
    ],
)
def test_it_rejects_bad_force_orders_naming_file_and_line(tmp_path, line, reason):
    good = json.dumps({"S": "BUY", "T": T0, "q": "1", "p": "5"})
    path = write(tmp_path, "BTCUSDT-forceOrder.jsonl", [good, "", line])
    with pytest.raises(EngineError, match=rf"^BTCUSDT-forceOrder.jsonl:3: {reason}"):
        list(read_force_orders(path))


def test_it_builds_events_of_one_symbol():
    events, others = build_events(read_force_orders(ORDERS), "BTCUSDT")
    assert len(events) == 30 and others == 1
    assert events.is_long.dtype == bool and events.time.dtype == np.int64
    everything, none = build_events(read_force_orders(ORDERS))
    assert len(everything) == 31 and none == 0


def test_it_tells_file_kinds_apart_by_header_or_name(tmp_path):
    assert detect_kind(KLINES) == "klines"
    assert detect_kind(METRICS) == "metrics"
    assert detect_kind(ORDERS) == "liquidations"
    assert detect_kind(write(tmp_path, "x.csv", [kline(T0)])) == "klines"
    assert detect_kind(write(tmp_path, "BTCUSDT-metrics.csv", [])) == "metrics"
    with pytest.raises(EngineError, match="cannot tell"):
        detect_kind(write(tmp_path, "mystery.csv", ["a,b"]))


# --- aggregation to steps -------------------------------------------------------------------


def klines_rows(tmp_path, minutes, name="k.csv", **values):
    return read_klines(write(tmp_path, name, [kline(T0 + m * MIN, **values) for m in minutes]))


def test_it_aggregates_one_minute_klines_into_steps(tmp_path):
    lines = [
        kline(T0, o=100, h=102, lo=99, c=101, v=1, tb=0.5),
        kline(T0 + MIN, o=101, h=105, lo=100, c=104, v=2, tb=1.5),
        kline(T0 + 2 * MIN, o=104, h=104, lo=97, c=98, v=3, tb=1.0),
        kline(T0 + 3 * MIN, o=98, h=99, lo=98, c=99, v=4, tb=2.0),
        kline(T0 + 4 * MIN, o=99, h=100, lo=98.5, c=99.5, v=5, tb=2.5),
        kline(T0 + 5 * MIN),
    ]
    steps = list(aggregate_klines(read_klines(write(tmp_path, "k.csv", lines)), 300_000))
    first, second = steps
    assert first.ts == T0
    assert (first.open, first.high, first.low, first.close) == (100, 105, 97, 99.5)
    assert (first.volume, first.taker_buy_volume) == (15, 7.5)
    assert first.complete and (first.minutes, first.expected) == (5, 5)
    assert second.ts == T0 + 300_000 and not second.complete


def test_it_drops_identical_duplicate_klines_and_counts_them(tmp_path):
    table = klines_rows(tmp_path, [0, 0, 1, 2, 2, 3, 4])
    assert [row.line for row in table] == [1, 3, 4, 6, 7]
    assert table.duplicates == 2
    (step,) = aggregate_klines(table, 300_000)
    assert step.complete and step.volume == 50.0


def test_it_names_both_lines_of_a_conflicting_duplicate_kline(tmp_path):
    lines = [kline(T0), kline(T0 + MIN), kline(T0 + MIN, c=100.7)]
    with pytest.raises(EngineError) as err:
        read_klines(write(tmp_path, "k.csv", lines))
    assert str(err.value) == (
        "k.csv:2 and k.csv:3: two klines at 2024-01-01T00:01:00Z with different values"
    )


def test_it_rejects_unordered_klines(tmp_path):
    with pytest.raises(EngineError, match=r"k.csv:3: kline out of order"):
        list(aggregate_klines(klines_rows(tmp_path, [0, 2, 1]), 300_000))
    with pytest.raises(EngineError, match="whole number of minutes"):
        list(aggregate_klines(klines_rows(tmp_path, [0]), 90_000))


def test_it_aligns_a_metrics_row_with_the_step_it_closes(tmp_path):
    klines = klines_rows(tmp_path, range(15))
    metrics = read_metrics(
        write(
            tmp_path,
            "m.csv",
            [
                metric("2024-01-01 00:05:00", oi="1000"),
                metric("2024-01-01 00:07:00", oi="5"),  # off the step grid: ignored
                metric("2024-01-01 00:10:00", oi="", value="201000"),  # OI from value / close
                metric("2024-01-01 00:15:00", oi="1100", ratio=""),
            ],
            METRIC_HEADER,
        )
    )
    bars, skipped = build_bars(klines, metrics, 300_000)
    assert bars.ts.tolist() == [T0, T0 + 300_000, T0 + 600_000]
    assert bars.open_interest.tolist() == [1000.0, 2000.0, 1100.0]
    assert bars.long_short_ratio[:2].tolist() == [1.5, 1.5]
    assert math.isnan(bars.long_short_ratio[2])
    assert bars.close.tolist() == [100.5] * 3
    assert skipped == []


def test_it_skips_and_reports_incomplete_steps(tmp_path):
    minutes = [m for m in range(20) if m != 7]  # 00:07 missing
    klines = klines_rows(tmp_path, minutes)
    metrics = read_metrics(
        write(
            tmp_path,
            "m.csv",
            [
                metric("2024-01-01 00:00:00"),  # closes 23:55-00:00: no klines
                metric("2024-01-01 00:05:00"),
                metric("2024-01-01 00:10:00"),  # its step misses 00:07
                metric("2024-01-01 00:15:00", oi="", value=""),
            ],  # nothing closes 00:15-00:20
            METRIC_HEADER,
        )
    )
    bars, skipped = build_bars(klines, metrics, 300_000)
    assert bars.ts.tolist() == [T0]
    assert skipped == [
        {"ts": T0 - 300_000, "reason": "no klines"},
        {"ts": T0 + 300_000, "reason": "klines incomplete (4 of 5 minutes)"},
        {"ts": T0 + 600_000, "reason": "metrics row m.csv:5 has no open interest"},
        {"ts": T0 + 900_000, "reason": "no metrics row for the snapshot at 2024-01-01T00:20:00Z"},
    ]


def test_it_drops_a_whole_file_repeated_like_binances_2020_metrics(tmp_path):
    rows = [metric(f"2024-01-01 00:{m:02d}:00", oi=str(1000 + m)) for m in (5, 10)]
    metrics = read_metrics(write(tmp_path, "m.csv", rows + rows, METRIC_HEADER))
    assert metrics.duplicates == 2 and [row.line for row in metrics] == [2, 3]
    bars, skipped = build_bars(klines_rows(tmp_path, range(10)), metrics, 300_000)
    assert bars.open_interest.tolist() == [1005.0, 1010.0] and skipped == []


def test_it_names_both_lines_of_conflicting_metrics_rows(tmp_path):
    rows = [metric("2024-01-01 00:05:00"), metric("2024-01-01 00:05:00", oi="999")]
    with pytest.raises(EngineError) as err:
        read_metrics(write(tmp_path, "m.csv", rows, METRIC_HEADER))
    assert str(err.value) == (
        "m.csv:2 and m.csv:3: two metrics rows at 2024-01-01T00:05:00Z with different values"
    )


def test_it_builds_bars_from_the_fixture_files():
    bars, skipped = build_bars(read_klines(KLINES), read_metrics(METRICS), 300_000)
    assert len(bars) == 48
    assert skipped == [{"ts": T0 - 300_000, "reason": "no klines"}]
    assert bars.ts[-1] == T0 + 47 * 300_000


def test_it_refuses_a_zip_packed_by_an_unknown_method(tmp_path):
    path = tmp_path / "BTCUSDT-1m-2024-01-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-1m-2024-01-01.csv", "1704067200000,1,1,1,1,1,0,0,0,0,0,0\n")
    data = bytearray(path.read_bytes())
    for header in (b"PK\x03\x04", b"PK\x01\x02"):  # local and central headers: method 99
        at = data.find(header)
        offset = 8 if header == b"PK\x03\x04" else 10
        data[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(data))

    with pytest.raises(EngineError, match="uses compression method 99, which cannot be read"):
        list(read_klines(path))
