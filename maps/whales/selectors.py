"""Reads: a market's positioning inputs (its bars, the metrics rows closing their steps, its real
liquidations per step) and its stored positioning."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from maps.market_signals.selectors import market_liquidations_per_step
from maps.models import Bar, MetricsRow, PositioningSnapshot, datetime_to_ms, ms_to_datetime
from maps.whales.stats import Inputs

RATIO_FIELDS = ("open_interest", "long_short_ratio", "top_account_ratio", "top_position_ratio")


def market_positioning_inputs(
    *, market_id: int, step_ms: int, start: datetime, end: datetime
) -> Inputs:
    """The market's steps opening in [start, end), with the open interest and ratios of the
    metrics row whose snapshot closes each step (the bar's own where no row is stored) and the
    taker ratio of the row; NaN where a series has no value."""
    bars = list(
        Bar.objects.filter(market_id=market_id, time__gte=start, time__lt=end)
        .order_by("time")
        .values_list(
            "time",
            "close",
            "volume",
            "taker_buy_volume",
            "open_interest",
            "long_short_ratio",
            "funding_rate",
        )
    )
    ts = np.array([datetime_to_ms(b[0]) for b in bars], dtype=np.int64)
    column = lambda k: np.array([np.nan if b[k] is None else b[k] for b in bars], dtype=float)  # noqa: E731
    rows = _rows_by_step(market_id, step_ms, ts)
    oi = _merged(rows, ts, 0, column(4))
    real = market_liquidations_per_step(market_id=market_id, ts=ts, step_ms=step_ms)
    zeros = np.zeros(len(ts))
    return Inputs(
        ts=ts,
        close=column(1),
        volume=column(2),
        taker_buy_volume=column(3),
        open_interest=np.where(oi > 0, oi, np.nan),
        global_ratio=_merged(rows, ts, 1, column(5)),
        top_position_ratio=_merged(rows, ts, 3),
        top_account_ratio=_merged(rows, ts, 2),
        taker_ratio=_merged(rows, ts, 4),
        liquidations_long=zeros if real is None else real[0],
        liquidations_short=zeros if real is None else real[1],
        funding_rate=column(6),
        step_ms=step_ms,
    )


def _rows_by_step(market_id: int, step_ms: int, ts: np.ndarray) -> dict[int, tuple]:
    """{step open time: (oi, global, top account, top position, taker)} of the rows closing the
    steps of `ts` (a row's snapshot S closes the step [S - step, S))."""
    if not len(ts):
        return {}
    rows = MetricsRow.objects.filter(
        market_id=market_id,
        snapshot_at__gt=ms_to_datetime(int(ts[0])),
        snapshot_at__lte=ms_to_datetime(int(ts[-1]) + step_ms),
    ).values_list("snapshot_at", *RATIO_FIELDS, "taker_ratio")
    return {datetime_to_ms(r[0]) - step_ms: r[1:] for r in rows}


def _merged(rows: dict, ts: np.ndarray, k: int, fallback: np.ndarray | None = None) -> np.ndarray:
    values = np.full(len(ts), np.nan)
    for i, t in enumerate(ts.tolist()):
        row = rows.get(t)
        if row is not None and row[k] is not None:
            values[i] = row[k]
    if fallback is not None:
        values = np.where(np.isnan(values), fallback, values)
    return values


def positioning_stored(*, market_id: int, arrays: bool = True) -> PositioningSnapshot | None:
    """The market's stored positioning; without `arrays`, its series are not read (a page's
    panel and version need only the figures)."""
    stored = PositioningSnapshot.objects.filter(market_id=market_id)
    if not arrays:
        stored = stored.defer("data")
    return stored.first()
