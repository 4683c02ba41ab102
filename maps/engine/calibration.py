"""Calibration against real liquidations: tier weights by non-negative least squares, and the
accuracy figures (per-step correlation, zone hit rate beside the zones' price coverage)."""

from __future__ import annotations

import numpy as np

from .clusters import (
    HOT_FACTOR,
    MAX_GAP_BINS,
    MIN_SHARE,
    cluster_spans_rows,
    top_per_row,
)
from .simulate import Groups, Path, bin_span, presence, states, weighted
from .types import Events, Params

TOP_CLUSTERS = 5
MAX_DENSE_ZONE_BINS = 200_000


def bucket_events(events: Events, ts: np.ndarray, step_ms: int) -> np.ndarray:
    """The simulated step (1..n-1) of each event, or -1 when it falls outside them."""
    i = np.searchsorted(ts, events.time, side="right") - 1
    safe = np.maximum(i, 0)
    inside = (i >= 1) & (events.time < ts[safe] + step_ms)
    return np.where(inside, i, -1)


def events_per_step(events: Events, ts: np.ndarray, step_ms: int) -> tuple[np.ndarray, ...]:
    """Real liquidated notional per simulated step, long and short, and each event's step."""
    step = bucket_events(events, ts, step_ms)
    n = len(ts)
    inside = step >= 1
    series = []
    for side in (events.is_long, ~events.is_long):
        mask = inside & side
        series.append(np.bincount(step[mask], weights=events.notional[mask], minlength=n)[1:])
    return series[0], series[1], step


def nnls(a: np.ndarray, b: np.ndarray, max_iter: int | None = None) -> np.ndarray:
    """Lawson-Hanson non-negative least squares: argmin ||a x - b|| subject to x >= 0."""
    m, k = a.shape
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    scaled = a / norms
    tol = 10 * np.finfo(float).eps * max(m, k) * max(1.0, float(np.linalg.norm(b)))
    x = np.zeros(k)
    passive = np.zeros(k, dtype=bool)
    for _ in range(max_iter or 3 * k + 10):
        grad = scaled.T @ (b - scaled @ x)
        candidates = ~passive & (grad > tol)
        if not candidates.any():
            break
        passive[np.argmax(np.where(candidates, grad, -np.inf))] = True
        x = _solve_passive(scaled, b, x, passive)
    return x / norms


def _solve_passive(a: np.ndarray, b: np.ndarray, x: np.ndarray, passive: np.ndarray) -> np.ndarray:
    """The inner loop: least squares on the passive set, stepping back while it goes negative."""
    while passive.any():
        z = np.zeros_like(x)
        z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
        if (z[passive] > 0).all():
            return z
        bad = passive & (z <= 0)
        gap = x[bad] - z[bad]
        alpha = float(np.min(np.divide(x[bad], gap, out=np.zeros_like(gap), where=gap > 0)))
        x = x + alpha * (z - x)
        passive &= x > np.finfo(float).eps * max(1.0, float(np.abs(x).max()))
        x[~passive] = 0.0
    return x


def fit_weights(c_long: np.ndarray, c_short: np.ndarray, real_long, real_short, prior):
    """Fitted weights, raw fit, scale and which tiers could be identified."""
    design = np.vstack([c_long, c_short])
    target = np.concatenate([real_long, real_short])
    identified = (design != 0).any(axis=0)
    fit = np.zeros(len(prior))
    if identified.any():
        fit[identified] = nnls(design[:, identified], target)
    fit_sum = float(fit.sum())
    prior_identified = float(prior[identified].sum())
    if fit_sum <= 0:
        return prior.copy(), fit, 0.0, identified
    weights = prior.copy()
    weights[identified] = fit[identified] / fit_sum * (1 - float(prior[~identified].sum()))
    scale = fit_sum / prior_identified if prior_identified > 0 else None
    return weights, fit, scale, identified


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation, None when either series has zero variance."""
    if len(a) < 2:
        return None
    da, db = a - a.mean(), b - b.mean()
    va, vb = float(da @ da), float(db @ db)
    if va <= 0 or vb <= 0:
        return None
    return float(np.clip((da @ db) / np.sqrt(va * vb), -1.0, 1.0))


def calibrate(
    path: Path,
    params: Params,
    sides: tuple[Groups, Groups],
    per_tier: tuple[np.ndarray, np.ndarray],
    events: Events,
    close: float,
    width: float,
) -> dict:
    """The calibration block of a run: fitted weights, scale, correlations, hit rate, coverage."""
    real_long, real_short, step = events_per_step(events, path.ts, params.step_ms)
    prior = params.weights
    weights, fit, scale, identified = fit_weights(*per_tier, real_long, real_short, prior)
    hit_rate, coverage = zone_accuracy(path, params, sides, events, step, close, width)
    used = int(np.count_nonzero(step >= 1))
    reason = None
    if used == 0:
        weights, scale = prior.copy(), None
        reason = (
            "no liquidation event of this market lies inside the modelled steps "
            f"({len(events)} given, all outside): nothing to fit, the weights stay as configured"
        )
    return {
        "weights": weights.tolist(),
        "scale": scale,
        "reason": reason,
        "corr_long": correlation(per_tier[0] @ fit, real_long),
        "corr_short": correlation(per_tier[1] @ fit, real_short),
        "hit_rate": hit_rate,
        "coverage": coverage,
        "events_used": used,
        "events_outside": len(events) - used,
        "identified": identified.tolist(),
        "fitted_raw": fit.tolist(),
        "real_long": real_long,
        "real_short": real_short,
    }


def zone_accuracy(path, params, sides, events, step, close, width) -> tuple:
    """USD-weighted zone hit rate and coverage of the top clusters at the previous step's end."""
    inside = np.flatnonzero(step >= 1)
    if not inside.size or float(events.notional[inside].sum()) <= 0:
        return None, None
    order = inside[np.argsort(step[inside], kind="stable")]
    cols, column = np.unique(step[order] - 1, return_inverse=True)
    weights = params.weights
    parts = [presence(path, g, weighted(g, weights), cols, close, width) for g in sides]
    span = bin_span(*parts)
    lo, hi = span if span else (0, 0)
    bins = hi - lo + 1
    hit = np.zeros(len(order))
    cover = np.zeros(len(order))
    bounds = np.searchsorted(column, np.arange(len(cols) + 1))
    if bins > MAX_DENSE_ZONE_BINS:
        chunks = _sparse_zone_chunks(path, cols, parts, close, width)
    else:
        chunks = _dense_zone_chunks(path, cols, parts, lo, bins, close, width)
    for c0, zone_lo, zone_hi in chunks:
        c1 = c0 + zone_lo.shape[0] // 2
        mine = slice(bounds[c0], bounds[c1])
        ev = order[mine]
        row = 2 * (column[mine] - c0) + (~events.is_long[ev]).astype(np.int64)
        i = cols[column[mine]] + 1
        hit[mine], cover[mine] = _score(
            events.price[ev], zone_lo[row], zone_hi[row], path.low[i], path.high[i]
        )
    usd = events.notional[order]
    total = float(usd.sum())
    return float(usd @ hit) / total, float(usd @ cover) / total


