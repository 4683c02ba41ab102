"""Reads: a market's real liquidations per step, and its stored signals and backtest."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from django.db import connection

from maps.models import (
    LiquidationEvent,
    MapSnapshot,
    MarketBacktest,
    MarketSignals,
    ms_to_datetime,
)

# Sources whose record starts when they were switched on: before their first event, the market's
# liquidations are unknown, not zero. Archives (binance-vision) and demo data cover their period.
LIVE_SOURCES = ("stream", "rest")


def market_liquidations_per_step(
    *, market_id: int, ts: np.ndarray, step_ms: int
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The market's real liquidations (USD) per step of `ts`, long and short, and the index of the
    first step they cover; None when it has no event in that span. An event belongs to the step
    whose open time is at or before it and within one step of it."""
    if not len(ts):
        return None
    start, end = ms_to_datetime(int(ts[0])), ms_to_datetime(int(ts[-1]) + step_ms)
    times, is_long, notional = _events(market_id, start, end)
    if not len(times):
        return None
    at = np.searchsorted(ts, times, side="right") - 1
    inside = (at >= 0) & (times < ts[np.maximum(at, 0)] + step_ms)
    series = [
        np.bincount(at[inside & side], weights=notional[inside & side], minlength=len(ts))
        for side in (is_long, ~is_long)
    ]
    covered = _covered_from(market_id, start, int(times.min()))
    return (
        series[0],
        series[1],
        int(np.searchsorted(ts, covered, side="right") - 1) if covered else 0,
    )


def _events(market_id: int, start: datetime, end: datetime) -> tuple[np.ndarray, ...]:
    """Event times (ms), sides and notionals, summed per millisecond and side in the database."""
    events = LiquidationEvent._meta.db_table
    if connection.vendor == "postgresql":
        moment = "(extract(epoch FROM time) * 1000)::bigint"
    else:
        moment = "CAST(ROUND((julianday(time) - 2440587.5) * 86400000) AS INTEGER)"
    query = (
        f"SELECT {moment}, side = 'long', sum(notional_usd) FROM {events} "
        "WHERE market_id = %s AND time >= %s AND time < %s GROUP BY 1, 2"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, [market_id, start, end])
        rows = cursor.fetchall()
    return (
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([bool(r[1]) for r in rows], dtype=bool),
        np.array([r[2] for r in rows], dtype=np.float64),
    )


def _covered_from(market_id: int, start: datetime, first_ms: int) -> int | None:
    """When the market's liquidation record starts inside the span and comes only from live
    sources, the time it starts; else None (the whole span is covered)."""
    events = LiquidationEvent.objects.filter(market_id=market_id)
    if events.filter(time__lt=start).exists():
        return None
    if events.filter(time__gte=start).exclude(source__in=LIVE_SOURCES).exists():
        return None
    return first_ms


def market_latest_snapshot(*, market_id: int) -> MapSnapshot | None:
    """The market's most recent snapshot of any window, without its arrays (what a signal
    document's times are read from when its own window has no map yet)."""
    return MapSnapshot.objects.filter(market_id=market_id).defer("data").order_by("-as_of").first()


def market_signals_stored(*, market_id: int) -> MarketSignals | None:
    return MarketSignals.objects.filter(market_id=market_id).first()


def market_backtest_stored(*, market_id: int) -> MarketBacktest | None:
    return MarketBacktest.objects.filter(market_id=market_id).first()
