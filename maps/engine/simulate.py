"""The model's state update, vectorised over every position group at once.

Every group of a market is multiplied by the same factor f_t at each step, so a group opened
at step j and still alive after step i holds base * prod(f_{j+1..i}) = base * exp(G_i - G_j),
with G the cumulative log of f. A step with f = 0 wipes out everything older: it starts a new
epoch, and groups never span two epochs. A long group dies at the first later step whose low
reaches its liquidation price (short: high), found for all groups at once by binary lifting over
a sparse table of running minima (maxima). Per-bin states at chosen steps come from a recurrence
over those steps on whole rows of bins, fed by the groups entering and leaving between them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .types import Bars, EngineError, Params

MAX_BINS = 20_000
CHUNK_CELLS = 2_000_000


@dataclass
class Path:
    """The modelled steps 0..n-1 of the window and the per-step quantities of the model."""

    ts: np.ndarray
    low: np.ndarray
    high: np.ndarray
    close: np.ndarray
    ep: np.ndarray
    f: np.ndarray
    opened: np.ndarray
    share: np.ndarray
    log_growth: np.ndarray
    epoch: np.ndarray
    next_zero: np.ndarray
    first_row: int

    @property
    def n(self) -> int:
        return len(self.ts)


@dataclass
class Groups:
    """The position groups of one side, one entry per (opening step, tier); base at weight 1."""

    is_long: bool
    step: np.ndarray
    tier: np.ndarray
    lp: np.ndarray
    base: np.ndarray
    death: np.ndarray
    end: np.ndarray

    def __len__(self) -> int:
        return len(self.step)

    def subset(self, mask: np.ndarray, base: np.ndarray) -> Groups:
        """The groups where mask holds, with these (e.g. weighted) base notionals."""
        return Groups(
            self.is_long,
            self.step[mask],
            self.tier[mask],
            self.lp[mask],
            base[mask],
            self.death[mask],
            self.end[mask],
        )


@dataclass
class Presence:
    """The weighted groups present at some of a set of columns (steps), ready to bin."""

    c_in: np.ndarray
    c_out: np.ndarray
    v_in: np.ndarray
    v_out: np.ndarray
    bin: np.ndarray


def window_start(bars: Bars, params: Params) -> int:
    """Index of the first row inside the window that ends at the last step's end."""
    if len(bars) == 0:
        raise EngineError("the window holds fewer than 2 steps")
    last_end = int(bars.ts[-1]) + params.step_ms
    return int(np.searchsorted(bars.ts, last_end - params.window_ms, side="left"))


def build_path(bars: Bars, params: Params) -> Path:
    first = window_start(bars, params)
    n = len(bars) - first
    if n < 2:
        raise EngineError("the window holds fewer than 2 steps")
    window = slice(first, None)
    ts = bars.ts[window]
    high, low, close = bars.high[window], bars.low[window], bars.close[window]
    ep = (high + low + close) / 3
    oi = bars.open_interest[window]
    survive = _survival(np.diff(ts), params.holding_ms)
    prev, cur = oi[:-1], oi[1:]
    kept = survive * prev
    ratio = np.divide(cur, prev, out=np.zeros_like(cur), where=prev > 0)
    f = np.ones(n)
    f[1:] = np.where(prev > 0, np.minimum(survive, ratio), survive)
    opened = np.zeros(n)
    grows = cur > kept
    opened[1:][grows] = (cur[grows] - kept[grows]) * ep[1:][grows]
    share = np.full(n, 0.5)
    share[1:] = long_share(bars, params, first)
    zero = f == 0
    log_f = np.zeros(n)
    np.log(f, out=log_f, where=~zero)
    return Path(
        ts=ts,
        low=low,
        high=high,
        close=close,
        ep=ep,
        f=f,
        opened=opened,
        share=share,
        log_growth=np.cumsum(log_f),
        epoch=np.cumsum(zero),
        next_zero=_next_true(zero),
        first_row=first,
    )


