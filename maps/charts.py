"""The pages' Bokeh charts, and the shaping of a result's arrays for them.

The pages draw the stored numbers with three changes, all made here and described in docs/api.md:
- price crop: only the bins from `CROP_PCT` below the lowest close of the window to `CROP_PCT`
  above the highest are drawn (the API serves the whole grid);
- rows: when more than `MAX_ROWS` bins remain, runs of k adjacent bins are summed into one row;
- columns: at most `MAX_COLUMNS` heatmap columns, every k-th counted back from the last (each
  column is the state after its step, so the kept ones are exact), and estimated liquidations
  summed into at most `MAX_LIQ_BARS` time buckets.
Heatmap values travel as float32 binary buffers inside Bokeh's JSON, gzip-compressed once and
cached by snapshot version.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from bokeh.embed import json_item
from bokeh.layouts import column, row
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    CustomJSHover,
    CustomJSTickFormatter,
    HoverTool,
    InlineStyleSheet,
    LinearAxis,
    LogColorMapper,
    LogTicker,
    Range1d,
    Spacer,
    Span,
)
from bokeh.palettes import Inferno256
from bokeh.plotting import figure
from django.core.cache import cache

from maps.engine.types import Result

T = TypeVar("T")
CHARTS_VERSION = 3  # 3: the levels layers and the indicator pane (maps/levels/charts.py)
CROP_PCT = 0.12
MAX_ROWS = 360
MAX_COLUMNS = 300
MAX_LIQ_BARS = 240
MAX_PRICE_POINTS = 1500
LOW_PERCENTILE = 40.0
HIGH_PERCENTILE = 99.7
MAP_WIDTH = 340
NARROW_PX = 720
CACHE_SECONDS = 900
SIDES = ("both", "long", "short")

BG = "#0b0f17"
PANEL = "#0f1420"
GRID = "#1b2231"
AXIS = "#8a94a6"
TEXT = "#c9d1dc"
PRICE = "#e8edf5"
LONG = "#22c3b5"
SHORT = "#f0506e"
LONG_TIERS = ("#0d5f5a", "#12807a", "#19a399", "#2bc4b8", "#7fe3da")
SHORT_TIERS = ("#7a1f33", "#a32a45", "#c93a58", "#ec5a76", "#f79aab")

USD_HOVER = """
const v = Math.abs(value);
const sign = value < 0 ? '-' : '';
if (v >= 1e9) return sign + '$' + (v / 1e9).toFixed(2) + 'B';
if (v >= 1e6) return sign + '$' + (v / 1e6).toFixed(2) + 'M';
if (v >= 1e3) return sign + '$' + (v / 1e3).toFixed(1) + 'K';
return sign + '$' + v.toFixed(0);
"""
USD_TICKS = """
const v = Math.abs(tick);
if (v >= 1e9) return '$' + (v / 1e9).toFixed(v >= 1e10 ? 0 : 1) + 'B';
if (v >= 1e6) return '$' + (v / 1e6).toFixed(v >= 1e7 ? 0 : 1) + 'M';
if (v >= 1e3) return '$' + (v / 1e3).toFixed(0) + 'K';
return '$' + v.toFixed(0);
"""


@dataclass(frozen=True)
class PriceLine:
    """Closes at the end of each step: times (ms) and prices."""

    times: np.ndarray
    closes: np.ndarray

    @classmethod
    def empty(cls) -> PriceLine:
        return cls(np.empty(0, dtype=np.int64), np.empty(0))


@dataclass(frozen=True)
class PlotData:
    """What the charts draw: cropped, merged and thinned arrays (rows = price, low to high)."""

    edges: np.ndarray
    col_times: np.ndarray
    col_width: float
    heat_long: np.ndarray
    heat_short: np.ndarray
    map_long: np.ndarray
    map_short: np.ndarray
    cum_long: np.ndarray
    cum_short: np.ndarray
    liq_times: np.ndarray
    liq_width: float
    liq_long: np.ndarray
    liq_short: np.ndarray
    price: PriceLine
    last_close: float
    leverages: tuple[float, ...]


def crop_range(edges: np.ndarray, price: PriceLine, last_close: float) -> tuple[int, int]:
    """First and one-past-last bin drawn: the closes' range widened by CROP_PCT either side."""
    low = min(float(price.closes.min()), last_close) if len(price.closes) else last_close
    high = max(float(price.closes.max()), last_close) if len(price.closes) else last_close
    low, high = low * (1 - CROP_PCT), high * (1 + CROP_PCT)
    bins = len(edges) - 1
    first = int(np.clip(np.searchsorted(edges, low, side="right") - 1, 0, bins - 1))
    stop = int(np.clip(np.searchsorted(edges, high, side="left"), first + 1, bins))
    return first, stop


