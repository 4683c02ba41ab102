"""The pages' charts: a result's arrays shaped for drawing, the chart JSON, and the page figures.

The pages draw the stored numbers with these changes, all made here and described in docs/api.md:
- price crop: only the bins from `CROP_PCT` below the window's lowest low to `CROP_PCT` above its
  highest high are drawn, widened to take in every cluster within `MAX_CROP_PCT` of the last close
  (the API serves the whole grid); the charts open framed on the window's range (`fit_range`);
- rows: when more than `MAX_ROWS` bins remain, runs of k adjacent bins are summed into one row;
- columns: at most `MAX_COLUMNS` heatmap columns, every k-th counted back from the last (each
  column is the state after its step, so the kept ones are exact), and estimated liquidations
  summed into at most `MAX_LIQ_BARS` time buckets;
- candles: the bars resampled to the first interval of `CANDLE_INTERVALS_MS` giving at most
  `MAX_CANDLES` candles over the window;
- real liquidations: summed per candle and price row into markers, of which the `MAX_MARKERS`
  largest holding at least `MIN_MARKER_SHARE` of the largest one are drawn; and summed per
  liquidation bucket beside the estimated ones.
Heatmap values travel as float32 binary buffers inside Bokeh's JSON (empty cells as NaN, the long
share of each cell as a byte), gzip-compressed once and cached by snapshot version. The figures
themselves are drawn by `maps.figures`.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from django.core.cache import cache

from maps.engine.types import Bars, Events, Result

T = TypeVar("T")
CHARTS_VERSION = 3
CROP_PCT = 0.12
MAX_CROP_PCT = 0.35
FIT_MARGIN = 0.15
FIT_MIN_PCT = 0.006
MAX_ROWS = 360
MAX_COLUMNS = 300
MAX_LIQ_BARS = 240
MAX_CANDLES = 240
MAX_MARKERS = 120
MIN_MARKER_SHARE = 0.01
CANDLE_INTERVALS_MS = tuple(
    minutes * 60_000 for minutes in (5, 15, 30, 60, 120, 240, 360, 720, 1440, 2880)
)
LOW_PERCENTILE = 40.0
HIGH_PERCENTILE = 99.7
TICK_MANTISSAS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
MAX_COLOUR_TICKS = 8
CACHE_SECONDS = 900
SIDES = ("both", "long", "short")


@dataclass(frozen=True)
class Candles:
    """OHLC and volume per period: open times (ms), prices, and volume in USD."""

    times: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume_usd: np.ndarray
    interval_ms: int

    @classmethod
    def empty(cls, interval_ms: int = 300_000) -> Candles:
        none = np.empty(0)
        return cls(np.empty(0, dtype=np.int64), none, none, none, none, none, interval_ms)

    @classmethod
    def from_bars(cls, bars: Bars, step_ms: int) -> Candles:
        return cls(
            bars.ts.astype(np.int64),
            bars.open,
            bars.high,
            bars.low,
            bars.close,
            bars.volume * bars.close,
            step_ms,
        )

    def __len__(self) -> int:
        return len(self.times)


@dataclass(frozen=True)
class Markers:
    """Real liquidations summed per (candle, price row, side): where and how much."""

    times: np.ndarray
    prices: np.ndarray
    notional: np.ndarray
    is_long: np.ndarray
    counts: np.ndarray

    @classmethod
    def empty(cls) -> Markers:
        none = np.empty(0)
        return cls(np.empty(0, dtype=np.int64), none, none, np.empty(0, dtype=bool), none)

    def __len__(self) -> int:
        return len(self.times)


@dataclass(frozen=True)
class PlotData:
    """What the charts draw: cropped, merged and thinned arrays (rows = price, low to high).

    `layers` carries the inputs of extra named layers (see `maps.figures.LAYERS`), so a new layer
    brings its own data without a new field here.
    """

    edges: np.ndarray
    col_times: np.ndarray
    col_width: float
    heat_long: np.ndarray
    heat_short: np.ndarray
    map_long: np.ndarray
    map_short: np.ndarray
    cum_long: np.ndarray
    cum_short: np.ndarray
    liq_times: np.ndarray
    liq_width: float
    liq_long: np.ndarray
    liq_short: np.ndarray
    real_long: np.ndarray
    real_short: np.ndarray
    candles: Candles
    markers: Markers
    last_close: float
    leverages: tuple[float, ...]
    fit: tuple[float, float]
    data_since: int
    step_ms: int
    has_real: bool = False
    layers: dict = field(default_factory=dict)


def candle_interval(step_ms: int, span_ms: int, limit: int = MAX_CANDLES) -> int:
    """The first candle interval (a whole number of steps) that gives at most `limit` candles."""
    for interval in CANDLE_INTERVALS_MS:
        if interval >= step_ms and interval % step_ms == 0 and span_ms / interval <= limit:
            return interval
    return max(step_ms, CANDLE_INTERVALS_MS[-1] // step_ms * step_ms)


def resample_candles(candles: Candles, interval_ms: int) -> Candles:
    """OHLC and summed volume per `interval_ms` period (aligned on UTC multiples of it)."""
    if not len(candles) or interval_ms <= candles.interval_ms:
        return candles
    period = candles.times // interval_ms
    starts = np.flatnonzero(np.r_[True, period[1:] != period[:-1]])
    ends = np.r_[starts[1:], len(period)] - 1
    return Candles(
        times=period[starts] * interval_ms,
        open=candles.open[starts],
        high=np.maximum.reduceat(candles.high, starts),
        low=np.minimum.reduceat(candles.low, starts),
        close=candles.close[ends],
        volume_usd=np.add.reduceat(candles.volume_usd, starts),
        interval_ms=interval_ms,
    )


def crop_range(
    edges: np.ndarray, candles: Candles, last_close: float, clusters: list[dict] = ()
) -> tuple[int, int]:
    """First and one-past-last bin drawn: the window's low-high range widened by CROP_PCT either
    side, and widened again to every cluster lying within MAX_CROP_PCT of the last close."""
    low = min(float(candles.low.min()), last_close) if len(candles) else last_close
    high = max(float(candles.high.max()), last_close) if len(candles) else last_close
    low, high = low * (1 - CROP_PCT), high * (1 + CROP_PCT)
    floor, ceiling = last_close * (1 - MAX_CROP_PCT), last_close * (1 + MAX_CROP_PCT)
    for cluster in clusters:
        if cluster["price_low"] >= floor:
            low = min(low, float(cluster["price_low"]))
        if cluster["price_high"] <= ceiling:
            high = max(high, float(cluster["price_high"]))
    bins = len(edges) - 1
    first = int(np.clip(np.searchsorted(edges, low, side="right") - 1, 0, bins - 1))
    stop = int(np.clip(np.searchsorted(edges, high, side="left"), first + 1, bins))
    return first, stop


def fit_range(candles: Candles, last_close: float) -> tuple[float, float]:
    """The price range the charts open on: the window's low to high plus a margin of FIT_MARGIN
    of that range (at least FIT_MIN_PCT of the price) either side."""
    low = min(float(candles.low.min()), last_close) if len(candles) else last_close
    high = max(float(candles.high.max()), last_close) if len(candles) else last_close
    margin = max((high - low) * FIT_MARGIN, last_close * FIT_MIN_PCT)
    return low - margin, high + margin


def merge_factor(rows: int, limit: int) -> int:
    return max(1, math.ceil(rows / limit))


def merge_rows(values: np.ndarray, k: int) -> np.ndarray:
    """Sum runs of k adjacent bins along the last axis (zero-padding the top run)."""
    if k == 1:
        return values
    pad = (-values.shape[-1]) % k
    widths = [(0, 0)] * (values.ndim - 1) + [(0, pad)]
    padded = np.pad(values, widths)
    return padded.reshape(*padded.shape[:-1], -1, k).sum(-1)


def merged_edges(edges: np.ndarray, k: int) -> np.ndarray:
    """Edges of the merged rows, extending the uniform grid where the top run was padded."""
    width = float(edges[1] - edges[0])
    rows = math.ceil((len(edges) - 1) / k)
    return float(edges[0]) + width * k * np.arange(rows + 1)


def thin_indices(count: int, limit: int) -> np.ndarray:
    """Every k-th index counted back from the last one, ascending, at most `limit` of them."""
    k = max(1, math.ceil(count / limit))
    return np.arange(count - 1, -1, -k)[::-1]


def bucket_sums(values: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
    """Sums over buckets of k consecutive steps aligned on the last step; (sums, k)."""
    k = max(1, math.ceil(len(values) / limit))
    pad = (-len(values)) % k
    padded = np.concatenate([np.zeros(pad), values])
    return padded.reshape(-1, k).sum(1), k


def events_in(events: Events | None, start: int, end: int) -> Events:
    """The events with start <= time < end (none when `events` is None)."""
    if events is None:
        none = np.empty(0)
        return Events(np.empty(0, dtype=np.int64), np.empty(0, dtype=bool), none, none)
    keep = (events.time >= start) & (events.time < end)
    return Events(
        events.time[keep], events.is_long[keep], events.price[keep], events.notional[keep]
    )


def real_buckets(events: Events, starts: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Real liquidated notional per bucket [start, start + width), long and short."""
    n = len(starts)
    if not n or not len(events):
        return np.zeros(n), np.zeros(n)
    at = np.searchsorted(starts, events.time, side="right") - 1
    inside = (at >= 0) & (events.time < starts[np.maximum(at, 0)] + width)
    out = []
    for side in (events.is_long, ~events.is_long):
        mask = inside & side
        out.append(np.bincount(at[mask], weights=events.notional[mask], minlength=n))
    return out[0], out[1]