def _survival(dt: np.ndarray, holding_ms: int | None) -> np.ndarray:
    """1 - h per step, with h = 1 - exp(-dt / H) the turnover hazard (0 when H is inf)."""
    if holding_ms is None:
        return np.ones(len(dt))
    hazard = 1 - np.exp(-dt / holding_ms)
    return 1 - hazard


def _next_true(mask: np.ndarray) -> np.ndarray:
    """For each t in 0..n, the first t' >= t with mask[t'] (n if none); length n + 1."""
    n = len(mask)
    where = np.where(mask, np.arange(n), n)
    out = np.full(n + 1, n, dtype=np.int64)
    out[:n] = np.minimum.accumulate(where[::-1])[::-1]
    return out


def long_share(bars: Bars, params: Params, first: int) -> np.ndarray:
    """The long share s of the opened notional for the modelled steps first+1..end."""
    rows = slice(first + 1, None)
    mode = params.long_share
    if mode == "taker":
        volume, taker = bars.volume[rows], bars.taker_buy_volume[rows]
        ratio = np.divide(taker, volume, out=np.full(len(volume), 0.5), where=volume > 0)
        return np.where(volume > 0, np.clip(ratio, 0.1, 0.9), 0.5)
    if mode == "ratio":
        return _ratio_share(bars, first)
    if mode == "candle":
        open_, close = bars.open[rows], bars.close[rows]
        return np.where(close > open_, 1.0, np.where(close < open_, 0.0, 0.5))
    return np.full(len(bars) - first - 1, 0.5)


def _ratio_share(bars: Bars, first: int) -> np.ndarray:
    """s = R / (1 + R). Every step of the window is modelled (the first only sets OI), so each
    needs its ratio."""
    ratio = bars.long_short_ratio
    if ratio is None:
        raise EngineError(
            f"long-share mode 'ratio' needs long_short_ratio, missing at {bars.where(first)}"
        )
    missing = np.flatnonzero(np.isnan(ratio[first:]))
    if missing.size:
        row = first + int(missing[0])
        raise EngineError(
            f"long-share mode 'ratio' needs long_short_ratio, missing at {bars.where(row)}"
        )
    ratio = ratio[first + 1 :]
    return ratio / (1 + ratio)


def open_groups(path: Path, params: Params, is_long: bool, tiers: np.ndarray) -> Groups:
    """The groups opened at steps 1..n-1 for the given tier indices, at weight 1."""
    side_share = path.share if is_long else 1 - path.share
    side_base = path.opened * side_share
    steps = np.flatnonzero(side_base > 0)
    lev = params.leverages[tiers]
    if is_long:
        lp = path.ep[steps, None] * (1 - 1 / lev)[None, :] / (1 - params.mmr)
    else:
        lp = path.ep[steps, None] * (1 + 1 / lev)[None, :] / (1 + params.mmr)
    count = len(tiers)
    step = np.repeat(steps, count)
    groups = Groups(
        is_long=is_long,
        step=step,
        tier=np.tile(tiers, len(steps)),
        lp=lp.ravel(),
        base=np.repeat(side_base[steps], count),
        death=np.empty(0, dtype=np.int64),
        end=np.empty(0, dtype=np.int64),
    )
    groups.death = first_passage(path, groups)
    groups.end = np.minimum(groups.death, path.next_zero[step + 1])
    return groups


def first_passage(path: Path, groups: Groups) -> np.ndarray:
    """The step at which each group is consumed (n if never): the first i > step with
    low_i <= LP for longs, high_i >= LP for shorts."""
    n = path.n
    if groups.is_long:
        levels = _sparse_table(path.low, np.minimum, -np.inf)
        beyond = np.greater
    else:
        levels = _sparse_table(path.high, np.maximum, np.inf)
        beyond = np.less
    pos = groups.step + 1
    jump = np.empty(len(pos), dtype=bool)
    for p in range(len(levels) - 1, -1, -1):
        beyond(np.take(levels[p], pos), groups.lp, out=jump)
        np.add(pos, 1 << p, out=pos, where=jump)
    return np.minimum(pos, n)


