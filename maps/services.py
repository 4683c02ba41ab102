"""Writes: run the engine on a market's stored bars and keep the result as snapshots."""

from __future__ import annotations

import io
import logging
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from maps import engine
from maps.coverage.grading import market_grade_refresh
from maps.engine.serialize import params_from_json, params_to_json
from maps.engine.types import Bars, EngineError, Result
from maps.models import (
    WINDOWS,
    Calibration,
    Exchange,
    MapSnapshot,
    Market,
    MarketBacktest,
    MarketSignals,
    ms_to_datetime,
)
from maps.selectors import market_bars_arrays, market_events_arrays

log = logging.getLogger(__name__)

TOO_FEW_STEPS = "fewer than 2 steps"  # the engine's words for a window the data cannot fill

_ARRAY_DTYPES = {
    "heat_times": np.int64,
    "heat_long": np.float32,
    "heat_short": np.float32,
    "map_long": np.float32,
    "map_short": np.float32,
    "cum_long": np.float64,
    "cum_short": np.float64,
    "liq_times": np.int64,
    "liq_long": np.float32,
    "liq_short": np.float32,
}


def market_bars_for_windows(*, market: Market, windows: Iterable[str]) -> Bars:
    """Bars covering the longest of `windows`, ending at the market's last bar."""
    longest = max(WINDOWS[w] for w in windows)
    last = market.bars.usable().order_by("-time").values_list("time", flat=True).first()
    if last is None:
        return market_bars_arrays(market_id=market.pk)
    start = last + timedelta(milliseconds=market.step_ms - longest)
    return market_bars_arrays(market_id=market.pk, start=start)


def snapshot_fields(
    result: Result, *, compress: bool = True, computed_at: datetime | None = None
) -> dict:
    """A snapshot's stored fields (everything but market and window) for an engine result;
    without `compress`, the arrays are stored as they are (faster: for short-lived copies, or a
    database that compresses them itself)."""
    edges = result.edges
    return {
        "as_of": ms_to_datetime(result.as_of),
        "computed_at": computed_at or timezone.now(),
        "engine_version": engine.ENGINE_VERSION,
        "params": params_to_json(result.params),
        "last_close": result.last_close,
        "bin_start": float(edges[0]),
        "bin_width": float(edges[1] - edges[0]),
        "bin_count": len(edges) - 1,
        "data": _npz_bytes(result, compress),
        "clusters": result.clusters,
        "proximity": result.proximity,
        "report": _jsonable_report(result.report),
    }


SNAPSHOT_FIELDS = [
    "as_of",
    "computed_at",
    "engine_version",
    "params",
    "last_close",
    "bin_start",
    "bin_width",
    "bin_count",
    "data",
    "clusters",
    "proximity",
    "report",
]


def snapshots_store(
    *, market: Market, results: dict[str, Result], now: datetime
) -> list[MapSnapshot]:
    """Insert or replace the market's snapshots for these windows in one statement."""
    compress = not database_compresses_snapshots()
    snapshots = [
        MapSnapshot(
            market=market,
            window=window,
            **snapshot_fields(result, compress=compress, computed_at=now),
        )
        for window, result in results.items()
    ]
    if connection.vendor == "postgresql":
        return _snapshots_upsert(snapshots)
    return MapSnapshot.objects.bulk_create(
        snapshots,
        update_conflicts=True,
        unique_fields=["market", "window"],
        update_fields=SNAPSHOT_FIELDS,
    )


_lz4_databases: dict[str, bool] = {}


def database_compresses_snapshots() -> bool:
    """Whether the database compresses the snapshots' arrays itself: PostgreSQL's lz4 on the
    `data` column (migration maps 0012), which takes a market's six snapshots in a third of the
    time that deflating them here does. Asked once per database and process."""
    if connection.vendor != "postgresql":
        return False
    name = connection.settings_dict["NAME"]
    if name not in _lz4_databases:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT attcompression FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attname = 'data'",
                [MapSnapshot._meta.db_table],
            )
            _lz4_databases[name] = cursor.fetchone()[0] == "l"
    return _lz4_databases[name]


_UPSERT_FIELDS = ["market", "window", *SNAPSHOT_FIELDS]


def _snapshots_upsert(snapshots: list[MapSnapshot]) -> list[MapSnapshot]:
    """bulk_create's upsert with the values bound by the server. Django's cursors bind on the
    client, which writes each array's bytes into the statement's text in hex (twice their size,
    parsed back by the server): 100 ms or more for a market's six snapshots, 30 ms bound."""
    fields = [MapSnapshot._meta.get_field(name) for name in _UPSERT_FIELDS]
    column = {f.name: sql.Identifier(f.column) for f in fields}
    row = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() for _ in fields))
    query = sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES {rows} ON CONFLICT ({market}, {window}) "
        "DO UPDATE SET {updates} RETURNING {id}, {window}"
    ).format(
        table=sql.Identifier(MapSnapshot._meta.db_table),
        columns=sql.SQL(", ").join(column.values()),
        rows=sql.SQL(", ").join([row] * len(snapshots)),
        market=column["market"],
        window=column["window"],
        updates=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(column[name]) for name in SNAPSHOT_FIELDS
        ),
        id=sql.Identifier(MapSnapshot._meta.pk.column),
    )
    params = [
        f.get_db_prep_save(getattr(snapshot, f.attname), connection)
        for snapshot in snapshots
        for f in fields
    ]
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(query, params)
        ids = {window: pk for pk, window in cursor.fetchall()}
    for snapshot in snapshots:
        snapshot.pk = ids[snapshot.window]
        snapshot._state.adding = False
    return snapshots


