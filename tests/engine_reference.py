"""A plain, per-group reference implementation of the liquidation model.

This is the independent check on `maps.engine`. It is written straight from
/work/shared/design/MODEL.md (v2) and /work/notes/engine-decisions.md: one Python loop over
the steps, one plain list of position groups, no vectorisation. It is slow on purpose and meant
to be read: each function quotes the rule it implements.

Entry point: `reference_run(bars, params, events=None)` returns a dict of plain numbers and
numpy arrays (see `reference_run` for the keys). The smaller functions are public so that the
tests can apply one rule at a time (for example, bin the reference state on the engine's edges).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from maps.engine.types import Bars, Events, Params

LONG = "long"
SHORT = "short"
SIDES = (LONG, SHORT)
MAX_BINS = 20_000
TOP_ZONES = 5
SIGNIFICANT_SHARE = 0.05
MIN_CLUSTER_SHARE = 0.01
MAX_GAP_BINS = 2
MAGNET_MIN_DISTANCE_PCT = 0.05
KKT_ROUNDING = 1e-11


class ReferenceModelError(ValueError):
    """Raised where the contract says that the input must be refused."""


@dataclass(frozen=True)
class Group:
    """One group of positions: MODEL.md 'each with a side, a tier, a liquidation price LP and
    a USD notional' (plus the step that opened it, for the cumulative curves)."""

    side: str
    tier: int
    lp: float
    notional: float
    opened: int


@dataclass
class Simulation:
    """Everything recorded while stepping. Per-step series are indexed by i - 1 (steps 1..n-1)."""

    start_row: int
    ts: list[int]
    low: list[float]
    high: list[float]
    close: list[float]
    oi: list[float]
    share: list[float]
    tiers: int
    liquidated: dict[str, list[list[float]]]
    opened: dict[str, list[list[float]]]
    closed: dict[str, list[list[float]]]
    final_state: list[Group]
    binned: dict[int, dict[str, dict[int, float]]] = field(default_factory=dict)
    states: dict[int, list[Group]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ts)

    @property
    def last_close(self) -> float:
        return self.close[-1]


def iso(ts_ms: int) -> str:
    """A step's open time as ISO UTC, for error messages."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat()


# --------------------------------------------------------------------------------------------
# One step of the model
# --------------------------------------------------------------------------------------------


def window_start(ts: Sequence[int], step_ms: int, window_ms: int) -> int:
    """Decisions: 'last_end = ts[-1] + step_ms. The window holds the rows with
    ts >= last_end - window_ms.' Returns the first row of the window."""
    last_end = int(ts[-1]) + step_ms
    for row, t in enumerate(ts):
        if int(t) >= last_end - window_ms:
            return row
    return len(ts)


def entry_price(high: float, low: float, close: float) -> float:
    """MODEL.md: 'EP = (high + low + close) / 3'."""
    return (high + low + close) / 3


def long_liquidation_price(ep: float, leverage: float, mmr: float) -> float:
    """MODEL.md: 'a long group ... at LP = EP * (1 - 1/L) / (1 - m)'."""
    return ep * (1 - 1 / leverage) / (1 - mmr)


def short_liquidation_price(ep: float, leverage: float, mmr: float) -> float:
    """MODEL.md: 'a short group ... at LP = EP * (1 + 1/L) / (1 + m)'."""
    return ep * (1 + 1 / leverage) / (1 + mmr)


def long_share(
    mode: str,
    *,
    open_: float,
    close: float,
    volume: float,
    taker_buy_volume: float,
    ratio: float,
    ts_ms: int,
) -> float:
    """MODEL.md: '`taker` s = taker_buy_volume / volume clipped to [0.1, 0.9] (0.5 when volume is
    0); `ratio` s = R / (1 + R) from long_short_ratio; `candle` s = 1 if close > open, 0 if
    close < open, 0.5 otherwise; `even` s = 0.5. `ratio` mode on a step without a ratio is an
    error naming the step.'"""
    if mode == "taker":
        if volume == 0:
            return 0.5
        return min(max(taker_buy_volume / volume, 0.1), 0.9)
    if mode == "ratio":
        if math.isnan(ratio):
            raise ReferenceModelError(f"no long/short ratio at the step {iso(ts_ms)}")
        return ratio / (1 + ratio)
    if mode == "candle":
        if close > open_:
            return 1.0
        if close < open_:
            return 0.0
        return 0.5
    if mode == "even":
        return 0.5
    raise ReferenceModelError(f"unknown long-share mode {mode!r}")


def turnover_hazard(dt_ms: int, holding_ms: int | None) -> float:
    """MODEL.md: 'h = 1 - exp(-dt / H) (0 when H is inf)'."""
    if holding_ms is None:
        return 0.0
    return 1 - math.exp(-dt_ms / holding_ms)


def close_factor(h: float, oi_prev: float, oi: float) -> float:
    """MODEL.md: 'f = min(1 - h, OI_i / OI_{i-1}) (1 - h when OI_{i-1} is 0)'."""
    if oi_prev == 0:
        return 1 - h
    return min(1 - h, oi / oi_prev)


