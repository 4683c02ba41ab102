"""The marks drawn over the pair's heatmap: cascades on the price line, sweeps at their wicks,
and, on a replay, the price path that followed the moment.

Each function returns a layer: a callable that draws named renderers on the heatmap figure
(`maps.charts.chart_json(..., layers=...)`), so the charts module itself stays unaware of signals.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from bokeh.models import ColumnDataSource, CustomJSHover, HoverTool, Span

from maps.charts import LONG, PRICE, SHORT, USD_HOVER, PriceLine

Layer = Callable[[object], None]
SIDE_COLOURS = {"long": LONG, "short": SHORT}


def cascade_layer(cascades: list[dict], price: PriceLine, step_ms: int) -> Layer:
    """Each cascade as a thick stretch of the price line in the liquidated side's colour (from
    the close before it to its last close), with a marker at its extreme."""

    def draw(fig) -> None:
        if not cascades:
            return
        xs, ys, colours, extremes = [], [], [], []
        for c in cascades:
            ends = price.times
            keep = (ends >= c["start"]) & (ends <= c["end"] + step_ms)
            x = ends[keep] + 0.0
            y = price.closes[keep]
            if len(x) < 2:
                x = np.array([c["start"], c["end"] + step_ms], dtype=float)
                y = np.array([c["price_start"], c["price_extreme"]])
            xs.append(x)
            ys.append(y)
            colours.append(SIDE_COLOURS[c["side"]])
            extremes.append(c)
        lines = fig.multi_line(
            xs=xs, ys=ys, line_color=colours, line_width=5, line_alpha=0.85, name="signals-cascades"
        )
        lines.level = "overlay"
        source = ColumnDataSource(
            {
                "t": [c["extreme_time"] + step_ms / 2 for c in extremes],
                "price": [c["price_extreme"] for c in extremes],
                "colour": [SIDE_COLOURS[c["side"]] for c in extremes],
                "marker": [
                    "inverted_triangle" if c["side"] == "long" else "triangle" for c in extremes
                ],
                "what": [f"{c['side']}s liquidated ({c['source']})" for c in extremes],
                "usd": [c["notional_usd"] for c in extremes],
                "move": [f"{c['move_pct']:+.2f}%" for c in extremes],
            }
        )
        marks = fig.scatter(
            "t",
            "price",
            source=source,
            marker="marker",
            size=11,
            fill_color="colour",
            line_color=PRICE,
            line_width=1,
            name="signals-cascade-extremes",
        )
        fig.add_tools(
            HoverTool(
                renderers=[marks],
                tooltips=[
                    ("cascade", "@what"),
                    ("at", "@t{%Y-%m-%d %H:%M} UTC"),
                    ("liquidated", "@usd{usd}"),
                    ("move", "@move"),
                ],
                formatters={"@t": "datetime", "@usd": CustomJSHover(code=USD_HOVER)},
            )
        )

    return draw


def _extreme_marker(side: str) -> str:
    return "inverted_triangle" if side == "long" else "triangle"


def sweep_layer(sweeps: list[dict], step_ms: int) -> Layer:
    """Each sweep as a marker at its wick: filled for a fake breakout, hollow when price stayed
    beyond the cluster, grey while undecided."""

    def draw(fig) -> None:
        if not sweeps:
            return
        source = ColumnDataSource(
            {
                "t": [s["time"] + step_ms / 2 for s in sweeps],
                "price": [s["wick_price"] for s in sweeps],
                "line": [SIDE_COLOURS[s["side"]] for s in sweeps],
                "fill": [SIDE_COLOURS[s["side"]] if s["fake"] else "#0b0f17" for s in sweeps],
                "marker": ["diamond" for _ in sweeps],
                "what": [_sweep_words(s) for s in sweeps],
                "range": [
                    f"{s['cluster']['price_low']:.6g} to {s['cluster']['price_high']:.6g}"
                    for s in sweeps
                ],
                "usd": [s["cluster"]["notional_usd"] for s in sweeps],
            }
        )
        marks = fig.scatter(
            "t",
            "price",
            source=source,
            marker="marker",
            size=10,
            fill_color="fill",
            line_color="line",
            line_width=2,
            name="signals-sweeps",
        )
        fig.add_tools(
            HoverTool(
                renderers=[marks],
                tooltips=[
                    ("sweep", "@what"),
                    ("at", "@t{%Y-%m-%d %H:%M} UTC"),
                    ("cluster", "@range (@usd{usd})"),
                ],
                formatters={"@t": "datetime", "@usd": CustomJSHover(code=USD_HOVER)},
            )
        )

    return draw


def _sweep_words(sweep: dict) -> str:
    side = "long cluster below" if sweep["side"] == "long" else "short cluster above"
    outcome = {True: "fake breakout", False: "held beyond", None: "undecided"}[sweep["fake"]]
    return f"{side} swept, wick {sweep['depth_pct']:.2f}% beyond: {outcome}"


def after_layer(after: PriceLine, moment_ms: int) -> Layer:
    """A replay: the price path after the moment, dashed, with the moment marked and the time
    axis widened to show it."""

    def draw(fig) -> None:
        fig.add_layout(
            Span(
                location=moment_ms,
                dimension="height",
                line_color=PRICE,
                line_dash="dotted",
                line_width=1,
                line_alpha=0.8,
                name="replay-moment",
            )
        )
        if not len(after.times):
            return
        source = ColumnDataSource({"t": after.times + 0.0, "close": after.closes})
        fig.line(
            "t",
            "close",
            source=source,
            color="#7dd3fc",
            line_width=1.6,
            line_dash="dashed",
            alpha=0.95,
            name="replay-after",
        )
        end = float(after.times[-1])
        start = fig.x_range.start
        fig.x_range.end = end
        fig.x_range.bounds = (start, end)
        low, high = float(after.closes.min()), float(after.closes.max())
        y = fig.y_range
        if low < y.start or high > y.end:
            y.start, y.end = min(y.start, low * 0.995), max(y.end, high * 1.005)
            y.bounds = (y.start, y.end)

    return draw
