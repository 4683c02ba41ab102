"""The signal layers on the heatmap (their inputs come from maps.market_signals.charts): cascades
as thick stretches of the price line in the liquidated side's colour with a marker at the
extreme, sweeps as diamonds at their wicks, and a replay's moment with the price path after it."""

from __future__ import annotations

from bokeh.models import ColumnDataSource, HoverTool, Span

from maps.charts import PlotData
from maps.figures import style
from maps.figures.panes import Panes

SIDE_COLOURS = {"long": style.LONG, "short": style.SHORT}
AFTER = "#7dd3fc"


def draw_cascades(panes: Panes, data: PlotData, side: str) -> list:
    found = data.layers.get("cascades")
    if not found or not found["lines"]:
        return []
    fig = panes.heat
    lines = fig.multi_line(
        xs=[line["xs"] for line in found["lines"]],
        ys=[line["ys"] for line in found["lines"]],
        line_color=[SIDE_COLOURS[line["side"]] for line in found["lines"]],
        line_width=5,
        line_alpha=0.85,
    )
    lines.level = "overlay"
    marks = found["marks"]
    source = ColumnDataSource(
        {
            "t": [m["t"] for m in marks],
            "price": [m["price"] for m in marks],
            "colour": [SIDE_COLOURS[m["side"]] for m in marks],
            "marker": ["inverted_triangle" if m["side"] == "long" else "triangle" for m in marks],
            "what": [m["what"] for m in marks],
        }
    )
    extremes = fig.scatter(
        "t",
        "price",
        source=source,
        marker="marker",
        size=11,
        fill_color="colour",
        line_color=style.PRICE,
        line_width=1,
    )
    fig.add_tools(_hover(extremes, "cascade"))
    return [lines, extremes]


def draw_sweeps(panes: Panes, data: PlotData, side: str) -> list:
    sweeps = data.layers.get("sweeps")
    if not sweeps:
        return []
    source = ColumnDataSource(
        {
            "t": [s["t"] for s in sweeps],
            "price": [s["price"] for s in sweeps],
            "line": [SIDE_COLOURS[s["side"]] for s in sweeps],
            "fill": [SIDE_COLOURS[s["side"]] if s["fake"] else style.BG for s in sweeps],
            "what": [s["what"] for s in sweeps],
        }
    )
    marks = panes.heat.scatter(
        "t",
        "price",
        source=source,
        marker="diamond",
        size=10,
        fill_color="fill",
        line_color="line",
        line_width=2,
    )
    panes.heat.add_tools(_hover(marks, "sweep"))
    return [marks]


def _hover(renderer, what: str) -> HoverTool:
    """Built-in formatting only (no JavaScript in the chart JSON): the words come shaped."""
    return HoverTool(
        renderers=[renderer],
        tooltips=[(what, "@what"), ("at", "@t{%Y-%m-%d %H:%M} UTC")],
        formatters={"@t": "datetime"},
    )


def draw_replay(panes: Panes, data: PlotData, side: str) -> list:
    """The replayed moment, dotted, and the closes after it, dashed; the time axis reaches to
    the end of that path."""
    replay = data.layers.get("replay")
    if not replay:
        return []
    fig = panes.heat
    moment = Span(
        location=replay["moment"],
        dimension="height",
        line_color=style.PRICE,
        line_dash="dotted",
        line_width=1,
        line_alpha=0.8,
    )
    fig.add_layout(moment)
    if not replay["times"]:
        return [moment]
    path = fig.line(
        replay["times"],
        replay["closes"],
        color=AFTER,
        line_width=1.6,
        line_dash="dashed",
        alpha=0.95,
    )
    end = float(replay["times"][-1])
    x_range = fig.x_range
    x_range.end = max(x_range.end, end) if x_range.end is not None else end
    if x_range.bounds is not None:
        x_range.bounds = (x_range.bounds[0], max(x_range.bounds[1], end))
    return [moment, path]
