"""Binance-style bulk files for the benchmarks: daily zips of 1-minute klines and 5-minute metrics.

The metrics rows are stamped as Binance stamps them (MODEL.md v2.1): a row stamped T before
2024-03-04 holds the snapshot taken at T, a row stamped from then on the snapshot taken at
T + 5 min, and `sum_open_interest_value / sum_open_interest` is the close at the snapshot time, so
the files pass the alignment check the way real ones do. Deterministic for a given seed.
"""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)
METRICS_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,"
    "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
    "count_long_short_ratio,sum_taker_long_short_vol_ratio"
)
STAMP_CHANGE = datetime(2024, 3, 4, tzinfo=UTC)
FIVE_MINUTES = timedelta(minutes=5)


def write_zip(path: Path, text: str) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(path.with_suffix(".csv").name, text)


def write_days(
    folder: Path, *, start: datetime, days: int, symbol: str = "BTCUSDT", seed: int = 2024
) -> tuple[int, int]:
    """Write `days` daily kline and metrics zips from `start` (a UTC midnight) into `folder`;
    returns (kline rows, metrics rows)."""
    rng = np.random.default_rng(seed)
    price, oi = 42_000.0, 80_000.0
    metric_rows = 0
    for day in range(days):
        begin = start + timedelta(days=day)
        begin_ms = int(begin.timestamp() * 1000)
        returns = rng.normal(0, 0.0006, 1440)
        closes = price * np.exp(np.cumsum(returns))
        opens = np.concatenate([[price], closes[:-1]])
        highs = np.maximum(opens, closes) * np.exp(np.abs(rng.normal(0, 0.0003, 1440)))
        lows = np.minimum(opens, closes) * np.exp(-np.abs(rng.normal(0, 0.0003, 1440)))
        volumes = 150 * np.exp(rng.normal(0, 0.4, 1440))
        taker = volumes * np.clip(rng.normal(0.5, 0.05, 1440), 0.05, 0.95)
        lines = [KLINE_HEADER]
        for i in range(1440):
            t = begin_ms + 60_000 * i
            o, h, lo, c = opens[i], highs[i], lows[i], closes[i]
            v, tb = volumes[i], taker[i]
            lines.append(
                f"{t},{o:.1f},{h:.1f},{lo:.1f},{c:.1f},{v:.3f},{t + 59_999},{v * c:.2f},"
                f"{int(v * 9)},{tb:.3f},{tb * c:.2f},0"
            )
        write_zip(folder / f"{symbol}-1m-{begin:%Y-%m-%d}.zip", "\n".join(lines) + "\n")
        price = round(float(closes[-1]), 1)
        rows = [METRICS_HEADER]
        for k in range(288):
            oi *= float(np.exp(rng.normal(0, 0.001)))
            stamp = begin + FIVE_MINUTES * k
            snapshot = stamp if stamp < STAMP_CHANGE else stamp + FIVE_MINUTES
            minute = int((snapshot - begin) / timedelta(minutes=1)) - 1
            close = round(float(closes[minute]), 1) if 0 <= minute < 1440 else price
            rows.append(
                f"{stamp:%Y-%m-%d %H:%M:%S},{symbol},{oi:.4f},{oi * close:.4f},1.5,1.4,"
                f"{1.2 + 0.1 * rng.standard_normal():.5f},1.0"
            )
        metric_rows += 288
        write_zip(folder / f"{symbol}-metrics-{begin:%Y-%m-%d}.zip", "\n".join(rows) + "\n")
    return days * 1440, metric_rows
