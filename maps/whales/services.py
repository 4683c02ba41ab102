"""Writes: compute a market's positioning and anomaly feed from its stored data and keep it
(`PositioningSnapshot`), over the longest window the site shows, with the trailing week of
baseline before it."""

from __future__ import annotations

import io

import numpy as np
from django.conf import settings
from django.utils import timezone

from maps.market_signals.selectors import market_signals_stored
from maps.models import WINDOWS, Market, PositioningSnapshot, datetime_to_ms, ms_to_datetime
from maps.whales import stats
from maps.whales.selectors import market_positioning_inputs, positioning_stored

WHALES_VERSION = "1"
SERIES = ("whale_long_pct", "retail_long_pct", "delta", "top_account_long_pct", "oi", "close")


def series_window() -> str:
    return max(settings.LIQSITE_WINDOWS, key=lambda w: WINDOWS[w])


def market_positioning_compute(*, market: Market, as_of_ms: int) -> dict | None:
    """Positioning, z-scores and anomalies of the longest window ending with the step opening at
    `as_of_ms` (a plain dict with the arrays); None without bars."""
    end = as_of_ms + market.step_ms
    start = end - WINDOWS[series_window()]
    inputs = market_positioning_inputs(
        market_id=market.pk,
        step_ms=market.step_ms,
        start=ms_to_datetime(start - stats.BASELINE_MS),
        end=ms_to_datetime(end),
    )
    if not len(inputs):
        return None
    series = stats.metric_series(inputs)
    zscores = stats.metric_zscores(inputs, series)
    first = int(np.searchsorted(inputs.ts, start))
    keep = slice(first, len(inputs))
    arrays = {
        "times": inputs.ts[keep],
        "whale_long_pct": stats.long_pct(inputs.top_position_ratio)[keep],
        "retail_long_pct": stats.long_pct(inputs.global_ratio)[keep],
        "top_account_long_pct": stats.long_pct(inputs.top_account_ratio)[keep],
        "oi": inputs.open_interest[keep],
        "close": inputs.close[keep],
        "taker_ratio": inputs.taker_ratio[keep],
    }
    arrays["delta"] = arrays["whale_long_pct"] - arrays["retail_long_pct"]
    for name, z in zscores.items():
        arrays[f"z_{name}"] = z[keep].astype(np.float32)
    return {
        "as_of": int(inputs.ts[-1]),
        "start": int(inputs.ts[first]) if first < len(inputs) else int(inputs.ts[-1]),
        "positioning": stats.positioning(inputs).as_dict(),
        "latest_z": stats.latest_z(zscores),
        "anomalies": stats.anomalies(inputs, since_ms=start, zscores=zscores),
        "figures": stats.screener_figures(inputs),
        "arrays": arrays,
    }


def last_cascade(*, market_id: int) -> dict | None:
    """The latest cascade of the market's stored signals (start, side, USD), for the screener."""
    stored = market_signals_stored(market_id=market_id)
    if stored is None or not stored.cascades:
        return None
    latest = max(stored.cascades, key=lambda c: c["start"])
    return {k: latest.get(k) for k in ("start", "side", "notional_usd")}


def market_positioning_refresh(*, market: Market) -> PositioningSnapshot | None:
    """Compute and store the market's positioning up to its last bar (None without bars)."""
    last = market.bars.order_by("-time").values_list("time", flat=True).first()
    if last is None:
        return None
    found = market_positioning_compute(market=market, as_of_ms=datetime_to_ms(last))
    if found is None:
        return None
    found["figures"]["last_cascade"] = last_cascade(market_id=market.pk)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **found["arrays"])
    stored, _ = PositioningSnapshot.objects.update_or_create(
        market=market,
        defaults={
            "as_of": ms_to_datetime(found["as_of"]),
            "start": ms_to_datetime(found["start"]),
            "computed_at": timezone.now(),
            "version": WHALES_VERSION,
            "positioning": found["positioning"],
            "latest_z": found["latest_z"],
            "anomalies": found["anomalies"],
            "figures": found["figures"],
            "data": buffer.getvalue(),
        },
    )
    return stored


def market_positioning_current(*, market: Market) -> PositioningSnapshot | None:
    """The stored positioning when this version computed it up to the last bar; else computed
    now and stored."""
    stored = positioning_stored(market_id=market.pk)
    fresh = stored is not None and stored.version == WHALES_VERSION
    if fresh and (market.last_bar_at is None or stored.as_of >= market.last_bar_at):
        return stored
    return market_positioning_refresh(market=market)


def positioning_summary(market: Market) -> str:
    """Compute and store the market's positioning (after an import or a seed); one line."""
    stored = market_positioning_refresh(market=market)
    if stored is None:
        return "positioning: no bars yet"
    return f"positioning: {stored.positioning['sentence']} {len(stored.anomalies)} anomalies"
