"""Named layers: what is drawn on top of the panes, each one switchable on the page.

A layer is a name, a label and a function that draws on the panes and returns its renderers;
`maps.figures.chart_document` names each renderer `layer:<name>` and lists the layers drawn in
the chart's metadata, and static/js/charts.js offers a switch per layer. A new layer (support and
resistance lines, cascade markers, order-book depth...) is one function appended to LAYERS; its
input travels in `PlotData.layers[<name>]`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from bokeh.models import ColumnDataSource

from maps.charts import PlotData
from maps.figures import signals, style, whales
from maps.figures.panes import Panes, cumulative_axis

MARKER_MIN_PX = 5.0
MARKER_MAX_PX = 22.0


@dataclass(frozen=True)
class Layer:
    name: str
    label: str
    draw: Callable[[Panes, PlotData, str], list]
    visible: bool = True


def draw_candles(panes: Panes, data: PlotData, side: str) -> list:
    """OHLC candles at the window's candle interval over the heatmap."""
    candles = data.candles
    if not len(candles):
        return []
    up = candles.close >= candles.open
    source = ColumnDataSource(
        {
            "t": candles.times + candles.interval_ms / 2,
            "t0": candles.times + 0.0,
            "open": candles.open,
            "high": candles.high,
            "low": candles.low,
            "close": candles.close,
            "top": np.maximum(candles.open, candles.close),
            "bottom": np.minimum(candles.open, candles.close),
            "colour": np.where(up, style.LONG, style.SHORT),
            "volume": candles.volume_usd,
        },
        name="candles",
    )
    fig = panes.heat
    wicks = fig.segment(
        x0="t", y0="low", x1="t", y1="high", color="colour", line_width=1, source=source
    )
    bodies = fig.vbar(
        x="t",
        top="top",
        bottom="bottom",
        width=candles.interval_ms * 0.62,
        fill_color="colour",
        line_color=style.BG,
        line_width=0.6,
        source=source,
    )
    return [wicks, bodies]


def draw_real(panes: Panes, data: PlotData, side: str) -> list:
    """Real liquidations reported by the exchange: circles on the heatmap (area by notional,
    teal for longs, pink for shorts) and outlined bars beside the estimated ones."""
    if not data.has_real:
        return []
    markers = data.markers
    wanted = np.ones(len(markers), dtype=bool)
    if side != "both":
        wanted = markers.is_long == (side == "long")
    biggest = float(markers.notional.max(initial=0)) or 1.0
    size = MARKER_MIN_PX + (MARKER_MAX_PX - MARKER_MIN_PX) * np.sqrt(markers.notional / biggest)
    source = ColumnDataSource(
        {
            "t": markers.times[wanted] + 0.0,
            "price": markers.prices[wanted],
            "usd": markers.notional[wanted],
            "long": markers.is_long[wanted].astype(np.int8),
            "count": markers.counts[wanted],
            "size": size[wanted],
            "colour": np.where(markers.is_long[wanted], style.REAL_LONG, style.REAL_SHORT),
        },
        name="markers",
    )
    dots = panes.heat.scatter(
        x="t",
        y="price",
        size="size",
        fill_color="colour",
        fill_alpha=0.35,
        line_color="colour",
        line_width=1.2,
        source=source,
    )
    liq = panes.liquidations
    source = liq.select_one({"name": "liq-source"})
    width = data.liq_width * 0.85
    outlines = [
        liq.vbar(
            x="t",
            top=column,
            width=width,
            source=source,
            fill_alpha=0,
            line_color=colour,
            line_width=1.2,
        )
        for column, colour in (("real_long", style.REAL_LONG), ("real_short", style.REAL_SHORT))
    ]
    return [dots, *outlines]


def draw_cumulative(panes: Panes, data: PlotData, side: str) -> list:
    """The cumulative curves on the map: what liquidates if price falls (longs) or rises
    (shorts) to each level."""
    fig = panes.map
    name = cumulative_axis(fig, data)
    centres = (data.edges[:-1] + data.edges[1:]) / 2
    lines = []
    if side != "short":
        lines.append(fig.line(-data.cum_long, centres, x_range_name=name, color=style.LONG))
    if side != "long":
        lines.append(fig.line(data.cum_short, centres, x_range_name=name, color=style.SHORT))
    for line in lines:
        line.glyph.line_width = 1.6
    return lines


LAYERS: list[Layer] = [
    Layer("zscore", "Z-score colours", whales.draw_zscore),
    Layer("candles", "Candles", draw_candles),
    Layer("real", "Real liquidations", draw_real),
    Layer("cumulative", "Cumulative curves", draw_cumulative),
    Layer("cascades", "Cascades", signals.draw_cascades),
    Layer("sweeps", "Sweeps", signals.draw_sweeps),
    Layer("replay", "Price after the moment", signals.draw_replay),
    Layer("anomalies", "Anomalies", whales.draw_anomalies),
]