def consume(
    state: list[Group], low: float, high: float, tiers: int
) -> tuple[list[Group], dict[str, list[float]]]:
    """MODEL.md step 1: 'Every long group with LP >= low_i and every short group with
    LP <= high_i is liquidated: removed from the state, its notional added to liquidated_long[i]
    / liquidated_short[i] (and per tier).'"""
    liquidated = {side: [0.0] * tiers for side in SIDES}
    survivors = []
    for group in state:
        hit = group.lp >= low if group.side == LONG else group.lp <= high
        if hit:
            liquidated[group.side][group.tier] += group.notional
        else:
            survivors.append(group)
    return survivors, liquidated


def close_positions(
    state: list[Group], f: float, tiers: int
) -> tuple[list[Group], dict[str, list[float]]]:
    """MODEL.md step 2: 'Every remaining group's notional is multiplied by f'. What is taken
    away is the closed notional. Decisions: 'Groups with zero notional ... are not groups', so a
    group closed down to 0 leaves the state."""
    closed = {side: [0.0] * tiers for side in SIDES}
    kept = []
    for group in state:
        remaining = group.notional * f
        closed[group.side][group.tier] += group.notional - remaining
        if remaining > 0:
            kept.append(
                Group(group.side, group.tier, group.lp, remaining, group.opened),
            )
    return kept, closed


def open_positions(
    *,
    step: int,
    new_notional: float,
    ep: float,
    share: float,
    leverages: Sequence[float],
    weights: Sequence[float],
    mmr: float,
) -> list[Group]:
    """MODEL.md step 3: 'For each tier k with leverage L and weight w: a long group with
    notional N * s_i * w at LP = EP * (1 - 1/L) / (1 - m), and a short group with notional
    N * (1 - s_i) * w at LP = EP * (1 + 1/L) / (1 + m)'. Decisions: 'Groups with zero notional
    (weight 0 or s = 0/1) are not groups'."""
    groups = []
    for tier, (leverage, weight) in enumerate(zip(leverages, weights, strict=True)):
        long_notional = new_notional * share * weight
        short_notional = new_notional * (1 - share) * weight
        if long_notional > 0:
            lp = long_liquidation_price(ep, leverage, mmr)
            groups.append(Group(LONG, tier, lp, long_notional, step))
        if short_notional > 0:
            lp = short_liquidation_price(ep, leverage, mmr)
            groups.append(Group(SHORT, tier, lp, short_notional, step))
    return groups


def bin_index(price: float, close: float, width: float) -> int:
    """Decisions: 'a price p falls in bin floor((p - close)/w)'."""
    return math.floor((price - close) / width)


def bin_state(groups: Iterable[Group], close: float, width: float) -> dict[str, dict[int, float]]:
    """Active notional per side and bin index j (bin j covers [close + j*w, close + (j+1)*w))."""
    binned: dict[str, dict[int, float]] = {side: {} for side in SIDES}
    for group in groups:
        j = bin_index(group.lp, close, width)
        binned[group.side][j] = binned[group.side].get(j, 0.0) + group.notional
    return binned


def bin_width(last_close: float, bin_bps: float) -> float:
    """Decisions: 'width w = last_close * bin_bps / 1e4'."""
    return last_close * bin_bps / 1e4


def _window_rows(bars: Bars, params: Params) -> range:
    start = window_start([int(t) for t in bars.ts], params.step_ms, params.window_ms)
    rows = range(start, len(bars.ts))
    if len(rows) < 2:
        raise ReferenceModelError("the window holds fewer than 2 steps")
    return rows


def _share_at(bars: Bars, params: Params, row: int) -> float:
    ratio = bars.long_short_ratio
    return long_share(
        params.long_share,
        open_=float(bars.open[row]),
        close=float(bars.close[row]),
        volume=float(bars.volume[row]),
        taker_buy_volume=float(bars.taker_buy_volume[row]),
        ratio=math.nan if ratio is None else float(ratio[row]),
        ts_ms=int(bars.ts[row]),
    )


def _window(bars: Bars, params: Params, tiers: int) -> Simulation:
    """The window's inputs, one list per field. The long share is taken on every window step,
    so `ratio` mode refuses a missing ratio on any of them (MODEL.md: 'the steps that lie inside
    the last W ... are modelled', and '`ratio` mode on a step without a ratio is an error')."""
    rows = _window_rows(bars, params)
    return Simulation(
        start_row=rows.start,
        ts=[int(bars.ts[r]) for r in rows],
        low=[float(bars.low[r]) for r in rows],
        high=[float(bars.high[r]) for r in rows],
        close=[float(bars.close[r]) for r in rows],
        oi=[float(bars.open_interest[r]) for r in rows],
        share=[_share_at(bars, params, r) for r in rows],
        tiers=tiers,
        liquidated={side: [] for side in SIDES},
        opened={side: [] for side in SIDES},
        closed={side: [] for side in SIDES},
        final_state=[],
    )


