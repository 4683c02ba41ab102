"""Reads: bars and events as numpy arrays, snapshots, tracked markets."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection, models
from django.db.models.fields.json import KT
from django.utils import timezone
from psycopg import sql

from maps.connectors import CONNECTORS
from maps.engine.types import Bars, Events, event_problem
from maps.models import (
    BAR_VALUE_FIELDS,
    Bar,
    Calibration,
    Exchange,
    LiquidationEvent,
    MapSnapshot,
    Market,
)

_BAR_FIELDS = list(BAR_VALUE_FIELDS)
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
    """The market's usable bars (open interest above 0) with start <= time < end, ascending, as
    the engine's arrays; a bar without open interest is left out like a skipped step.

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
    where = [
        sql.SQL("market_id = {}").format(sql.Literal(market_id)),
        sql.SQL("open_interest > 0"),
    ]
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
    bars = Bar.objects.usable().filter(market_id=market_id)
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


def market_events_arrays(
    *, market_id: int, start: datetime, end: datetime
) -> tuple[Events, list[str]]:
    """Real liquidation events of the market with start <= time < end, as the engine's arrays,
    and why any stored event was left out (impossible values stored before they were refused at
    the door: `event_problem`), so one bad row never fails a calibration."""
    rows = list(
        LiquidationEvent.objects.filter(market_id=market_id, time__gte=start, time__lt=end)
        .order_by("time")
        .values_list("pk", "time", "side", "price", "quantity", "notional_usd")
    )
    kept, refused = [], []
    for pk, time, side, price, quantity, notional in rows:
        time_ms = int(time.timestamp() * 1000)
        problem = event_problem(time_ms, price, quantity)
        if problem is None and not math.isfinite(notional):
            problem = f"notional {notional} is not finite"
        if problem:
            refused.append(f"event {pk}: {problem}")
        else:
            kept.append((time_ms, side == "long", price, notional))
    events = Events(
        time=np.array([r[0] for r in kept], dtype=np.int64),
        is_long=np.array([r[1] for r in kept], dtype=bool),
        price=np.array([r[2] for r in kept], dtype=np.float64),
        notional=np.array([r[3] for r in kept], dtype=np.float64),
    )
    return events, refused


def markets_ingestible(*, ccxt_ids: Iterable[str] | None = None) -> models.QuerySet:
    """Tracked markets holding real data on exchanges we have a connector for (all of them, or
    those of `ccxt_ids`): what the beat ingests, the stream follows and /healthz watches. A demo
    market never is, whatever its exchange."""
    wanted = list(CONNECTORS) if ccxt_ids is None else [c for c in ccxt_ids if c in CONNECTORS]
    return (
        Market.objects.tracked()
        .filter(is_demo=False, exchange__ccxt_id__in=wanted)
        .select_related("exchange")
        .order_by("pk")
    )


def market_snapshot(*, market: Market, window: str) -> MapSnapshot | None:
    return MapSnapshot.objects.filter(market=market, window=window).first()


# Reads for the pages and the API.


def market_by_slugs(*, exchange: str, symbol: str) -> Market | None:
    """The market at /<exchange>/<symbol>/ (slugs as stored: lowercase), with its exchange."""
    return (
        Market.objects.select_related("exchange")
        .filter(exchange__slug=exchange, slug=symbol)
        .first()
    )


def market_by_symbol(*, exchange: str, symbol: str) -> Market | None:
    """The market whose exchange's own symbol this is, in any case (`/okx/sol-usdt-swap/`)."""
    return (
        Market.objects.select_related("exchange")
        .filter(exchange__slug=exchange, symbol__iexact=symbol)
        .first()
    )


def market_snapshot_light(*, market: Market, window: str) -> MapSnapshot | None:
    """The market's snapshot for `window` without its arrays (they load on first access)."""
    snapshot = MapSnapshot.objects.filter(market=market, window=window).defer("data").first()
    if snapshot is not None:
        snapshot.market = market
    return snapshot


def market_windows_start(*, market: Market) -> list[dict]:
    """Per window of the market's snapshots: the window, its last step (`as_of`) and the first
    step of its data (`window_start`, None when the report has none)."""
    return list(
        MapSnapshot.objects.filter(market=market).values(
            "window", "as_of", window_start=KT("report__window_start")
        )
    )