def _npz_bytes(result: Result, compress: bool = True) -> bytes:
    """The result's arrays as an .npz (what np.load reads): a zip of .npy members, each deflated
    with zlib's run-length strategy (or stored as they are without `compress`). Float noise
    barely compresses, so the only redundancy is the runs of empty bins; run-length matching
    finds those three times as fast as level 1's full search, in slightly fewer bytes."""
    members = []
    for name, dtype in _ARRAY_DTYPES.items():
        buffer = io.BytesIO()
        array = np.ascontiguousarray(getattr(result, name), dtype=dtype)
        np.lib.format.write_array(buffer, array, allow_pickle=False)
        members.append((f"{name}.npy", buffer.getvalue()))
    if not compress:
        return zip_stored(members)
    return zip_deflated(members)


def zip_stored(members: list[tuple[str, bytes]]) -> bytes:
    """A zip archive of members stored as they are."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return out.getvalue()


_ZIP_TIME, _ZIP_DATE = 0, (1980 - 1980) << 9 | 1 << 5 | 1  # 1980-01-01 00:00, the zip epoch


def zip_deflated(members: list[tuple[str, bytes]]) -> bytes:
    """A zip archive (no zip64: each member under 4 GiB) of raw-deflated members."""
    out = io.BytesIO()
    directory = []
    for name, data in members:
        packer = zlib.compressobj(1, zlib.DEFLATED, -15, 8, zlib.Z_RLE)
        packed = packer.compress(data) + packer.flush()
        crc, offset, encoded = zlib.crc32(data), out.tell(), name.encode()
        sizes = (crc, len(packed), len(data), len(encoded))
        header = (0x04034B50, 20, 0, 8, _ZIP_TIME, _ZIP_DATE, *sizes, 0)
        out.write(struct.pack("<IHHHHHIIIHH", *header))
        out.write(encoded)
        out.write(packed)
        directory.append((encoded, sizes, offset))
    start = out.tell()
    for encoded, sizes, offset in directory:
        entry = (0x02014B50, 20, 20, 0, 8, _ZIP_TIME, _ZIP_DATE, *sizes, 0, 0, 0, 0, 0, offset)
        out.write(struct.pack("<IHHHHHHIIIHHHHHII", *entry))
        out.write(encoded)
    size = out.tell() - start
    count = len(directory)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, size, start, 0))
    return out.getvalue()


def _jsonable_report(report: dict) -> dict:
    return {k: v for k, v in report.items() if k in {"gaps", "steps", "window_start", "totals"}}


def snapshot_to_result(snapshot: MapSnapshot) -> Result:
    """The stored snapshot as an engine Result (for aggregation across exchanges)."""
    arrays = {
        name: np.asarray(values, dtype=np.float64) for name, values in snapshot.arrays.items()
    }
    arrays["heat_times"] = snapshot.arrays["heat_times"]
    arrays["liq_times"] = snapshot.arrays["liq_times"]
    return Result(
        as_of=int(snapshot.as_of.timestamp() * 1000),
        last_close=snapshot.last_close,
        step_ms=snapshot.params["step_ms"],
        params=params_from_json(snapshot.params),
        edges=snapshot.edges,
        clusters=snapshot.clusters,
        proximity=snapshot.proximity,
        calibration=None,
        report=snapshot.report,
        **arrays,
    )


def market_snapshots_compute(
    *, market: Market, windows: Iterable[str] | None = None
) -> list[MapSnapshot]:
    """Recompute the market's snapshot for each window from one pass of the engine over its
    stored bars (maps.engine.run_windows), and store them, with the market's reliability grade,
    in one transaction.

    A window the data cannot fill yet (fewer than two steps) keeps no snapshot. Any other window
    the engine refuses (bad stored data) raises EngineError naming it, once the others are
    stored; the caller records it on the market.
    """
    windows = list(windows or settings.LIQSITE_WINDOWS)
    bars = market_bars_for_windows(market=market, windows=windows)
    if len(bars.ts) < 2:
        return []
    params = {
        window: market.engine_params(window, max_columns=settings.LIQSITE_MAX_COLUMNS)
        for window in windows
    }
    computed = engine.run_windows(bars, params)
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Snapshots are derived data: a crash may lose the last instant's, which the next
            # refresh recomputes, so their commit need not wait for the WAL to reach the disk.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        snapshots = snapshots_store(market=market, results=computed.results, now=now)
        market_grade_refresh(market=market, bars=bars, now=now)
        if computed.results:
            as_of = ms_to_datetime(max(r.as_of for r in computed.results.values()))
            Market.objects.filter(pk=market.pk).update(maps_as_of=as_of)
    failed: dict[str, list[str]] = {}
    for window, error in computed.errors.items():
        if TOO_FEW_STEPS not in error:
            failed.setdefault(error, []).append(window)
    if failed:
        raise EngineError("; ".join(f"{', '.join(w)}: {error}" for error, w in failed.items()))
    return snapshots


def market_calibrate(*, market: Market, window: str = "30d") -> Calibration | None:
    """Fit the tier weights to the market's real liquidations over `window`, and grade the market
    again with the model's skill this calibration measured; None without events."""
    bars = market_bars_for_windows(market=market, windows=[window])
    if len(bars.ts) < 2:
        return None
    start = ms_to_datetime(int(bars.ts[0]))
    end = ms_to_datetime(int(bars.ts[-1]) + market.step_ms)
    events, refused = market_events_arrays(market_id=market.pk, start=start, end=end)
    if refused:
        log.warning(
            "calibration of %s leaves out %d stored event(s) with impossible values: %s",
            market,
            len(refused),
            "; ".join(refused[:5]),
        )
    if len(events.time) == 0:
        return None
    params = market.engine_params(window, max_columns=settings.LIQSITE_MAX_COLUMNS)
    result = engine.run(bars, replace(params, max_columns=1), events)
    fit = result.calibration
    if fit is None or not fit.get("events_used"):
        return None
    now = timezone.now()
    with transaction.atomic():
        calibration, _ = Calibration.objects.update_or_create(
            market=market,
            period_start=ms_to_datetime(int(result.report["window_start"])),
            period_end=end,
            engine_version=engine.ENGINE_VERSION,
            defaults={
                "computed_at": now,
                "prior": market.tiers,
                "weights": fit["weights"],
                "scale": fit["scale"],
                "corr_long": fit["corr_long"],
                "corr_short": fit["corr_short"],
                "hit_rate": fit["hit_rate"],
                "coverage": fit["coverage"],
                "events_used": fit["events_used"],
            },
        )
        # graded on the bars a refresh grades on (history counts from the longest window's)
        graded = market_bars_for_windows(market=market, windows=settings.LIQSITE_WINDOWS)
        market_grade_refresh(market=market, bars=graded, now=now)
    return calibration


