"""What the pair's charts draw of the whale statistics (maps.figures.whales draws it): the
anomalies as marks at their step's close, and the z-score colours of the heatmap when asked for
(`?colour=zscore`). Plain lists and words, shaped here so the drawing code stays unaware of
where they come from."""

from __future__ import annotations

import numpy as np

from maps.models import Market
from maps.whales.selectors import positioning_stored
from maps.whales.stats import METRICS

COLOUR_MODES = ("notional", "zscore")


def anomaly_marks(anomalies: list[dict], times: np.ndarray, closes: np.ndarray, step_ms: int):
    """Each anomaly at the middle of its step, at that step's close, with its words."""
    marks = []
    for a in anomalies:
        at = int(np.searchsorted(times, a["time"]))
        if at >= len(times) or times[at] != a["time"] or not np.isfinite(closes[at]):
            continue
        label = METRICS[a["metric"]].split(" (")[0]
        marks.append(
            {
                "t": a["time"] + step_ms / 2,
                "price": float(closes[at]),
                "z": a["z"],
                "what": f"{label}: z {a['z']:+.1f}, {a['kind']}",
            }
        )
    return marks


def chart_layers(*, market: Market, heat_start: int, colour: str) -> dict:
    """The inputs of the whale layers: the stored anomalies inside the heatmap's span and, with
    colour "zscore", the switch of the heatmap's z-score colours."""
    layers: dict = {"zscore": True} if colour == "zscore" else {}
    stored = positioning_stored(market_id=market.pk)
    if stored is None:
        return layers
    shown = [a for a in stored.anomalies if a["time"] >= heat_start]
    arrays = stored.arrays
    layers["anomalies"] = anomaly_marks(shown, arrays["times"], arrays["close"], market.step_ms)
    return layers
