"""Writes: order books (one a minute per market, binned and stored compactly, the rolling window
pruned) and, per map snapshot, its levels and each cluster's confluence.

A snapshot's levels read its market's bars (the window, and at least a week for the swings and
the RSI's warm-up) and the order books of the last day before its end, hand the arithmetic to
`maps.analytics.levels` and `maps.analytics.orderbook`, and are stored once per snapshot version.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from maps import pages as map_pages
from maps.analytics import levels as lv
from maps.analytics import orderbook as ob
from maps.connectors import connector_for
from maps.levels.books import order_book_fetch
from maps.levels.selectors import (
    PriceBars,
    book_history,
    common_edges,
    depth_encode,
    levels_stored,
    market_book_grid,
    market_book_rows,
    market_price_bars,
    mid_bin,
)
from maps.models import (
    WINDOWS,
    LevelsSnapshot,
    MapSnapshot,
    Market,
    OrderBookSnapshot,
    ms_to_datetime,
)

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
SWING_LOOKBACK_MS = 7 * DAY_MS  # swings and RSI read at least a week, whatever the window
RSI_WARMUP_BARS = 300  # 4h bars read before the lookback: the RSI has settled (< 1e-6) by then
WALL_LOOKBACK_MS = DAY_MS  # how far back a standing wall is followed
PROFILE_MAX_BINS = 240
LEVELS_VERSION = 1  # bump when a rule or the stored shape changes: stored levels are remade
CLUSTER_KEY = ("side", "price_low", "price_high")  # what a stored confluence names its cluster by


# Order books.


def orderbook_store(
    *, market: Market, book: ob.Book, contract_size: float = 1.0, source: str = "rest"
) -> OrderBookSnapshot:
    """Bin the book on the market's grid (±5 % of its mid) and store it as the book of the minute
    it was taken in, replacing one stored for that minute."""
    anchor, width = market_book_grid(market=market, mid=book.mid)
    edges = ob.book_grid(mid=book.mid, width=width, anchor=anchor)
    binned = ob.book_bins(book, edges=edges, contract_size=contract_size)
    minute = book.time_ms - book.time_ms % ob.MINUTE_MS
    split = mid_bin(mid=binned.mid, start=float(edges[0]), width=width, count=len(edges) - 1)
    stored, _ = OrderBookSnapshot.objects.update_or_create(
        market=market,
        time=ms_to_datetime(minute),
        defaults={
            "mid": binned.mid,
            "best_bid": binned.best_bid,
            "best_ask": binned.best_ask,
            "bin_start": float(edges[0]),
            "bin_width": width,
            "bin_count": len(edges) - 1,
            "depth": depth_encode(binned.bids, binned.asks, split),
            "reach_bid": binned.reach_bid,
            "reach_ask": binned.reach_ask,
            "source": source,
        },
    )
    return stored


def market_orderbook_snapshot(*, market: Market) -> OrderBookSnapshot:
    """Fetch the market's order book from its exchange and store it. A refused book raises
    BookError; network and rate-limit errors pass through."""
    connector = connector_for(market.exchange.ccxt_id)
    fetched = order_book_fetch(connector, market.ccxt_symbol or market.symbol)
    return orderbook_store(
        market=market, book=fetched.book, contract_size=fetched.contract_size, source="rest"
    )


def orderbooks_prune(*, days: int | None = None, now=None) -> int:
    """Delete the books older than the rolling window (LIQSITE_ORDERBOOK_DAYS); returns how many.
    Demo books are kept while their market holds demo data: nothing renews them."""
    days = days or settings.LIQSITE_ORDERBOOK_DAYS
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = OrderBookSnapshot.objects.filter(time__lt=cutoff).exclude(source="demo")
    deleted, _ = old.delete()
    return deleted


# Levels and confluence.


def levels_version(snapshot: MapSnapshot) -> str:
    """What stored levels were made from: the snapshot's version and the rules' (LEVELS_VERSION)."""
    return f"{map_pages.snapshot_version(snapshot)}~L{LEVELS_VERSION}"


def levels_for(*, snapshot: MapSnapshot, inputs: Inputs | None = None) -> LevelsSnapshot:
    """The snapshot's levels, computed and stored the first time they are asked for (again when
    the snapshot or the rules change); `inputs` read for another window may be reused. A replayed
    snapshot's levels are computed and returned unsaved."""
    version = levels_version(snapshot)
    if snapshot.pk is None:  # a replayed map: its levels are drawn, never stored over today's
        return LevelsSnapshot(
            market=snapshot.market,
            window=snapshot.window,
            snapshot_version=version,
            as_of=snapshot.as_of,
            computed_at=timezone.now(),
            **levels_values(snapshot, inputs),
        )
    stored = levels_stored(market=snapshot.market, window=snapshot.window)
    if stored is not None and stored.snapshot_version == version:
        return stored
    values = levels_values(snapshot, inputs)
    try:
        with transaction.atomic():
            stored, _ = LevelsSnapshot.objects.update_or_create(
                market=snapshot.market,
                window=snapshot.window,
                defaults={
                    "snapshot_version": version,
                    "as_of": snapshot.as_of,
                    "computed_at": timezone.now(),
                    **values,
                },
            )
    except IntegrityError:  # another request stored it first
        stored = levels_stored(market=snapshot.market, window=snapshot.window)
    return stored


