"""The five panes: heatmap, volume, liquidations (under it, on its time axis), the map and the
tier breakdown (beside it, on its price axis). Each pane draws its base glyphs; what sits on top
of them (candles, real liquidations, ...) comes from the named layers in `maps.figures.layers`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from bokeh.models import (
    ColumnDataSource,
    FixedTicker,
    Label,
    LinearAxis,
    LogColorMapper,
    Range1d,
    Span,
)
from bokeh.plotting import figure

from maps.charts import PlotData, colour_limits, colour_ticks, heat_values, long_share
from maps.figures import style

HEAT_HEIGHT = 500
VOLUME_HEIGHT = 96
LIQ_HEIGHT = 150
MAP_WIDTH = 340
TOP_BORDER = 76
BOTTOM_BORDER = 92
PRICE_AXIS_WIDTH = 118


@dataclass
class Panes:
    heat: object
    volume: object
    liquidations: object
    map: object
    tiers: object


def time_range(data: PlotData) -> Range1d:
    x0 = float(data.col_times[0] - data.col_width) if len(data.col_times) else 0.0
    x1 = float(data.col_times[-1]) if len(data.col_times) else 1.0
    return Range1d(x0, x1, bounds=(x0, x1), name="time-range")


def price_range(data: PlotData) -> Range1d:
    y0, y1 = float(data.edges[0]), float(data.edges[-1])
    fit0, fit1 = max(data.fit[0], y0), min(data.fit[1], y1)
    return Range1d(fit0, fit1, bounds=(y0, y1), name="price-range")


def crosshair(dimension: str, name: str) -> Span:
    return Span(
        location=None,
        dimension=dimension,
        line_color=style.PRICE,
        line_alpha=0.55,
        line_width=1,
        line_dash="dotted",
        name=name,
        level="overlay",
    )


def last_price(data: PlotData) -> Span:
    return Span(
        location=data.last_close,
        dimension="width",
        line_color=style.PRICE_TAG,
        line_dash="dashed",
        line_width=1,
        line_alpha=0.8,
    )


def heatmap_pane(data: PlotData, side: str, title: str, x_range, y_range, decimals: int):
    """Price (right axis) by time: the active notional per price row after each column's step,
    on a log colour scale whose floor stays visible (cells below it in BELOW_SCALE, empty cells
    in the panel's colour)."""
    values = heat_values(data, side)
    low, high = colour_limits(np.nan_to_num(values))
    mapper = LogColorMapper(
        palette=style.HEAT_PALETTE,
        low=low,
        high=high,
        low_color=style.BELOW_SCALE,
        nan_color=style.EMPTY,
        name="heat-mapper",
        tags=[{"low": low, "high": high}],
    )
    fig = figure(
        x_axis_type="datetime",
        x_range=x_range,
        y_range=y_range,
        y_axis_location="right",
        height=HEAT_HEIGHT,
        sizing_mode="stretch_width",
        tools="pan,box_zoom,wheel_zoom,reset,save",
        active_drag="pan",
        active_scroll=None,
        toolbar_location="above",
        title=title,
        name="heatmap",
    )
    y0, y1 = float(data.edges[0]), float(data.edges[-1])
    x0, x1 = x_range.bounds
    columns = {"image": [values], "x": [x0], "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0]}
    if side == "both":
        columns["share"] = [long_share(data)]
    source = ColumnDataSource(columns, name="heat-source")
    fig.image(image="image", x="x", y="y", dw="dw", dh="dh", color_mapper=mapper, source=source)
    ticks = FixedTicker(ticks=colour_ticks(low, high), name="heat-ticks")
    bar = style.colour_bar(
        mapper,
        ticks,
        "Notional per cell (log)",
        formatter=style.usd_formatter(),
        major_tick_line_color=style.BG,
        name="heat-colorbar",
    )
    fig.add_layout(bar, "below")
    fig.add_layout(last_price(data))
    fig.yaxis.formatter = style.price_formatter(decimals)
    fig.add_layout(price_tag(data, decimals), "right")
    fig.xaxis.formatter = style.time_formatter()
    fig.xaxis.ticker.desired_num_ticks = 6
    fig.add_layout(crosshair("width", "xhair-price-heatmap"))
    fig.add_layout(crosshair("height", "xhair-time-heatmap"))
    style.style_figure(fig)
    fig.min_border_top, fig.min_border_bottom = TOP_BORDER, BOTTOM_BORDER
    fig.min_border_right = PRICE_AXIS_WIDTH
    return fig


def price_tag(data: PlotData, decimals: int) -> Label:
    """The last price written beside the price axis at its level, in the colour of its dashed
    line (in the right panel, so the frame does not clip it)."""
    return Label(
        x=0,
        x_units="screen",
        y=data.last_close,
        x_offset=-4,
        text=f"{data.last_close:,.{decimals}f}",
        text_font_size="10.5px",
        text_color="#111111",
        text_font_style="bold",
        text_baseline="middle",
        text_align="left",
        background_fill_color=style.PRICE_TAG,
        padding=2,
        name="last-price-tag",
    )


def volume_pane(data: PlotData, x_range):
    """Traded volume per candle (USD), up candles in teal, down candles in red."""
    fig = figure(
        x_axis_type="datetime",
        x_range=x_range,
        y_axis_location="right",
        height=VOLUME_HEIGHT,
        sizing_mode="stretch_width",
        tools="",
        toolbar_location=None,
        name="volume",
    )
    candles = data.candles
    up = candles.close >= candles.open
    source = ColumnDataSource(
        {
            "t": candles.times + candles.interval_ms / 2,
            "t0": candles.times + 0.0,
            "volume": candles.volume_usd,
            "colour": np.where(up, style.UP, style.DOWN),
        },
        name="volume-source",
    )
    fig.vbar(
        x="t",
        top="volume",
        width=candles.interval_ms * 0.8,
        color="colour",
        line_color=None,
        source=source,
        alpha=0.85,
    )
    top = float(candles.volume_usd.max(initial=0)) or 1.0
    fig.y_range = Range1d(0, top * 1.08, bounds=(0, top * 1.08))
    fig.yaxis.formatter = style.usd_formatter()
    fig.yaxis.ticker.desired_num_ticks = 2
    fig.yaxis.axis_label = "Volume"
    fig.xaxis.visible = False
    fig.add_layout(crosshair("height", "xhair-time-volume"))
    style.style_figure(fig)
    fig.min_border_right = PRICE_AXIS_WIDTH
    fig.min_border_top = 4
    return fig


def liquidations_pane(data: PlotData, x_range):
    """Estimated liquidations per bucket: longs down, shorts up (real ones come as a layer)."""
    source = ColumnDataSource(
        {
            "t": data.liq_times + data.liq_width / 2,
            "start": data.liq_times + 0.0,
            "long": -data.liq_long,
            "short": data.liq_short,
            "real_long": -data.real_long,
            "real_short": data.real_short,
        },
        name="liq-source",
    )
    reach = max(
        float(data.liq_long.max(initial=0)),
        float(data.liq_short.max(initial=0)),
        float(data.real_long.max(initial=0)),
        float(data.real_short.max(initial=0)),
        1.0,
    )
    fig = figure(
        x_axis_type="datetime",
        x_range=x_range,
        y_range=Range1d(-reach * 1.1, reach * 1.1, bounds=(-reach * 1.1, reach * 1.1)),
        y_axis_location="right",
        height=LIQ_HEIGHT,
        sizing_mode="stretch_width",
        tools="",
        toolbar_location=None,
        title="Liquidations: estimated bars, real outlined · longs ▼ shorts ▲",
        name="liquidations",
    )
    width = data.liq_width * 0.85
    fig.vbar(x="t", top="long", width=width, source=source, color=style.LONG, line_color=None)
    fig.vbar(x="t", top="short", width=width, source=source, color=style.SHORT, line_color=None)
    fig.yaxis.formatter = style.usd_formatter()
    fig.yaxis.ticker.desired_num_ticks = 3
    fig.xaxis.formatter = style.time_formatter()
    fig.xaxis.ticker.desired_num_ticks = 6
    fig.add_layout(crosshair("height", "xhair-time-liquidations"))
    fig.add_layout(Span(location=0, dimension="width", line_color=style.GRID, line_width=1))
    style.style_figure(fig)
    fig.min_border_right = PRICE_AXIS_WIDTH
    return fig


def map_pane(data: PlotData, side: str, y_range, decimals: int):
    """Notional per price row stacked by tier (longs left, shorts right), with its own price
    axis; the cumulative curves (a layer) read on the top axis."""
    centres = (data.edges[:-1] + data.edges[1:]) / 2
    height = float(data.edges[1] - data.edges[0])
    tiers = [f"{lev:g}x" for lev in data.leverages]
    keep_long, keep_short = side != "short", side != "long"
    columns: dict = {
        "y": centres,
        "lo": data.edges[:-1],
        "hi": data.edges[1:],
        "lt": data.map_long.sum(0) if keep_long else np.zeros(len(centres)),
        "st": data.map_short.sum(0) if keep_short else np.zeros(len(centres)),
        "cl": data.cum_long,
        "cs": data.cum_short,
    }
    for k in range(len(tiers)):
        columns[f"l{k}"] = -data.map_long[k] if keep_long else np.zeros(len(centres))
        columns[f"s{k}"] = data.map_short[k] if keep_short else np.zeros(len(centres))
    source = ColumnDataSource(columns, name="map-source")
    reach = max(float(columns["lt"].max(initial=0)), float(columns["st"].max(initial=0)), 1.0)
    fig = figure(
        width=MAP_WIDTH,
        height=HEAT_HEIGHT,
        x_range=Range1d(-reach * 1.08, reach * 1.08, name="map-x"),
        y_range=y_range,
        y_axis_location="right",
        tools="",
        toolbar_location=None,
        title="Liquidation map now · longs ◀ ▶ shorts",
        name="map",
    )
    fig.hbar_stack(
        [f"l{k}" for k in range(len(tiers))],
        y="y",
        height=height * 0.92,
        color=style.ramp(style.LONG_TIERS, len(tiers)),
        source=source,
        line_color=None,
    )
    fig.hbar_stack(
        [f"s{k}" for k in range(len(tiers))],
        y="y",
        height=height * 0.92,
        color=style.ramp(style.SHORT_TIERS, len(tiers)),
        source=source,
        line_color=None,
    )
    fig.add_layout(last_price(data))
    fig.add_layout(Span(location=0, dimension="height", line_color=style.GRID, line_width=1))
    fig.add_layout(crosshair("width", "xhair-price-map"))
    fig.xaxis.formatter = style.usd_formatter()
    fig.xaxis.ticker.desired_num_ticks = 4
    fig.xaxis.axis_label = "Per price row (bars)"
    fig.yaxis.formatter = style.price_formatter(decimals)
    style.style_figure(fig)
    fig.min_border_top, fig.min_border_bottom = TOP_BORDER, BOTTOM_BORDER
    fig.min_border_left = 8
    return fig


def cumulative_axis(fig, data: PlotData) -> str:
    """The map's top axis for the cumulative curves; returns its range name."""
    cmax = max(float(data.cum_long.max(initial=0)), float(data.cum_short.max(initial=0)), 1.0)
    fig.extra_x_ranges = {"cum": Range1d(-cmax * 1.05, cmax * 1.05)}
    axis = LinearAxis(
        x_range_name="cum",
        formatter=style.usd_formatter(),
        axis_label="Cumulative to price (lines)",
    )
    axis.ticker.desired_num_ticks = 4
    fig.add_layout(axis, "above")
    style.style_figure(fig)
    return "cum"


def tiers_pane(data: PlotData, side: str):
    """Open notional per leverage tier, longs left and shorts right: the map's colour key."""
    tiers = [f"{lev:g}x" for lev in data.leverages]
    long = data.map_long.sum(1) if side != "short" else np.zeros(len(tiers))
    short = data.map_short.sum(1) if side != "long" else np.zeros(len(tiers))
    source = ColumnDataSource(
        {
            "tier": tiers,
            "long": -long,
            "short": short,
            "lu": long,
            "long_colour": style.ramp(style.LONG_TIERS, len(tiers)),
            "short_colour": style.ramp(style.SHORT_TIERS, len(tiers)),
        },
        name="tiers-source",
    )
    reach = max(float(long.max(initial=0)), float(short.max(initial=0)), 1.0)
    fig = figure(
        width=MAP_WIDTH,
        height=VOLUME_HEIGHT + LIQ_HEIGHT,
        y_range=tiers,
        x_range=Range1d(-reach * 1.1, reach * 1.1),
        y_axis_location="right",
        tools="",
        toolbar_location=None,
        title="Open now, by leverage tier (the map's colours)",
        name="tiers",
    )
    fig.hbar(y="tier", left=0, right="long", height=0.7, color="long_colour", source=source)
    fig.hbar(y="tier", left=0, right="short", height=0.7, color="short_colour", source=source)
    fig.xaxis.formatter = style.usd_formatter()
    fig.xaxis.ticker.desired_num_ticks = 4
    fig.yaxis.axis_label = "Leverage"
    style.style_figure(fig)
    fig.min_border_left = 8
    fig.ygrid.grid_line_color = None
    return fig