def _sparse_table(values: np.ndarray, op: np.ufunc, pad: float) -> list[np.ndarray]:
    """levels[p][i] = op over values[i : i + 2**p] where that block fits, else pad; length n + 1."""
    n = len(values)
    levels = [np.append(values, pad)]
    size = 1
    while 2 * size <= n:
        prev = levels[-1]
        level = np.full(n + 1, pad)
        fits = n - 2 * size + 1
        op(prev[:fits], prev[size : size + fits], out=level[:fits])
        levels.append(level)
        size *= 2
    return levels


def liquidations(path: Path, groups: Groups, tiers: int) -> np.ndarray:
    """Liquidated notional per simulated step and tier at weight 1, shape (n - 1, tiers)."""
    n = path.n
    dead = (groups.death < n) & (groups.death <= groups.end)
    death = groups.death[dead]
    start = groups.step[dead]
    growth = path.log_growth
    amount = groups.base[dead] * np.exp(growth[death - 1] - growth[start])
    flat = np.bincount(death * tiers + groups.tier[dead], weights=amount, minlength=n * tiers)
    return flat.reshape(n, tiers)[1:]


def weighted(groups: Groups, weights: np.ndarray) -> np.ndarray:
    """Group notionals at the configured weights; groups with zero notional are not groups."""
    return groups.base * weights[groups.tier]