def real_markers(
    events: Events, interval_ms: int, edges: np.ndarray, limit: int = MAX_MARKERS
) -> Markers:
    """The events summed per (period of `interval_ms`, price row of `edges`, side): the
    notional-weighted mean price, the sum and the count; the `limit` largest holding at least
    MIN_MARKER_SHARE of the largest, in time order. Times are the periods' middles."""
    rows = len(edges) - 1
    row = np.searchsorted(edges, events.price, side="right") - 1
    keep = (row >= 0) & (row < rows) & (events.notional > 0)
    if not keep.any():
        return Markers.empty()
    period = events.time[keep] // interval_ms
    key = (period * rows + row[keep]) * 2 + events.is_long[keep]
    groups, inverse = np.unique(key, return_inverse=True)
    notional = events.notional[keep]
    sums = np.bincount(inverse, weights=notional)
    prices = np.bincount(inverse, weights=notional * events.price[keep]) / sums
    counts = np.bincount(inverse)
    top = np.argsort(-sums, kind="stable")[:limit]
    top = np.sort(top[sums[top] >= MIN_MARKER_SHARE * sums.max()])
    return Markers(
        times=(groups[top] // 2 // rows) * interval_ms + interval_ms // 2,
        prices=prices[top],
        notional=sums[top],
        is_long=(groups[top] % 2).astype(bool),
        counts=counts[top].astype(float),
    )


def window_start_ms(result: Result) -> int:
    """The open time of the first modelled step (the first step of the data the window holds)."""
    start = result.report.get("window_start")
    if start is not None:
        return int(start)
    return int(result.heat_times[0]) if len(result.heat_times) else int(result.as_of)


def plot_data(
    result: Result, candles: Candles, events: Events | None = None, layers: dict | None = None
) -> PlotData:
    """Shape a result (one market's, or a coin's aggregate) and its candles and real
    liquidations for drawing."""
    since = window_start_ms(result)
    end = int(result.as_of) + result.step_ms
    candles = resample_candles(candles, candle_interval(result.step_ms, end - since))
    first, stop = crop_range(result.edges, candles, result.last_close, result.clusters)
    edges = result.edges[first : stop + 1]
    k = merge_factor(stop - first, MAX_ROWS)
    drawn = merged_edges(edges, k)
    cols = thin_indices(len(result.heat_times), MAX_COLUMNS)
    times = result.heat_times[cols] + result.step_ms
    col_width = float(np.median(np.diff(times))) if len(times) > 1 else float(result.step_ms)
    cum_long = result.cum_long[first:stop][::k]
    cum_short = result.cum_short[first:stop][k - 1 :: k]
    if len(cum_short) < len(cum_long):
        cum_short = np.append(cum_short, result.cum_short[stop - 1])
    liq_long, step_k = bucket_sums(result.liq_long.sum(1), MAX_LIQ_BARS)
    liq_short, _ = bucket_sums(result.liq_short.sum(1), MAX_LIQ_BARS)
    last_liq = int(result.liq_times[-1]) if len(result.liq_times) else int(result.as_of)
    liq_width = float(result.step_ms * step_k)
    liq_times = last_liq - result.step_ms * step_k * np.arange(len(liq_long) - 1, -1, -1)
    real = events_in(events, since, end)
    real_long, real_short = real_buckets(real, liq_times, liq_width)
    return PlotData(
        edges=drawn,
        col_times=times,
        col_width=col_width,
        heat_long=merge_rows(result.heat_long[cols, first:stop], k).T.astype(np.float32),
        heat_short=merge_rows(result.heat_short[cols, first:stop], k).T.astype(np.float32),
        map_long=merge_rows(result.map_long[:, first:stop], k),
        map_short=merge_rows(result.map_short[:, first:stop], k),
        cum_long=cum_long,
        cum_short=cum_short,
        liq_times=liq_times,
        liq_width=liq_width,
        liq_long=liq_long,
        liq_short=liq_short,
        real_long=real_long,
        real_short=real_short,
        candles=candles,
        markers=real_markers(real, candles.interval_ms, drawn),
        last_close=float(result.last_close),
        leverages=tuple(float(t.leverage) for t in result.params.tiers),
        fit=fit_range(candles, float(result.last_close)),
        data_since=since,
        step_ms=int(result.step_ms),
        has_real=events is not None and len(events) > 0,
        layers=dict(layers or {}),
    )


def heat_values(data: PlotData, side: str) -> np.ndarray:
    """The heatmap cells of one side or both, empty cells as NaN (drawn as "nothing")."""
    if side == "long":
        values = data.heat_long.copy()
    elif side == "short":
        values = data.heat_short.copy()
    else:
        values = data.heat_long + data.heat_short
    values[values <= 0] = np.nan
    return values


def long_share(data: PlotData) -> np.ndarray:
    """Each cell's long share of its notional as a byte (0: all shorts, 255: all longs)."""
    total = data.heat_long.astype(np.float64) + data.heat_short
    share = np.divide(data.heat_long, total, out=np.zeros(total.shape), where=total > 0)
    return np.round(share * 255).astype(np.uint8)


def colour_limits(values: np.ndarray) -> tuple[float, float]:
    """Log colour scale limits from percentiles of the non-zero cells: the thin spread of small
    positions stays dark, clusters stand out in bright yellow, and a few huge cells do not
    flatten the rest."""
    nonzero = values[values > 0]
    if not nonzero.size:
        return 1.0, 10.0
    low, high = np.percentile(nonzero, [LOW_PERCENTILE, HIGH_PERCENTILE])
    high = max(float(high), float(low) * 10)
    return max(float(low), high / 1e5), high


def colour_ticks(low: float, high: float) -> list[float]:
    """Round values (1, 1.5, 2, 3, 5, 7 x 10^n) across [low, high], at most MAX_COLOUR_TICKS and
    spread evenly on the log scale; `static/js/charts.js` does the same when the sensitivity
    changes."""
    if not (low > 0 and high > low):
        return []
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    values = [m * 10.0**e for e in range(first, last + 1) for m in TICK_MANTISSAS]
    inside = [v for v in values if low <= v <= high]
    if len(inside) <= MAX_COLOUR_TICKS:
        return inside
    picks = np.linspace(0, len(inside) - 1, MAX_COLOUR_TICKS).round().astype(int)
    return [inside[i] for i in sorted(set(picks.tolist()))]


def price_decimals(last_close: float) -> int:
    """Decimals that suit this price level (as `maps.formatting.price` writes it)."""
    if last_close >= 10_000:
        return 1
    if last_close >= 10:
        return 2
    if last_close >= 0.1:
        return 4
    return 8


def chart_json(
    result: Result,
    candles: Candles,
    side: str,
    title: str,
    events: Events | None = None,
    layers: dict | None = None,
) -> bytes:
    """The charts as Bokeh's embed JSON (json_item), gzip-compressed."""
    from bokeh.embed import json_item

    from maps.figures import chart_document

    layout = chart_document(plot_data(result, candles, events, layers), side, title)
    text = json.dumps(json_item(layout), separators=(",", ":"))
    return gzip.compress(text.encode(), compresslevel=6)


@dataclass(frozen=True)
class StepLiquidation:
    time_ms: int
    long: float
    short: float


@dataclass(frozen=True)
class RealLiquidation:
    """One real liquidation order, as the feed lists it."""

    time_ms: int
    side: str
    price: float
    notional: float


@dataclass(frozen=True)
class Summary:
    """Figures for the page's text: totals and the largest estimated liquidation steps, and the
    real liquidations reported over the same window."""

    active_long: float
    active_short: float
    liquidated_long: float
    liquidated_short: float
    largest_steps: tuple[StepLiquidation, ...]
    real_long: float = 0.0
    real_short: float = 0.0
    real_count: int = 0
    largest_real: tuple[RealLiquidation, ...] = ()

    @property
    def has_real(self) -> bool:
        return self.real_count > 0


def result_summary(result: Result, top: int = 6, events: Events | None = None) -> Summary:
    """Active notional per side now, liquidated over the window, and the `top` steps with the
    largest estimated liquidations (newest first); with `events`, the real liquidations over the
    window's steps: totals per side and the 10 largest orders (newest first)."""
    long = result.liq_long.sum(1)
    short = result.liq_short.sum(1)
    total = long + short
    order = np.argsort(-total, kind="stable")[:top]
    order = order[total[order] > 0]
    order = order[np.argsort(-result.liq_times[order])]
    steps = tuple(
        StepLiquidation(int(result.liq_times[i]), float(long[i]), float(short[i])) for i in order
    )
    start = int(result.liq_times[0]) if len(result.liq_times) else window_start_ms(result)
    real = events_in(events, start, int(result.as_of) + result.step_ms)
    return Summary(
        active_long=float(result.map_long.sum()),
        active_short=float(result.map_short.sum()),
        liquidated_long=float(long.sum()),
        liquidated_short=float(short.sum()),
        largest_steps=steps,
        real_long=float(real.notional[real.is_long].sum()),
        real_short=float(real.notional[~real.is_long].sum()),
        real_count=len(real),
        largest_real=largest_real(real, 10),
    )


def largest_real(events: Events, top: int) -> tuple[RealLiquidation, ...]:
    """The `top` largest orders by notional, newest first."""
    order = np.argsort(-events.notional, kind="stable")[:top]
    order = order[np.argsort(-events.time[order], kind="stable")]
    return tuple(
        RealLiquidation(
            int(events.time[i]),
            "long" if events.is_long[i] else "short",
            float(events.price[i]),
            float(events.notional[i]),
        )
        for i in order
    )


def cached(key: str, build: Callable[[], T]) -> T:
    """A value derived from stored data, under a `key` that names the data's version."""
    full_key = f"pages:v{CHARTS_VERSION}:{key}"
    value = cache.get(full_key)
    if value is None:
        value = build()
        cache.set(full_key, value, CACHE_SECONDS)
    return value
