"""Order books on a price grid: a book checked and binned, books redrawn on one grid, the walls
resting in them (far above the typical depth) with how long each has stood, and the columns of a
depth heatmap over time. Pure numpy, no Django; `docs/model.md` ("Order books and walls") states
the rules.

Conventions: times are epoch ms, prices in quote currency, sizes in base units, depths in USD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MINUTE_MS = 60_000
BOOK_DEPTH = 0.05  # books are kept from 5 % below the mid to 5 % above it
WALL_MULTIPLE = 5.0  # a wall rests at least 5x the side's median bin depth
WALL_GAP_MS = 3 * MINUTE_MS  # a snapshot missing for longer than this ends every wall
WALL_MIN_MS = 2 * MINUTE_MS  # a wall that stood less is a flicker: listed only while it stands


class BookError(ValueError):
    """An order book that cannot be stored or drawn: an empty side, a crossed book, a bad level;
    the message says which."""


@dataclass(frozen=True)
class Book:
    """One order book: price levels (quote currency) and sizes (base units), best first."""

    bids: np.ndarray  # (n, 2): price, size; prices descending
    asks: np.ndarray  # (n, 2): price, size; prices ascending
    time_ms: int

    @property
    def best_bid(self) -> float:
        return float(self.bids[0, 0])

    @property
    def best_ask(self) -> float:
        return float(self.asks[0, 0])

    @property
    def mid(self) -> float:
        return (self.best_bid + self.best_ask) / 2


def book_checked(bids: object, asks: object, *, time_ms: int, where: str = "book") -> Book:
    """The book as arrays, best level first, or BookError saying what is wrong: a side with no
    level, a price or size that is not a positive number, a level repeated, or a crossed book
    (best bid at or above best ask)."""
    sides = []
    for name, levels, descending in (("bid", bids, True), ("ask", asks, False)):
        try:
            array = np.asarray(levels, dtype=np.float64)
        except (TypeError, ValueError):
            raise BookError(f"{where}: the {name} side is not a list of [price, size]") from None
        if array.size == 0:
            raise BookError(f"{where}: the {name} side is empty")
        if array.ndim != 2 or array.shape[1] < 2:
            raise BookError(f"{where}: the {name} side is not a list of [price, size]")
        array = array[:, :2]
        bad = ~(np.isfinite(array).all(axis=1) & (array[:, 0] > 0) & (array[:, 1] > 0))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise BookError(f"{where}: {name} level {row + 1} is {array[row].tolist()}")
        order = np.argsort(-array[:, 0] if descending else array[:, 0], kind="stable")
        array = array[order]
        if np.any(np.diff(array[:, 0]) == 0):
            raise BookError(f"{where}: the {name} side repeats a price level")
        sides.append(array)
    book = Book(sides[0], sides[1], int(time_ms))
    if book.best_bid >= book.best_ask:
        raise BookError(
            f"{where}: crossed book: best bid {book.best_bid:g} is not below best ask "
            f"{book.best_ask:g}"
        )
    return book


def book_grid(*, mid: float, width: float, anchor: float, depth: float = BOOK_DEPTH) -> np.ndarray:
    """Edges on the grid anchor + k x width covering [mid x (1 - depth), mid x (1 + depth)]."""
    if not (width > 0 and mid > 0 and 0 < depth < 1):
        raise BookError("a book grid needs a positive width, mid and depth below 1")
    first = math.floor((mid * (1 - depth) - anchor) / width)
    stop = math.ceil((mid * (1 + depth) - anchor) / width)
    return anchor + width * np.arange(first, stop + 1)


@dataclass(frozen=True)
class BinnedBook:
    """A book's resting USD per price bin on `edges`, bids and asks apart, and how far from the
    mid its levels reached on each side (a fraction of the mid)."""

    edges: np.ndarray
    bids: np.ndarray
    asks: np.ndarray
    mid: float
    best_bid: float
    best_ask: float
    reach_bid: float
    reach_ask: float
    time_ms: int


def book_bins(book: Book, *, edges: np.ndarray, contract_size: float = 1.0) -> BinnedBook:
    """USD per bin (price x size x contract size); levels outside the edges are left out."""
    edges = np.asarray(edges, dtype=np.float64)
    binned = []
    for side in (book.bids, book.asks):
        usd = side[:, 0] * side[:, 1] * contract_size
        binned.append(np.histogram(side[:, 0], bins=edges, weights=usd)[0].astype(np.float64))
    mid = book.mid
    return BinnedBook(
        edges=edges,
        bids=binned[0],
        asks=binned[1],
        mid=mid,
        best_bid=book.best_bid,
        best_ask=book.best_ask,
        reach_bid=float((mid - book.bids[-1, 0]) / mid),
        reach_ask=float((book.asks[-1, 0] - mid) / mid),
        time_ms=book.time_ms,
    )


def rebin(
    values: np.ndarray, starts: np.ndarray, widths: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """Rows of per-bin amounts, row r on the grid starts[r] + k x widths[r], spread onto `edges`
    in proportion to the overlap of the bins (what a row holds outside the edges is left out)."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    rows, bins = values.shape
    edges = np.asarray(edges, dtype=np.float64)
    if rows == 0:
        return np.zeros((0, len(edges) - 1))
    cumulative = np.zeros((rows, bins + 1))
    np.cumsum(values, axis=1, out=cumulative[:, 1:])
    position = (edges[None, :] - np.asarray(starts, dtype=np.float64)[:, None]) / np.asarray(
        widths, dtype=np.float64
    )[:, None]
    position = np.clip(position, 0.0, bins)
    whole = np.minimum(np.floor(position).astype(np.int64), bins - 1)
    part = position - whole
    row = np.arange(rows)[:, None]
    at = cumulative[row, whole] + part * (cumulative[row, whole + 1] - cumulative[row, whole])
    return np.diff(at, axis=1)