def model_step(
    state: list[Group], sim: Simulation, i: int, params: Params, weights: Sequence[float]
) -> tuple[list[Group], dict[str, list[float]], dict[str, list[float]], list[Group]]:
    """MODEL.md: 'For step i (i >= 1; step 0 only sets OI), in this order: 1. Consume.
    2. Close. ... 3. Open. If OI_i > S: N = (OI_i - S) * EP_i'. Returns the new state, the
    liquidated and closed notional per side and tier, and the groups opened."""
    state, liquidated = consume(state, sim.low[i], sim.high[i], sim.tiers)
    h = turnover_hazard(sim.ts[i] - sim.ts[i - 1], params.holding_ms)
    state, closed = close_positions(state, close_factor(h, sim.oi[i - 1], sim.oi[i]), sim.tiers)
    survive = (1 - h) * sim.oi[i - 1]
    opened: list[Group] = []
    if sim.oi[i] > survive:
        ep = entry_price(sim.high[i], sim.low[i], sim.close[i])
        opened = open_positions(
            step=i,
            new_notional=(sim.oi[i] - survive) * ep,
            ep=ep,
            share=sim.share[i],
            leverages=[tier.leverage for tier in params.tiers],
            weights=weights,
            mmr=params.mmr,
        )
    return state + opened, liquidated, closed, opened


def simulate(
    bars: Bars,
    params: Params,
    *,
    weights: Sequence[float] | None = None,
    record_steps: Iterable[int] = (),
    keep_states: bool = False,
) -> Simulation:
    """Run MODEL.md 'The state and one step' over the window, one group at a time.

    `weights` overrides the tier weights (calibration runs every tier at weight 1).
    `record_steps` are the steps whose state is binned (per side, on the last close's grid);
    `keep_states` keeps a copy of the whole state after every step 0..n-1.
    """
    weights = [tier.weight for tier in params.tiers] if weights is None else list(weights)
    sim = _window(bars, params, len(weights))
    width = bin_width(sim.last_close, params.bin_bps)
    wanted = set(record_steps)
    state: list[Group] = []
    _record(sim, 0, state, wanted, keep_states, width)
    for i in range(1, sim.n):
        state, liquidated, closed, opened = model_step(state, sim, i, params, weights)
        for side in SIDES:
            sim.liquidated[side].append(liquidated[side])
            sim.closed[side].append(closed[side])
            sim.opened[side].append(_per_tier(opened, side, sim.tiers))
        _record(sim, i, state, wanted, keep_states, width)
    sim.final_state = state
    return sim


def _per_tier(groups: Iterable[Group], side: str, tiers: int) -> list[float]:
    totals = [0.0] * tiers
    for group in groups:
        if group.side == side:
            totals[group.tier] += group.notional
    return totals


def _record(
    sim: Simulation,
    step: int,
    state: list[Group],
    wanted: set[int],
    keep_states: bool,
    width: float,
) -> None:
    if keep_states:
        sim.states[step] = list(state)
    if step in wanted:
        sim.binned[step] = bin_state(state, sim.last_close, width)


# --------------------------------------------------------------------------------------------
# Heatmap, grid, map, cumulative curves
# --------------------------------------------------------------------------------------------


