"""The levels' drawing on the pair chart: layers on the heatmap (support/resistance lines, the
order-book depth heatmap, the walls), the volume profile in a pane beside the map, and the
indicator pane under the heatmap (RSI 1h and 4h with divergences, volume, open interest).

`maps.figures.chart_document` calls a `Layers` (built by `maps.levels.pages.chart_layers`, passed
in `PlotData.layers["levels"]`) with its panes; it draws on the heatmap and returns the panes to
place beside the map and under the liquidations. Every renderer a switch of the page
turns on or off carries the tag `levels:<layer>` (`sr`, `profile`, `depth`, `walls`);
static/js/levels.js flips their `visible`. The data arrive shaped (`LevelsPlot`): nothing here
computes a level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from bokeh.models import (
    BoxAnnotation,
    ColumnDataSource,
    HoverTool,
    InlineStyleSheet,
    LogColorMapper,
    Range1d,
    Span,
)
from bokeh.plotting import figure

from maps.analytics.orderbook import rebin
from maps.charts import price_decimals
from maps.figures import NARROW_PX, style
from maps.figures.panes import PRICE_AXIS_WIDTH
from maps.levels.selectors import BookRows

USD = "$0.[0]a"
"""Dollar amounts in tooltips: Bokeh's own numeral formatting (no JavaScript in the JSON)."""

LAYERS = ("sr", "profile", "depth", "walls")
DEFAULT_ON = ("sr", "profile", "walls")
# The indicator pane draws volume bars unless the chart has a volume pane of its own: then set
# this to False and the pane keeps RSI and open interest only.
INDICATOR_VOLUME = False  # the chart's own volume pane shows it (maps.figures.panes)
PROFILE_WIDTH = 110
RSI_HEIGHT = 130
FLOW_HEIGHT = 130
BG = "#0b0f17"
PANEL = "#0f1420"
GRID = "#1b2231"
AXIS = "#8a94a6"
TEXT = "#c9d1dc"
SUPPORT = "#38bdf8"
RESISTANCE = "#e879f9"
BID = "#34d399"
ASK = "#fb7185"
POC = "#fbbf24"
PROFILE = "#7d8799"
VALUE_AREA = "#a5b4c8"
RSI_1H = "#e8edf5"
RSI_4H = "#fbbf24"
OI = "#fbbf24"
VOLUME = "#3b4a63"
# On a phone the rows wrap and the map comes under the heatmap; a narrow pane of the profile
# under it would be mostly empty space, so it is left out there.
PHONE_HIDDEN = f"@media (max-width: {NARROW_PX}px) {{ :host {{ display: none !important; }} }}"
DEPTH_STOPS = ("#0a1a33", "#123c78", "#1d6fd6", "#4fb3ff", "#bfe8ff", "#ffffff")


@dataclass(frozen=True)
class Depth:
    """The depth heatmap's columns: each column's time (its right edge), their spacing, and the
    stored book each shows (`pick`, -1 for none) among `rows`, on the rows' own grids: they are
    redrawn on the heatmap's price rows when drawn."""

    times: np.ndarray
    spacing: float
    rows: BookRows
    pick: np.ndarray

    def values(self, edges: np.ndarray) -> np.ndarray:
        """USD resting per price row (bids and asks together) and column; NaN where no book."""
        out = np.full((len(edges) - 1, len(self.times)), np.nan)
        shown = self.pick >= 0
        if not shown.any():
            return out
        rows = self.rows.take(self.pick[shown])
        both = rows.bids + rows.asks
        out[:, shown] = rebin(both, rows.starts, rows.widths, edges).T
        return out


@dataclass(frozen=True)
class LevelsPlot:
    levels: list[dict]
    profile_edges: np.ndarray
    profile_volume: np.ndarray
    poc_index: int | None
    value_area: tuple[float, float] | None
    depth: Depth | None
    walls: list[dict]
    rsi: dict[str, tuple[np.ndarray, np.ndarray]]  # timeframe: (times at each close, values)
    divergences: list[dict]
    flow_times: np.ndarray  # volume buckets: each bucket's start
    flow_width: float
    volume: np.ndarray  # USD per bucket
    oi_times: np.ndarray
    oi_usd: np.ndarray
    last_close: float
    with_volume: bool = INDICATOR_VOLUME


