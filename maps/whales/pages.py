"""What the pages show of the stored positioning: the pair page's positioning panel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from maps.models import Market, PositioningSnapshot
from maps.whales.stats import METRICS

LATEST_ANOMALIES = 6


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def version(stored: PositioningSnapshot | None) -> str:
    """Names one computation of the stored positioning (what page ETags include)."""
    if stored is None:
        return "-"
    return f"{stored.pk}.{stored.version}.{int(stored.computed_at.timestamp() * 1000)}"


def positioning_out(positioning: dict) -> dict:
    return {**positioning, "time": iso(positioning.get("time"))}


@dataclass(frozen=True)
class PositioningPanel:
    whale_long_pct: float | None
    retail_long_pct: float | None
    delta: float | None
    delta_trend: float | None
    sentence: str
    anomalies: list[dict]
    as_of: datetime
    exchange: str


def positioning_panel(
    market: Market, stored: PositioningSnapshot | None
) -> PositioningPanel | None:
    """The panel's figures, and the latest anomalies newest first with readable names."""
    if stored is None:
        return None
    p = stored.positioning
    latest = [
        {
            **a,
            "when": datetime.fromtimestamp(a["time"] / 1000, tz=UTC),
            "label": METRICS[a["metric"]].split(" (")[0],
        }
        for a in reversed(stored.anomalies[-LATEST_ANOMALIES:])
    ]
    return PositioningPanel(
        whale_long_pct=p.get("whale_long_pct"),
        retail_long_pct=p.get("retail_long_pct"),
        delta=p.get("delta"),
        delta_trend=p.get("delta_trend"),
        sentence=p.get("sentence", ""),
        anomalies=latest,
        as_of=stored.as_of,
        exchange=market.exchange.name,
    )