def heat_column_steps(n: int, max_columns: int) -> list[int]:
    """Decisions: 'candidates are the simulated steps 1..n-1 (m = n-1 of them).
    k = ceil(m / max_columns). Columns are steps n-1, n-1-k, n-1-2k, ... while >= 1, returned in
    ascending time order.'"""
    m = n - 1
    k = -(-m // max_columns)
    steps = []
    step = n - 1
    while step >= 1:
        steps.append(step)
        step -= k
    return sorted(steps)


def grid_bounds(bin_indices: Iterable[int]) -> tuple[int, int]:
    """Decisions: the grid spans the bins of every group with positive notional active at any
    heatmap column and 'always has the last close as an edge (... bins j_lo..j_hi with
    j_lo <= 0 <= j_hi + 1). If no group is active anywhere: the two bins [close - w, close) and
    [close, close + w). If the grid would need more than 20,000 bins → EngineError'."""
    indices = list(bin_indices)
    if not indices:
        return -1, 0
    j_lo = min(min(indices), 0)
    j_hi = max(max(indices), -1)
    bins = j_hi - j_lo + 1
    if bins > MAX_BINS:
        raise ReferenceModelError(f"the grid would need {bins} bins; raise bin_bps")
    return j_lo, j_hi


def grid_edges(close: float, width: float, j_lo: int, j_hi: int) -> list[float]:
    """Decisions: 'Edges are last_close + j*w for consecutive integers j', ascending, bins + 1."""
    return [close + j * width for j in range(j_lo, j_hi + 2)]


def dense(binned: dict[int, float], j_lo: int, bins: int) -> list[float]:
    """A {bin index: notional} mapping as a list over bins j_lo..j_lo+bins-1. Every key must lie
    inside the grid."""
    values = [0.0] * bins
    for j, notional in binned.items():
        if not j_lo <= j < j_lo + bins:
            raise AssertionError(f"bin {j} lies outside the grid {j_lo}..{j_lo + bins - 1}")
        values[j - j_lo] += notional
    return values


def tier_map(
    groups: Iterable[Group], side: str, tiers: int, close: float, width: float, j_lo: int, bins: int
) -> list[list[float]]:
    """MODEL.md map: 'active notional per bin, per side and per tier' (decisions: arrays (K, B))."""
    per_tier: list[dict[int, float]] = [{} for _ in range(tiers)]
    for group in groups:
        if group.side == side:
            j = bin_index(group.lp, close, width)
            per_tier[group.tier][j] = per_tier[group.tier].get(j, 0.0) + group.notional
    return [dense(binned, j_lo, bins) for binned in per_tier]


def beyond_close(group: Group, close: float, last_step: int) -> bool:
    """MODEL.md: 'Groups opened on the last step whose LP already lies beyond the last close
    count at every level' (decisions: long LP > close, short LP < close)."""
    if group.opened != last_step:
        return False
    return group.lp > close if group.side == LONG else group.lp < close


def cumulative(
    groups: Iterable[Group],
    side: str,
    *,
    close: float,
    width: float,
    j_lo: int,
    bins: int,
    last_step: int,
) -> list[float]:
    """Decisions: 'cum_long[b] = active long notional with LP in bin b or above; cum_short[b] =
    active short notional with LP in bin b or below', plus the beyond-close groups of the last
    step added (once) to every bin."""
    per_bin = [0.0] * bins
    everywhere = 0.0
    for group in groups:
        if group.side != side:
            continue
        if beyond_close(group, close, last_step):
            everywhere += group.notional
        else:
            per_bin[bin_index(group.lp, close, width) - j_lo] += group.notional
    order = range(bins - 1, -1, -1) if side == LONG else range(bins)
    curve = [0.0] * bins
    running = 0.0
    for b in order:
        running += per_bin[b]
        curve[b] = running + everywhere
    return curve


# --------------------------------------------------------------------------------------------
# Clusters and proximity
# --------------------------------------------------------------------------------------------


def hot_runs(values: Sequence[float]) -> list[tuple[int, int]]:
    """Decisions: 'A bin is hot if x[b] >= 2 * total / count(x > 0) ... Hot runs separated by at
    most 2 non-hot bins are merged into one cluster spanning the gap.' Inclusive (first, last)."""
    total = sum(values)
    nonempty = sum(1 for v in values if v > 0)
    threshold = 2 * total / nonempty
    spans: list[tuple[int, int]] = []
    for b, value in enumerate(values):
        if value < threshold:
            continue
        if spans and b - spans[-1][1] - 1 <= MAX_GAP_BINS:
            spans[-1] = (spans[-1][0], b)
        else:
            spans.append((b, b))
    return spans


def distance_pct(price_low: float, price_high: float, close: float) -> float:
    """Decisions: '100 * (nearest of [price_low, price_high] to the last close - last_close) /
    last_close, signed (negative below the close), 0 if the close lies inside'."""
    if price_low <= close <= price_high:
        return 0.0
    nearest = price_high if price_high < close else price_low
    return 100 * (nearest - close) / close


def find_clusters(
    values: Sequence[float], edges: Sequence[float], side: str, close: float
) -> list[dict[str, Any]]:
    """Decisions, clusters: 'total = x.sum(); if total == 0 → none. ... Cluster notional = sum of
    x over its span. Keep clusters with notional >= 1% of total; rank by notional descending,
    ties by lower price_low.' Fields as the decisions list them."""
    total = sum(values)
    if total == 0:
        return []
    found = []
    for first, last in hot_runs(values):
        span = values[first : last + 1]
        notional = sum(span)
        if notional < MIN_CLUSTER_SHARE * total:
            continue
        peak = first + span.index(max(span))
        found.append(
            {
                "side": side,
                "price_low": edges[first],
                "price_high": edges[last + 1],
                "peak_price": (edges[peak] + edges[peak + 1]) / 2,
                "notional_usd": notional,
                "share": notional / total,
                "distance_pct": distance_pct(edges[first], edges[last + 1], close),
            }
        )
    found.sort(key=lambda c: (-c["notional_usd"], c["price_low"]))
    return found


def pair_clusters(
    long_values: Sequence[float],
    short_values: Sequence[float],
    edges: Sequence[float],
    close: float,
) -> list[dict[str, Any]]:
    """Decisions: 'The pair output lists all kept clusters of both sides ranked by notional'."""
    both = find_clusters(long_values, edges, LONG, close) + find_clusters(
        short_values, edges, SHORT, close
    )
    both.sort(key=lambda c: (-c["notional_usd"], c["price_low"]))
    return both


def _zone(cluster: dict[str, Any] | None) -> dict[str, Any] | None:
    if cluster is None:
        return None
    keys = ("price_low", "price_high", "peak_price", "notional_usd", "distance_pct")
    return {key: cluster[key] for key in keys}


def proximity(clusters: Sequence[dict[str, Any]], close: float) -> dict[str, Any]:
    """Decisions, proximity: 'significant = a cluster with share >= 5%. long = the significant
    long cluster with price_high <= last_close nearest to the close (max price_high); short =
    significant short cluster with price_low >= last_close nearest (min price_low).' nearer: the
    smaller |distance_pct|; larger: the larger notional; magnet: the larger
    notional_usd / max(|distance_pct|, 0.05), direction 'down' for long, 'up' for short. With
    only one side present, that side is nearer, larger and magnet; with none, all are None.
    Ties are left to the engine (the tests skip them)."""
    significant = [c for c in clusters if c["share"] >= SIGNIFICANT_SHARE]
    below = [c for c in significant if c["side"] == LONG and c["price_high"] <= close]
    above = [c for c in significant if c["side"] == SHORT and c["price_low"] >= close]
    long_zone = max(below, key=lambda c: c["price_high"]) if below else None
    short_zone = min(above, key=lambda c: c["price_low"]) if above else None
    result: dict[str, Any] = {
        "long": _zone(long_zone),
        "short": _zone(short_zone),
        "last_close": close,
        "nearer": None,
        "larger": None,
        "magnet": None,
        "direction": None,
    }
    if long_zone is None and short_zone is None:
        return result
    if long_zone is None or short_zone is None:
        only = LONG if long_zone is not None else SHORT
        result.update(nearer=only, larger=only, magnet=only)
    else:
        result["nearer"] = _pick(abs(long_zone["distance_pct"]), abs(short_zone["distance_pct"]))
        result["larger"] = _pick(-long_zone["notional_usd"], -short_zone["notional_usd"])
        result["magnet"] = _pick(-_pull(long_zone), -_pull(short_zone))
    result["direction"] = {LONG: "down", SHORT: "up", None: None}[result["magnet"]]
    return result


def _pull(cluster: dict[str, Any]) -> float:
    return cluster["notional_usd"] / max(abs(cluster["distance_pct"]), MAGNET_MIN_DISTANCE_PCT)


def _pick(long_key: float, short_key: float) -> str | None:
    """The side with the smaller key; None on an exact tie."""
    if long_key < short_key:
        return LONG
    if short_key < long_key:
        return SHORT
    return None


# --------------------------------------------------------------------------------------------
# Calibration and accuracy
# --------------------------------------------------------------------------------------------


def event_rows(events: Events) -> list[tuple[int, str, float, float]]:
    """(time ms, side of the liquidated position, notional usd, price) per real event."""
    return [
        (int(t), LONG if is_long else SHORT, float(usd), float(price))
        for t, is_long, usd, price in zip(
            events.time, events.is_long, events.notional, events.price, strict=True
        )
    ]


def event_step(time_ms: int, ts: Sequence[int], step_ms: int) -> int | None:
    """Decisions: 'Events bucket to the simulated step i with ts[i] <= T < ts[i] + step_ms
    (1 <= i <= n-1); events elsewhere are ignored'."""
    for i in range(1, len(ts)):
        if ts[i] <= time_ms < ts[i] + step_ms:
            return i
    return None


def nnls(columns: Sequence[Sequence[float]], target: Sequence[float]) -> list[float]:
    """Non-negative least squares, min ||A w - y|| with w >= 0, by exhaustive search over the
    supports, checked by the optimality (KKT) conditions: w is the optimum iff w >= 0 and the
    gradient g = A^T (y - A w) is <= 0 everywhere and 0 where w > 0. The least-squares solution
    on a support P has g = 0 on P, so the optimum is the one, over all supports tried smallest
    first, that is positive on P with g <= 0 off P. Rounding: g_j up to 1e-11 * |A_j| * |y|
    counts as 0; should rounding defeat every support (a badly conditioned A), the positive one
    closest to the conditions wins. Columns: one list per unknown."""
    count = len(columns)
    y = np.asarray(target, dtype=float)
    a = np.asarray(columns, dtype=float).reshape(count, len(y)).T
    scale = np.linalg.norm(a, axis=0) * np.linalg.norm(y)
    best, best_violation = [0.0] * count, math.inf
    for size in range(count + 1):
        for support in itertools.combinations(range(count), size):
            w = np.zeros(count)
            if support:
                w[list(support)] = np.linalg.lstsq(a[:, list(support)], y, rcond=None)[0]
            if any(w[k] <= 0 for k in support):
                continue
            gradient = a.T @ (y - a @ w)
            violation = max(
                (gradient[k] / scale[k] for k in range(count) if k not in support and scale[k]),
                default=0.0,
            )
            if violation <= KKT_ROUNDING:
                return [float(value) for value in w]
            if violation < best_violation:
                best, best_violation = [float(value) for value in w], violation
    return best


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson correlation; None 'when either series has zero variance'."""
    if len(set(xs)) <= 1 or len(set(ys)) <= 1:
        return None
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    var_x = sum((x - mean_x) ** 2 for x in xs)
    var_y = sum((y - mean_y) ** 2 for y in ys)
    return cov / math.sqrt(var_x * var_y)


def interval_union_length(
    intervals: Iterable[tuple[float, float]], low: float, high: float
) -> float:
    """Length of the union of [a, b] intervals intersected with [low, high]."""
    clipped = sorted(
        (max(a, low), min(b, high)) for a, b in intervals if min(b, high) > max(a, low)
    )
    length = 0.0
    reach = -math.inf
    for a, b in clipped:
        if b <= reach:
            continue
        length += b - max(a, reach)
        reach = b
    return length


def zones_before(sim: Simulation, step: int, side: str, width: float) -> list[dict[str, Any]]:
    """Decisions: 'take the state at the end of step i-1, bin it on a grid of the same width
    anchored on the last close, compute that side's clusters by the rule above, keep the top 5'."""
    binned = sim.binned[step - 1][side]
    if not binned:
        return []
    j_lo, j_hi = min(binned), max(binned)
    values = dense(binned, j_lo, j_hi - j_lo + 1)
    edges = grid_edges(sim.last_close, width, j_lo, j_hi)
    return find_clusters(values, edges, side, sim.last_close)[:TOP_ZONES]


def event_hit_and_coverage(
    zones: Sequence[dict[str, Any]], price: float, low: float, high: float
) -> tuple[bool, float]:
    """Decisions: 'hit = price_low <= price <= price_high for one of them. coverage_event =
    length of union of those clusters' [price_low, price_high] intersected with [low_i, high_i]
    divided by (high_i - low_i) (if high == low: 1 if the price lies in a cluster else 0)'."""
    hit = any(z["price_low"] <= price <= z["price_high"] for z in zones)
    if high == low:
        return hit, 1.0 if hit else 0.0
    spans = [(z["price_low"], z["price_high"]) for z in zones]
    return hit, interval_union_length(spans, low, high) / (high - low)


def real_series(
    events: Events, sim: Simulation, step_ms: int
) -> tuple[dict[str, list[float]], list[tuple[int, str, float, float]], int]:
    """Real liquidated USD per side and simulated step (index i - 1), the events inside as
    (step, side, usd, price), and how many fell outside."""
    real = {side: [0.0] * (sim.n - 1) for side in SIDES}
    used = []
    outside = 0
    for time_ms, side, usd, price in event_rows(events):
        step = event_step(time_ms, sim.ts, step_ms)
        if step is None:
            outside += 1
            continue
        real[side][step - 1] += usd
        used.append((step, side, usd, price))
    return real, used, outside


def tier_column(unit: Simulation, k: int) -> list[float]:
    """C_k, tier k's estimated liquidations at weight 1: the long steps then the short steps."""
    return [unit.liquidated[side][i][k] for side in SIDES for i in range(unit.n - 1)]


def calibrate(bars: Bars, params: Params, events: Events, sim: Simulation) -> dict[str, Any]:
    """MODEL.md 'Calibration and accuracy' with the decisions' exact recipe: 'Design matrix A =
    vstack over sides of (n-1, K) series; target y = stacked real series. Identified tiers: those
    whose C_k (long+short) is not all zero. NNLS ... on identified columns → w_fit.' `sim` is the
    run with the configured weights, recorded at the step before every event's step."""
    unit = simulate(bars, params, weights=[1.0] * sim.tiers)
    real, used, outside = real_series(events, sim, params.step_ms)
    identified = [any(v != 0 for v in tier_column(unit, k)) for k in range(sim.tiers)]
    fit_tiers = [k for k in range(sim.tiers) if identified[k]]
    columns = [tier_column(unit, k) for k in fit_tiers]
    target = [real[side][i] for side in SIDES for i in range(sim.n - 1)]
    w_fit = [0.0] * sim.tiers
    for k, value in zip(fit_tiers, nnls(columns, target) if fit_tiers else [], strict=True):
        w_fit[k] = value
    weights, scale = _calibrated_weights([t.weight for t in params.tiers], w_fit, identified)
    if not used:  # issue 9: no event to fit says so with a null scale and changes no weight
        weights, scale = [t.weight for t in params.tiers], None
    estimated = {
        side: [sum(c * w for c, w in zip(row, w_fit, strict=True)) for row in unit.liquidated[side]]
        for side in SIDES
    }
    hit_rate, coverage = _zone_accuracy(sim, params, used)
    return {
        "weights": weights,
        "scale": scale,
        "w_fit": w_fit,
        "identified": identified,
        "corr_long": pearson(estimated[LONG], real[LONG]),
        "corr_short": pearson(estimated[SHORT], real[SHORT]),
        "hit_rate": hit_rate,
        "coverage": coverage,
        "events_used": len(used),
        "events_outside": outside,
        "real": {side: np.array(real[side]) for side in SIDES},
        "design": np.array(columns, dtype=float).reshape(len(fit_tiers), len(target)).T,
        "target": np.array(target),
    }


def _calibrated_weights(
    prior: Sequence[float], w_fit: Sequence[float], identified: Sequence[bool]
) -> tuple[list[float], float | None]:
    """Decisions: 'scale = sum(w_fit) / sum(prior w of identified). weights: identified tiers =
    w_fit / sum(w_fit) * (1 - sum(prior of unidentified)); unidentified keep prior. If
    sum(w_fit) == 0 (or no identified tier): weights = prior, scale = 0.0.' The scale is None
    when the identified tiers' prior weights sum to 0 (the decisions leave 0/0 undefined)."""
    fit_sum = sum(w_fit)
    if fit_sum == 0:
        return list(prior), 0.0
    prior_identified = sum(w for w, known in zip(prior, identified, strict=True) if known)
    prior_unidentified = sum(w for w, known in zip(prior, identified, strict=True) if not known)
    weights = [
        w_fit[k] / fit_sum * (1 - prior_unidentified) if identified[k] else prior[k]
        for k in range(len(prior))
    ]
    scale = fit_sum / prior_identified if prior_identified > 0 else None
    return weights, scale


def _zone_accuracy(
    sim: Simulation, params: Params, used: Sequence[tuple[int, str, float, float]]
) -> tuple[float | None, float | None]:
    """Decisions: 'hit_rate = sum(usd*hit)/sum(usd); coverage = sum(usd*coverage_event)/sum(usd).
    null when no events inside.' With the configured (prior) weights. Also None when the events
    inside carry no USD at all (the share is 0/0)."""
    if not used or sum(usd for _, _, usd, _ in used) == 0:
        return None, None
    width = bin_width(sim.last_close, params.bin_bps)
    hits = covered = weight = 0.0
    for step, side, usd, price in used:
        zones = zones_before(sim, step, side, width)
        hit, coverage = event_hit_and_coverage(zones, price, sim.low[step], sim.high[step])
        hits += usd * hit
        covered += usd * coverage
        weight += usd
    return hits / weight, covered / weight


# --------------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------------


def gaps(ts: Sequence[int], step_ms: int) -> list[dict[str, int]]:
    """Decisions: 'Gaps (dt_i > step_ms) are ... reported in report.gaps as [{"after": ts[i-1],
    "before": ts[i], "missing_steps": dt_i // step_ms - 1}]'."""
    found = []
    for i in range(1, len(ts)):
        dt = ts[i] - ts[i - 1]
        if dt > step_ms:
            found.append({"after": ts[i - 1], "before": ts[i], "missing_steps": dt // step_ms - 1})
    return found


def _series(sim: Simulation, name: str) -> dict[str, np.ndarray]:
    table = getattr(sim, name)
    return {
        side: np.array(table[side], dtype=float).reshape(sim.n - 1, sim.tiers) for side in SIDES
    }


def _report(sim: Simulation, step_ms: int) -> dict[str, Any]:
    """Totals in USD, per side: opened = active + liquidated + closed."""
    report: dict[str, Any] = {"gaps": gaps(sim.ts, step_ms)}
    for name in ("opened", "liquidated", "closed"):
        table = getattr(sim, name)
        report[name] = {side: sum(sum(row) for row in table[side]) for side in SIDES}
    report["active"] = {
        side: sum(g.notional for g in sim.final_state if g.side == side) for side in SIDES
    }
    return report


def _previous_steps(bars: Bars, params: Params, events: Events | None) -> set[int]:
    """The steps i - 1 whose state the zone test of an event on step i reads."""
    if events is None:
        return set()
    ts = [int(bars.ts[r]) for r in _window_rows(bars, params)]
    steps = {event_step(time_ms, ts, params.step_ms) for time_ms, *_ in event_rows(events)}
    return {step - 1 for step in steps if step is not None}


def _price_outputs(sim: Simulation, params: Params, heat_steps: list[int]) -> dict[str, Any]:
    """Grid, heatmap, per-tier map, cumulative curves, clusters and proximity."""
    close = sim.last_close
    width = bin_width(close, params.bin_bps)
    j_lo, j_hi = grid_bounds(
        j for step in heat_steps for side in SIDES for j in sim.binned[step][side]
    )
    bins = j_hi - j_lo + 1
    edges = grid_edges(close, width, j_lo, j_hi)
    maps = {
        side: np.array(tier_map(sim.final_state, side, sim.tiers, close, width, j_lo, bins))
        for side in SIDES
    }
    totals = {side: [sum(col) for col in zip(*maps[side], strict=True)] for side in SIDES}
    clusters = pair_clusters(totals[LONG], totals[SHORT], edges, close)
    place = {"close": close, "width": width, "j_lo": j_lo, "bins": bins, "last_step": sim.n - 1}
    return {
        "width": width,
        "grid": {"j_lo": j_lo, "j_hi": j_hi, "edges": np.array(edges)},
        "heatmap": {
            side: np.array([dense(sim.binned[s][side], j_lo, bins) for s in heat_steps])
            for side in SIDES
        },
        "map": maps,
        "cumulative": {
            side: np.array(cumulative(sim.final_state, side, **place)) for side in SIDES
        },
        "clusters": clusters,
        "proximity": proximity(clusters, close),
    }


def reference_run(
    bars: Bars, params: Params, events: Events | None = None, *, keep_states: bool = False
) -> dict[str, Any]:
    """The whole model, plainly. Keys of the result:

    as_of, last_close, width, n, start_row, times (window ts);
    liquidated / opened / closed: {"long", "short"} (n-1, K) arrays (liquidated also "times");
    heat_steps, heat_times, heat_binned (per column {side: {j: usd}});
    grid: {"j_lo", "j_hi", "edges"}; heatmap: {"long", "short"} (columns, bins);
    map: {"long", "short"} (K, bins); cumulative: {"long", "short"} (bins);
    clusters (pair list), proximity, report (totals, gaps), calibration (or None);
    final_state (list of Group) and, with keep_states, states {step: list of Group}.
    """
    n = len(_window_rows(bars, params))
    heat_steps = heat_column_steps(n, params.max_columns)
    wanted = set(heat_steps) | _previous_steps(bars, params, events)
    sim = simulate(bars, params, record_steps=wanted, keep_states=keep_states)
    return {
        "as_of": sim.ts[-1],
        "last_close": sim.last_close,
        "n": n,
        "start_row": sim.start_row,
        "times": np.array(sim.ts, dtype=np.int64),
        "liquidated": {"times": np.array(sim.ts[1:], dtype=np.int64), **_series(sim, "liquidated")},
        "opened": _series(sim, "opened"),
        "closed": _series(sim, "closed"),
        "heat_steps": heat_steps,
        "heat_times": np.array([sim.ts[s] for s in heat_steps], dtype=np.int64),
        "heat_binned": [sim.binned[s] for s in heat_steps],
        **_price_outputs(sim, params, heat_steps),
        "report": _report(sim, params.step_ms),
        "calibration": None if events is None else calibrate(bars, params, events, sim),
        "final_state": sim.final_state,
        "states": sim.states,
    }


# --------------------------------------------------------------------------------------------
# Binance's bulk files, read plainly (MODEL.md v2.1 "Alignment with Binance's bulk files")
# --------------------------------------------------------------------------------------------

STAMPING_CHANGED = datetime(2024, 3, 4, tzinfo=UTC)
FIVE_MINUTES_MS = 5 * 60 * 1000


def _csv_rows(path: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every data row of a CSV or of the one CSV inside a zip."""
    import csv
    import io
    import zipfile

    if str(path).endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            text = archive.read(archive.namelist()[0]).decode("utf-8")
    else:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    rows = []
    for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not fields or not fields[0].strip():
            continue
        if not fields[0].strip()[0].isdigit():  # the header
            continue
        rows.append((number, [f.strip() for f in fields]))
    return rows


def _stamp_ms(text: str) -> int:
    moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def snapshot_time_of_row(stamp_ms: int) -> int:
    """'A metrics row's snapshot time S is its create_time T for rows stamped before 2024-03-04
    00:00 UTC, and T + 5 min for rows stamped from then on.'"""
    changed = int(STAMPING_CHANGED.timestamp() * 1000)
    return stamp_ms if stamp_ms < changed else stamp_ms + FIVE_MINUTES_MS


def _unique_rows(rows: Iterable[tuple[int, Any]], what: str) -> dict[int, Any]:
    """'Byte-identical duplicate rows are dropped and counted; two rows with the same time and
    different values are an error naming both lines.'"""
    kept: dict[int, Any] = {}
    for time, row in rows:
        if time in kept and kept[time][1:] != row[1:]:
            raise ReferenceModelError(f"{what} lines {kept[time][0]} and {row[0]} differ")
        kept.setdefault(time, row)
    return kept


def reference_bars_from_files(
    kline_paths: Sequence[str], metric_paths: Sequence[str], step_ms: int
) -> tuple[list[dict[str, float]], list[int]]:
    """MODEL.md v2.1: 'The row closes the step [S - step, S): that step has ts = S - step, its OI
    and ratios are the row's, and its prices and volumes aggregate the 1-minute klines whose open
    time lies in [S - step, S). A step whose klines are incomplete is skipped and reported.'
    Returns the bars (dicts, ascending ts) and the skipped steps' open times."""
    klines = _unique_rows(
        (
            (int(f[0]), (n, *(float(f[k]) for k in (1, 2, 3, 4, 5, 9))))
            for path in kline_paths
            for n, f in _csv_rows(path)
        ),
        "kline",
    )
    metrics = _unique_rows(
        (
            (
                _stamp_ms(f[0]),
                (n, float(f[2]) if f[2] else math.nan, float(f[6]) if f[6] else math.nan),
            )
            for path in metric_paths
            for n, f in _csv_rows(path)
        ),
        "metrics",
    )
    by_step: dict[int, list[tuple]] = {}
    for open_time in sorted(klines):
        by_step.setdefault(open_time - open_time % step_ms, []).append(klines[open_time])
    closing = {}
    for stamp, row in metrics.items():
        snapshot = snapshot_time_of_row(stamp)
        if snapshot % step_ms == 0:
            closing[snapshot - step_ms] = row
    bars, skipped = [], []
    for ts in sorted(set(by_step) | set(closing)):
        minutes = by_step.get(ts, [])
        row = closing.get(ts)
        if len(minutes) != step_ms // 60_000 or row is None or not row[1] > 0:
            skipped.append(ts)
            continue
        bars.append(
            {
                "ts": ts,
                "open": minutes[0][1],
                "high": max(m[2] for m in minutes),
                "low": min(m[3] for m in minutes),
                "close": minutes[-1][4],
                "volume": sum(m[5] for m in minutes),
                "taker_buy_volume": sum(m[6] for m in minutes),
                "open_interest": row[1],
                "long_short_ratio": row[2],
            }
        )
    return bars, skipped