def levels_confluence(*, snapshot: MapSnapshot) -> list[dict]:
    """Only the stored confluence of the snapshot's clusters (what the proximity widget polls for:
    the rest of the levels is not read), computed first if needed."""
    stored = (
        LevelsSnapshot.objects.filter(market=snapshot.market, window=snapshot.window)
        .only("snapshot_version", "confluence")
        .first()
    )
    if stored is not None and stored.snapshot_version == levels_version(snapshot):
        return stored.confluence
    return levels_for(snapshot=snapshot).confluence


@dataclass(frozen=True)
class Span:
    """The times a snapshot's levels read: the window, the swing lookback, the end."""

    window_start: int
    lookback_start: int
    end: int


def snapshot_span(snapshot: MapSnapshot) -> Span:
    step = snapshot.market.step_ms
    end = int(snapshot.as_of.timestamp() * 1000) + step
    window_start = int(snapshot.report.get("window_start") or end - WINDOWS[snapshot.window])
    lookback = min(window_start, end - SWING_LOOKBACK_MS)
    return Span(window_start, lookback, end)


@dataclass(frozen=True)
class Inputs:
    """What a snapshot's levels read: the bars from `start` and the walls standing at `end`. The
    windows of one market end together, so the longest window's inputs serve them all."""

    market_id: int
    start: int
    end: int
    bars: PriceBars
    walls: list[dict]

    def serves(self, snapshot: MapSnapshot, start: int, end: int) -> bool:
        return self.market_id == snapshot.market_id and self.start <= start and self.end == end


def levels_inputs(snapshot: MapSnapshot) -> Inputs:
    span = snapshot_span(snapshot)
    start = span.lookback_start - RSI_WARMUP_BARS * lv.TIMEFRAMES["4h"]
    bars = market_price_bars(
        market_id=snapshot.market_id, start=ms_to_datetime(start), end=ms_to_datetime(span.end)
    )
    walls = standing_walls(market_id=snapshot.market_id, end=span.end)
    return Inputs(snapshot.market_id, start, span.end, bars, walls)


def levels_values(snapshot: MapSnapshot, inputs: Inputs | None = None) -> dict:
    """Every field of LevelsSnapshot for the snapshot (see docs/model.md)."""
    span = snapshot_span(snapshot)
    start = span.lookback_start - RSI_WARMUP_BARS * lv.TIMEFRAMES["4h"]
    if inputs is None or not inputs.serves(snapshot, start, span.end):
        inputs = levels_inputs(snapshot)
    bars = _bars_since(inputs.bars, start)
    walls = inputs.walls
    frames = {tf: _candles(bars, period) for tf, period in lv.TIMEFRAMES.items()}
    recent = {tf: _since(frame, span.lookback_start) for tf, frame in frames.items()}
    atr_1h, atr_4h = lv.atr(recent["1h"]), lv.atr(recent["4h"])
    close = snapshot.last_close
    levels = (
        lv.support_resistance(
            frames=recent, last_close=close, tolerance=lv.level_tolerance(atr_1h, close)
        )
        if len(bars.ts)
        else []
    )
    rsi = {tf: lv.wilder_rsi(frame.close) for tf, frame in frames.items()}
    divergences = [
        d
        for tf, frame in frames.items()
        for d in lv.divergences(frame, rsi[tf], timeframe=tf)
        if d["end"] >= span.lookback_start
    ]
    profile = _profile(snapshot, bars, span.window_start)
    context = lv.Context(
        levels=levels,
        poc=profile.poc if profile is not None else None,
        value_low=profile.value_area["low"] if profile is not None else None,
        value_high=profile.value_area["high"] if profile is not None else None,
        nodes=profile.nodes if profile is not None else [],
        walls=walls,
        rsi={tf: _last(values) for tf, values in rsi.items()},
        divergences=divergences,
        tolerance=lv.confluence_tolerance(atr_1h, close),
    )
    return {
        "atr_1h": atr_1h,
        "atr_4h": atr_4h,
        "support_resistance": levels,
        "volume_profile": profile_json(profile),
        "rsi": {tf: rsi_json(frames[tf], rsi[tf], span.window_start) for tf in frames},
        "divergences": divergences,
        "walls": walls,
        "confluence": [
            {**{k: cluster[k] for k in CLUSTER_KEY}, **lv.confluence(cluster, context)}
            for cluster in snapshot.clusters
        ],
    }