@dataclass(frozen=True)
class Layers:
    """Draws a LevelsPlot on the pair chart's panes (maps.figures.panes.Panes)."""

    plot: LevelsPlot

    def __call__(self, *, panes, data) -> tuple[list, list]:
        """Draw on the heatmap; the figures to place beside the map and under the panes."""
        heat = panes.heat
        fmt = price_format(self.plot.last_close)
        add_depth(heat, self.plot.depth, data.edges if data is not None else None)
        add_levels(heat, self.plot.levels, fmt)
        add_walls(heat, self.plot.walls, fmt)
        beside = [profile_figure(self.plot, heat.y_range, fmt)]
        below = [rsi_figure(self.plot, heat.x_range), flow_figure(self.plot, heat.x_range)]
        return beside, below


def price_format(last_close: float) -> str:
    """Bokeh's numeral format for prices of this level."""
    decimals = price_decimals(last_close)
    return "0,0" + (f".{'0' * decimals}" if decimals else "")


def _tag(renderer, layer: str) -> None:
    renderer.tags = [f"levels:{layer}"]
    renderer.visible = layer in DEFAULT_ON


def depth_palette(count: int = 256) -> list[str]:
    """Dark blue to white, for resting liquidity (distinct from the heatmap's inferno)."""
    stops = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in DEPTH_STOPS], float)
    at = np.linspace(0, len(stops) - 1, count)
    rgb = np.array([np.interp(at, np.arange(len(stops)), stops[:, j]) for j in range(3)]).T
    return ["#{:02x}{:02x}{:02x}".format(*np.round(c).astype(int)) for c in rgb]


def add_depth(heat, depth: Depth | None, edges: np.ndarray | None) -> None:
    """The order-book depth heatmap over the liquidation heatmap, on its price rows."""
    if depth is None or edges is None or not len(depth.times):
        return
    values = depth.values(edges).astype(np.float32)
    values[values <= 0] = np.nan
    filled = values[np.isfinite(values) & (values > 0)]
    if not filled.size:
        return
    low, high = np.percentile(filled, [30.0, 99.5])
    mapper = LogColorMapper(
        palette=depth_palette(),
        low=float(low),
        high=float(max(high, low * 10)),
        nan_color=(0, 0, 0, 0),
        low_color=(0, 0, 0, 0),
    )
    x0 = float(depth.times[0] - depth.spacing)
    source = ColumnDataSource(
        {
            "image": [values],
            "x": [x0],
            "y": [float(edges[0])],
            "dw": [float(depth.times[-1] - x0)],
            "dh": [float(edges[-1] - edges[0])],
        }
    )
    image = heat.image(
        image="image",
        x="x",
        y="y",
        dw="dw",
        dh="dh",
        color_mapper=mapper,
        source=source,
        global_alpha=0.9,
        name="levels-depth",
    )
    _tag(image, "depth")
    heat.add_tools(
        HoverTool(
            renderers=[image],
            tooltips=[("resting", f"@image{{{USD}}}")],
        )
    )


def add_levels(heat, levels: list[dict], fmt: str) -> None:
    """Support and resistance as lines across the heatmap, thicker with more touches."""
    if not levels:
        return
    x0, x1 = heat.x_range.start, heat.x_range.end
    source = ColumnDataSource(
        {
            "x0": [x0] * len(levels),
            "x1": [x1] * len(levels),
            "y": [lv["price"] for lv in levels],
            "kind": [lv["kind"] for lv in levels],
            "touches": [lv["touches"] for lv in levels],
            "last": [lv["last_touch"] for lv in levels],
            "colour": [SUPPORT if lv["kind"] == "support" else RESISTANCE for lv in levels],
            "width": [min(1.0 + 0.5 * lv["touches"], 4.0) for lv in levels],
        }
    )
    lines = heat.segment(
        x0="x0",
        y0="y",
        x1="x1",
        y1="y",
        source=source,
        line_color="colour",
        line_width="width",
        line_dash="dashed",
        line_alpha=0.85,
        name="levels-sr",
    )
    _tag(lines, "sr")
    heat.add_tools(
        HoverTool(
            renderers=[lines],
            tooltips=[
                ("level", "@kind"),
                ("price", f"@y{{{fmt}}}"),
                ("touches", "@touches"),
                ("last touch", "@last{%Y-%m-%d %H:%M} UTC"),
            ],
            formatters={"@last": "datetime"},
            line_policy="nearest",
        )
    )


