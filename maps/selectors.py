"""Reads: bars and events as numpy arrays, snapshots, tracked markets."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from django.db import connection
from psycopg import sql

from maps.engine.types import Bars, Events
from maps.models import Bar, LiquidationEvent, MapSnapshot, Market

_BAR_FIELDS = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "taker_buy_volume",
    "open_interest",
    "long_short_ratio",
]
_PG_EPOCH_MS = 946_684_800_000  # 2000-01-01T00:00:00Z, the origin of PostgreSQL's binary timestamps
_COPY_HEADER = 19  # signature (11), flags (4), header extension length (4)

# One binary COPY tuple of `time` and the eight floats: a field count, then (length, value) pairs.
_COPY_ROW = np.dtype(
    [("fields", ">i2"), ("l_time", ">i4"), ("time", ">i8")]
    + [item for name in _BAR_FIELDS for item in ((f"l_{name}", ">i4"), (name, ">f8"))]
)


def market_bars_arrays(
    *, market_id: int, start: datetime | None = None, end: datetime | None = None
) -> Bars:
    """The market's bars with start <= time < end, ascending, as the engine's arrays.

    On PostgreSQL the rows arrive by binary COPY and are decoded by numpy in one pass, so no Python
    object is made per row. A missing long/short ratio becomes NaN.
    """
    if connection.vendor == "postgresql":
        columns = _bars_copy(market_id, start, end)
    else:
        columns = _bars_rows(market_id, start, end)
    ratio = columns.pop("long_short_ratio")
    return Bars(**columns, long_short_ratio=ratio if np.isfinite(ratio).any() else None)


def _bars_copy(market_id: int, start: datetime | None, end: datetime | None) -> dict:
    table = Bar._meta.db_table
    where = [sql.SQL("market_id = {}").format(sql.Literal(market_id))]
    if start is not None:
        where.append(sql.SQL("time >= {}").format(sql.Literal(start)))
    if end is not None:
        where.append(sql.SQL("time < {}").format(sql.Literal(end)))
    columns = [sql.Identifier(name) for name in _BAR_FIELDS[:-1]]
    columns.append(sql.SQL("coalesce(long_short_ratio, 'NaN'::float8)"))
    query = sql.SQL(
        "COPY (SELECT time, {columns} FROM {table} WHERE {where} ORDER BY time) "
        "TO STDOUT (FORMAT BINARY)"
    ).format(
        columns=sql.SQL(", ").join(columns),
        table=sql.Identifier(table),
        where=sql.SQL(" AND ").join(where),
    )
    connection.ensure_connection()
    with connection.connection.cursor() as cursor, cursor.copy(query) as copy:
        payload = b"".join(bytes(block) for block in copy)
    count = (len(payload) - _COPY_HEADER - 2) // _COPY_ROW.itemsize
    rows = np.frombuffer(payload, dtype=_COPY_ROW, count=count, offset=_COPY_HEADER)
    out = {"ts": rows["time"] // 1000 + _PG_EPOCH_MS}
    out.update({name: rows[name].astype(np.float64) for name in _BAR_FIELDS})
    return out


def _bars_rows(market_id: int, start: datetime | None, end: datetime | None) -> dict:
    bars = Bar.objects.filter(market_id=market_id)
    if start is not None:
        bars = bars.filter(time__gte=start)
    if end is not None:
        bars = bars.filter(time__lt=end)
    rows = list(bars.order_by("time").values_list("time", *_BAR_FIELDS))
    out = {"ts": np.array([int(row[0].timestamp() * 1000) for row in rows], dtype=np.int64)}
    for index, name in enumerate(_BAR_FIELDS, start=1):
        values = [np.nan if row[index] is None else row[index] for row in rows]
        out[name] = np.array(values, dtype=np.float64)
    return out


def market_events_arrays(*, market_id: int, start: datetime, end: datetime) -> Events:
    """Real liquidation events of the market with start <= time < end, as the engine's arrays."""
    rows = list(
        LiquidationEvent.objects.filter(market_id=market_id, time__gte=start, time__lt=end)
        .order_by("time")
        .values_list("time", "side", "price", "notional_usd")
    )
    return Events(
        time=np.array([int(r[0].timestamp() * 1000) for r in rows], dtype=np.int64),
        is_long=np.array([r[1] == "long" for r in rows], dtype=bool),
        price=np.array([r[2] for r in rows], dtype=np.float64),
        notional=np.array([r[3] for r in rows], dtype=np.float64),
    )


def market_snapshot(*, market: Market, window: str) -> MapSnapshot | None:
    return MapSnapshot.objects.filter(market=market, window=window).first()
