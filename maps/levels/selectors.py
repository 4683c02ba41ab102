"""Reads: a market's stored order books as arrays (on their own grids, or redrawn on one), the
grid a new book is binned on, and the stored levels of a snapshot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import connection
from psycopg import sql

from maps.analytics.orderbook import BookHistory, rebin
from maps.models import (
    Bar,
    LevelsSnapshot,
    MapSnapshot,
    Market,
    OrderBookSnapshot,
    datetime_to_ms,
)

REBIN_CHUNK = 2000  # rows redrawn at once: bounds the memory of a week of minutes


def mid_bin(*, mid: float, start: float, width: float, count: int) -> int:
    """The bin holding the mid: bids rest in it and below, asks in it and above."""
    return min(max(math.floor((mid - start) / width), 0), count - 1)


def depth_encode(bids: np.ndarray, asks: np.ndarray, split: int) -> bytes:
    """A book's USD per bin as stored: float32, the bids of bins 0..split then the asks of bins
    split..count-1 (count + 1 numbers; each side is empty beyond the mid's bin). Anything found
    past the mid's bin (a level on its very edge) is kept in that bin."""
    bids = np.asarray(bids, dtype=np.float64).copy()
    asks = np.asarray(asks, dtype=np.float64).copy()
    bids[split] += bids[split + 1 :].sum()
    asks[split] += asks[:split].sum()
    return np.concatenate([bids[: split + 1], asks[split:]]).astype("<f4").tobytes()


def depth_decode(data: bytes, count: int, split: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.frombuffer(bytes(data), dtype="<f4").astype(np.float64)
    bids, asks = np.zeros(count), np.zeros(count)
    bids[: split + 1] = values[: split + 1]
    asks[split:] = values[split + 1 :]
    return bids, asks


@dataclass(frozen=True)
class PriceBars:
    """A market's steps as price and volume arrays (base units), ascending."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


_PRICE_FIELDS = ("open", "high", "low", "close", "volume")
_PRICE_ROW = np.dtype(
    [("fields", ">i2"), ("l_time", ">i4"), ("time", ">i8")]
    + [item for name in _PRICE_FIELDS for item in ((f"l_{name}", ">i4"), (name, ">f8"))]
)
_COPY_HEADER = 19  # PostgreSQL's binary COPY signature, flags and header extension
_PG_EPOCH_MS = 946_684_800_000  # 2000-01-01T00:00:00Z, the origin of its binary timestamps


def market_price_bars(*, market_id: int, start: datetime, end: datetime) -> PriceBars:
    """Every stored step of the market with start <= time < end, with or without open interest:
    levels read prices and volumes only, so a step whose metrics row is missing still counts.
    On PostgreSQL the rows arrive by binary COPY, decoded by numpy in one pass."""
    if connection.vendor == "postgresql":
        columns = _price_copy(market_id, start, end)
    else:
        rows = list(
            Bar.objects.filter(market_id=market_id, time__gte=start, time__lt=end)
            .order_by("time")
            .values_list("time", *_PRICE_FIELDS)
        )
        columns = {"ts": np.array([datetime_to_ms(r[0]) for r in rows], dtype=np.int64)}
        for i, name in enumerate(_PRICE_FIELDS, start=1):
            columns[name] = np.array([r[i] for r in rows], dtype=np.float64)
    return PriceBars(**columns)


def _price_copy(market_id: int, start: datetime, end: datetime) -> dict:
    query = sql.SQL(
        "COPY (SELECT time, {columns} FROM {table} WHERE market_id = {market} AND time >= {start} "
        "AND time < {end} ORDER BY time) TO STDOUT (FORMAT BINARY)"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier(name) for name in _PRICE_FIELDS),
        table=sql.Identifier(Bar._meta.db_table),
        market=sql.Literal(market_id),
        start=sql.Literal(start),
        end=sql.Literal(end),
    )
    connection.ensure_connection()
    with connection.connection.cursor() as cursor, cursor.copy(query) as copy:
        payload = b"".join(bytes(block) for block in copy)
    count = (len(payload) - _COPY_HEADER - 2) // _PRICE_ROW.itemsize
    rows = np.frombuffer(payload, dtype=_PRICE_ROW, count=count, offset=_COPY_HEADER)
    out = {"ts": rows["time"] // 1000 + _PG_EPOCH_MS}
    out.update({name: rows[name].astype(np.float64) for name in _PRICE_FIELDS})
    return out


def market_book_grid(*, market: Market, mid: float) -> tuple[float, float]:
    """(anchor, width) of the grid a new book of the market is binned on: the grid of its map
    for the default window (one edge on the map's last close, its bin width), so the book lines
    up bin for bin with the map; without a map, bins of the market's width anchored on the mid."""
    snapshot = (
        MapSnapshot.objects.filter(market=market, window=settings.LIQSITE_DEFAULT_WINDOW)
        .values_list("bin_start", "bin_width")
        .first()
    )
    if snapshot is not None and snapshot[1] > 0:
        return float(snapshot[0]), float(snapshot[1])
    return float(mid), float(mid) * market.bin_bps / 1e4


@dataclass(frozen=True)
class BookRows:
    """Stored books as they are: row r holds `bids[r]`, `asks[r]` (USD per bin, zero-padded to
    the widest row) on the grid starts[r] + k x widths[r]."""

    times: np.ndarray
    starts: np.ndarray
    widths: np.ndarray
    counts: np.ndarray
    mids: np.ndarray
    bids: np.ndarray
    asks: np.ndarray

    def __len__(self) -> int:
        return len(self.times)

    def take(self, index: np.ndarray) -> BookRows:
        return BookRows(
            *(getattr(self, name)[index] for name in BookRows.__dataclass_fields__)  # type: ignore[arg-type]
        )


def market_book_rows(
    *, market_id: int, start: datetime, end: datetime, only: list[datetime] | None = None
) -> BookRows:
    """The market's books with start <= time < end (only those of the times `only` lists, if
    given), by time."""
    books = OrderBookSnapshot.objects.filter(market_id=market_id, time__gte=start, time__lt=end)
    if only is not None:
        books = books.filter(time__in=only)
    rows = list(
        books.order_by("time").values_list(
            "time", "bin_start", "bin_width", "bin_count", "mid", "depth"
        )
    )
    count = len(rows)
    widest = max((r[3] for r in rows), default=0)
    bids, asks = np.zeros((count, widest)), np.zeros((count, widest))
    for i, (_, start, width, bins, mid, data) in enumerate(rows):
        split = mid_bin(mid=mid, start=start, width=width, count=bins)
        bids[i, :bins], asks[i, :bins] = depth_decode(data, bins, split)
    return BookRows(
        times=np.array([datetime_to_ms(r[0]) for r in rows], dtype=np.int64),
        starts=np.array([r[1] for r in rows], dtype=np.float64),
        widths=np.array([r[2] for r in rows], dtype=np.float64),
        counts=np.array([r[3] for r in rows], dtype=np.int64),
        mids=np.array([r[4] for r in rows], dtype=np.float64),
        bids=bids,
        asks=asks,
    )


def common_edges(rows: BookRows, *, max_bins: int | None = None) -> np.ndarray:
    """Edges on the latest row's grid covering every row, runs of bins merged so that at most
    `max_bins` remain."""
    width, anchor = float(rows.widths[-1]), float(rows.starts[-1])
    low = float(rows.starts.min())
    high = float((rows.starts + rows.widths * rows.counts).max())
    first = math.floor((low - anchor) / width + 1e-9)
    stop = math.ceil((high - anchor) / width - 1e-9)
    k = 1 if not max_bins else max(1, math.ceil((stop - first) / max_bins))
    count = math.ceil((stop - first) / k)
    return anchor + width * (first + k * np.arange(count + 1))


def book_history(rows: BookRows, edges: np.ndarray) -> BookHistory:
    """The rows redrawn on `edges` (each bin's USD spread by overlap)."""
    bids, asks = [], []
    for at in range(0, len(rows), REBIN_CHUNK):
        part = slice(at, at + REBIN_CHUNK)
        starts, widths = rows.starts[part], rows.widths[part]
        bids.append(rebin(rows.bids[part], starts, widths, edges))
        asks.append(rebin(rows.asks[part], starts, widths, edges))
    empty = np.zeros((0, len(edges) - 1))
    return BookHistory(
        times=rows.times,
        edges=np.asarray(edges, dtype=np.float64),
        bids=np.vstack(bids) if bids else empty,
        asks=np.vstack(asks) if asks else empty,
        mids=rows.mids,
    )


def market_books_span(*, market: Market) -> tuple[datetime | None, datetime | None]:
    """The first and last book time stored for the market (None, None without any)."""
    books = OrderBookSnapshot.objects.filter(market=market)
    first = books.order_by("time").values_list("time", flat=True).first()
    last = books.order_by("-time").values_list("time", flat=True).first()
    return first, last


def levels_stored(*, market: Market, window: str) -> LevelsSnapshot | None:
    return LevelsSnapshot.objects.filter(market=market, window=window).first()