def _bars_since(bars: PriceBars, start: int) -> PriceBars:
    keep = bars.ts >= start
    if keep.all():
        return bars
    return PriceBars(
        bars.ts[keep],
        bars.open[keep],
        bars.high[keep],
        bars.low[keep],
        bars.close[keep],
        bars.volume[keep],
    )


def _candles(bars: PriceBars, period_ms: int) -> lv.Candles:
    typical = (bars.high + bars.low + bars.close) / 3
    return lv.candles(
        ts=bars.ts,
        open=bars.open,
        high=bars.high,
        low=bars.low,
        close=bars.close,
        volume=bars.volume * typical,
        period_ms=period_ms,
    )


def _since(frame: lv.Candles, start: int) -> lv.Candles:
    keep = frame.ts >= start - start % frame.period_ms
    return lv.Candles(
        frame.ts[keep],
        frame.open[keep],
        frame.high[keep],
        frame.low[keep],
        frame.close[keep],
        frame.volume[keep],
        frame.period_ms,
    )


def _last(values: np.ndarray) -> float | None:
    return float(values[-1]) if len(values) and math.isfinite(values[-1]) else None


def _profile(snapshot: MapSnapshot, bars: PriceBars, start: int) -> lv.Profile | None:
    keep = bars.ts >= start
    if not keep.any():
        return None
    high, low = bars.high[keep], bars.low[keep]
    edges = lv.profile_edges(
        grid_start=snapshot.bin_start,
        grid_width=snapshot.bin_width,
        low=float(low.min()),
        high=float(high.max()),
        max_bins=PROFILE_MAX_BINS,
    )
    typical = (high + low + bars.close[keep]) / 3
    return lv.volume_profile(
        high=high, low=low, volume_usd=bars.volume[keep] * typical, edges=edges
    )


def profile_json(profile: lv.Profile | None) -> dict:
    if profile is None:
        return {}
    return {
        "edges": profile.edges.tolist(),
        "volume": profile.volume.tolist(),
        "poc": profile.poc,
        "poc_index": profile.poc_index,
        "value_area": profile.value_area,
        "nodes": profile.nodes,
    }


def rsi_json(frame: lv.Candles, values: np.ndarray, start: int) -> dict:
    """The RSI at each period of the window (times are the periods' opens, the value is at the
    period's last close) after the warm-up, and the latest value."""
    keep = (frame.ts + frame.period_ms > start) & np.isfinite(values)
    return {
        "times": frame.ts[keep].tolist(),
        "values": [round(float(v), 4) for v in values[keep]],
        "last": _last(values),
    }


def standing_walls(*, market_id: int, end: int) -> list[dict]:
    """The walls standing in the market's last book before `end` (if it is at most a few minutes
    old), followed back over the day before it (`before`: already standing a day ago)."""
    rows = market_book_rows(
        market_id=market_id,
        start=ms_to_datetime(end - WALL_LOOKBACK_MS),
        end=ms_to_datetime(end),
    )
    if not len(rows) or end - int(rows.times[-1]) > ob.WALL_GAP_MS + ob.MINUTE_MS:
        return []
    history = book_history(rows, common_edges(rows))
    first = int(rows.times[0])
    walls = [{**w, "before": w["appeared"] == first} for w in ob.book_walls(history)]
    return sorted((w for w in walls if w["standing"]), key=lambda w: -w["usd"])
