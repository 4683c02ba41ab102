"""Levels from a market's own data: support and resistance from fractal pivots on 1h and 4h bars,
the window's volume profile (point of control, 70 % value area, high- and low-volume nodes),
Wilder's RSI(14) on 1h and 4h closes with regular divergences, ATR(14)
(`maps.analytics.risk.hourly_atr`), and the confluence of these and the order book's walls
(`maps.analytics.orderbook`) with a liquidation cluster. Pure numpy, no Django.

Conventions: times are epoch ms (a bar's time is its open), prices in quote currency (USDT),
volumes in USD. `docs/model.md` ("Levels, order books and confluence") states every rule and
constant used here.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from maps.analytics.risk import hourly_atr

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
TIMEFRAMES = {"1h": HOUR_MS, "4h": 4 * HOUR_MS}
RSI_PERIOD = 14
ATR_PERIOD = 14
PIVOT_SPAN = 2  # a fractal: the extreme of the two bars either side (a five-bar fractal)
LEVEL_ATR_SHARE = 0.5  # pivots within half an hourly ATR of a level's first pivot join it
LEVEL_FALLBACK_PCT = 0.002  # the tolerance without an ATR: 0.2 % of the price
MIN_TOUCHES = 2
MAX_LEVELS = 12
VALUE_AREA_SHARE = 0.70
HVN_SHARE = 0.35  # a high-volume node holds at least 35 % of the smoothed profile's peak
HVN_MERGE_DEPTH = 0.85  # peaks whose trough stays above 85 % of the lower peak are one node
LVN_DEPTH = 0.6  # a low-volume node: the deepest trough between two nodes, under 60 % of both
SMOOTHING = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0
DIVERGENCE_BARS = (5, 60)  # the two pivots of a divergence lie 5 to 60 bars apart
DIVERGENCE_MIN_RSI = 3.0  # and their RSIs differ by at least 3 points
RECENT_DIVERGENCE_BARS = 12  # a divergence ending this few bars ago still counts
OVERBOUGHT, OVERSOLD = 70.0, 30.0
WALL_STRONG_MULTIPLE = 10.0  # a wall this many times the typical depth counts double
WALL_LONG_MS = HOUR_MS  # and so does one standing an hour or more
CONFLUENCE_ATR_SHARE = 0.25  # a level lines up with a cluster within a quarter ATR of its range
CONFLUENCE_FALLBACK_PCT = 0.001


class LevelsError(ValueError):
    """Input the level rules cannot use; the message names what is wrong."""


# Bars by timeframe.


@dataclass(frozen=True)
class Candles:
    """Bars grouped into UTC periods: `ts` is each period's open, `close` its last close."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    period_ms: int

    def __len__(self) -> int:
        return len(self.ts)


def candles(
    *,
    ts: np.ndarray,
    open: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    period_ms: int,
) -> Candles:
    """Steps grouped by `ts // period_ms` (UTC hours, 4-hour blocks from midnight): the first
    open, highest high, lowest low, last close and summed volume of each period. The last period
    may be incomplete: it is the one forming, as on an exchange's chart."""
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) and np.any(np.diff(ts) <= 0):
        raise LevelsError("bar times must be strictly increasing")
    if len(ts) == 0:
        empty = np.empty(0)
        return Candles(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty, period_ms)
    period = ts // period_ms
    starts = np.flatnonzero(np.r_[True, period[1:] != period[:-1]])
    last = np.r_[starts[1:] - 1, len(ts) - 1]
    return Candles(
        ts=period[starts] * period_ms,
        open=np.asarray(open, dtype=np.float64)[starts],
        high=np.maximum.reduceat(np.asarray(high, dtype=np.float64), starts),
        low=np.minimum.reduceat(np.asarray(low, dtype=np.float64), starts),
        close=np.asarray(close, dtype=np.float64)[last],
        volume=np.add.reduceat(np.asarray(volume, dtype=np.float64), starts),
        period_ms=period_ms,
    )