def add_walls(heat, walls: list[dict], fmt: str) -> None:
    """Each wall as a bar at its price from when it appeared to when it was last seen, thicker
    with its size; the walls still standing end in a dot."""
    if not walls:
        return
    usd = np.array([w["usd"] for w in walls])
    scale = np.log10(np.maximum(usd, 1.0) / max(float(usd.min()), 1.0))
    source = ColumnDataSource(
        {
            "x0": [float(w["appeared"]) for w in walls],
            "x1": [float(w["last_seen"] + w.get("span_ms", 60_000)) for w in walls],
            "y": [w["price"] for w in walls],
            "side": [w["side"] for w in walls],
            "usd": usd,
            "multiple": [w["multiple"] for w in walls],
            "stood": [w["stood_label"] for w in walls],
            "colour": [BID if w["side"] == "bid" else ASK for w in walls],
            "width": 2.0 + 3.0 * scale / max(float(scale.max()), 1e-9),
            "alpha": [0.95 if w["standing"] else 0.55 for w in walls],
        }
    )
    bars = heat.segment(
        x0="x0",
        y0="y",
        x1="x1",
        y1="y",
        source=source,
        line_color="colour",
        line_width="width",
        line_alpha="alpha",
        line_cap="round",
        name="levels-walls",
    )
    standing = [i for i, w in enumerate(walls) if w["standing"]]
    ends = ColumnDataSource(
        {
            "x": [source.data["x1"][i] for i in standing],
            "y": [walls[i]["price"] for i in standing],
            "colour": [source.data["colour"][i] for i in standing],
        }
    )
    dots = heat.scatter(
        "x", "y", source=ends, size=7, color="colour", line_color=BG, name="levels-walls-now"
    )
    for renderer in (bars, dots):
        _tag(renderer, "walls")
    heat.add_tools(
        HoverTool(
            renderers=[bars],
            tooltips=[
                ("wall", "@side"),
                ("price", f"@y{{{fmt}}}"),
                ("resting", f"@usd{{{USD}}}"),
                ("typical x", "@multiple{0.0}"),
                ("stood", "@stood"),
            ],
            line_policy="nearest",
        )
    )


def profile_figure(plot: LevelsPlot, y_range, fmt: str):
    """Volume traded at each price over the window, beside the map: value area lighter, the
    point of control in amber."""
    edges, volume = plot.profile_edges, plot.profile_volume
    fig = figure(
        width=PROFILE_WIDTH,
        height=520,
        x_range=Range1d(0, float(volume.max(initial=0)) * 1.05 or 1.0),
        y_range=y_range,
        tools="",
        toolbar_location=None,
        title="Volume profile",
    )
    if len(volume):
        centres = (edges[:-1] + edges[1:]) / 2
        inside = np.zeros(len(volume), dtype=bool)
        if plot.value_area is not None:
            inside = (centres >= plot.value_area[0]) & (centres <= plot.value_area[1])
        colour = np.where(inside, VALUE_AREA, PROFILE).astype(object)
        if plot.poc_index is not None:
            colour[plot.poc_index] = POC
        source = ColumnDataSource(
            {
                "y": centres,
                "volume": volume,
                "colour": list(colour),
                "low": edges[:-1],
                "high": edges[1:],
            }
        )
        bars = fig.hbar(
            y="y",
            right="volume",
            left=0,
            height=float(edges[1] - edges[0]) * 0.9,
            color="colour",
            source=source,
            line_color=None,
            alpha=0.8,
            name="levels-profile",
        )
        _tag(bars, "profile")
        fig.add_tools(
            HoverTool(
                renderers=[bars],
                tooltips=[
                    ("price", f"@low{{{fmt}}} to @high{{{fmt}}}"),
                    ("volume", f"@volume{{{USD}}}"),
                ],
            )
        )
    fig.xaxis.formatter = style.usd_formatter()
    fig.xaxis.ticker.desired_num_ticks = 2
    fig.yaxis.visible = False
    _style(fig)
    fig.min_border_left = 4
    fig.min_border_right = 8
    fig.stylesheets = [InlineStyleSheet(css=PHONE_HIDDEN)]
    return fig