def market_demo_clear(*, market: Market) -> None:
    """Drop a demo market's simulated rows and make it a real market, so real data (an import,
    a backfill) takes their place instead of mixing with them."""
    with transaction.atomic():
        market_rows_delete(market=market)
        market.is_demo = False
        market.last_bar_at = None
        market.last_error = ""
        market.last_error_at = None
        market.save(update_fields=["is_demo", "last_bar_at", "last_error", "last_error_at"])
        exchange_demo_refresh(exchange=market.exchange)


def rows_insert(model: type, columns: list[str], rows: list[tuple], batch: int = 5000) -> None:
    """Plain INSERTs of the rows; COPY on PostgreSQL."""
    quote = connection.ops.quote_name
    table, names = quote(model._meta.db_table), ", ".join(quote(c) for c in columns)
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        sql = f"COPY {table} ({names}) FROM STDIN"
        with connection.connection.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
        return
    sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            cursor.executemany(sql, rows[start : start + batch])


def market_rows_delete(*, market: Market) -> None:
    """Delete everything stored for the market (bars, raw metrics rows, events, snapshots,
    calibrations, signals, backtest, order books, levels); the market itself and its settings
    stay."""
    market.bars.all().delete()
    market.metrics_rows.all().delete()
    market.events.all().delete()
    market.snapshots.all().delete()
    market.calibrations.all().delete()
    MarketSignals.objects.filter(market=market).delete()
    MarketBacktest.objects.filter(market=market).delete()
    market.order_books.all().delete()
    market.levels.all().delete()


def exchange_demo_refresh(*, exchange: Exchange) -> None:
    """Mark the exchange as demo only while every market it has holds demo data: once a real
    market joins (added in the admin, or imported in place of a demo one) it is a real exchange."""
    is_demo = exchange.markets.exists() and not exchange.markets.filter(is_demo=False).exists()
    if exchange.is_demo != is_demo:
        exchange.is_demo = is_demo
        exchange.save(update_fields=["is_demo"])


def coin_result(*, snapshots: list[MapSnapshot]) -> Result | None:
    """The snapshots of one coin's markets on one common grid, summed."""
    results = [snapshot_to_result(s) for s in snapshots]
    if not results:
        return None
    try:
        return engine.aggregate(results)
    except EngineError:
        log.exception("aggregation failed for %s", [s.pk for s in snapshots])
        return None
