"""run(): one market's bars through the model to heatmap, map, curves, liquidations, clusters."""

from __future__ import annotations

import numpy as np

from .calibration import calibrate
from .clusters import clusters_from_bins, proximity_from_clusters, rank_clusters
from .simulate import (
    Groups,
    Path,
    bin_index,
    bin_span,
    build_path,
    grid_bins,
    heatmap_columns,
    liquidations,
    open_groups,
    presence,
    states,
    value_at,
    weighted,
)
from .types import Bars, EngineError, Events, Params, Result

ENGINE_VERSION = "2.1.0"


def run(bars: Bars, params: Params | None = None, events: Events | None = None) -> Result:
    """Run the model over the window of these bars; with events, also calibrate against them."""
    params = params if params is not None else Params()
    if not isinstance(bars, Bars):
        raise EngineError(f"bars must be a Bars, not {type(bars).__name__}")
    if events is not None and not isinstance(events, Events):
        raise EngineError(f"events must be an Events, not {type(events).__name__}")
    path = build_path(bars, params)
    weights = params.weights
    # calibration needs every tier at weight 1, even tiers whose configured weight is 0
    tiers = np.arange(len(weights)) if events is not None else np.flatnonzero(weights > 0)
    sides = (open_groups(path, params, True, tiers), open_groups(path, params, False, tiers))
    per_tier = tuple(liquidations(path, g, len(weights)) for g in sides)
    result = _result(path, params, sides, per_tier)
    if events is not None:
        width = result.report["bin_width"]
        result.calibration = calibrate(
            path, params, sides, per_tier, events, result.last_close, width
        )
    return result


def _result(path: Path, params: Params, sides: tuple, per_tier: tuple) -> Result:
    weights = params.weights
    close = float(path.close[-1])
    width = close * params.bin_bps / 1e4
    cols = heatmap_columns(path.n, params.max_columns)
    bases = tuple(weighted(g, weights) for g in sides)
    parts = [presence(path, g, b, cols, close, width) for g, b in zip(sides, bases, strict=True)]
    lo, hi = grid_bins(bin_span(*parts))
    bins = hi - lo + 1
    edges = close + np.arange(lo, hi + 2) * width
    heat = np.concatenate([v for _, v, _ in states(path, cols, parts[0], parts[1], lo, bins)])
    final = [
        _final_map(path, g, b, close, width, lo, bins, len(weights))
        for g, b in zip(sides, bases, strict=True)
    ]
    (map_long, beyond_long, cum_long), (map_short, beyond_short, cum_short) = final
    long = clusters_from_bins(map_long.sum(0), edges, close, "long")
    short = clusters_from_bins(map_short.sum(0), edges, close, "short")
    clusters = rank_clusters(long, short)
    result = Result(
        as_of=int(path.ts[-1]),
        last_close=close,
        step_ms=params.step_ms,
        params=params,
        edges=edges,
        map_long=map_long,
        map_short=map_short,
        cum_long=cum_long,
        cum_short=cum_short,
        heat_times=path.ts[cols].copy(),
        heat_long=heat[:, :bins],
        heat_short=heat[:, bins:],
        liq_times=path.ts[1:].copy(),
        liq_long=per_tier[0] * weights[None, :],
        liq_short=per_tier[1] * weights[None, :],
        clusters=clusters,
        proximity=proximity_from_clusters(clusters, close),
    )
    result.report = _report(path, params, sides, bases, result, (beyond_long, beyond_short), width)
    return result


def _final_map(
    path: Path,
    groups: Groups,
    base: np.ndarray,
    close: float,
    width: float,
    lo: int,
    bins: int,
    tiers: int,
) -> tuple[np.ndarray, float, np.ndarray]:
    """The side's per-tier map after the last step, the notional of the groups opened on the
    last step whose LP already lies beyond the close, and the side's cumulative curve (those
    groups counted at every level)."""
    n = path.n
    alive = (groups.end == n) & (base > 0)
    sub = groups.subset(alive, base)
    value = value_at(path, sub, sub.base, np.full(len(sub), n - 1))
    cell = bin_index(sub.lp, close, width) - lo
    flat = np.bincount(sub.tier * bins + cell, weights=value, minlength=tiers * bins)
    lp_beyond = sub.lp > close if groups.is_long else sub.lp < close
    beyond = (sub.step == n - 1) & lp_beyond & (value > 0)
    rest = np.bincount(cell[~beyond], weights=value[~beyond], minlength=bins)
    total = float(value[beyond].sum())
    curve = _reverse_cumsum(rest) if groups.is_long else np.cumsum(rest)
    return flat.reshape(tiers, bins), total, curve + total


def _reverse_cumsum(x: np.ndarray) -> np.ndarray:
    return np.cumsum(x[::-1])[::-1]


def _gaps(ts: np.ndarray, step: int) -> list[dict]:
    dt = np.diff(ts)
    return [
        {"after": int(ts[i]), "before": int(ts[i + 1]), "missing_steps": int(dt[i] // step - 1)}
        for i in np.flatnonzero(dt > step).tolist()
    ]


def _report(
    path: Path,
    params: Params,
    sides: tuple,
    bases: tuple,
    result: Result,
    beyond: tuple[float, float],
    width: float,
) -> dict:
    active = (float(result.map_long.sum()), float(result.map_short.sum()))
    liquidated = (result.liq_long.sum(1), result.liq_short.sum(1))
    opened = [
        np.bincount(g.step, weights=b, minlength=path.n) for g, b in zip(sides, bases, strict=True)
    ]
    closed = _closed(path.f, opened, liquidated)
    totals = {
        name: {
            "opened": float(opened[k].sum()),
            "liquidated": float(liquidated[k].sum()),
            "closed": closed[k],
            "active": active[k],
            "beyond_close": beyond[k],
        }
        for k, name in enumerate(("long", "short"))
    }
    return {
        "engine_version": ENGINE_VERSION,
        "steps": path.n,
        "window_start": int(path.ts[0]),
        "first_row": path.first_row,
        "gaps": _gaps(path.ts, params.step_ms),
        "bins": len(result.edges) - 1,
        "bin_width": width,
        "columns": len(result.heat_times),
        "totals": totals,
        "skipped": [],
    }


def _closed(f: np.ndarray, opened: list, liquidated: tuple) -> tuple[float, float]:
    """USD closed by turnover and OI falls per side, from each side's per-step totals alone,
    independent of the per-group arithmetic. A side's total follows
    A_i = (A_{i-1} - liquidated_i) * f_i + opened_i from A_0 = 0, so what it closed is what it
    opened less what it liquidated and what it still holds after the last step, and that last
    total is each step's amount times the product of the factors that came after it."""
    later = np.ones(len(f))  # later[i] = f[i + 1] * ... * f[n - 1]
    later[:-1] = np.cumprod(f[:0:-1])[::-1]
    from_step = f * later  # f[i] * ... * f[n - 1]
    out = []
    for opens, liquids in zip(opened, liquidated, strict=True):
        held = float(opens[1:] @ later[1:]) - float(liquids @ from_step[1:])
        out.append(float(opens[1:].sum()) - float(liquids.sum()) - held)
    return out[0], out[1]