def rsi_figure(plot: LevelsPlot, x_range):
    """RSI 14 on hourly and 4-hour closes, 30 and 70 marked, regular divergences drawn."""
    fig = figure(
        x_axis_type="datetime",
        x_range=x_range,
        y_axis_location="right",
        y_range=Range1d(0, 100),
        height=RSI_HEIGHT,
        sizing_mode="stretch_width",
        tools="",
        toolbar_location=None,
        title="RSI 14 · 1h (white) and 4h (amber) · divergences",
        name="levels-rsi",
    )
    fig.add_layout(BoxAnnotation(bottom=30, top=70, fill_color=TEXT, fill_alpha=0.04))
    for level in (30, 70):
        fig.add_layout(Span(location=level, dimension="width", line_color=AXIS, line_dash="dotted"))
    renderers = []
    for timeframe, colour, width in (("1h", RSI_1H, 1.3), ("4h", RSI_4H, 1.6)):
        times, values = plot.rsi.get(timeframe, (np.empty(0), np.empty(0)))
        if len(times):
            source = ColumnDataSource(
                {"t": times + 0.0, "rsi": values, "tf": [timeframe] * len(times)}
            )
            renderers.append(fig.line("t", "rsi", source=source, color=colour, line_width=width))
    if plot.divergences:
        divergence = ColumnDataSource(
            {
                "x0": [float(d["start_close"]) for d in plot.divergences],
                "x1": [float(d["end_close"]) for d in plot.divergences],
                "y0": [d["rsi_start"] for d in plot.divergences],
                "y1": [d["rsi_end"] for d in plot.divergences],
                "colour": [BID if d["kind"] == "bullish" else ASK for d in plot.divergences],
                "label": [f"{d['kind']} {d['timeframe']}" for d in plot.divergences],
            }
        )
        fig.segment("x0", "y0", "x1", "y1", source=divergence, line_color="colour", line_width=2)
    if renderers:
        fig.add_tools(
            HoverTool(
                renderers=renderers,
                tooltips=[("time", "@t{%Y-%m-%d %H:%M} UTC"), ("RSI @tf", "@rsi{0.0}")],
                formatters={"@t": "datetime"},
                mode="vline",
            )
        )
    fig.yaxis.ticker.desired_num_ticks = 3
    _style(fig)
    return fig


def flow_figure(plot: LevelsPlot, x_range):
    """Open interest in USD (the line, on the axis) over traded volume per bucket (the bars, in
    the pane's lower third, values on hover); both panes keep the heatmap's left border, so the
    time axes line up."""
    title = "Open interest (amber) and volume (bars)" if plot.with_volume else "Open interest"
    low, high = (float(plot.oi_usd.min()), float(plot.oi_usd.max())) if len(plot.oi_usd) else (0, 1)
    pad = (high - low) * 0.08 or high * 0.01 or 1.0
    fig = figure(
        x_axis_type="datetime",
        x_range=x_range,
        y_axis_location="right",
        y_range=Range1d(low - pad, high + pad),
        height=FLOW_HEIGHT,
        sizing_mode="stretch_width",
        tools="",
        toolbar_location=None,
        title=title,
        name="levels-flow",
    )
    if plot.with_volume and len(plot.volume):
        fig.extra_y_ranges = {"volume": Range1d(0, float(plot.volume.max(initial=0)) * 3 or 1.0)}
        source = ColumnDataSource(
            {
                "t": plot.flow_times + plot.flow_width / 2,
                "start": plot.flow_times + 0.0,
                "v": plot.volume,
            }
        )
        bars = fig.vbar(
            x="t",
            top="v",
            width=plot.flow_width * 0.85,
            source=source,
            y_range_name="volume",
            color=VOLUME,
            line_color=None,
        )
        fig.add_tools(
            HoverTool(
                renderers=[bars],
                tooltips=[("from", "@start{%Y-%m-%d %H:%M} UTC"), ("volume", f"@v{{{USD}}}")],
                formatters={"@start": "datetime"},
            )
        )
    if len(plot.oi_usd):
        source = ColumnDataSource({"t": plot.oi_times + 0.0, "oi": plot.oi_usd})
        line = fig.line("t", "oi", source=source, color=OI, line_width=1.5)
        fig.add_tools(
            HoverTool(
                renderers=[line],
                tooltips=[("time", "@t{%Y-%m-%d %H:%M} UTC"), ("open interest", f"@oi{{{USD}}}")],
                formatters={"@t": "datetime"},
                mode="vline",
            )
        )
    fig.yaxis.formatter = style.usd_formatter()
    fig.yaxis.ticker.desired_num_ticks = 3
    _style(fig)
    return fig


def _style(fig) -> None:
    """The chart's dark theme, and the price axis's width on the right, so the time axes of the
    panes under the heatmap line up with it."""
    style.style_figure(fig)
    fig.min_border_right = PRICE_AXIS_WIDTH
