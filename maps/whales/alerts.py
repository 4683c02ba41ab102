"""What the whale alert kinds watch (accounts: "anomaly with |z| >= X on metric M", "whales and
retail diverge beyond D"): a market's stored positioning (maps.whales.services), read per step,
with what to say."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from maps.formatting import pct
from maps.models import Market, datetime_to_ms, ms_to_datetime
from maps.whales import services
from maps.whales.stats import METRICS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WhaleReading:
    time: datetime  # open time of the step
    hit: bool
    message: str = ""
    detail: dict | None = None


def market_whale_readings(
    *,
    market: Market,
    kind: str,
    steps: list[datetime],
    metric: str = "any",
    min_z: float | None = None,
    divergence_pts: float | None = None,
) -> list[WhaleReading]:
    """The alert's condition at each of `steps`: for "anomaly", an anomaly of `metric` ("any":
    every metric) with |z| >= min_z at that step; for "divergence", |whale - retail long %| above
    `divergence_pts` there. Steps the stored positioning does not reach read as misses."""
    try:
        stored = services.market_positioning_current(market=market)
    except Exception:
        log.exception("positioning of market %s failed: its whale alerts see nothing", market.pk)
        stored = None
    if stored is None:
        return [WhaleReading(t, False) for t in steps]
    name = f"{market.symbol} ({market.exchange.name})"
    if kind == "anomaly":
        found = {
            a["time"]: a
            for a in stored.anomalies
            if metric in ("any", a["metric"]) and abs(a["z"]) >= (min_z or 0)
        }
        return [_anomaly_reading(name, t, found.get(datetime_to_ms(t))) for t in steps]
    arrays = stored.arrays
    at = {int(t): i for i, t in enumerate(arrays["times"].tolist())}
    readings = []
    for t in steps:
        i = at.get(datetime_to_ms(t))
        delta = float(arrays["delta"][i]) if i is not None else np.nan
        if not np.isfinite(delta) or abs(delta) <= divergence_pts:
            readings.append(WhaleReading(t, False))
            continue
        whale, retail = float(arrays["whale_long_pct"][i]), float(arrays["retail_long_pct"][i])
        lean = "longer" if delta > 0 else "shorter"
        message = (
            f"{name}: whales are {abs(delta):.1f} points {lean} than retail at "
            f"{ms_to_datetime(datetime_to_ms(t)):%H:%M} UTC (whales {whale:.1f} % long, accounts "
            f"{retail:.1f} %; threshold {divergence_pts:g} points)"
        )
        detail = {"whale_long_pct": whale, "retail_long_pct": retail, "delta": delta}
        readings.append(WhaleReading(t, True, message, detail))
    return readings


def _anomaly_reading(name: str, time: datetime, anomaly: dict | None) -> WhaleReading:
    if anomaly is None:
        return WhaleReading(time, False)
    label = METRICS[anomaly["metric"]]
    move = anomaly["price_change_pct"]
    message = (
        f"{name}: unusual {label} at {time:%H:%M} UTC, z {anomaly['z']:+.1f} against its own "
        f"last week ({anomaly['kind']})"
        + (f"; price {pct(move)} over the hour" if move is not None else "")
    )
    return WhaleReading(time, True, message, dict(anomaly))