def coin_events_arrays(*, market_ids: list[int], start: datetime, end: datetime) -> Events:
    """Real liquidation events of several markets (one coin) with start <= time < end (those with
    impossible values left out, see `market_events_arrays`)."""
    parts = [market_events_arrays(market_id=m, start=start, end=end)[0] for m in market_ids]
    if not parts:
        return market_events_arrays(market_id=0, start=start, end=end)[0]
    return Events(
        time=np.concatenate([e.time for e in parts]),
        is_long=np.concatenate([e.is_long for e in parts]),
        price=np.concatenate([e.price for e in parts]),
        notional=np.concatenate([e.notional for e in parts]),
    )


def coin_snapshots_for_listing(*, window: str, base: str) -> list[MapSnapshot]:
    """The coin's listed markets' snapshots for `window` (no arrays), by exchange name then
    symbol."""
    snapshots = (
        MapSnapshot.objects.filter(
            window=window, market__in=Market.objects.listed(), market__base__iexact=base
        )
        .select_related("market__exchange")
        .defer("data")
        .order_by("market__exchange__name", "market__symbol")
    )
    return list(snapshots)


def snapshots_of_markets(*, window: str, markets: list[Market]) -> dict[int, MapSnapshot]:
    """The window's snapshot of each market, by market id, with only what a listing row reads
    (no arrays, no clusters), each holding its market object."""
    by_id = {market.pk: market for market in markets}
    snapshots = MapSnapshot.objects.filter(window=window, market_id__in=list(by_id)).only(
        "market_id", "window", "as_of", "computed_at", "last_close", "proximity", "report"
    )
    found = {}
    for snapshot in snapshots:
        snapshot.market = by_id[snapshot.market_id]
        found[snapshot.market_id] = snapshot
    return found


def markets_for_listing(
    *, exchange: Exchange | None = None, base: str | None = None
) -> list[Market]:
    """Listed markets (with their exchange), by exchange name then symbol."""
    markets = Market.objects.listed().select_related("exchange")
    if exchange is not None:
        markets = markets.filter(exchange=exchange)
    if base is not None:
        markets = markets.filter(base__iexact=base)
    return list(markets.order_by("exchange__name", "symbol"))


def coin_bases() -> list[dict]:
    """Every coin with a listed market: base, how many exchanges list it, whether demo."""
    rows = (
        Market.objects.listed()
        .values("base")
        .annotate(
            exchanges=models.Count("exchange", distinct=True),
            demo=models.Count("id", filter=models.Q(is_demo=True)),
        )
        .order_by("base")
    )
    return [
        {"base": r["base"], "exchanges": r["exchanges"], "is_demo": bool(r["demo"])} for r in rows
    ]


def market_latest_calibration(*, market: Market) -> Calibration | None:
    return Calibration.objects.filter(market=market).order_by("-computed_at").first()


@dataclass(frozen=True)
class Freshness:
    """How old a snapshot's data is, and how long a client may cache what shows it."""

    data_until: datetime
    age_seconds: int
    stale: bool
    max_age: int
    historical: bool = False


def snapshot_freshness(
    *, snapshot: MapSnapshot, market: Market, now: datetime | None = None
) -> Freshness:
    """The data runs to the end of the last step (as_of + step). The next snapshot is expected
    one step later plus a minute for ingest and compute; clients may cache until then (at least
    15 s, at most one step). Only data followed live can be stale: demo data is simulated and a
    market nothing fetches (`Market.is_historical`) shows the past."""
    now = now or timezone.now()
    step_ms = market.step_ms
    data_until = snapshot.as_of + timedelta(milliseconds=step_ms)
    age = max(0, int((now - data_until).total_seconds()))
    step_s = step_ms // 1000
    until_next = step_s + 60 - age
    return Freshness(
        data_until=data_until,
        age_seconds=age,
        stale=market.tracked and not market.is_demo and age > settings.LIQSITE_STALE_AFTER_SECONDS,
        max_age=max(15, min(step_s, until_next)),
        historical=market.is_historical,
    )