def merge_factor(rows: int, limit: int) -> int:
    return max(1, math.ceil(rows / limit))


def merge_rows(values: np.ndarray, k: int) -> np.ndarray:
    """Sum runs of k adjacent bins along the last axis (zero-padding the top run)."""
    if k == 1:
        return values
    pad = (-values.shape[-1]) % k
    widths = [(0, 0)] * (values.ndim - 1) + [(0, pad)]
    padded = np.pad(values, widths)
    return padded.reshape(*padded.shape[:-1], -1, k).sum(-1)


def merged_edges(edges: np.ndarray, k: int) -> np.ndarray:
    """Edges of the merged rows, extending the uniform grid where the top run was padded."""
    width = float(edges[1] - edges[0])
    rows = math.ceil((len(edges) - 1) / k)
    return float(edges[0]) + width * k * np.arange(rows + 1)


def thin_indices(count: int, limit: int) -> np.ndarray:
    """Every k-th index counted back from the last one, ascending, at most `limit` of them."""
    k = max(1, math.ceil(count / limit))
    return np.arange(count - 1, -1, -k)[::-1]


def bucket_sums(values: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
    """Sums over buckets of k consecutive steps aligned on the last step; (sums, k)."""
    k = max(1, math.ceil(len(values) / limit))
    pad = (-len(values)) % k
    padded = np.concatenate([np.zeros(pad), values])
    return padded.reshape(-1, k).sum(1), k


def plot_data(result: Result, price: PriceLine) -> PlotData:
    """Shape a result (one market's, or a coin's aggregate) for drawing."""
    first, stop = crop_range(result.edges, price, result.last_close)
    edges = result.edges[first : stop + 1]
    k = merge_factor(stop - first, MAX_ROWS)
    cols = thin_indices(len(result.heat_times), MAX_COLUMNS)
    times = result.heat_times[cols] + result.step_ms
    col_width = float(np.median(np.diff(times))) if len(times) > 1 else float(result.step_ms)
    cum_long = result.cum_long[first:stop][::k]
    cum_short = result.cum_short[first:stop][k - 1 :: k]
    if len(cum_short) < len(cum_long):
        cum_short = np.append(cum_short, result.cum_short[stop - 1])
    liq_long, step_k = bucket_sums(result.liq_long.sum(1), MAX_LIQ_BARS)
    liq_short, _ = bucket_sums(result.liq_short.sum(1), MAX_LIQ_BARS)
    last_liq = int(result.liq_times[-1]) if len(result.liq_times) else int(result.as_of)
    liq_times = last_liq - result.step_ms * step_k * np.arange(len(liq_long) - 1, -1, -1)
    return PlotData(
        edges=merged_edges(edges, k),
        col_times=times,
        col_width=col_width,
        heat_long=merge_rows(result.heat_long[cols, first:stop], k).T.astype(np.float32),
        heat_short=merge_rows(result.heat_short[cols, first:stop], k).T.astype(np.float32),
        map_long=merge_rows(result.map_long[:, first:stop], k),
        map_short=merge_rows(result.map_short[:, first:stop], k),
        cum_long=cum_long,
        cum_short=cum_short,
        liq_times=liq_times,
        liq_width=float(result.step_ms * step_k),
        liq_long=liq_long,
        liq_short=liq_short,
        price=thin_price(price),
        last_close=float(result.last_close),
        leverages=tuple(float(t.leverage) for t in result.params.tiers),
    )


def thin_price(price: PriceLine) -> PriceLine:
    keep = thin_indices(len(price.times), MAX_PRICE_POINTS)
    return PriceLine(price.times[keep], price.closes[keep])


def colour_limits(values: np.ndarray) -> tuple[float, float]:
    """Log colour scale limits from percentiles of the non-zero cells: the thin spread of small
    positions stays dark, clusters stand out in bright yellow, and a few huge cells do not
    flatten the rest."""
    nonzero = values[values > 0]
    if not nonzero.size:
        return 1.0, 10.0
    low, high = np.percentile(nonzero, [LOW_PERCENTILE, HIGH_PERCENTILE])
    high = max(float(high), float(low) * 10)
    return max(float(low), high / 1e5), high


def price_format(last_close: float) -> str:
    """A Bokeh number format with sensible decimals for this price level."""
    if last_close >= 1000:
        return "0,0"
    if last_close >= 10:
        return "0,0.00"
    if last_close >= 0.1:
        return "0.0000"
    return "0.00000000"


def _style(fig) -> None:
    fig.title.text_color = TEXT
    fig.title.text_font_size = "12px"
    fig.title.text_font_style = "normal"
    fig.background_fill_color = PANEL
    fig.border_fill_color = BG
    fig.outline_line_color = None
    fig.min_border_left = 72
    fig.min_border_right = 12
    for axis in (*fig.xaxis, *fig.yaxis):
        axis.axis_line_color = GRID
        axis.major_tick_line_color = GRID
        axis.minor_tick_line_color = None
        axis.major_label_text_color = AXIS
        axis.major_label_text_font_size = "11px"
        axis.axis_label_text_color = AXIS
        axis.axis_label_text_font_style = "normal"
    fig.grid.grid_line_color = GRID
    fig.grid.grid_line_alpha = 0.6
    fig.toolbar.logo = None
    fig.toolbar.autohide = True


def heat_values(data: PlotData, side: str) -> np.ndarray:
    if side == "long":
        return data.heat_long
    if side == "short":
        return data.heat_short
    return data.heat_long + data.heat_short


def heatmap_figure(data: PlotData, side: str, title: str):
    """Price (vertical) by time: the active notional per bin after each column's step."""
    values = heat_values(data, side)
    low, high = colour_limits(values)
    mapper = LogColorMapper(palette=Inferno256, low=low, high=high, nan_color=BG)
    x0 = float(data.col_times[0] - data.col_width) if len(data.col_times) else 0.0
    x1 = float(data.col_times[-1]) if len(data.col_times) else 1.0
    y0, y1 = float(data.edges[0]), float(data.edges[-1])
    fig = figure(
        x_axis_type="datetime",
        x_range=Range1d(x0, x1, bounds=(x0, x1)),
        y_range=Range1d(y0, y1, bounds=(y0, y1)),
        height=520,
        sizing_mode="stretch_width",
        tools="pan,box_zoom,wheel_zoom,reset,save",
        toolbar_location="above",
        title=title,
    )
    source = ColumnDataSource(
        {"image": [values], "x": [x0], "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0]}
    )
    image = fig.image(
        image="image", x="x", y="y", dw="dw", dh="dh", color_mapper=mapper, source=source
    )
    fmt = price_format(data.last_close)
    fig.add_tools(
        HoverTool(
            renderers=[image],
            tooltips=[
                ("time", "$x{%Y-%m-%d %H:%M} UTC"),
                ("price", f"$y{{{fmt}}}"),
                ("notional", "@image{usd}"),
            ],
            formatters={"$x": "datetime", "@image": CustomJSHover(code=USD_HOVER)},
        )
    )
    if len(data.price.times):
        line = ColumnDataSource({"t": data.price.times + 0.0, "close": data.price.closes})
        fig.line("t", "close", source=line, color=PRICE, line_width=1.4, alpha=0.9)
    fig.add_layout(_price_span(data.last_close))
    bar = ColorBar(
        color_mapper=mapper,
        ticker=LogTicker(desired_num_ticks=6),
        formatter=CustomJSTickFormatter(code=USD_TICKS),
        orientation="horizontal",
        height=8,
        padding=4,
        major_label_text_color=AXIS,
        major_label_text_font_size="10px",
        background_fill_color=BG,
        bar_line_color=None,
        major_tick_line_color=None,
    )
    fig.add_layout(bar, "below")
    fig.yaxis.formatter = CustomJSTickFormatter(code=_price_ticks(fmt))
    _style(fig)
    return fig


def _price_ticks(fmt: str) -> str:
    decimals = len(fmt.split(".")[1]) if "." in fmt else 0
    return f"return tick.toLocaleString('en-US', {{maximumFractionDigits: {decimals}}});"


def _price_span(price: float) -> Span:
    return Span(
        location=price,
        dimension="width",
        line_color=PRICE,
        line_dash="dashed",
        line_width=1,
        line_alpha=0.7,
    )


def map_figure(data: PlotData, side: str, y_range):
    """Notional per price row stacked by tier (longs left, shorts right), cumulative curves on
    the top axis, the current price marked."""
    centres = (data.edges[:-1] + data.edges[1:]) / 2
    height = float(data.edges[1] - data.edges[0]) * 0.92
    tiers = [f"{lev:g}x" for lev in data.leverages]
    columns: dict = {"y": centres, "lt": data.map_long.sum(0), "st": data.map_short.sum(0)}
    for k in range(len(tiers)):
        columns[f"l{k}"] = -data.map_long[k] if side != "short" else 0 * data.map_long[k]
        columns[f"s{k}"] = data.map_short[k] if side != "long" else 0 * data.map_short[k]
    source = ColumnDataSource(columns)
    reach = max(float(columns["lt"].max(initial=0)), float(columns["st"].max(initial=0)), 1.0)
    fig = figure(
        width=MAP_WIDTH,
        height=520,
        x_range=Range1d(-reach * 1.08, reach * 1.08),
        y_range=y_range,
        tools="",
        toolbar_location=None,
        title="Liquidation map · longs ◀ ▶ shorts",
    )
    fig.hbar_stack(
        [f"l{k}" for k in range(len(tiers))],
        y="y",
        height=height,
        color=_ramp(LONG_TIERS, len(tiers)),
        source=source,
        line_color=None,
    )
    fig.hbar_stack(
        [f"s{k}" for k in range(len(tiers))],
        y="y",
        height=height,
        color=_ramp(SHORT_TIERS, len(tiers)),
        source=source,
        line_color=None,
    )
    _cumulative_curves(fig, data, side, centres)
    fig.add_layout(_price_span(data.last_close))
    rows = fig.hbar(
        y="y",
        height=height * 1.08,
        left=-reach * 1.08,
        right=reach * 1.08,
        source=source,
        fill_alpha=0,
        line_alpha=0,
        hover_fill_color=TEXT,
        hover_fill_alpha=0.08,
    )
    fmt = price_format(data.last_close)
    usd_hover = CustomJSHover(code=USD_HOVER)
    fig.add_tools(
        HoverTool(
            renderers=[rows],
            tooltips=[
                ("price", f"@y{{{fmt}}}"),
                ("longs", "@lt{usd}"),
                ("shorts", "@st{usd}"),
            ],
            formatters={"@lt": usd_hover, "@st": usd_hover},
        )
    )
    fig.xaxis.formatter = CustomJSTickFormatter(code=USD_TICKS)
    fig.yaxis.visible = False
    _style(fig)
    fig.min_border_left = 8
    return fig


def _ramp(colours: tuple[str, ...], count: int) -> list[str]:
    picks = np.linspace(0, len(colours) - 1, count).round().astype(int) if count > 1 else [2]
    return [colours[i] for i in picks]


def _cumulative_curves(fig, data: PlotData, side: str, centres: np.ndarray) -> None:
    cmax = max(float(data.cum_long.max(initial=0)), float(data.cum_short.max(initial=0)), 1.0)
    fig.extra_x_ranges = {"cum": Range1d(-cmax * 1.05, cmax * 1.05)}
    axis = LinearAxis(x_range_name="cum", formatter=CustomJSTickFormatter(code=USD_TICKS))
    fig.add_layout(axis, "above")
    if side != "short":
        fig.line(-data.cum_long, centres, x_range_name="cum", color=LONG, line_width=1.6)
    if side != "long":
        fig.line(data.cum_short, centres, x_range_name="cum", color=SHORT, line_width=1.6)


def liquidations_figure(data: PlotData, x_range):
    """Estimated liquidations per time bucket: longs down, shorts up."""
    source = ColumnDataSource(
        {
            "t": data.liq_times + data.liq_width / 2,
            "start": data.liq_times + 0.0,
            "long": -data.liq_long,
            "short": data.liq_short,
            "lu": data.liq_long,
        }
    )
    reach = max(float(data.liq_long.max(initial=0)), float(data.liq_short.max(initial=0)), 1.0)
    fig = figure(
        x_axis_type="datetime",
        x_range=x_range,
        y_range=Range1d(-reach * 1.1, reach * 1.1),
        height=150,
        sizing_mode="stretch_width",
        tools="",
        toolbar_location=None,
        title="Estimated liquidations (longs ▼ shorts ▲)",
    )
    width = data.liq_width * 0.85
    fig.vbar(x="t", top="long", width=width, source=source, color=LONG, line_color=None)
    fig.vbar(x="t", top="short", width=width, source=source, color=SHORT, line_color=None)
    columns = fig.vbar(
        x="t",
        bottom=-reach * 1.1,
        top=reach * 1.1,
        width=data.liq_width,
        source=source,
        fill_alpha=0,
        line_alpha=0,
        hover_fill_color=TEXT,
        hover_fill_alpha=0.08,
    )
    usd_hover = CustomJSHover(code=USD_HOVER)
    fig.add_tools(
        HoverTool(
            renderers=[columns],
            tooltips=[
                ("from", "@start{%Y-%m-%d %H:%M} UTC"),
                ("span", _span_label(data.liq_width)),
                ("longs", "@lu{usd}"),
                ("shorts", "@short{usd}"),
            ],
            formatters={"@start": "datetime", "@lu": usd_hover, "@short": usd_hover},
        )
    )
    fig.yaxis.formatter = CustomJSTickFormatter(code=USD_TICKS)
    fig.yaxis.ticker.desired_num_ticks = 3
    _style(fig)
    return fig


def _span_label(ms: float) -> str:
    minutes = int(ms // 60_000)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:g} h"


NARROW_CSS = (
    f"@media (max-width: {NARROW_PX}px) {{ :host {{ flex-wrap: wrap !important; }} "
    ":host > .chart-wide { flex-basis: 100% !important; } "
    ":host > .chart-spacer { display: none !important; } }"
)


def chart_layout(data: PlotData, side: str, title: str, layers=None):
    """The heatmap with the map at its right and the liquidations below; on a narrow screen the
    rows wrap, so the heatmap takes the whole width and the map comes under it. `layers`
    (maps.levels.charts.Layers) draws on the figures and returns panes beside the map and below."""
    heat = heatmap_figure(data, side, title)
    liq = liquidations_figure(data, heat.x_range)
    side_map = map_figure(data, side, heat.y_range)
    panes = layers(heat=heat, side_map=side_map, liquidations=liq, data=data) if layers else None
    beside, below = (panes.beside, panes.below) if panes else ([], [])
    spacer_width = MAP_WIDTH + sum(int(pane.width or 0) for pane in beside)
    spacer = Spacer(width=spacer_width, height=liq.height, css_classes=["chart-spacer"])
    heat.css_classes = ["chart-wide"]
    liq.css_classes = ["chart-wide"]
    wrap = InlineStyleSheet(css=NARROW_CSS)
    return column(
        row(heat, side_map, *beside, sizing_mode="stretch_width", stylesheets=[wrap]),
        row(liq, spacer, sizing_mode="stretch_width", stylesheets=[wrap]),
        *below,
        sizing_mode="stretch_width",
    )


def chart_json(result: Result, price: PriceLine, side: str, title: str, layers=None) -> bytes:
    """The charts as Bokeh's embed JSON (json_item), gzip-compressed."""
    layout = chart_layout(plot_data(result, price), side, title, layers)
    text = json.dumps(json_item(layout), separators=(",", ":"))
    return gzip.compress(text.encode(), compresslevel=6)


@dataclass(frozen=True)
class StepLiquidation:
    time_ms: int
    long: float
    short: float


@dataclass(frozen=True)
class Summary:
    """Figures for the page's text: totals and the largest estimated liquidation steps."""

    active_long: float
    active_short: float
    liquidated_long: float
    liquidated_short: float
    largest_steps: tuple[StepLiquidation, ...]


def result_summary(result: Result, top: int = 6) -> Summary:
    """Active notional per side now, liquidated over the window, and the `top` steps with the
    largest estimated liquidations (newest first)."""
    long = result.liq_long.sum(1)
    short = result.liq_short.sum(1)
    total = long + short
    order = np.argsort(-total, kind="stable")[:top]
    order = order[total[order] > 0]
    order = order[np.argsort(-result.liq_times[order])]
    steps = tuple(
        StepLiquidation(int(result.liq_times[i]), float(long[i]), float(short[i])) for i in order
    )
    return Summary(
        active_long=float(result.map_long.sum()),
        active_short=float(result.map_short.sum()),
        liquidated_long=float(long.sum()),
        liquidated_short=float(short.sum()),
        largest_steps=steps,
    )


def cached(key: str, build: Callable[[], T]) -> T:
    """A value derived from stored data, under a `key` that names the data's version."""
    full_key = f"pages:v{CHARTS_VERSION}:{key}"
    value = cache.get(full_key)
    if value is None:
        value = build()
        cache.set(full_key, value, CACHE_SECONDS)
    return value