@dataclass(frozen=True)
class BookHistory:
    """Books over time on one grid: `bids[t, k]`, `asks[t, k]` in USD, `mids[t]`."""

    times: np.ndarray
    edges: np.ndarray
    bids: np.ndarray
    asks: np.ndarray
    mids: np.ndarray

    def __len__(self) -> int:
        return len(self.times)


def typical_depth(depth: np.ndarray) -> np.ndarray:
    """Per snapshot (row): the median of the side's non-empty bins; inf for an empty side."""
    rows, bins = depth.shape
    filled = (depth > 0).sum(axis=1)
    ordered = np.sort(np.where(depth > 0, depth, np.inf), axis=1)
    if bins == 0:
        return np.full(rows, np.inf)
    low = ordered[np.arange(rows), np.clip((filled - 1) // 2, 0, bins - 1)]
    high = ordered[np.arange(rows), np.clip(filled // 2, 0, bins - 1)]
    return np.where(filled > 0, (low + high) / 2, np.inf)


@dataclass(frozen=True)
class Spans:
    """Runs of adjacent wall bins of one side: snapshot (row), first and last bin, USD resting,
    and the fullest bin's multiple of the typical depth; sorted by row, then bin."""

    row: np.ndarray
    first: np.ndarray
    last: np.ndarray
    usd: np.ndarray
    multiple: np.ndarray


def wall_spans(depth: np.ndarray) -> Spans:
    """The walls of one side in every snapshot: runs of bins each holding at least WALL_MULTIPLE
    x the side's typical depth (its median non-empty bin) in that snapshot."""
    typical = typical_depth(depth)
    row, col = np.nonzero(depth >= WALL_MULTIPLE * typical[:, None])
    if not row.size:
        empty = np.empty(0, dtype=np.int64)
        return Spans(empty, empty, empty, np.empty(0), np.empty(0))
    new = np.ones(row.size, dtype=bool)
    new[1:] = (row[1:] != row[:-1]) | (np.diff(col) > 1)
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:] - 1, row.size - 1]
    rows, first, last = row[starts], col[starts], col[ends]
    cumulative = np.zeros((depth.shape[0], depth.shape[1] + 1))
    np.cumsum(depth, axis=1, out=cumulative[:, 1:])
    usd = cumulative[rows, last + 1] - cumulative[rows, first]
    peak = np.maximum.reduceat(depth[row, col], starts)
    return Spans(rows, first, last, usd, peak / typical[rows])


@dataclass
class _Run:
    side: str
    first: int  # index of the snapshot it appeared in
    last: int
    bins: tuple[int, int]  # its bins in the last snapshot, inclusive
    usd: float
    peak_usd: float
    multiple: float


def book_walls(history: BookHistory, *, gap_ms: int = WALL_GAP_MS) -> list[dict]:
    """Every wall seen in the history, in order of appearance: its side, price (the USD-weighted
    centre of its bins in the last snapshot it stood in) and range, USD resting then and at most,
    its multiple of the typical depth, when it appeared and was last seen, how long it stood, and
    whether it still stands in the last snapshot.

    Adjacent wall bins of one side make one wall. A wall continues from one snapshot to the next
    when they are at most `gap_ms` apart and its bins overlap or touch the previous ones (prices
    move by a bin as the grid is redrawn); otherwise a new wall appears.
    """
    if len(history) == 0:
        return []
    sides = {"bid": wall_spans(history.bids), "ask": wall_spans(history.asks)}
    by_row: dict[int, list[tuple[str, int]]] = {}
    for side, spans in sides.items():
        for index, row in enumerate(spans.row.tolist()):
            by_row.setdefault(row, []).append((side, index))
    runs: list[_Run] = []
    active: list[_Run] = []
    times = history.times
    for t in range(len(history)):
        if t and times[t] - times[t - 1] > gap_ms:
            active = []
        current = []
        for side, i in by_row.get(t, []):
            spans = sides[side]
            first, last = int(spans.first[i]), int(spans.last[i])
            usd, multiple = float(spans.usd[i]), float(spans.multiple[i])
            run = _follow(active, side, first, last)
            if run is None:
                run = _Run(side, t, t, (first, last), usd, usd, multiple)
                runs.append(run)
            run.last, run.bins, run.usd, run.multiple = t, (first, last), usd, multiple
            run.peak_usd = max(run.peak_usd, usd)
            current.append(run)
        active = current
    centres = (history.edges[:-1] + history.edges[1:]) / 2
    last_t = len(history) - 1
    return [_wall(run, history, centres, last_t) for run in runs]


def _follow(active: list[_Run], side: str, first: int, last: int) -> _Run | None:
    for run in active:
        if run.side == side and first <= run.bins[1] + 1 and last >= run.bins[0] - 1:
            active.remove(run)
            return run
    return None


def _wall(run: _Run, history: BookHistory, centres: np.ndarray, last_t: int) -> dict:
    first, last = run.bins
    depth = (history.bids if run.side == "bid" else history.asks)[run.last, first : last + 1]
    weights = depth if depth.sum() > 0 else np.ones_like(depth)
    appeared, seen = int(history.times[run.first]), int(history.times[run.last])
    return {
        "side": run.side,
        "price": float(np.average(centres[first : last + 1], weights=weights)),
        "price_low": float(history.edges[first]),
        "price_high": float(history.edges[last + 1]),
        "usd": run.usd,
        "peak_usd": run.peak_usd,
        "multiple": run.multiple,
        "appeared": appeared,
        "last_seen": seen,
        "stood_ms": seen - appeared,
        "standing": run.last == last_t,
    }


def depth_columns(
    times: np.ndarray, *, start: int, end: int, limit: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """At most `limit` evenly spaced columns over [start, end] (whole minutes apart, the last at
    `end`): (the snapshot each shows, the columns' times, their spacing). A column shows the
    latest snapshot at or before its time and at most one spacing older; -1 when there is none."""
    times = np.asarray(times, dtype=np.int64)
    span = max(end - start, MINUTE_MS)
    spacing = max(MINUTE_MS, math.ceil(span / max(limit - 1, 1) / MINUTE_MS) * MINUTE_MS)
    count = max(1, span // spacing + 1)
    columns = end - spacing * np.arange(count - 1, -1, -1, dtype=np.int64)
    pick = np.searchsorted(times, columns, side="right") - 1
    stale = (pick < 0) | (columns - times[np.clip(pick, 0, None)] > spacing)
    return np.where(stale, -1, pick), columns, spacing
