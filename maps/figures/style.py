"""Colours, formatters and the common look of every figure (the site's dark theme)."""

from __future__ import annotations

from bokeh.models import ColorBar, DatetimeTickFormatter, NumeralTickFormatter
from bokeh.palettes import Inferno256

BG = "#0b0f17"
PANEL = "#0f1420"
GRID = "#1b2231"
AXIS = "#a3adbd"
TEXT = "#c9d1dc"
PRICE = "#e8edf5"
PRICE_TAG = "#fbbf24"
LONG = "#22c3b5"
SHORT = "#f0506e"
UP = "#1f8f85"
DOWN = "#b83b55"
REAL_LONG = "#7ff5e9"
REAL_SHORT = "#ff9fb2"
# Tier colours, lowest leverage first: each side's hue from deep to pale, so neighbouring tiers
# differ in lightness by a visible step.
LONG_TIERS = ("#0a4f4a", "#11796f", "#1fa89b", "#4fd2c5", "#a6efe7")
SHORT_TIERS = ("#6e1a2d", "#9c2640", "#cc3b5a", "#f0718b", "#fbbcc8")
# Inferno without its near-black start: the faintest cells stay visible on the dark panel.
HEAT_PALETTE = tuple(Inferno256[40:])
BELOW_SCALE = "#2a1745"
EMPTY = PANEL


def ramp(colours: tuple[str, ...], count: int) -> list[str]:
    """`count` colours picked evenly from a ramp (the middle one for a single tier)."""
    if count <= 1:
        return [colours[len(colours) // 2]]
    step = (len(colours) - 1) / (count - 1)
    return [colours[round(i * step)] for i in range(count)]


def usd_formatter() -> NumeralTickFormatter:
    """Dollar ticks; static/js/charts.js rewrites them as $1.2B, $350M, $20K (absolute values,
    since the mirrored axes put longs on the negative side)."""
    return NumeralTickFormatter(format="$0.[0]a", tags=["usd"])


def price_formatter(decimals: int) -> NumeralTickFormatter:
    return NumeralTickFormatter(format="0,0" + (f".[{'0' * decimals}]" if decimals else ""))


def time_formatter() -> DatetimeTickFormatter:
    return DatetimeTickFormatter(
        minutes="%H:%M", hourmin="%H:%M", hours="%H:%M", days="%b %d", months="%b %Y"
    )


def style_figure(fig) -> None:
    fig.title.text_color = TEXT
    fig.title.text_font_size = "12px"
    fig.title.text_font_style = "normal"
    fig.background_fill_color = PANEL
    fig.border_fill_color = BG
    fig.outline_line_color = None
    fig.min_border_left = 10
    fig.min_border_right = 10
    for axis in (*fig.xaxis, *fig.yaxis):
        axis.axis_line_color = GRID
        axis.major_tick_line_color = GRID
        axis.minor_tick_line_color = None
        axis.major_label_text_color = AXIS
        axis.major_label_text_font_size = "11px"
        axis.axis_label_text_color = AXIS
        axis.axis_label_text_font_style = "normal"
        axis.axis_label_text_font_size = "11px"
    fig.grid.grid_line_color = GRID
    fig.grid.grid_line_alpha = 0.6
    fig.toolbar.logo = None


def colour_bar(mapper, ticker, title: str, **options) -> ColorBar:
    """A heatmap's horizontal colour scale, drawn below it in the charts' style."""
    return ColorBar(
        color_mapper=mapper,
        ticker=ticker,
        orientation="horizontal",
        height=9,
        padding=6,
        major_label_text_color=AXIS,
        major_label_text_font_size="10px",
        background_fill_color=BG,
        bar_line_color=None,
        title=title,
        title_text_color=AXIS,
        title_text_font_size="10px",
        title_text_font_style="normal",
        **options,
    )