def _dense_zone_chunks(path, cols, parts, lo: int, bins: int, close: float, width: float):
    """(first column, zone_lo, zone_hi) per chunk of states binned on one dense grid."""
    for c0, values, counts in states(path, cols, parts[0], parts[1], lo, bins):
        rows = values.shape[0]
        x = values.reshape(2 * rows, bins)
        nonempty = np.count_nonzero(counts.reshape(2 * rows, bins), axis=1)
        row, starts, ends, _ = cluster_spans_rows(x, nonempty)
        yield (c0, *_zone_bounds(row, starts + lo, ends + lo, 2 * rows, close, width))


def _sparse_zone_chunks(path, cols, parts, close: float, width: float):
    """The same zones, one state at a time on its occupied bins only: for books spread over
    more bins than a dense grid can hold (a price that moved by orders of magnitude)."""
    growth = path.log_growth
    for c in range(len(cols)):
        rows, starts, ends = [], [], []
        for side, part in enumerate(parts):
            alive = (part.c_in <= c) & (c < part.c_out)
            value = part.v_in[alive] * np.exp(growth[cols[c]] - growth[cols[part.c_in[alive]]])
            occupied, cell = np.unique(part.bin[alive], return_inverse=True)
            x = np.bincount(cell, weights=value, minlength=len(occupied))
            first, last = sparse_cluster_spans(occupied, x)
            rows.append(np.full(len(first), side))
            starts.append(first)
            ends.append(last)
        row, start, end = (np.concatenate(a) for a in (rows, starts, ends))
        yield (c, *_zone_bounds(row, start, end, 2, close, width))


def sparse_cluster_spans(occupied: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cluster_spans on a grid given by its occupied bins (ascending) and their notional:
    (first bin, last bin) of the kept clusters, ranked; every other bin is empty."""
    total = float(x.sum())
    hot = np.flatnonzero(x >= HOT_FACTOR * total / max(len(occupied), 1))
    if total <= 0 or not hot.size:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    bins = occupied[hot]
    new = np.ones(len(bins), dtype=bool)
    new[1:] = np.diff(bins) - 1 > MAX_GAP_BINS
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(bins) - 1)
    running = np.concatenate([[0.0], np.cumsum(x)])
    notional = running[hot[last] + 1] - running[hot[first]]
    keep = notional >= MIN_SHARE * total
    starts, ends, notional = bins[first][keep], bins[last][keep], notional[keep]
    order = np.lexsort((starts, -notional))
    return starts[order], ends[order]


def _zone_bounds(row, starts, ends, rows: int, close: float, width: float):
    """Price bounds (rows, TOP_CLUSTERS) of each row's top clusters (rows ranked within each
    row, row 2r long and 2r + 1 short); NaN where a state has fewer clusters."""
    order = np.lexsort((np.arange(len(row)), row))
    row, starts, ends = row[order], starts[order], ends[order]
    top = top_per_row(row, TOP_CLUSTERS)
    row, starts, ends = row[top], starts[top], ends[top]
    rank = np.arange(len(row)) - np.searchsorted(row, row, side="left")
    zone_lo = np.full((rows, TOP_CLUSTERS), np.nan)
    zone_hi = np.full((rows, TOP_CLUSTERS), np.nan)
    zone_lo[row, rank] = close + starts * width
    zone_hi[row, rank] = close + (ends + 1) * width
    return zone_lo, zone_hi


def _score(prices, zone_lo, zone_hi, low, high) -> tuple[np.ndarray, np.ndarray]:
    """Per event: inside one of its zones (1/0), and the share of its step's [low, high] that
    the zones cover (the hit itself when low == high).

    Zones from cluster_spans are disjoint (separated by at least three bins), so their union's
    length is the sum of their lengths."""
    with np.errstate(invalid="ignore"):
        inside = (zone_lo <= prices[:, None]) & (prices[:, None] <= zone_hi)
        overlap = np.minimum(zone_hi, high[:, None]) - np.maximum(zone_lo, low[:, None])
    hits = inside.any(axis=1).astype(float)
    covered = np.nansum(np.clip(overlap, 0, None), axis=1)
    span = high - low
    share = np.divide(covered, span, out=hits.copy(), where=span > 0)
    return hits, share
