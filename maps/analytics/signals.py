"""Signals read off the liquidation map, and a backtest of the magnets against chance.

Pure numpy beside the engine (no Django); docs/model.md ("Signals" and "Backtest") states every
rule and constant below in words.

- The book: the model run once over a span of bars and read as a *sliding window*: the map at
  step t, and the liquidations of step t, are exactly those of an engine run of the map's window
  ending at t (a group counts while it was opened inside that window).
- Cascades: runs of steps whose liquidations (real or estimated) are extreme against a robust
  baseline of the market's own trailing week.
- Sweeps: a cluster of the hourly map that price trades through; a fake breakout when price
  closes back on the side it came from soon after.
- Reversals: the checklist a trader waits for after a cascade, each reason true or false.
- Backtest: questions asked of the hourly maps over the market's history, each rate beside the
  rate chance gives on the same market, with a bootstrap interval and the number of cases.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from maps.engine.clusters import (
    SIGNIFICANT_SHARE,
    cluster_spans_rows,
    distance_pct,
    proximity_from_clusters,
    rank_clusters,
)
from maps.engine.simulate import (
    MAX_BINS,
    Groups,
    Path,
    bin_index,
    build_path,
    open_groups,
    weighted,
)
from maps.engine.types import Bars, EngineError, Params

HOUR_MS = 3_600_000
SIDES = ("long", "short")
DAY_MS = 86_400_000


# The book: one run of the model, read as the map of a sliding window.


@dataclass(frozen=True)
class Book:
    """The model over every step of `bars`; `first[t]` is the index of the first step of the
    window of `window_ms` that ends with step t (it only sets open interest)."""

    bars: Bars
    params: Params
    path: Path
    sides: tuple[Groups, Groups]
    first: np.ndarray
    log_weight: tuple[np.ndarray, np.ndarray]  # per group: log(base) - G[opening step]

    @property
    def n(self) -> int:
        return self.path.n

    @property
    def step_ms(self) -> int:
        return self.params.step_ms


@dataclass(frozen=True)
class MomentMap:
    """The map after step `index` (open time `time`): its clusters and proximity, as the engine
    reports them."""

    index: int
    time: int
    close: float
    clusters: list[dict]
    proximity: dict


def book_build(bars: Bars, params: Params) -> Book:
    """Run the model once over all the bars; params.window_ms is the window each map reads."""
    if len(bars) < 2:
        raise EngineError("the book needs at least 2 steps")
    span = int(bars.ts[-1] - bars.ts[0]) + 2 * params.step_ms
    whole = replace(params, window_ms=span, max_columns=1)
    path = build_path(bars, whole)
    weights = params.weights
    tiers = np.flatnonzero(weights > 0)
    sides = []
    for is_long in (True, False):
        groups = open_groups(path, whole, is_long, tiers)
        base = weighted(groups, weights)
        sides.append(groups.subset(base > 0, base))
    start = path.ts + params.step_ms - params.window_ms
    first = np.searchsorted(path.ts, start, side="left")
    log_weight = tuple(np.log(g.base) - path.log_growth[g.step] for g in sides)
    return Book(bars, params, path, (sides[0], sides[1]), first, (log_weight[0], log_weight[1]))


def book_liquidations(book: Book) -> tuple[np.ndarray, np.ndarray]:
    """Estimated liquidations (USD) of each step, long and short: what the map's window ending
    at that step liquidates on it (0 for step 0)."""
    path, n = book.path, book.n
    out = []
    for groups in book.sides:
        dead = (groups.death < n) & (groups.death <= groups.end)
        death, opened = groups.death[dead], groups.step[dead]
        inside = opened > book.first[death]
        death, opened = death[inside], opened[inside]
        growth = path.log_growth
        amount = groups.base[dead][inside] * np.exp(growth[death - 1] - growth[opened])
        out.append(np.bincount(death, weights=amount, minlength=n))
    return out[0], out[1]


def book_map(book: Book, t: int) -> MomentMap:
    return book_maps(book, np.array([t]))[0]


MAP_ROWS = 64
MAP_CELLS = 4_000_000


def book_maps(book: Book, steps: np.ndarray) -> list[MomentMap]:
    """The map after each of these steps: the groups of the window ending there still alive,
    binned on the grid that run would use (an edge on the step's close, bin_bps wide), and its
    significant clusters (at least SIGNIFICANT_SHARE of their side) and proximity, exactly as
    the engine finds them. Maps are built MAP_ROWS at a time, one numpy pass per side."""
    steps = np.asarray(steps, dtype=np.int64)
    out: list[MomentMap] = []
    for a in range(0, len(steps), MAP_ROWS):
        out.extend(_maps_chunk(book, steps[a : a + MAP_ROWS]))
    return out


def _maps_chunk(book: Book, steps: np.ndarray) -> list[MomentMap]:
    path = book.path
    close = path.close[steps]
    width = close * book.params.bin_bps / 1e4
    sides = [
        _chunk_clusters(book, groups, side, steps, close, width)
        for groups, side in zip(book.sides, SIDES, strict=True)
    ]
    maps = []
    for r, t in enumerate(steps.tolist()):
        clusters = rank_clusters(sides[0][r], sides[1][r])
        last = float(close[r])
        maps.append(
            MomentMap(t, int(path.ts[t]), last, clusters, proximity_from_clusters(clusters, last))
        )
    return maps


def _chunk_clusters(
    book: Book,
    groups: Groups,
    side: str,
    steps: np.ndarray,
    close: np.ndarray,
    width: np.ndarray,
) -> list[list[dict]]:
    """Per step, the side's significant clusters, with the engine's rules and prices."""
    growth = book.path.log_growth
    log_weight = book.log_weight[SIDES.index(side)]
    rows, cells, values = [], [], []
    for r, t in enumerate(steps.tolist()):
        lo = int(np.searchsorted(groups.step, book.first[t], side="right"))
        hi = int(np.searchsorted(groups.step, t, side="right"))
        alive = lo + np.flatnonzero(groups.end[lo:hi] > t)
        values.append(np.exp(log_weight[alive] + growth[t]))
        cells.append(bin_index(groups.lp[alive], float(close[r]), float(width[r])))
        rows.append(np.full(len(alive), r))
    row, cell, value = np.concatenate(rows), np.concatenate(cells), np.concatenate(values)
    found: list[list[dict]] = [[] for _ in steps]
    if not len(value):
        return found
    low, high = min(int(cell.min()), 0), max(int(cell.max()), -1)
    bins = high - low + 1
    if len(steps) == 1 and bins > MAX_BINS:
        raise EngineError(
            f"the price grid would need {bins} bins (more than {MAX_BINS}); raise bin_bps"
        )
    if len(steps) > 1 and (len(steps) * bins > MAP_CELLS or bins > MAX_BINS):
        half = len(steps) // 2
        return _chunk_clusters(book, groups, side, steps[:half], close[:half], width[:half]) + (
            _chunk_clusters(book, groups, side, steps[half:], close[half:], width[half:])
        )
    x = np.bincount(row * bins + (cell - low), weights=value, minlength=len(steps) * bins)
    x = x.reshape(len(steps), bins)
    rows, starts, ends, notional = cluster_spans_rows(x, (x > 0).sum(1))
    total = x.sum(1)
    for r, s0, e0, usd in zip(
        rows.tolist(), starts.tolist(), ends.tolist(), notional.tolist(), strict=True
    ):
        share = usd / float(total[r])
        if share < SIGNIFICANT_SHARE:
            continue
        c, w = float(close[r]), float(width[r])
        peak = s0 + int(np.argmax(x[r, s0 : e0 + 1])) + low
        price_low, price_high = c + (s0 + low) * w, c + (e0 + 1 + low) * w
        found[r].append(
            {
                "side": side,
                "price_low": price_low,
                "price_high": price_high,
                "peak_price": ((c + peak * w) + (c + (peak + 1) * w)) / 2,
                "notional_usd": usd,
                "share": share,
                "distance_pct": distance_pct(price_low, price_high, c),
            }
        )
    return found


def bars_slice(bars: Bars, a: int, b: int) -> Bars:
    """Rows a..b-1 of the bars."""
    ratio = bars.long_short_ratio
    return Bars(
        ts=bars.ts[a:b],
        open=bars.open[a:b],
        high=bars.high[a:b],
        low=bars.low[a:b],
        close=bars.close[a:b],
        volume=bars.volume[a:b],
        taker_buy_volume=bars.taker_buy_volume[a:b],
        open_interest=bars.open_interest[a:b],
        long_short_ratio=None if ratio is None else ratio[a:b],
    )


def hourly_steps(ts: np.ndarray, step_ms: int, start: int, end: int) -> np.ndarray:
    """Indices of the steps that end on the hour (the map as it stood at HH:00), with open times
    in [start, end]."""
    on_hour = (ts + step_ms) % HOUR_MS == 0
    inside = (ts >= start) & (ts <= end)
    return np.flatnonzero(on_hour & inside)


# Robust baselines: the market's own trailing week, refreshed every hour.

BASELINE_MS = 7 * DAY_MS
MIN_BASELINE_MS = DAY_MS
TAIL_QUANTILE = 99.0
TAIL_Z = 2.326  # the standard normal's 99th percentile
MAD_SIGMA = 1.4826


@dataclass(frozen=True)
class Baseline:
    """Per step: the trailing median and robust scale of a series (NaN where the step has less
    than MIN_BASELINE_MS of history behind it)."""

    median: np.ndarray
    scale: np.ndarray

    def score(self, x: np.ndarray) -> np.ndarray:
        return (x - self.median) / self.scale


def trailing_baseline(
    ts: np.ndarray, x: np.ndarray, step_ms: int, covered: int = 0, from_ms: int | None = None
) -> Baseline:
    """The median of x over the BASELINE_MS before the hour each step opens in, and its robust
    scale: the larger of 1.4826 x MAD and (99th percentile - median) / 2.326. Both equal the
    standard deviation of normal data; the second stays meaningful when most steps are zero.
    Steps before index `covered` (before the data began) never count; with `from_ms`, only the
    hours holding a step from then on are computed (the rest stay NaN)."""
    n = len(x)
    hour = ts - ts % HOUR_MS
    starts = np.flatnonzero(np.r_[True, hour[1:] != hour[:-1]]) if n else np.empty(0, int)
    ends = np.r_[starts[1:], n].astype(int)
    lows = np.maximum(np.searchsorted(ts, hour[starts] - BASELINE_MS, side="left"), covered)
    wanted = starts - lows >= MIN_BASELINE_MS // step_ms
    if from_ms is not None:
        wanted &= ends > np.searchsorted(ts, from_ms, side="left")
    mid, spread = np.full(len(starts), np.nan), np.full(len(starts), np.nan)
    full = BASELINE_MS // step_ms
    regular = wanted & (starts - lows == full)  # a whole week of consecutive steps: vectorised
    if regular.any() and n >= full:
        rows = np.flatnonzero(regular)
        view = np.lib.stride_tricks.sliding_window_view(x, full)
        for chunk in np.array_split(rows, max(1, len(rows) // 128)):
            mid[chunk], spread[chunk] = _robust(view[lows[chunk]])
    for k in np.flatnonzero(wanted & ~regular).tolist():
        m, s = _robust(x[lows[k] : starts[k]][None, :])
        mid[k], spread[k] = m[0], s[0]
    counts = ends - starts
    return Baseline(np.repeat(mid, counts), np.repeat(spread, counts))


def _robust(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust scale of each row."""
    mid, tail = np.percentile(windows, [50.0, TAIL_QUANTILE], axis=1)
    mad = np.median(np.abs(windows - mid[:, None]), axis=1)
    return mid, np.maximum(np.maximum(MAD_SIGMA * mad, (tail - mid) / TAIL_Z), 1e-12)


# Cascades.

EXTEND_SCORE = 2.0
MERGE_GAP_MS = 15 * 60_000


@dataclass(frozen=True)
class CascadeRules:
    """What makes a cascade, every score against the market's own trailing week.

    A step is extreme when its liquidations score at least `liq_score`, or (when `shed_score`
    is set) when open interest fell by a drop scoring at least `shed_score` while price moved
    against the side. A run of extreme steps is a cascade when price moved against the side by a
    move scoring at least `move_score` and (when `oi_score` is set) open interest fell by a drop
    scoring at least `oi_score`, unless one of its steps' liquidations scored `alone_score`.
    """

    liq_score: float
    shed_score: float | None
    move_score: float
    oi_score: float | None
    alone_score: float | None = None


# Real liquidations are direct evidence. The model's estimates only say where its book would have
# been liquidated: for a market without real ones, a cascade also needs the market to have shed
# open interest (forced closes), and a sharp shedding counts even where the book was thin.
RULES = {
    "real": CascadeRules(liq_score=8.0, shed_score=None, move_score=4.0, oi_score=None),
    "estimated": CascadeRules(
        liq_score=4.0, shed_score=8.0, move_score=3.0, oi_score=6.0, alone_score=16.0
    ),
}


@dataclass(frozen=True)
class Evidence:
    """One side's per-step scores: its liquidations, price's move against it (the low below the
    open for longs, the high above it for shorts) and open interest's fall; and the baselines
    the moves and falls of whole runs are scored against."""

    liq: np.ndarray
    move: np.ndarray
    shed: np.ndarray
    moves: Baseline
    sheds: Baseline


@dataclass(frozen=True)
class Prices:
    """The bars' arrays a signal reads, and per-side adverse moves of each step: how far the
    low fell below the open (the long side's move) and the high rose above it (the short's)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    oi: np.ndarray
    step_ms: int

    @classmethod
    def of(cls, bars: Bars, step_ms: int) -> Prices:
        return cls(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.open_interest, step_ms)

    def oi_drop(self) -> np.ndarray:
        """How far open interest fell on each step (log units; negative when it rose, 0 where
        it was 0 before or after)."""
        oi = self.oi
        out = np.zeros(len(oi))
        positive = (oi[1:] > 0) & (oi[:-1] > 0)
        out[1:][positive] = np.log(oi[:-1][positive] / oi[1:][positive])
        return out

    def adverse(self, side: str) -> np.ndarray:
        if side == "long":
            return np.log(self.open / self.low)
        return np.log(self.high / self.open)

    def extreme(self, side: str, a: int, b: int) -> tuple[int, float]:
        """The step of the run a..b where price went furthest against the side, and that price."""
        if side == "long":
            k = a + int(np.argmin(self.low[a : b + 1]))
            return k, float(self.low[k])
        k = a + int(np.argmax(self.high[a : b + 1]))
        return k, float(self.high[k])

    def at(self, time_ms: int) -> int:
        """The last step opening at or before time_ms."""
        return int(np.searchsorted(self.ts, time_ms, side="right")) - 1


def runs(mask: np.ndarray, ts: np.ndarray, step_ms: int, gap_ms: int) -> list[tuple[int, int]]:
    """Runs of True steps as (first, last) indices; two runs merge when at most gap_ms of time
    separates the end of one's last step from the open of the other's first."""
    idx = np.flatnonzero(mask)
    if not idx.size:
        return []
    breaks = np.flatnonzero(np.diff(ts[idx]) - step_ms > gap_ms)
    firsts = np.r_[0, breaks + 1]
    lasts = np.r_[breaks, idx.size - 1]
    return list(zip(idx[firsts].tolist(), idx[lasts].tolist(), strict=True))


@dataclass(frozen=True)
class Cascade:
    """One cascade as step indices: first..last, the step at which it was first known to be one
    (`detected`, using data up to then only), and the step of the extreme price."""

    side: str
    first: int
    last: int
    detected: int
    extreme: int
    notional: float
    peak: int
    score: float
    move_score: float
    oi_score: float


def find_cascades(
    prices: Prices,
    liquidations: tuple[np.ndarray, np.ndarray],
    evidence: dict[str, Evidence],
    rules: CascadeRules,
    covered: int = 0,
) -> list[Cascade]:
    """Cascades of both sides, by start time.

    Extreme steps (CascadeRules) at most MERGE_GAP_MS apart form one run, which takes in the
    contiguous steps either side where the liquidations score at least EXTEND_SCORE, or price
    and open interest both do (the lead-in and the tail of the move). The run is a cascade when
    its move (from its first open to its extreme) and, if the rules ask, its fall in open
    interest (from the step before it to its lowest) score enough; it is known from the first
    step at which both hold.
    """
    found = []
    for side, x in zip(SIDES, liquidations, strict=True):
        ev = evidence[side]
        liq, move, shed = (np.nan_to_num(v, nan=-np.inf) for v in (ev.liq, ev.move, ev.shed))
        hot = liq >= rules.liq_score
        if rules.shed_score is not None:
            hot |= (shed >= rules.shed_score) & (move >= EXTEND_SCORE)
        warm = hot | (liq >= EXTEND_SCORE) | ((move >= EXTEND_SCORE) & (shed >= EXTEND_SCORE))
        hot_runs = runs(hot, prices.ts, prices.step_ms, MERGE_GAP_MS)
        spans = _merge(prices, [_extend(prices, warm, a, b, covered) for a, b in hot_runs])
        for a, b in spans:
            cascade = _cascade(prices, side, x, ev, hot, rules, a, b)
            if cascade is not None:
                found.append(cascade)
    return sorted(found, key=lambda c: (c.first, c.side))


def _extend(prices: Prices, warm: np.ndarray, a: int, b: int, covered: int) -> tuple[int, int]:
    """Widen a..b over the contiguous warm steps either side."""
    ts, step = prices.ts, prices.step_ms
    while a - 1 >= max(covered, 1) and warm[a - 1] and ts[a] - ts[a - 1] == step:
        a -= 1
    while b + 1 < len(ts) and warm[b + 1] and ts[b + 1] - ts[b] == step:
        b += 1
    return a, b


def _merge(prices: Prices, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and prices.ts[a] - prices.ts[merged[-1][1]] - prices.step_ms <= MERGE_GAP_MS:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _cascade(
    prices: Prices,
    side: str,
    x: np.ndarray,
    ev: Evidence,
    hot: np.ndarray,
    rules: CascadeRules,
    a: int,
    b: int,
) -> Cascade | None:
    """The run a..b as a cascade (known at the first step from its first extreme one where the
    rules hold on the data so far), or None when price or open interest did not move enough."""
    median, scale = ev.moves.median[a], ev.moves.scale[a]
    if not np.isfinite(scale):
        return None
    if side == "long":
        move = np.log(prices.open[a] / np.minimum.accumulate(prices.low[a : b + 1]))
    else:
        move = np.log(np.maximum.accumulate(prices.high[a : b + 1]) / prices.open[a])
    move_score = (move - median) / scale
    oi_score = _oi_score(prices, ev.sheds, a, b)
    holds = move_score >= rules.move_score
    if rules.oi_score is not None:
        shed = np.nan_to_num(oi_score, nan=-np.inf) >= rules.oi_score
        if rules.alone_score is not None:
            liq = np.maximum.accumulate(np.nan_to_num(ev.liq[a : b + 1], nan=-np.inf))
            shed |= liq >= rules.alone_score
        holds &= shed
    first_hot = a + int(np.argmax(hot[a : b + 1]))
    known = np.flatnonzero(holds & (np.arange(a, b + 1) >= first_hot))
    if not known.size:
        return None
    extreme, _ = prices.extreme(side, a, b)
    return Cascade(
        side=side,
        first=a,
        last=b,
        detected=a + int(known[0]),
        extreme=extreme,
        notional=float(x[a : b + 1].sum()),
        peak=a + int(np.argmax(x[a : b + 1])),
        score=float(np.nanmax(np.nan_to_num(ev.liq[a : b + 1], nan=-np.inf))),
        move_score=float(move_score.max()),
        oi_score=float(np.nan_to_num(oi_score, nan=0.0).max()),
    )


def _oi_score(prices: Prices, sheds: Baseline, a: int, b: int) -> np.ndarray:
    """For each step of a..b, the score of open interest's fall from the step before a to its
    lowest so far (NaN without a baseline or a previous step)."""
    median, scale = sheds.median[a], sheds.scale[a]
    oi = prices.oi
    if a < 1 or oi[a - 1] <= 0 or not np.isfinite(scale):
        return np.full(b - a + 1, np.nan)
    lowest = np.maximum(np.minimum.accumulate(oi[a : b + 1]), 1e-300)
    return (np.log(oi[a - 1] / lowest) - median) / scale


def cascade_json(cascade: Cascade, prices: Prices, x: np.ndarray, before: MomentMap | None) -> dict:
    """A cascade as the API and the pages show it (times are step open times, ms)."""
    a, b, side = cascade.first, cascade.last, cascade.side
    start_price = float(prices.open[a])
    _, extreme_price = prices.extreme(side, a, b)
    oi_before = float(prices.oi[a - 1] if a >= 1 else prices.oi[a])
    oi_change = 100.0 * (float(prices.oi[b]) / oi_before - 1) if oi_before > 0 else None
    return {
        "start": int(prices.ts[a]),
        "end": int(prices.ts[b]),
        "detected": int(prices.ts[cascade.detected]),
        "side": side,
        "notional_usd": cascade.notional,
        "peak_usd": float(x[cascade.peak]),
        "peak_time": int(prices.ts[cascade.peak]),
        "steps": b - a + 1,
        "score": cascade.score,
        "move_score": cascade.move_score,
        "oi_score": cascade.oi_score,
        "price_start": start_price,
        "price_extreme": extreme_price,
        "extreme_time": int(prices.ts[cascade.extreme]),
        "move_pct": 100.0 * (extreme_price / start_price - 1),
        "oi_change_pct": oi_change,
        "cluster": crossed_cluster(before, side, extreme_price),
    }


def crossed_cluster(before: MomentMap | None, side: str, extreme_price: float) -> dict | None:
    """The largest cluster of the side, on its side of the price in the map before the cascade,
    that price reached (traded into); `through` when price went beyond its far edge."""
    if before is None:
        return None
    if side == "long":
        reached = [
            c
            for c in before.clusters
            if c["side"] == "long"
            and c["price_high"] <= before.close
            and extreme_price <= c["price_high"]
        ]
    else:
        reached = [
            c
            for c in before.clusters
            if c["side"] == "short"
            and c["price_low"] >= before.close
            and extreme_price >= c["price_low"]
        ]
    if not reached:
        return None
    best = max(reached, key=lambda c: c["notional_usd"])
    through = (
        extreme_price < best["price_low"] if side == "long" else extreme_price > best["price_high"]
    )
    keys = ("price_low", "price_high", "peak_price", "notional_usd", "share")
    return {**{k: best[k] for k in keys}, "through": bool(through), "map_time": before.time}


# Reversals after a cascade: the checklist, each reason holding or not.

RSI_PERIOD = 14
RSI_OVERSOLD = 30.0
RSI_OVERBOUGHT = 70.0
DIVERGENCE_RETEST = 0.0025  # a retest comes within 0.25 % of the extreme (or beyond it)
DIVERGENCE_POINTS = 5.0
EXHAUSTED_SHARE = 0.25
RECENT_STEPS = 3  # "recent": the last 3 steps (15 minutes at 5-minute steps)
REVERSAL_WINDOW_MS = 6 * HOUR_MS


def rsi_wilder(close: np.ndarray, period: int = RSI_PERIOD) -> np.ndarray:
    """Wilder's RSI: the first average gain and loss are plain means of the first `period`
    changes, then avg = (avg * (period - 1) + change) / period. NaN for the first `period` steps;
    100 when nothing fell, 50 when nothing moved."""
    n = len(close)
    out = np.full(n, np.nan)
    if n <= period:
        return out
    change = np.diff(close)
    gains = np.maximum(change, 0.0).tolist()
    losses = np.maximum(-change, 0.0).tolist()
    gain = sum(gains[:period]) / period
    loss = sum(losses[:period]) / period
    values = [_rsi(gain, loss)]
    for g, lo in zip(gains[period:], losses[period:], strict=True):
        gain = (gain * (period - 1) + g) / period
        loss = (loss * (period - 1) + lo) / period
        values.append(_rsi(gain, loss))
    out[period:] = values
    return out


def _rsi(gain: float, loss: float) -> float:
    if loss == 0:
        return 50.0 if gain == 0 else 100.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


def hammer(o: float, h: float, low: float, c: float, side: str) -> bool:
    """A hammer (side long: a long lower wick after a fall) or a shooting star (side short: a
    long upper wick after a rise): the wick at least twice the body and half the range, the
    other wick at most a quarter of the range."""
    span = h - low
    if span <= 0:
        return False
    body = abs(c - o)
    lower, upper = min(o, c) - low, h - max(o, c)
    wick, other = (lower, upper) if side == "long" else (upper, lower)
    return wick >= 2 * body and wick >= 0.5 * span and other <= 0.25 * span


@dataclass(frozen=True)
class Reasons:
    """Each reason of the checklist at each step t of a cascade's watch (arrays over t)."""

    steps: np.ndarray
    exhausted: np.ndarray
    stalled: np.ndarray
    rsi_extreme: np.ndarray
    divergence: np.ndarray
    candle: np.ndarray
    oi_steady: np.ndarray
    extreme: np.ndarray
    recent: np.ndarray
    peak: np.ndarray

    @property
    def confirmations(self) -> np.ndarray:
        momentum = self.rsi_extreme | self.divergence
        return momentum.astype(int) + self.candle.astype(int) + self.oi_steady.astype(int)

    @property
    def confirmed(self) -> np.ndarray:
        return self.exhausted & self.stalled & (self.confirmations >= 2)


def reversal_reasons(
    prices: Prices, rsi: np.ndarray, x: np.ndarray, cascade: Cascade, last: int
) -> Reasons:
    """The checklist after `cascade` at every step from its first to `last`.

    Exhausted: the last RECENT_STEPS average at most EXHAUSTED_SHARE of the cascade's peak step.
    Stalled: no new extreme for RECENT_STEPS steps. Momentum: RSI(14) reached oversold (30, after
    longs were liquidated) or overbought (70) since the cascade began, or a divergence (price
    came back to within 0.25 % of the extreme, or beyond it, with RSI at least 5 points less
    extreme than at the extreme). Candle: a hammer (shooting star) at the extreme. Open
    interest: no lower than RECENT_STEPS steps before.
    """
    a, side = cascade.first, cascade.side
    steps = np.arange(a, last + 1)
    sign = 1.0 if side == "long" else -1.0
    # For longs the extreme is the lowest low; for shorts, the highest high (as a negative low).
    lows = prices.low[a : last + 1] if side == "long" else -prices.high[a : last + 1]
    running = np.minimum.accumulate(lows)
    extreme = a + np.maximum.accumulate(np.where(lows <= running, steps - a, 0))
    liq = x[a : last + 1]
    peak = np.maximum.accumulate(liq)
    recent = np.array([x[max(a, t - RECENT_STEPS + 1) : t + 1].mean() for t in steps.tolist()])
    r = rsi[a : last + 1]
    if side == "long":
        rsi_extreme = np.fmin.accumulate(r) <= RSI_OVERSOLD
    else:
        rsi_extreme = np.fmax.accumulate(r) >= RSI_OVERBOUGHT
    divergence = _divergence(lows, r, extreme - a, sign)
    candle = np.array(
        [
            hammer(prices.open[e], prices.high[e], prices.low[e], prices.close[e], side)
            for e in extreme.tolist()
        ]
    )
    back = np.maximum(steps - RECENT_STEPS, 0)
    return Reasons(
        steps=steps,
        exhausted=recent <= EXHAUSTED_SHARE * peak,
        stalled=steps - extreme >= RECENT_STEPS,
        rsi_extreme=rsi_extreme,
        divergence=divergence,
        candle=candle,
        oi_steady=prices.oi[steps] >= prices.oi[back],
        extreme=extreme,
        recent=recent,
        peak=peak,
    )


def _divergence(lows: np.ndarray, rsi: np.ndarray, extreme: np.ndarray, sign: float) -> np.ndarray:
    """At each t: some step after the extreme retested it (low within DIVERGENCE_RETEST of it,
    or beyond) with RSI at least DIVERGENCE_POINTS less extreme. `lows` are signed so that the
    extreme is the minimum for both sides; `sign` turns RSI the same way."""
    out = np.zeros(len(lows), dtype=bool)
    holds = False
    for t in range(len(lows)):
        e = int(extreme[t])
        if e == t:
            holds = False
            continue
        level = lows[e]
        band = level + DIVERGENCE_RETEST * abs(level)
        rsi_e, rsi_t = rsi[e], rsi[t]
        if lows[t] <= band and np.isfinite(rsi_e) and np.isfinite(rsi_t):
            holds = holds or sign * (rsi_t - rsi_e) >= DIVERGENCE_POINTS
        out[t] = holds
    return out


def reversal_json(
    reasons: Reasons, prices: Prices, rsi: np.ndarray, cascade: Cascade, k: int
) -> dict:
    """The checklist at step reasons.steps[k], every reason with whether it holds and its value."""
    t = int(reasons.steps[k])
    e = int(reasons.extreme[k])
    side = cascade.side
    back = max(t - RECENT_STEPS, 0)
    oi_change = 100.0 * (prices.oi[t] / prices.oi[back] - 1) if prices.oi[back] > 0 else None
    rsi_span = rsi[cascade.first : t + 1]
    rsi_reached = (
        (float(np.nanmin(rsi_span)) if side == "long" else float(np.nanmax(rsi_span)))
        if np.isfinite(rsi_span).any()
        else None
    )
    reasons_out = [
        (
            "exhausted",
            bool(reasons.exhausted[k]),
            {"recent_usd": float(reasons.recent[k]), "peak_usd": float(reasons.peak[k])},
        ),
        ("stalled", bool(reasons.stalled[k]), {"steps_since_extreme": t - e}),
        ("rsi", bool(reasons.rsi_extreme[k]), {"rsi": _finite(rsi[t]), "reached": rsi_reached}),
        (
            "divergence",
            bool(reasons.divergence[k]),
            {"rsi_at_extreme": _finite(rsi[e]), "rsi": _finite(rsi[t])},
        ),
        ("candle", bool(reasons.candle[k]), {"time": int(prices.ts[e])}),
        ("open_interest", bool(reasons.oi_steady[k]), {"change_pct": oi_change}),
    ]
    return {
        "cascade_start": int(prices.ts[cascade.first]),
        "side": side,
        "direction": "up" if side == "long" else "down",
        "time": int(prices.ts[t]),
        "extreme_price": float(prices.low[e] if side == "long" else prices.high[e]),
        "extreme_time": int(prices.ts[e]),
        "confirmed": bool(reasons.confirmed[k]),
        "confirmations": int(reasons.confirmations[k]),
        "reasons": [{"key": key, "holds": holds, **values} for key, holds, values in reasons_out],
    }


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def reversal_watch(
    prices: Prices, rsi: np.ndarray, x: np.ndarray, cascade: Cascade, until: int
) -> tuple[Reasons, int | None]:
    """The checklist over the cascade's watch (from its first step to REVERSAL_WINDOW_MS after
    its last, and never past `until`), and the first step at which it confirmed (None if not)."""
    end_time = prices.ts[cascade.last] + REVERSAL_WINDOW_MS
    last = min(prices.at(int(end_time)), until)
    reasons = reversal_reasons(prices, rsi, x, cascade, max(last, cascade.first))
    hits = np.flatnonzero(reasons.confirmed)
    return reasons, (int(reasons.steps[hits[0]]) if hits.size else None)


# Sweeps and fake breakouts.

FAKE_WINDOW_MS = HOUR_MS
RETURN_HORIZONS = {"1h": HOUR_MS, "4h": 4 * HOUR_MS}


def find_sweeps(prices: Prices, maps: list[MomentMap]) -> list[dict]:
    """Clusters traded through. Each hourly map's significant clusters on their own side of the
    price (longs below, shorts above) are watched until the next map: a long cluster is swept
    when a low goes below its lower edge (a short one when a high goes above its upper edge). The
    sweep is a fake breakout when a close within FAKE_WINDOW_MS comes back beyond the cluster's
    near edge, on the side price came from."""
    out = []
    n = len(prices.ts)
    for k, moment in enumerate(maps):
        stop = maps[k + 1].index if k + 1 < len(maps) else n - 1
        if stop <= moment.index:
            continue
        for cluster in _watched(moment):
            sweep = _sweep(prices, moment, cluster, moment.index + 1, stop)
            if sweep is not None:
                out.append(sweep)
    return sorted(out, key=lambda s: (s["time"], s["side"], s["cluster"]["price_low"]))


def _watched(moment: MomentMap) -> list[dict]:
    return [
        c
        for c in moment.clusters
        if c["share"] >= SIGNIFICANT_SHARE
        and (
            (c["side"] == "long" and c["price_high"] <= moment.close)
            or (c["side"] == "short" and c["price_low"] >= moment.close)
        )
    ]


def _sweep(prices: Prices, moment: MomentMap, cluster: dict, a: int, b: int) -> dict | None:
    side = cluster["side"]
    if side == "long":
        beyond = np.flatnonzero(prices.low[a : b + 1] < cluster["price_low"])
    else:
        beyond = np.flatnonzero(prices.high[a : b + 1] > cluster["price_high"])
    if not beyond.size:
        return None
    s = a + int(beyond[0])
    watch_end = prices.at(int(prices.ts[s] + FAKE_WINDOW_MS))
    complete = prices.ts[-1] >= prices.ts[s] + FAKE_WINDOW_MS
    closes = prices.close[s : watch_end + 1]
    back = closes > cluster["price_high"] if side == "long" else closes < cluster["price_low"]
    back_at = s + int(np.argmax(back)) if back.any() else None
    until = back_at if back_at is not None else watch_end
    if side == "long":
        wick = float(prices.low[s : until + 1].min())
        depth = 100.0 * (cluster["price_low"] - wick) / cluster["price_low"]
    else:
        wick = float(prices.high[s : until + 1].max())
        depth = 100.0 * (wick - cluster["price_high"]) / cluster["price_high"]
    fake = True if back_at is not None else (False if complete else None)
    keys = ("price_low", "price_high", "peak_price", "notional_usd", "share")
    opposite = moment.proximity.get("short" if side == "long" else "long")
    return {
        "time": int(prices.ts[s]),
        "side": side,
        "cluster": {k: cluster[k] for k in keys},
        "map_time": moment.time,
        "wick_price": wick,
        "depth_pct": depth,
        "fake": fake,
        "back_at": int(prices.ts[back_at]) if back_at is not None else None,
        "close": float(prices.close[s]),
        **{
            f"return_{name}_pct": _forward_return(prices, s, ms)
            for name, ms in RETURN_HORIZONS.items()
        },
        "opposite": {k: opposite[k] for k in ("price_low", "price_high", "notional_usd")}
        if opposite
        else None,
    }


def _forward_return(prices: Prices, s: int, horizon_ms: int) -> float | None:
    """The % change from the close of step s to the close horizon_ms later (None when the data
    does not reach that far)."""
    target = prices.ts[s] + horizon_ms
    if prices.ts[-1] < target:
        return None
    k = prices.at(int(target))
    return 100.0 * (float(prices.close[k]) / float(prices.close[s]) - 1)


# One study of a market: the book, the prices, the liquidation series and their baselines.


@dataclass(frozen=True)
class Study:
    """Everything the signals and the backtest read. Its bars start at least BASELINE_MS plus
    the map's window before the first moment asked about, so that moment's baselines and maps
    are whole."""

    book: Book
    prices: Prices
    liquidations: tuple[np.ndarray, np.ndarray]
    baselines: dict[str, Baseline]
    evidence: dict[str, Evidence]
    source: str
    covered: int
    rsi: np.ndarray

    @property
    def ts(self) -> np.ndarray:
        return self.prices.ts


def study_build(
    bars: Bars,
    params: Params,
    real: tuple[np.ndarray, np.ndarray] | None = None,
    covered: int = 0,
    from_ms: int | None = None,
) -> Study:
    """`real`: the market's real liquidations per step (long, short) when it has them, else the
    model's estimates are read; `covered`: the first step the real series covers; `from_ms`: the
    first step whose baselines are needed (all when None)."""
    book = book_build(bars, params)
    prices = Prices.of(bars, params.step_ms)
    if real is None:
        liquidations, source, covered = book_liquidations(book), "estimated", 0
    else:
        liquidations = (np.asarray(real[0], dtype=float), np.asarray(real[1], dtype=float))
        source = "real"

    def baseline(x: np.ndarray) -> Baseline:
        return trailing_baseline(prices.ts, x, prices.step_ms, covered, from_ms)

    baselines = {side: baseline(x) for side, x in zip(SIDES, liquidations, strict=True)}
    sheds = baseline(prices.oi_drop())
    evidence = {}
    for side in SIDES:
        moves = baseline(prices.adverse(side))
        evidence[side] = Evidence(
            liq=baselines[side].score(liquidations[SIDES.index(side)]),
            move=moves.score(prices.adverse(side)),
            shed=sheds.score(prices.oi_drop()),
            moves=moves,
            sheds=sheds,
        )
    rsi = rsi_wilder(bars.close)
    return Study(book, prices, liquidations, baselines, evidence, source, covered, rsi)


def study_cascades(study: Study, start: int) -> tuple[list[dict], dict | None]:
    """Cascades that end at or after `start` (ms), each with the cluster it ran into and the
    outcome of its reversal watch; and the checklist now (at the last step) for the latest
    cascade still watched, or None."""
    prices, n = study.prices, len(study.ts)
    rules = RULES[study.source]
    found = find_cascades(prices, study.liquidations, study.evidence, rules, study.covered)
    out, current = [], None
    for k, cascade in enumerate(found):
        if prices.ts[cascade.last] < start:
            continue
        x = study.liquidations[SIDES.index(cascade.side)]
        before = book_map(study.book, cascade.first - 1) if cascade.first >= 1 else None
        later = [c.first for c in found[k + 1 :] if c.side == cascade.side]
        reasons, confirmed = reversal_watch(
            prices, study.rsi, x, cascade, later[0] - 1 if later else n - 1
        )
        last = len(reasons.steps) - 1
        shown = last if confirmed is None else confirmed - cascade.first
        watching = bool(
            reasons.steps[-1] == n - 1
            and prices.ts[-1] < prices.ts[cascade.last] + REVERSAL_WINDOW_MS
        )
        if watching:
            current = reversal_json(reasons, prices, study.rsi, cascade, last)
        out.append(
            {
                **cascade_json(cascade, prices, x, before),
                "source": study.source,
                "reversal_confirmed_at": None if confirmed is None else int(prices.ts[confirmed]),
                "reversal_watching": watching,
                "reversal": reversal_json(reasons, prices, study.rsi, cascade, shown),
            }
        )
    return out, current


def study_signals(study: Study, start: int, maps: list[MomentMap] | None = None) -> dict:
    """Cascades and sweeps from `start` (ms) to the last step, the reversal checklist now, and
    what a step must liquidate now to count as extreme. `maps`: the hourly maps from the hour
    before `start` on, when the caller has them already."""
    prices = study.prices
    cascades, current = study_cascades(study, start)
    if maps is None:
        moments = hourly_steps(prices.ts, prices.step_ms, start - HOUR_MS, int(prices.ts[-1]))
        maps = book_maps(study.book, moments)
    sweeps = [s for s in find_sweeps(prices, maps) if s["time"] >= start]
    return {
        "as_of": int(prices.ts[-1]),
        "start": int(start),
        "source": study.source,
        "cascades": cascades,
        "sweeps": sweeps,
        "reversal": current,
        "thresholds": {side: _threshold(study, side) for side in SIDES},
    }


def _threshold(study: Study, side: str) -> dict | None:
    """The baseline now: the median step and what one step must liquidate to be extreme."""
    baseline = study.baselines[side]
    median, scale = baseline.median[-1], baseline.scale[-1]
    if not np.isfinite(scale):
        return None
    extreme = median + RULES[study.source].liq_score * scale
    return {"median_usd": float(median), "extreme_usd": float(extreme)}


# The backtest: the hourly maps' claims against chance on the same market.

HORIZON_MS = DAY_MS
AFTER_CASCADE_HORIZONS = {"1h": HOUR_MS, "4h": 4 * HOUR_MS, "24h": DAY_MS}
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 20240501
CONFIDENCE = 0.90
MIN_MAP_CASES = 30
MIN_MAP_DAYS = 5
MIN_EVENT_CASES = 10


@dataclass(frozen=True)
class Paths:
    """Where price went in the HORIZON_MS after each hourly moment whose horizon the data covers:
    `up[i, k]` the highest high over the first k + 1 following steps relative to the moment's
    close (minus 1), `down[i, k]` the deepest low (1 minus low / close); -inf before any step."""

    rows: np.ndarray
    time: np.ndarray
    close: np.ndarray
    up: np.ndarray
    down: np.ndarray

    @property
    def width(self) -> int:
        return self.up.shape[1]

    def first(self, matrix: np.ndarray, rows: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """For each (row, level) pair, the first k at which matrix[row, k] >= level (width if
        never)."""
        reached = matrix[rows] >= levels[:, None]
        return np.where(reached.any(1), reached.argmax(1), self.width)

    def far(self, times: np.ndarray) -> np.ndarray:
        """(cases, rows): rows whose horizon does not overlap a case at these times."""
        return np.abs(self.time[None, :] - times[:, None]) >= HORIZON_MS


def paths_build(prices: Prices, steps: np.ndarray) -> Paths:
    """The price paths after the moments among `steps` whose following HORIZON_MS is in the
    data."""
    ts = prices.ts
    steps = steps[ts[steps] + HORIZON_MS <= ts[-1]]
    width = max(1, HORIZON_MS // prices.step_ms)
    pad = np.full(width, np.nan)
    highs = np.lib.stride_tricks.sliding_window_view(np.r_[prices.high[1:], pad], width)[steps]
    lows = np.lib.stride_tricks.sliding_window_view(np.r_[prices.low[1:], pad], width)[steps]
    times = np.lib.stride_tricks.sliding_window_view(np.r_[ts[1:], np.full(width, -1)], width)
    inside = (times[steps] > 0) & (times[steps] <= ts[steps][:, None] + HORIZON_MS)
    close = prices.close[steps][:, None]
    up = np.maximum.accumulate(np.where(inside, highs, -np.inf), axis=1) / close - 1
    down = 1 - np.minimum.accumulate(np.where(inside, lows, np.inf), axis=1) / close
    return Paths(steps, ts[steps], prices.close[steps], up, down)


def rate_summary(
    hit: np.ndarray, chance: np.ndarray, groups: np.ndarray, minimum: int, min_groups: int
) -> dict:
    """A hit rate beside its chance rate: the edge (their difference) and its CONFIDENCE interval
    from BOOTSTRAP_SAMPLES resamples of whole groups (days for the hourly maps, single cases for
    events), with the number of cases. Too few cases or groups: the numbers are None."""
    hit = np.asarray(hit, dtype=float)
    chance = np.asarray(chance, dtype=float)
    labels, group = np.unique(groups, return_inverse=True)
    out = {"cases": len(hit), "groups": len(labels), "enough": False}
    keys = ("hit_rate", "chance_rate", "edge", "edge_low", "edge_high")
    out.update(dict.fromkeys(keys))
    if len(hit) < minimum or len(labels) < min_groups:
        return out
    sums = np.stack(
        [
            np.bincount(group, weights=w, minlength=len(labels))
            for w in (hit, chance, np.ones_like(hit))
        ]
    )
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    pick = rng.integers(0, len(labels), size=(BOOTSTRAP_SAMPLES, len(labels)))
    h, c, n = (sums[k][pick].sum(1) for k in range(3))
    edges = (h - c) / n
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(edges, [tail, 100 - tail])
    out.update(
        enough=True,
        hit_rate=float(hit.mean()),
        chance_rate=float(chance.mean()),
        edge=float(hit.mean() - chance.mean()),
        edge_low=float(low),
        edge_high=float(high),
    )
    return out


def backtest_magnet(maps: list[MomentMap], paths: Paths) -> dict:
    """Did price reach the larger cluster before the nearer one (the nearest significant long
    cluster below and short cluster above, when they differ in both size and distance)? Chance:
    the same two levels, at the same distances, from the other moments (those whose horizon does
    not overlap the case's): how often price reached the same side first there. Moments where
    neither level was reached within HORIZON_MS, or both on the same step, are undecided and left
    out, and so is a case that no other moment decides (it has no chance to compare with)."""
    by_row = {m.index: m for m in maps}
    rows, up_dist, down_dist, target_up = [], [], [], []
    for r, index in enumerate(paths.rows.tolist()):
        p = by_row[index].proximity
        long, short = p.get("long"), p.get("short")
        if not long or not short or p.get("nearer") == p.get("larger"):
            continue
        rows.append(r)
        up_dist.append(short["price_low"] / paths.close[r] - 1)
        down_dist.append(1 - long["price_high"] / paths.close[r])
        target_up.append(p["larger"] == "short")
    if not rows:
        return rate_summary([], [], [], MIN_MAP_CASES, MIN_MAP_DAYS)
    rows_a = np.array(rows)
    a, b, target = np.array(up_dist), np.array(down_dist), np.array(target_up)
    t_up = paths.first(paths.up, rows_a, a)
    t_down = paths.first(paths.down, rows_a, b)
    decided = (np.minimum(t_up, t_down) < paths.width) & (t_up != t_down)
    hit = np.where(target, t_up < t_down, t_down < t_up)
    all_rows = np.arange(len(paths.rows))
    up_all = np.stack([np.searchsorted(paths.up[j], a) for j in all_rows], axis=1)
    down_all = np.stack([np.searchsorted(paths.down[j], b) for j in all_rows], axis=1)
    sure = (np.minimum(up_all, down_all) < paths.width) & (up_all != down_all)
    sure &= paths.far(paths.time[rows_a])
    first_target = np.where(target[:, None], up_all < down_all, down_all < up_all)
    count = sure.sum(1)
    keep = decided & (count > 0)
    chance = (first_target & sure).sum(1)[keep] / count[keep]
    days = paths.time[rows_a][keep] // DAY_MS
    return rate_summary(hit[keep], chance, days, MIN_MAP_CASES, MIN_MAP_DAYS)


def backtest_reach(maps: list[MomentMap], paths: Paths, side: str) -> dict:
    """Did price reach the nearest significant cluster above (side short) or below (long) within
    HORIZON_MS? Chance: how often price moved at least as far that way within HORIZON_MS from the
    other moments (price's own hit rate of that distance)."""
    by_row = {m.index: m for m in maps}
    rows, dist = [], []
    for r, index in enumerate(paths.rows.tolist()):
        cluster = by_row[index].proximity.get(side)
        if not cluster:
            continue
        d = (
            cluster["price_low"] / paths.close[r] - 1
            if side == "short"
            else 1 - cluster["price_high"] / paths.close[r]
        )
        if d > 0:
            rows.append(r)
            dist.append(d)
    if not rows:
        return rate_summary([], [], [], MIN_MAP_CASES, MIN_MAP_DAYS)
    matrix = paths.up if side == "short" else paths.down
    rows_a, dist_a = np.array(rows), np.array(dist)
    furthest = matrix[:, -1]
    far = paths.far(paths.time[rows_a])
    count = far.sum(1)
    keep = count > 0
    chance = ((furthest[None, :] >= dist_a[:, None]) & far).sum(1)[keep] / count[keep]
    hit = (furthest[rows_a] >= dist_a)[keep]
    days = paths.time[rows_a][keep] // DAY_MS
    return rate_summary(hit, chance, days, MIN_MAP_CASES, MIN_MAP_DAYS)


def backtest_after_cascades(prices: Prices, cascades: list[dict], start: int) -> dict:
    """The return from the close of each cascade's last step 1 h, 4 h and 24 h later, in the
    rebound's direction (up after longs were liquidated, down after shorts), against the
    market's unconditional return over the same horizon from every step of the period (signed
    the same way), and the share of rebounds against the share of steps followed by a move that
    way. Cascades need the full 24 h after them in the data; the interval resamples cascades."""
    ts, close = prices.ts, prices.close
    longest = max(AFTER_CASCADE_HORIZONS.values())
    cases = [c for c in cascades if c["end"] >= start and c["end"] + longest <= ts[-1]]
    sign = np.array([1.0 if c["side"] == "long" else -1.0 for c in cases])
    ends = np.array([prices.at(c["end"]) for c in cases], dtype=int)
    out: dict = {"cases": len(cases), "enough": len(cases) >= MIN_EVENT_CASES, "horizons": {}}
    first = int(np.searchsorted(ts, start, side="left"))
    for name, horizon in AFTER_CASCADE_HORIZONS.items():
        steps = np.arange(first, len(ts))
        steps = steps[ts[steps] + horizon <= ts[-1]]
        if not len(cases) or not len(steps):
            out["horizons"][name] = _after_summary(*(np.empty(0),) * 4)
            continue
        later = np.searchsorted(ts, ts[steps] + horizon, side="right") - 1
        moves = close[later] / close[steps] - 1
        mean, ups, downs = float(moves.mean()), float((moves > 0).mean()), float((moves < 0).mean())
        after = np.searchsorted(ts, ts[ends] + horizon, side="right") - 1
        rebound = sign * (close[after] / close[ends] - 1)
        base = sign * mean
        odds = np.where(sign > 0, ups, downs)
        out["horizons"][name] = _after_summary(rebound, base, rebound > 0, odds)
    return out


def _after_summary(
    rebound: np.ndarray, base: np.ndarray, rebounded: np.ndarray, odds: np.ndarray
) -> dict:
    """Mean rebound and unconditional return in %, their difference (points of %) with its
    interval, the share of rebounds and its chance; None when there are too few cases."""
    keys = (
        "mean_return_pct",
        "unconditional_pct",
        "edge",
        "edge_low",
        "edge_high",
        "rebound_share",
        "chance_share",
    )
    if len(rebound) < MIN_EVENT_CASES:
        return dict.fromkeys(keys)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    pick = rng.integers(0, len(rebound), size=(BOOTSTRAP_SAMPLES, len(rebound)))
    edges = 100 * (rebound[pick].mean(1) - base[pick].mean(1))
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(edges, [tail, 100 - tail])
    return {
        "mean_return_pct": float(100 * rebound.mean()),
        "unconditional_pct": float(100 * base.mean()),
        "edge": float(100 * (rebound.mean() - base.mean())),
        "edge_low": float(low),
        "edge_high": float(high),
        "rebound_share": float(rebounded.mean()),
        "chance_share": float(odds.mean()),
    }


def backtest_after_fakes(prices: Prices, paths: Paths, sweeps: list[dict], start: int) -> dict:
    """After each fake breakout, did price go on to the opposite cluster (the nearest significant
    one on the other side in the map the swept cluster came from) within HORIZON_MS of the close
    back? Chance: price's own rate of a move that far that way within HORIZON_MS, from the hourly
    moments whose horizon does not overlap the case's. The interval resamples cases."""
    ts = prices.ts
    rows = {"up": ([], [], []), "down": ([], [], [])}
    for sweep in sweeps:
        if not sweep["fake"] or sweep["time"] < start or sweep["opposite"] is None:
            continue
        k = prices.at(sweep["back_at"])
        if ts[k] + HORIZON_MS > ts[-1]:
            continue
        later = slice(k + 1, int(np.searchsorted(ts, ts[k] + HORIZON_MS, side="right")))
        close = float(prices.close[k])
        if sweep["side"] == "long":
            way, dist = "up", sweep["opposite"]["price_low"] / close - 1
            reached = float(prices.high[later].max()) / close - 1
        else:
            way, dist = "down", 1 - sweep["opposite"]["price_high"] / close
            reached = 1 - float(prices.low[later].min()) / close
        if dist > 0:
            for bucket, value in zip(rows[way], (int(ts[k]), dist, reached), strict=True):
                bucket.append(value)
    hits, chances = [], []
    for way, (times, dist, reached) in rows.items():
        if not times:
            continue
        matrix = paths.up if way == "up" else paths.down
        far = paths.far(np.array(times))
        count = far.sum(1)
        reach = (matrix[:, -1][None, :] >= np.array(dist)[:, None]) & far
        keep = count > 0
        chances.extend((reach.sum(1)[keep] / count[keep]).tolist())
        hits.extend((np.array(reached) >= np.array(dist))[keep].tolist())
    return rate_summary(hits, chances, np.arange(len(hits)), MIN_EVENT_CASES, 1)


def study_backtest(study: Study, start: int) -> dict:
    """The backtest over the hourly moments from `start` (ms) to the last step."""
    prices = study.prices
    moments = hourly_steps(prices.ts, prices.step_ms, start, int(prices.ts[-1]))
    maps = book_maps(study.book, moments)
    paths = paths_build(prices, moments)
    signals = study_signals(study, start, maps)
    return {
        "period_start": int(start),
        "period_end": int(prices.ts[-1]),
        "moments": len(moments),
        "moments_with_horizon": len(paths.rows),
        "source": study.source,
        "magnet": backtest_magnet(maps, paths),
        "reach_above": backtest_reach(maps, paths, "short"),
        "reach_below": backtest_reach(maps, paths, "long"),
        "after_cascades": backtest_after_cascades(prices, signals["cascades"], start),
        "after_fake_breakouts": backtest_after_fakes(prices, paths, signals["sweeps"], start),
    }
