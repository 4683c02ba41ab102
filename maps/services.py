"""Writes: run the engine on a market's stored bars and keep the result as snapshots."""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from maps import engine
from maps.engine.serialize import params_from_json, params_to_json
from maps.engine.types import Bars, EngineError, Result
from maps.models import WINDOWS, Calibration, Exchange, MapSnapshot, Market, ms_to_datetime
from maps.selectors import market_bars_arrays, market_events_arrays

log = logging.getLogger(__name__)

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


def snapshot_from_result(*, market: Market, window: str, result: Result) -> MapSnapshot:
    """Store (insert or replace) the result as the market's snapshot for `window`."""
    edges = result.edges
    snapshot, _ = MapSnapshot.objects.update_or_create(
        market=market,
        window=window,
        defaults={
            "as_of": ms_to_datetime(result.as_of),
            "computed_at": timezone.now(),
            "engine_version": engine.ENGINE_VERSION,
            "params": params_to_json(result.params),
            "last_close": result.last_close,
            "bin_start": float(edges[0]),
            "bin_width": float(edges[1] - edges[0]),
            "bin_count": len(edges) - 1,
            "data": _npz_bytes(result),
            "clusters": result.clusters,
            "proximity": result.proximity,
            "report": _jsonable_report(result.report),
        },
    )
    return snapshot


def _npz_bytes(result: Result) -> bytes:
    """The result's arrays as an .npz (what np.load reads), deflated at level 1: float noise
    barely compresses further at higher levels, which take three times as long."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, dtype in _ARRAY_DTYPES.items():
            with archive.open(f"{name}.npy", "w") as member:
                array = np.ascontiguousarray(getattr(result, name), dtype=dtype)
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


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
    """Recompute the market's snapshot for each window from its stored bars.

    A window the data cannot fill yet (fewer than two steps) keeps no snapshot; bad stored data
    raises EngineError, which the caller records on the market.
    """
    windows = list(windows or settings.LIQSITE_WINDOWS)
    bars = market_bars_for_windows(market=market, windows=windows)
    if len(bars.ts) < 2:
        return []
    snapshots = []
    for window in windows:
        params = market.engine_params(window, max_columns=settings.LIQSITE_MAX_COLUMNS)
        result = engine.run(bars, params)
        with transaction.atomic():
            snapshots.append(snapshot_from_result(market=market, window=window, result=result))
    return snapshots


def market_calibrate(*, market: Market, window: str = "30d") -> Calibration | None:
    """Fit the tier weights to the market's real liquidations over `window`; None without events."""
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
    calibration, _ = Calibration.objects.update_or_create(
        market=market,
        period_start=ms_to_datetime(int(result.report["window_start"])),
        period_end=end,
        engine_version=engine.ENGINE_VERSION,
        defaults={
            "computed_at": timezone.now(),
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


def market_rows_delete(*, market: Market) -> None:
    """Delete everything stored for the market (bars, raw metrics rows, events, snapshots,
    calibrations, order books, levels); the market itself and its settings stay."""
    market.bars.all().delete()
    market.metrics_rows.all().delete()
    market.events.all().delete()
    market.snapshots.all().delete()
    market.calibrations.all().delete()
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
