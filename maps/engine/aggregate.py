"""Several markets of one coin on one common price grid, summed (for the coin pages)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .clusters import clusters_from_bins, proximity_from_clusters, rank_clusters
from .simulate import MAX_BINS
from .types import EngineError, Result


def aggregate(results: list[Result]) -> Result:
    """Put the markets' maps, curves, heatmaps and liquidations on one grid and sum them.

    The common grid is anchored on the last close of the most recent market (the first of them
    on ties) with the finest of the markets' bin widths (in bps); each market's bins are spread
    over the common bins in proportion to their overlap, so every market's notional is conserved.
    Heatmap columns are the reference market's; each market contributes its latest column at or
    before each of them. Liquidations are summed over the union of the markets' step times.
    """
    results = list(results)
    if not results:
        raise EngineError("aggregate needs at least one result")
    _check_compatible(results)
    ref = max(range(len(results)), key=lambda i: (results[i].as_of, -i))
    ref_result = results[ref]
    close = ref_result.last_close
    bps = min(r.params.bin_bps for r in results)
    width = close * bps / 1e4
    edges = _common_edges(results, close, width)
    bins = len(edges) - 1
    map_long = sum(_rebin(r.map_long, r.edges, edges) for r in results)
    map_short = sum(_rebin(r.map_short, r.edges, edges) for r in results)
    cum_long, cum_short = _cumulative(results, edges)
    heat_times = ref_result.heat_times.copy()
    heat_long = np.zeros((len(heat_times), bins))
    heat_short = np.zeros((len(heat_times), bins))
    for r in results:
        _add_columns(heat_long, heat_short, heat_times, r, edges)
    liq_times, liq_long, liq_short = _liquidations(results)
    long = clusters_from_bins(map_long.sum(0), edges, close, "long")
    short = clusters_from_bins(map_short.sum(0), edges, close, "short")
    clusters = rank_clusters(long, short)
    return Result(
        as_of=ref_result.as_of,
        last_close=close,
        step_ms=ref_result.step_ms,
        params=dataclasses.replace(ref_result.params, bin_bps=bps),
        edges=edges,
        map_long=map_long,
        map_short=map_short,
        cum_long=cum_long,
        cum_short=cum_short,
        heat_times=heat_times,
        heat_long=heat_long,
        heat_short=heat_short,
        liq_times=liq_times,
        liq_long=liq_long,
        liq_short=liq_short,
        clusters=clusters,
        proximity=proximity_from_clusters(clusters, close),
        calibration=None,
        report=_report(results, bins, width, len(heat_times)),
    )


def _check_compatible(results: list[Result]) -> None:
    first = results[0]
    leverages = [t.leverage for t in first.params.tiers]
    for i, r in enumerate(results[1:], start=1):
        if r.step_ms != first.step_ms:
            raise EngineError(f"result {i} has step {r.step_ms} ms, result 0 has {first.step_ms}")
        if [t.leverage for t in r.params.tiers] != leverages:
            raise EngineError(f"result {i} has other leverage tiers than result 0")


def _common_edges(results: list[Result], close: float, width: float) -> np.ndarray:
    low = min(float(r.edges[0]) for r in results)
    high = max(float(r.edges[-1]) for r in results)
    lo = min(math.floor((low - close) / width), 0)
    hi = max(math.ceil((high - close) / width) - 1, -1)
    while close + lo * width > low:
        lo -= 1
    while close + (hi + 1) * width < high:
        hi += 1
    if hi - lo + 1 > MAX_BINS:
        raise EngineError(
            f"the common grid would need {hi - lo + 1} bins (more than {MAX_BINS}); raise bin_bps"
        )
    return close + np.arange(lo, hi + 2) * width


def _rebin(values: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Move per-bin mass from the src grid to the dst grid (which covers it), by overlap."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(-1, values.shape[-1])
    cum = np.zeros((flat.shape[0], flat.shape[1] + 1))
    np.cumsum(flat, axis=1, out=cum[:, 1:])
    idx = np.clip(np.searchsorted(src, dst, side="right") - 1, 0, len(src) - 2)
    frac = np.clip((dst - src[idx]) / (src[idx + 1] - src[idx]), 0.0, 1.0)
    at = cum[:, idx] + frac * (cum[:, idx + 1] - cum[:, idx])
    out = np.maximum(np.diff(at, axis=1), 0.0)
    return out.reshape((*values.shape[:-1], len(dst) - 1))


def _cumulative(results: list[Result], edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum of the markets' curves: their per-bin notional (without the groups already beyond
    the close) moved to the common grid, accumulated, plus those groups at every level."""
    bins = len(edges) - 1
    below = np.zeros(bins)
    above = np.zeros(bins)
    beyond_long = beyond_short = 0.0
    for r in results:
        b_long = float(r.report.get("totals", {}).get("long", {}).get("beyond_close", 0.0))
        b_short = float(r.report.get("totals", {}).get("short", {}).get("beyond_close", 0.0))
        x_long = np.append(-np.diff(r.cum_long), r.cum_long[-1] - b_long)
        x_short = np.diff(r.cum_short, prepend=b_short)
        below += _rebin(x_long, r.edges, edges)
        above += _rebin(x_short, r.edges, edges)
        beyond_long += b_long
        beyond_short += b_short
    return np.cumsum(below[::-1])[::-1] + beyond_long, np.cumsum(above) + beyond_short


def _add_columns(heat_long, heat_short, times, result: Result, edges) -> None:
    idx = np.searchsorted(result.heat_times, times, side="right") - 1
    have = idx >= 0
    if not have.any():
        return
    heat_long[have] += _rebin(result.heat_long[idx[have]], result.edges, edges)
    heat_short[have] += _rebin(result.heat_short[idx[have]], result.edges, edges)


def _liquidations(results: list[Result]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    times = results[0].liq_times
    for r in results[1:]:
        times = np.union1d(times, r.liq_times)
    tiers = results[0].liq_long.shape[1]
    long = np.zeros((len(times), tiers))
    short = np.zeros((len(times), tiers))
    for r in results:
        at = np.searchsorted(times, r.liq_times)
        long[at] += r.liq_long
        short[at] += r.liq_short
    return times.astype(np.int64), long, short


def _report(results: list[Result], bins: int, width: float, columns: int) -> dict:
    totals: dict = {}
    for side in ("long", "short"):
        keys = ("opened", "liquidated", "closed", "active", "beyond_close")
        totals[side] = {
            key: math.fsum(
                float(r.report.get("totals", {}).get(side, {}).get(key, 0.0)) for r in results
            )
            for key in keys
        }
    gaps = [dict(gap, market=i) for i, r in enumerate(results) for gap in r.report.get("gaps", [])]
    skipped = [
        dict(s, market=i) for i, r in enumerate(results) for s in r.report.get("skipped", [])
    ]
    return {
        "markets": [
            {"as_of": r.as_of, "last_close": r.last_close, "steps": r.report.get("steps")}
            for r in results
        ],
        "steps": max(int(r.report.get("steps", 0)) for r in results),
        "window_start": min(int(r.report.get("window_start", r.as_of)) for r in results),
        "gaps": gaps,
        "bins": bins,
        "bin_width": width,
        "columns": columns,
        "totals": totals,
        "skipped": skipped,
    }