def atr(bars: Candles, *, period: int = ATR_PERIOD) -> float | None:
    """ATR(14) of these candles: `maps.analytics.risk.hourly_atr` (the mean true range of the last
    14 periods against the previous close). Each candle is its own group there, so the same
    function gives the 1h and the 4h ATR."""
    if len(bars) < 2:
        return None
    return hourly_atr(ts=bars.ts, high=bars.high, low=bars.low, close=bars.close, hours=period)


# RSI.


def wilder_rsi(close: np.ndarray, period: int = RSI_PERIOD) -> np.ndarray:
    """Wilder's RSI of a series of closes, NaN for the first `period` closes (the warm-up).

    The first average gain and loss are the plain means of the first `period` changes; then
    avg = (avg x (period - 1) + change) / period. RSI = 100 - 100 / (1 + avg_gain / avg_loss):
    100 when nothing was lost, 0 when nothing was gained, 50 when the price did not move at all.
    """
    close = np.asarray(close, dtype=np.float64)
    out = np.full(len(close), np.nan)
    if period < 1:
        raise LevelsError(f"the RSI period must be at least 1, not {period}")
    if len(close) <= period:
        return out
    change = np.diff(close)
    gain, loss = np.clip(change, 0.0, None), np.clip(-change, 0.0, None)
    up, down = float(gain[:period].mean()), float(loss[:period].mean())
    out[period] = _rsi(up, down)
    keep = (period - 1) / period
    for i in range(period, len(change)):
        up = up * keep + gain[i] / period
        down = down * keep + loss[i] / period
        out[i + 1] = _rsi(up, down)
    return out


def _rsi(up: float, down: float) -> float:
    if down == 0.0:
        return 50.0 if up == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + up / down)


# Pivots and support/resistance.


