"""The pair and coin pages' Bokeh document: five panes, named layers on top, and metadata.

`maps.charts` shapes a result's arrays (`PlotData`); this package draws them:
- `panes`: heatmap (with candles, last price tagged on its price axis, colour bar), volume and
  liquidations under it on one time axis; the map (its own price axis, cumulative axis on top)
  and the tier breakdown beside it on one price axis;
- `layers`: what is drawn on top, by name (`LAYERS`), each switchable on the page;
- `style`: the dark theme's colours and formatters.
Nothing here runs JavaScript code from the JSON (no CustomJS models, so a strict Content Security
Policy holds): static/js/charts.js finds the models by name, formats the dollar ticks, draws the
tooltips and crosshair, and applies the zoom presets, sensitivity, tier and layer switches. The
document's root carries a metadata dict in its `tags` for it.
"""

from __future__ import annotations

from bokeh.layouts import column, row
from bokeh.models import InlineStyleSheet

from maps.charts import PlotData, colour_limits, heat_values, price_decimals
from maps.figures import panes as p
from maps.figures.layers import LAYERS, Layer

NARROW_PX = 760
NARROW_CSS = (
    f"@media (max-width: {NARROW_PX}px) {{ :host {{ flex-wrap: wrap !important; }} "
    ":host > .chart-main { flex-basis: 100% !important; } "
    ":host > .chart-side { margin-top: 8px; } }"
)

__all__ = ["LAYERS", "Layer", "chart_document"]


def chart_document(data: PlotData, side: str, title: str):
    """The charts' layout: heatmap, volume and liquidations in a column, the map and the tier
    key beside them (under them on a narrow screen), with the layers drawn and the metadata the
    page script needs in the root's tags."""
    decimals = price_decimals(data.last_close)
    x_range, y_range = p.time_range(data), p.price_range(data)
    panes = p.Panes(
        heat=p.heatmap_pane(data, side, title, x_range, y_range, decimals),
        volume=p.volume_pane(data, x_range),
        liquidations=p.liquidations_pane(data, x_range),
        map=p.map_pane(data, side, y_range, decimals),
        tiers=p.tiers_pane(data, side),
    )
    drawn = [layer for layer in LAYERS if _draw(layer, panes, data, side)]
    beside_more, below = _extra_panes(panes, data)
    main = column(
        panes.heat,
        panes.volume,
        panes.liquidations,
        *below,
        sizing_mode="stretch_width",
        css_classes=["chart-main"],
    )
    side_top = row(panes.map, *beside_more) if beside_more else panes.map
    beside = column(side_top, panes.tiers, css_classes=["chart-side"])
    layout = row(
        main, beside, sizing_mode="stretch_width", stylesheets=[InlineStyleSheet(css=NARROW_CSS)]
    )
    layout.tags = [metadata(data, side, decimals, drawn)]
    return layout


def _extra_panes(panes: p.Panes, data: PlotData) -> tuple[list, list]:
    """Panes a feature adds: `PlotData.layers["levels"]` (maps.levels.charts.Layers) draws its
    layers on the heatmap and returns the volume profile for beside the map and the indicator
    panes (RSI, open interest) for under the liquidations."""
    levels = data.layers.get("levels")
    return levels(panes=panes, data=data) if levels else ([], [])


def _draw(layer: Layer, panes: p.Panes, data: PlotData, side: str) -> bool:
    renderers = layer.draw(panes, data, side)
    for renderer in renderers:
        renderer.name = f"layer:{layer.name}"
        renderer.visible = layer.visible
    return bool(renderers)


def metadata(data: PlotData, side: str, decimals: int, layers: list[Layer]) -> dict:
    low, high = colour_limits(heat_values(data, side))
    return {
        "liqsite": 1,
        "side": side,
        "last_close": data.last_close,
        "decimals": decimals,
        "step_ms": data.step_ms,
        "candle_ms": data.candles.interval_ms,
        "liq_width": data.liq_width,
        "data_since": data.data_since,
        "colour": {"low": low, "high": high},
        "fit": [max(data.fit[0], float(data.edges[0])), min(data.fit[1], float(data.edges[-1]))],
        "all": [float(data.edges[0]), float(data.edges[-1])],
        "tiers": [f"{lev:g}x" for lev in data.leverages],
        "layers": [{"name": layer.name, "label": layer.label} for layer in layers],
        "time_columns": {
            "heat-source": ["x"],
            "candles": ["t", "t0"],
            "volume-source": ["t", "t0"],
            "liq-source": ["t", "start"],
            "markers": ["t"],
            "anomaly-marks": ["t"],
        },
    }
