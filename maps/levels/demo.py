"""Simulated order books for the demo markets: one a minute over the last days of the demo bars.

The mid follows the bars (from each step's open to its close). Resting depth grows with the
distance from the mid, with a persistent texture per price level and a little noise per minute.
Walls appear at random (about one an hour per side), mostly on round prices 0.4 % to 4 % from
the mid, resting 8 to 25 times the typical depth; each vanishes when its time is up (a few are
pulled within minutes, most stand an hour or two, some most of a day) or when price trades
through it. Books are binned like real ones (maps.levels.services.orderbook_store) on the grid
of the demo's maps: one edge on the last close, the market's bin width. Every number comes from
one generator seeded by the demo seed and the market, so a seed gives the same books.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from django.db import connection

from maps.analytics.orderbook import BOOK_DEPTH, MINUTE_MS
from maps.engine.types import Bars
from maps.levels.selectors import depth_encode, mid_bin
from maps.models import Market, OrderBookSnapshot, ms_to_datetime
from maps.services import rows_insert

WALLS_PER_HOUR = 1.0  # per side
WALL_SIZE = (8.0, 25.0)  # times the base depth of a bin
WALL_DISTANCE = (0.004, 0.04)
DEPTH_SHARE = 0.05  # a bin near the mid rests about 5 % of a step's traded volume
ROUND_SHARE = 0.7  # most walls sit on a round price
TEXTURE_SIGMA = 0.25  # how much the depth differs from one price level to the next
NOISE_SIGMA = 0.12  # and from one minute to the next


@dataclass(frozen=True)
class _Wall:
    side: str
    price: float
    usd: float
    born: int  # first row (minute) it rests in
    dies: int  # first row it is gone from


def demo_books_refill(*, market: Market, bars: Bars, seed: int, days: int) -> int:
    """Replace the market's books by simulated ones for the last `days` of its bars; returns how
    many were stored."""
    OrderBookSnapshot.objects.filter(market=market).delete()
    if len(bars.ts) < 2:
        return 0
    rng = np.random.default_rng(
        [seed, zlib.crc32(f"{market.exchange.slug}:{market.slug}".encode())]
    )
    step = int(bars.ts[1] - bars.ts[0])
    end = int(bars.ts[-1]) + step
    start = max(int(bars.ts[0]), end - days * 86_400_000)
    times = np.arange(start, end, MINUTE_MS, dtype=np.int64)
    mids = demo_mids(bars, times, step, rng)
    anchor = float(bars.close[-1])
    width = anchor * market.bin_bps / 1e4
    base = DEPTH_SHARE * float(np.median(bars.volume * bars.close))
    rows = _book_rows(rng, times, mids, anchor, width, base)
    _store(market, rows, width)
    return len(rows)


def demo_mids(bars: Bars, times: np.ndarray, step: int, rng: np.random.Generator) -> np.ndarray:
    """The mid at each minute: along each step from its open to its close, within its range."""
    at = np.clip(np.searchsorted(bars.ts, times, side="right") - 1, 0, len(bars.ts) - 1)
    progress = (times - bars.ts[at] + MINUTE_MS) / step
    mids = bars.open[at] + (bars.close[at] - bars.open[at]) * np.clip(progress, 0.0, 1.0)
    mids *= 1 + rng.normal(0, 2e-4, len(times))
    return np.clip(mids, bars.low[at], bars.high[at])


def _round_step(price: float) -> float:
    """A round number for walls to gather at: 500 near 70,000, 50 near 3,300, 5 near 145."""
    return 10 ** math.floor(math.log10(price)) / 20


def _book_rows(rng, times, mids, anchor, width, base) -> list[tuple]:
    """(time, mid, first edge, bins, bids, asks) per minute: the resting depth, then the walls."""
    lo = np.floor((mids * (1 - BOOK_DEPTH) - anchor) / width).astype(np.int64)
    counts = np.ceil((mids * (1 + BOOK_DEPTH) - anchor) / width).astype(np.int64) - lo
    k = lo[:, None] + np.arange(counts.max())[None, :]  # each bin's index on the whole grid
    lower = anchor + width * k
    distance = np.abs(lower + width / 2 - mids[:, None]) / mids[:, None] * 100
    texture = np.exp(rng.normal(0, TEXTURE_SIGMA, int(k.max() - k.min()) + 1))
    depth = base * (0.4 + 0.9 * distance**0.6) * texture[k - k.min()]
    depth *= np.exp(rng.normal(0, NOISE_SIGMA, depth.shape))
    depth[np.arange(depth.shape[1])[None, :] >= counts[:, None]] = 0.0
    below = np.clip((mids[:, None] - lower) / width, 0.0, 1.0)
    bids, asks = depth * below, depth * (1 - below)
    for wall in demo_walls(rng, times, mids, base):
        rows = np.arange(wall.born, wall.dies)
        column = math.floor((wall.price - anchor) / width) - lo[rows]
        inside = (column >= 0) & (column < counts[rows])
        (bids if wall.side == "bid" else asks)[rows[inside], column[inside]] += wall.usd
    return [
        (
            int(times[i]),
            float(mids[i]),
            float(lower[i, 0]),
            int(counts[i]),
            bids[i, :n],
            asks[i, :n],
        )
        for i, n in enumerate(counts.tolist())
    ]


def demo_walls(
    rng: np.random.Generator, times: np.ndarray, mids: np.ndarray, base: float
) -> list[_Wall]:
    """Walls born at random minutes (rows `born` to `dies`, exclusive): each ends when its life
    is up or when the mid reaches its price."""
    walls = []
    births = rng.random((len(times), 2)) < WALLS_PER_HOUR / 60
    for row, column in zip(*np.nonzero(births), strict=True):
        side, sign = ("bid", -1.0) if column == 0 else ("ask", 1.0)
        mid = float(mids[row])
        price = mid * (1 + sign * rng.uniform(*WALL_DISTANCE))
        if rng.random() < ROUND_SHARE:
            unit = _round_step(mid)
            price = round(price / unit) * unit
        life = _life(rng)
        later = mids[row : row + life]
        reached = np.flatnonzero(later <= price if side == "bid" else later >= price)
        end = row + (int(reached[0]) if len(reached) else len(later))
        if (price - mid) * sign > 0 and end > row:
            walls.append(_Wall(side, price, base * rng.uniform(*WALL_SIZE), int(row), end))
    return walls


def _life(rng: np.random.Generator) -> int:
    """Minutes a wall rests: pulled within minutes, an hour or two, or most of a day."""
    kind = rng.random()
    if kind < 0.25:
        return int(rng.uniform(3, 20))
    if kind < 0.85:
        return int(rng.uniform(40, 180))
    return int(rng.uniform(300, 1080))


def _store(market: Market, rows: list[tuple], width: float) -> None:
    columns = [
        "market_id",
        "time",
        "mid",
        "best_bid",
        "best_ask",
        "bin_start",
        "bin_width",
        "bin_count",
        "depth",
        "reach_bid",
        "reach_ask",
        "source",
    ]
    adapt = connection.ops.adapt_datetimefield_value
    values = []
    for t, mid, start, count, bids, asks in rows:
        half = width * 0.01
        values.append(
            (
                market.pk,
                adapt(ms_to_datetime(t)),
                mid,
                mid - half,
                mid + half,
                start,
                width,
                count,
                depth_encode(bids, asks, mid_bin(mid=mid, start=start, width=width, count=count)),
                BOOK_DEPTH,
                BOOK_DEPTH,
                "demo",
            )
        )
    rows_insert(OrderBookSnapshot, columns, values, batch=2000)