def value_at(path: Path, groups: Groups, base: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Each group's notional after the given steps (0 in a later epoch)."""
    growth, epoch = path.log_growth, path.epoch
    same = epoch[steps] == epoch[groups.step]
    value = base * np.exp(np.where(same, growth[steps] - growth[groups.step], 0.0))
    return np.where(same, value, 0.0)


def bin_index(prices: np.ndarray, close: float, width: float) -> np.ndarray:
    return np.floor((prices - close) / width).astype(np.int64)


def presence(
    path: Path, groups: Groups, base: np.ndarray, cols: np.ndarray, close: float, width: float
) -> Presence:
    """The groups with positive notional alive after at least one of the column steps."""
    c_in = column_index(cols, groups.step)
    c_out = column_index(cols, groups.end)
    keep = (c_in < c_out) & (base > 0)
    c_in, c_out = c_in[keep], c_out[keep]
    sub = groups.subset(keep, base)
    v_in = value_at(path, sub, sub.base, cols[c_in])
    inside = c_out < len(cols)
    v_out = np.zeros(len(sub))
    out_steps = cols[np.minimum(c_out, len(cols) - 1)]
    v_out[inside] = value_at(path, sub, sub.base, out_steps)[inside]
    alive = v_in > 0
    return Presence(
        c_in=c_in[alive],
        c_out=c_out[alive],
        v_in=v_in[alive],
        v_out=v_out[alive],
        bin=bin_index(sub.lp[alive], close, width),
    )


def column_index(cols: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """For each step, the first column at or after it (len(cols) if none)."""
    if len(cols) > 1:
        k = int(cols[1] - cols[0])
        if k > 0 and np.all(np.diff(cols) == k):  # evenly spaced: arithmetic, no search
            ahead = -((int(cols[0]) - steps) // k)
            return np.clip(ahead, 0, len(cols))
    return np.searchsorted(cols, steps, side="left")


def bin_span(*parts: Presence) -> tuple[int, int] | None:
    """The lowest and highest bin index holding any present group, or None."""
    bins = [p.bin for p in parts if len(p.bin)]
    if not bins:
        return None
    return min(int(b.min()) for b in bins), max(int(b.max()) for b in bins)


def grid_bins(span: tuple[int, int] | None) -> tuple[int, int]:
    """Bins j_lo..j_hi of the output grid: the span, widened so the close (j = 0) is an edge."""
    if span is None:
        return -1, 0
    lo, hi = span
    lo, hi = min(lo, 0), max(hi, -1)
    if hi - lo + 1 > MAX_BINS:
        raise EngineError(
            f"the price grid would need {hi - lo + 1} bins (more than {MAX_BINS}); raise bin_bps"
        )
    return lo, hi


def states(
    path: Path, cols: np.ndarray, long: Presence, short: Presence, lo: int, bins: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Per-bin active notional after each column step, long bins then short bins in one row.

    Yields (first column of the chunk, values (rows, 2 * bins), group counts (rows, 2 * bins),
    as floats holding whole numbers), in chunks that keep memory flat however many columns are
    asked for.
    """
    count = len(cols)
    growth, epoch = path.log_growth, path.epoch
    carry = np.ones(count)
    same = epoch[cols[1:]] == epoch[cols[:-1]]
    carry[1:] = np.where(same, np.exp(np.where(same, growth[cols[1:]] - growth[cols[:-1]], 0)), 0)
    width = 2 * bins
    rows = max(1, min(count, CHUNK_CELLS // width))
    flows = _Flows(long, short, lo, bins, count, rows)
    row = np.zeros(width)
    live = np.zeros(width)
    for c0 in range(0, count, rows):
        c1 = min(count, c0 + rows)
        net, net_count = flows.chunk(c0, c1, width)
        values = np.empty((c1 - c0, width))
        counts = np.empty((c1 - c0, width))
        for r in range(c1 - c0):
            row *= carry[c0 + r]
            row += net[r]
            values[r] = row
            live += net_count[r]
            counts[r] = live
        values[counts < 0.5] = 0.0
        np.maximum(values, 0.0, out=values)
        row, live = values[-1].copy(), counts[-1].copy()
        yield c0, values, counts


class _Flows:
    """Groups entering (+notional, +1) and leaving (-notional, -1) the columns, grouped by chunk
    of columns so that each chunk is a slice."""

    def __init__(
        self, long: Presence, short: Presence, lo: int, bins: int, count: int, rows: int
    ) -> None:
        cell = np.concatenate([long.bin - lo, short.bin - lo + bins])
        c_in = np.concatenate([long.c_in, short.c_in])
        c_out = np.concatenate([long.c_out, short.c_out])
        v_in = np.concatenate([long.v_in, short.v_in])
        v_out = np.concatenate([long.v_out, short.v_out])
        leaves = c_out < count
        self.col = np.concatenate([c_in, c_out[leaves]])
        self.cell = np.concatenate([cell, cell[leaves]])
        self.value = np.concatenate([v_in, -v_out[leaves]])
        self.count = np.concatenate([np.ones(len(c_in)), -np.ones(int(leaves.sum()))])
        self.rows = rows
        chunks = -(-count // rows)
        if chunks == 1:
            self.bounds = np.array([0, len(self.col)])
            return
        chunk = (self.col // rows).astype(np.int16 if chunks < 2**15 else np.int64)
        order = np.argsort(chunk, kind="stable")
        self.col, self.cell = self.col[order], self.cell[order]
        self.value, self.count = self.value[order], self.count[order]
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(chunk, minlength=chunks))])

    def chunk(self, c0: int, c1: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Net notional and net group count entering each (column, cell) of columns c0..c1-1."""
        index = c0 // self.rows
        part = slice(self.bounds[index], self.bounds[index + 1])
        flat = (self.col[part] - c0) * width + self.cell[part]
        size = (c1 - c0) * width
        net = np.bincount(flat, weights=self.value[part], minlength=size)
        net_count = np.bincount(flat, weights=self.count[part], minlength=size)
        return net.reshape(c1 - c0, width), net_count.reshape(c1 - c0, width)


def heatmap_columns(n: int, max_columns: int) -> np.ndarray:
    """Steps n-1, n-1-k, ... (>= 1), ascending, with k = ceil((n - 1) / max_columns)."""
    k = -(-(n - 1) // max_columns)
    return np.arange(n - 1, 0, -k, dtype=np.int64)[::-1].copy()