def fractal_pivots(
    high: np.ndarray, low: np.ndarray, span: int = PIVOT_SPAN
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the swing highs and swing lows.

    Bar i is a swing high when its high is above the highs of the `span` bars before it and not
    below those of the `span` bars after it (a flat top counts once, at its first bar); swing lows
    mirror it. The first and last `span` bars cannot be confirmed and are never pivots.
    """
    high = np.asarray(high, dtype=np.float64)
    low = np.asarray(low, dtype=np.float64)
    n = len(high)
    if n < 2 * span + 1:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    centre = np.arange(span, n - span)
    windows_h = sliding_window_view(high, 2 * span + 1)
    windows_l = sliding_window_view(low, 2 * span + 1)
    h, lo = high[centre], low[centre]
    is_high = np.all(windows_h[:, :span] < h[:, None], axis=1) & np.all(
        windows_h[:, span + 1 :] <= h[:, None], axis=1
    )
    is_low = np.all(windows_l[:, :span] > lo[:, None], axis=1) & np.all(
        windows_l[:, span + 1 :] >= lo[:, None], axis=1
    )
    return centre[is_high], centre[is_low]


@dataclass(frozen=True)
class Touch:
    """One swing point: the bar's open time, its extreme, whether a high, its timeframe(s)."""

    time: int
    price: float
    is_high: bool
    timeframes: tuple[str, ...]


def swing_touches(frames: dict[str, Candles], *, span: int = PIVOT_SPAN) -> list[Touch]:
    """The swing highs and lows of every timeframe, one touch per swing: a 4h pivot whose extreme
    is a 1h pivot's (same price, inside the 4h bar) is that same swing, seen on both."""
    by_extreme: dict[tuple[bool, float], list[Touch]] = {}
    for name in sorted(frames, key=lambda name: frames[name].period_ms):
        bars = frames[name]
        highs, lows = fractal_pivots(bars.high, bars.low, span)
        for indices, is_high in ((highs, True), (lows, False)):
            extremes = bars.high if is_high else bars.low
            for i in indices.tolist():
                start, price = int(bars.ts[i]), float(extremes[i])
                seen = by_extreme.setdefault((is_high, price), [])
                same = [k for k, t in enumerate(seen) if start <= t.time < start + bars.period_ms]
                if same:
                    old = seen[same[0]]
                    seen[same[0]] = Touch(old.time, price, is_high, (*old.timeframes, name))
                else:
                    seen.append(Touch(start, price, is_high, (name,)))
    touches = [touch for seen in by_extreme.values() for touch in seen]
    return sorted(touches, key=lambda t: (t.time, t.is_high))


def level_tolerance(atr_1h: float | None, last_close: float) -> float:
    """How close two swings must be to count as one level: half an hourly ATR (0.2 % of the
    price without one)."""
    if atr_1h is not None and math.isfinite(atr_1h) and atr_1h > 0:
        return LEVEL_ATR_SHARE * atr_1h
    return LEVEL_FALLBACK_PCT * last_close


def support_resistance(
    *,
    frames: dict[str, Candles],
    last_close: float,
    tolerance: float,
    min_touches: int = MIN_TOUCHES,
    max_levels: int = MAX_LEVELS,
) -> list[dict]:
    """Levels where price turned at least `min_touches` times, strongest first kept, by price.

    The swings (`swing_touches`) sorted by price are cut into groups no wider than `tolerance`
    (a group starts at its lowest swing); a group of at least `min_touches` swings is a level at
    the median of their extremes, its band spanning them. A level below the last close is
    support, one at or above it resistance. When more than `max_levels` qualify, those with the
    most touches (then the latest last touch) are kept.
    """
    if not (math.isfinite(last_close) and last_close > 0):
        raise LevelsError(f"last_close must be a positive price, not {last_close}")
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise LevelsError(f"tolerance must be a positive price distance, not {tolerance}")
    touches = sorted(swing_touches(frames), key=lambda t: (t.price, t.time))
    groups: list[list[Touch]] = []
    for touch in touches:
        if groups and touch.price - groups[-1][0].price <= tolerance:
            groups[-1].append(touch)
        else:
            groups.append([touch])
    levels = [_level(group, last_close) for group in groups if len(group) >= min_touches]
    levels.sort(key=lambda lv: (-lv["touches"], -lv["last_touch"], lv["price"]))
    return sorted(levels[:max_levels], key=lambda lv: lv["price"])


def _level(group: list[Touch], last_close: float) -> dict:
    prices = np.array([t.price for t in group])
    price = float(np.median(prices))
    timeframes = sorted({tf for t in group for tf in t.timeframes}, key=lambda tf: TIMEFRAMES[tf])
    return {
        "price": price,
        "kind": "support" if price < last_close else "resistance",
        "touches": len(group),
        "last_touch": max(t.time for t in group),
        "first_touch": min(t.time for t in group),
        "band_low": float(prices.min()),
        "band_high": float(prices.max()),
        "highs": sum(t.is_high for t in group),
        "lows": sum(not t.is_high for t in group),
        "timeframes": timeframes,
    }


# Volume profile.


def profile_edges(
    *, grid_start: float, grid_width: float, low: float, high: float, max_bins: int
) -> np.ndarray:
    """Edges on the map's grid (grid_start + k x grid_width) covering [low, high], runs of bins
    merged so that at most `max_bins` remain."""
    if not (grid_width > 0 and high >= low > 0 and max_bins >= 1):
        raise LevelsError("a profile needs a positive grid width and a price range")
    first = math.floor((low - grid_start) / grid_width)
    stop = max(math.ceil((high - grid_start) / grid_width), first + 1)
    if grid_start + stop * grid_width <= high:
        stop += 1
    k = max(1, math.ceil((stop - first) / max_bins))
    count = math.ceil((stop - first) / k)
    return grid_start + grid_width * (first + k * np.arange(count + 1))


@dataclass(frozen=True)
class Profile:
    """Volume (USD) by price: `volume[k]` traded in [edges[k], edges[k+1])."""

    edges: np.ndarray
    volume: np.ndarray
    poc_index: int
    value_low_index: int
    value_high_index: int
    nodes: list[dict] = field(default_factory=list)

    @property
    def poc(self) -> float:
        return float((self.edges[self.poc_index] + self.edges[self.poc_index + 1]) / 2)

    @property
    def value_area(self) -> dict:
        total = float(self.volume.sum())
        inside = float(self.volume[self.value_low_index : self.value_high_index + 1].sum())
        return {
            "low": float(self.edges[self.value_low_index]),
            "high": float(self.edges[self.value_high_index + 1]),
            "share": inside / total if total > 0 else 0.0,
        }


def volume_by_price(
    *, high: np.ndarray, low: np.ndarray, volume_usd: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """Each bar's USD volume spread evenly over its [low, high] range and summed per bin; a bar
    with high == low puts it all in the bin holding its price. Volume outside the edges is left
    out (callers give edges covering every bar)."""
    high = np.asarray(high, dtype=np.float64)
    low = np.asarray(low, dtype=np.float64)
    volume = np.asarray(volume_usd, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if np.any(high < low) or np.any(volume < 0) or not np.all(np.isfinite(volume)):
        raise LevelsError("bars need high >= low and a finite, non-negative volume")
    flat = high == low
    out = np.histogram(low[flat], bins=edges, weights=volume[flat])[0].astype(np.float64)
    lo, hi, vol = low[~flat], high[~flat], volume[~flat]
    if len(lo) == 0:
        return out
    slope = vol / (hi - lo)  # volume per unit of price over the bar's range
    origin = edges[0]  # prices from the first edge keep the sums' round-off small
    x = edges - origin
    cumulative = _ramps(x, lo - origin, slope) - _ramps(x, hi - origin, slope)
    return out + np.maximum(np.diff(cumulative), 0.0)


def _ramps(x: np.ndarray, starts: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """sum over i of slope_i x max(x - starts_i, 0), at each x."""
    order = np.argsort(starts, kind="stable")
    s, k = starts[order], slope[order]
    slopes = np.r_[0.0, np.cumsum(k)]
    weighted = np.r_[0.0, np.cumsum(k * s)]
    below = np.searchsorted(s, x, side="left")
    return x * slopes[below] - weighted[below]


def volume_profile(
    *, high: np.ndarray, low: np.ndarray, volume_usd: np.ndarray, edges: np.ndarray
) -> Profile:
    """The profile on `edges`, its point of control (the bin with the most volume, the lowest on
    a tie), its value area and its nodes."""
    volume = volume_by_price(high=high, low=low, volume_usd=volume_usd, edges=edges)
    poc = int(np.argmax(volume)) if len(volume) else 0
    low_i, high_i = value_area(volume, poc)
    return Profile(
        edges=np.asarray(edges, dtype=np.float64),
        volume=volume,
        poc_index=poc,
        value_low_index=low_i,
        value_high_index=high_i,
        nodes=volume_nodes(volume, np.asarray(edges, dtype=np.float64)),
    )


def value_area(volume: np.ndarray, poc: int, share: float = VALUE_AREA_SHARE) -> tuple[int, int]:
    """The bins [low, high] of the value area: from the point of control, add the larger of the
    next bin below and the next bin above (above on a tie) until `share` of the volume is in."""
    total = float(volume.sum())
    low = high = poc
    inside = float(volume[poc]) if len(volume) else 0.0
    while inside < share * total - 1e-9 * total:
        below = float(volume[low - 1]) if low > 0 else -1.0
        above = float(volume[high + 1]) if high + 1 < len(volume) else -1.0
        if below < 0 and above < 0:
            break
        if above >= below:
            high += 1
            inside += above
        else:
            low -= 1
            inside += below
    return low, high


def volume_nodes(volume: np.ndarray, edges: np.ndarray) -> list[dict]:
    """High-volume nodes (peaks of the profile smoothed over 5 bins holding at least 35 % of the
    highest; peaks whose trough between them stays above 85 % of the lower one are one node, at
    the higher) and low-volume nodes (the deepest trough between two neighbouring high-volume
    nodes, when under 60 % of both), by price."""
    if len(volume) < 3 or volume.max(initial=0) <= 0:
        return []
    smooth = np.convolve(volume, SMOOTHING, mode="same")
    padded = np.r_[-1.0, smooth, -1.0]
    peaks = np.flatnonzero((padded[1:-1] > padded[:-2]) & (padded[1:-1] >= padded[2:]))
    peaks = [int(p) for p in peaks if smooth[p] >= HVN_SHARE * smooth.max()]
    merged: list[int] = []
    for peak in peaks:
        if merged:
            trough = float(smooth[merged[-1] : peak + 1].min())
            if trough >= HVN_MERGE_DEPTH * min(smooth[merged[-1]], smooth[peak]):
                if smooth[peak] > smooth[merged[-1]]:
                    merged[-1] = peak
                continue
        merged.append(peak)
    centres = (edges[:-1] + edges[1:]) / 2
    nodes = [_node("hvn", p, centres, volume, smooth) for p in merged]
    for a, b in itertools.pairwise(merged):
        trough = a + int(np.argmin(smooth[a : b + 1]))
        if smooth[trough] < LVN_DEPTH * min(smooth[a], smooth[b]):
            nodes.append(_node("lvn", trough, centres, volume, smooth))
    return sorted(nodes, key=lambda n: n["price"])


def _node(kind: str, index: int, centres: np.ndarray, volume: np.ndarray, smooth) -> dict:
    return {
        "kind": kind,
        "index": index,
        "price": float(centres[index]),
        "volume": float(volume[index]),
        "smoothed": float(smooth[index]),
    }


# Divergences.


def divergences(
    bars: Candles, rsi: np.ndarray, *, timeframe: str, span: int = PIVOT_SPAN
) -> list[dict]:
    """Regular divergences between price and RSI at consecutive swings 5 to 60 bars apart:
    bullish when price makes a lower low and RSI a higher low, bearish when price makes a higher
    high and RSI a lower high, the RSIs at least 3 points apart. Swings whose RSI is still in its
    warm-up are skipped."""
    highs, lows = fractal_pivots(bars.high, bars.low, span)
    out = []
    for indices, kind in ((lows, "bullish"), (highs, "bearish")):
        prices = bars.low if kind == "bullish" else bars.high
        usable = [int(i) for i in indices if np.isfinite(rsi[i])]
        for a, b in itertools.pairwise(usable):
            if not DIVERGENCE_BARS[0] <= b - a <= DIVERGENCE_BARS[1]:
                continue
            lower = prices[b] < prices[a] if kind == "bullish" else prices[b] > prices[a]
            turn = rsi[b] - rsi[a] if kind == "bullish" else rsi[a] - rsi[b]
            if lower and turn >= DIVERGENCE_MIN_RSI:
                out.append(
                    {
                        "timeframe": timeframe,
                        "kind": kind,
                        "start": int(bars.ts[a]),
                        "end": int(bars.ts[b]),
                        "price_start": float(prices[a]),
                        "price_end": float(prices[b]),
                        "rsi_start": float(rsi[a]),
                        "rsi_end": float(rsi[b]),
                        "bars_ago": len(bars) - 1 - b,
                    }
                )
    return sorted(out, key=lambda d: (d["end"], d["kind"]))


# Confluence.


def confluence_tolerance(atr_1h: float | None, last_close: float) -> float:
    if atr_1h is not None and math.isfinite(atr_1h) and atr_1h > 0:
        return CONFLUENCE_ATR_SHARE * atr_1h
    return CONFLUENCE_FALLBACK_PCT * last_close


@dataclass(frozen=True)
class Context:
    """What a cluster is scored against."""

    levels: list[dict]
    poc: float | None
    value_low: float | None
    value_high: float | None
    nodes: list[dict]
    walls: list[dict]
    rsi: dict[str, float | None]  # the last RSI per timeframe
    divergences: list[dict]
    tolerance: float


def confluence(cluster: dict, context: Context) -> dict:
    """The confluence of one cluster: which of support/resistance, a volume node, an opposing
    wall and an RSI extreme line up with it, each with a weight (1, or 2 when strong), and their
    sum as the score.

    - S/R: the level with the most touches inside the cluster's range widened by the tolerance;
      weight 2 from 4 touches.
    - Volume: the point of control (weight 2), else a high-volume node or a value-area edge (1).
    - Wall: the largest standing wall of the side that would take the cluster's liquidations (a
      long cluster's forced sells hit bids, a short cluster's forced buys hit asks) in that range;
      weight 2 when it rests 10x the typical depth or has stood an hour.
    - RSI: toward the cluster (overbought, or a recent bearish divergence, for a long cluster
      below; oversold, or a bullish divergence, for a short cluster above); one point per
      timeframe, at most 2.
    """
    low = cluster["price_low"] - context.tolerance
    high = cluster["price_high"] + context.tolerance
    side = cluster["side"]
    reasons = [
        reason
        for reason in (
            _level_reason(context, low, high),
            _volume_reason(context, low, high),
            _wall_reason(context, side, low, high),
            _rsi_reason(context, side),
        )
        if reason is not None
    ]
    return {"score": sum(r["weight"] for r in reasons), "reasons": reasons}


def _level_reason(context: Context, low: float, high: float) -> dict | None:
    inside = [lv for lv in context.levels if low <= lv["price"] <= high]
    if not inside:
        return None
    level = max(inside, key=lambda lv: (lv["touches"], lv["last_touch"]))
    return {
        "kind": level["kind"],
        "weight": 2 if level["touches"] >= 4 else 1,
        "price": level["price"],
        "touches": level["touches"],
        "text": f"{level['kind']} {level['touches']} touches",
    }


def _volume_reason(context: Context, low: float, high: float) -> dict | None:
    if context.poc is not None and low <= context.poc <= high:
        return {"kind": "poc", "weight": 2, "price": context.poc, "text": "volume POC"}
    hvns = [n for n in context.nodes if n["kind"] == "hvn" and low <= n["price"] <= high]
    if hvns:
        node = max(hvns, key=lambda n: n["volume"])
        return {"kind": "hvn", "weight": 1, "price": node["price"], "text": "high-volume node"}
    for name, price in (
        ("value-area low", context.value_low),
        ("value-area high", context.value_high),
    ):
        if price is not None and low <= price <= high:
            kind = "val" if name.endswith("low") else "vah"
            return {"kind": kind, "weight": 1, "price": price, "text": name}
    return None


def _wall_reason(context: Context, side: str, low: float, high: float) -> dict | None:
    wanted = "bid" if side == "long" else "ask"
    walls = [
        w
        for w in context.walls
        if w["standing"]
        and w["side"] == wanted
        and w["price_high"] >= low
        and w["price_low"] <= high
    ]
    if not walls:
        return None
    wall = max(walls, key=lambda w: w["usd"])
    strong = wall["multiple"] >= WALL_STRONG_MULTIPLE or wall["stood_ms"] >= WALL_LONG_MS
    return {
        "kind": f"{wanted}_wall",
        "weight": 2 if strong else 1,
        "price": wall["price"],
        "usd": wall["usd"],
        "stood_ms": wall["stood_ms"],
        "before": bool(wall.get("before", False)),
        "text": f"{wanted} wall",
    }


def _rsi_reason(context: Context, side: str) -> dict | None:
    toward = "bearish" if side == "long" else "bullish"
    parts = []
    for timeframe, value in context.rsi.items():
        if value is None or not math.isfinite(value):
            continue
        if side == "long" and value >= OVERBOUGHT:
            parts.append((timeframe, value, "overbought"))
        elif side == "short" and value <= OVERSOLD:
            parts.append((timeframe, value, "oversold"))
        elif any(
            d["timeframe"] == timeframe
            and d["kind"] == toward
            and d["bars_ago"] <= RECENT_DIVERGENCE_BARS
            for d in context.divergences
        ):
            parts.append((timeframe, value, f"{toward} divergence"))
    if not parts:
        return None
    text = ", ".join(f"RSI {tf} {value:.0f} {why}" for tf, value, why in parts)
    return {
        "kind": "rsi",
        "weight": min(len(parts), 2),
        "rsi": {tf: value for tf, value, _ in parts},
        "text": text,
    }
