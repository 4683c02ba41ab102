"""Clusters (runs of bins holding a large share of a side's notional) and proximity."""

from __future__ import annotations

import numpy as np

from .types import EngineError

HOT_FACTOR = 2.0
MAX_GAP_BINS = 2
MIN_SHARE = 0.01
SIGNIFICANT_SHARE = 0.05
MIN_DISTANCE_PCT = 0.05
SIDES = ("long", "short")


def cluster_spans(x: np.ndarray, nonempty: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kept clusters of one side as (first bin, last bin, notional), ranked by notional.

    A bin is hot when it holds at least twice the average of the non-empty bins; hot runs
    separated by at most two other bins merge; clusters under 1% of the side's total are dropped;
    ties in notional rank the lower cluster first.
    """
    _, starts, ends, notional = cluster_spans_rows(x[None, :], np.array([nonempty]))
    return starts, ends, notional


def cluster_spans_rows(
    x: np.ndarray, nonempty: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """cluster_spans for every row of x (rows, bins) at once: (row, first bin, last bin,
    notional), sorted by row and ranked within each row."""
    rows, bins = x.shape
    total = x.sum(axis=1)
    valid = (total > 0) & (nonempty > 0)
    threshold = np.full(rows, np.inf)
    threshold[valid] = HOT_FACTOR * total[valid] / nonempty[valid]
    hot_row, hot_bin = np.nonzero(x >= threshold[:, None])
    if not hot_row.size:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty, np.empty(0)
    new = np.ones(hot_row.size, dtype=bool)
    new[1:] = (hot_row[1:] != hot_row[:-1]) | (np.diff(hot_bin) - 1 > MAX_GAP_BINS)
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, hot_row.size - 1)
    row, starts, ends = hot_row[first], hot_bin[first], hot_bin[last]
    bounds = np.empty(2 * len(starts), dtype=np.int64)
    bounds[0::2], bounds[1::2] = row * bins + starts, row * bins + ends + 1
    flat = x.ravel()
    if bounds[-1] == flat.size:  # the last cluster ends at the last bin: its sum runs to the end
        bounds = bounds[:-1]
    notional = np.add.reduceat(flat, bounds)[0::2]
    keep = notional >= MIN_SHARE * total[row]
    row, starts, ends, notional = row[keep], starts[keep], ends[keep], notional[keep]
    order = np.lexsort((starts, -notional, row))
    return row[order], starts[order], ends[order], notional[order]


def top_per_row(row: np.ndarray, count: int) -> np.ndarray:
    """Mask of the first `count` entries of each row in a row-sorted list."""
    first = np.searchsorted(row, row, side="left")
    return np.arange(len(row)) - first < count


def clusters_from_bins(
    x: np.ndarray, edges: np.ndarray, last_close: float, side: str
) -> list[dict]:
    """The clusters of one side from its per-bin notional x on the grid with these edges."""
    x = np.asarray(x, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if side not in SIDES:
        raise EngineError(f"side must be 'long' or 'short', not {side!r}")
    if not (np.isfinite(last_close) and last_close > 0):
        raise EngineError(f"last_close must be a positive price, not {last_close}")
    if x.ndim != 1 or len(edges) != len(x) + 1:
        raise EngineError(f"{len(x)} bins need {len(x) + 1} edges, not {len(edges)}")
    total = float(x.sum())
    starts, ends, notional = cluster_spans(x, int(np.count_nonzero(x > 0)))
    out = []
    for start, end, usd in zip(starts.tolist(), ends.tolist(), notional.tolist(), strict=True):
        peak = start + int(np.argmax(x[start : end + 1]))
        low, high = float(edges[start]), float(edges[end + 1])
        out.append(
            {
                "side": side,
                "price_low": low,
                "price_high": high,
                "peak_price": float((edges[peak] + edges[peak + 1]) / 2),
                "notional_usd": float(usd),
                "share": float(usd / total),
                "distance_pct": distance_pct(low, high, last_close),
            }
        )
    return out


def distance_pct(low: float, high: float, last_close: float) -> float:
    """Signed distance in % from the close to the nearer end of [low, high]; 0 inside."""
    if low <= last_close <= high:
        return 0.0
    nearest = high if high < last_close else low
    return 100.0 * (nearest - last_close) / last_close


def rank_clusters(long: list[dict], short: list[dict]) -> list[dict]:
    """Both sides' clusters in one list, by notional (ties: lower price first, then long)."""
    return sorted(long + short, key=lambda c: (-c["notional_usd"], c["price_low"], c["side"]))


def proximity_from_clusters(clusters: list[dict], last_close: float) -> dict:
    """The nearest significant long cluster below the close and short cluster above it,
    which one is nearer, which is larger, and the likely magnet."""
    significant = [c for c in clusters if c["share"] >= SIGNIFICANT_SHARE]
    below = [c for c in significant if c["side"] == "long" and c["price_high"] <= last_close]
    above = [c for c in significant if c["side"] == "short" and c["price_low"] >= last_close]
    long = max(below, key=lambda c: c["price_high"], default=None)
    short = min(above, key=lambda c: c["price_low"], default=None)
    nearer = _pick(long, short, lambda c: -abs(c["distance_pct"]))
    larger = _pick(long, short, lambda c: c["notional_usd"])
    magnet = _pick(long, short, magnet_score)
    return {
        "last_close": float(last_close),
        "long": _summary(long),
        "short": _summary(short),
        "nearer": nearer,
        "larger": larger,
        "magnet": magnet,
        "direction": {"long": "down", "short": "up", None: None}[magnet],
    }


def magnet_score(cluster: dict) -> float:
    """The magnet rule's score of a cluster: its notional per % of distance from the close (the
    distance floored at MIN_DISTANCE_PCT); the side with the higher score is the magnet."""
    return cluster["notional_usd"] / max(abs(cluster["distance_pct"]), MIN_DISTANCE_PCT)


def _pick(long: dict | None, short: dict | None, score) -> str | None:
    """'long' or 'short', the side with the higher score (ties: long); the one present if only
    one is; None if neither."""
    if long is None and short is None:
        return None
    if short is None:
        return "long"
    if long is None:
        return "short"
    return "long" if score(long) >= score(short) else "short"


def _summary(cluster: dict | None) -> dict | None:
    if cluster is None:
        return None
    keys = ("price_low", "price_high", "peak_price", "notional_usd", "share", "distance_pct")
    return {key: cluster[key] for key in keys}
