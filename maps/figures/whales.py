"""The whale layers on the heatmap (their inputs come from maps.whales.charts): the z-score
colours, an image over the notional one colouring each cell by how unusual its notional is
within the window (robust z of its logarithm), and the anomalies as marks at their step's close
(area by |z|, above the price for a positive z, below it for a negative one)."""

from __future__ import annotations

import numpy as np
from bokeh.models import BasicTicker, ColumnDataSource, HoverTool, LinearColorMapper

from maps.charts import PlotData, heat_values
from maps.figures import style
from maps.figures.panes import Panes
from maps.whales.stats import cell_zscores

Z_LOW, Z_HIGH = -1.0, 4.0
Z_PALETTE = (
    "#0f1420",
    "#1e2a4a",
    "#3b3f8f",
    "#7a3fa0",
    "#c2407e",
    "#f0506e",
    "#fb923c",
    "#fbbf24",
    "#fde68a",
)
ANOMALY = "#e879f9"


def draw_zscore(panes: Panes, data: PlotData, side: str) -> list:
    if not data.layers.get("zscore"):
        return []
    fig = panes.heat
    image = fig.select_one({"name": "heat-source"})
    z = cell_zscores(heat_values(data, side))
    source = ColumnDataSource({**{k: image.data[k] for k in ("x", "y", "dw", "dh")}, "image": [z]})
    source.name = "heat-z-source"
    mapper = LinearColorMapper(
        palette=list(Z_PALETTE),
        low=Z_LOW,
        high=Z_HIGH,
        low_color=Z_PALETTE[0],
        high_color=Z_PALETTE[-1],
        nan_color=style.EMPTY,
        name="heat-z-mapper",
    )
    cells = fig.image(
        image="image", x="x", y="y", dw="dw", dh="dh", color_mapper=mapper, source=source
    )
    bar = style.colour_bar(
        mapper,
        BasicTicker(desired_num_ticks=6),
        "Z-score of a cell's notional within the window (robust, log)",
    )
    fig.add_layout(bar, "below")
    notional = fig.select_one({"name": "heat-colorbar"})
    if notional is not None:  # the z-score scale stands in its place (charts.js swaps them back)
        notional.visible = False
    return [cells, bar]


def draw_anomalies(panes: Panes, data: PlotData, side: str) -> list:
    marks = data.layers.get("anomalies")
    if not marks:
        return []
    z = np.array([abs(m["z"]) for m in marks])
    source = ColumnDataSource(
        {
            "t": [m["t"] for m in marks],
            "price": [m["price"] for m in marks],
            "size": (6 + 2.5 * np.minimum(z, 8)).tolist(),
            "marker": ["triangle" if m["z"] > 0 else "inverted_triangle" for m in marks],
            "what": [m["what"] for m in marks],
        },
        name="anomaly-marks",
    )
    dots = panes.heat.scatter(
        "t",
        "price",
        source=source,
        marker="marker",
        size="size",
        fill_color=ANOMALY,
        fill_alpha=0.7,
        line_color=style.BG,
        line_width=1,
    )
    panes.heat.add_tools(
        HoverTool(
            renderers=[dots],
            tooltips=[("anomaly", "@what"), ("at", "@t{%Y-%m-%d %H:%M} UTC")],
            formatters={"@t": "datetime"},
        )
    )
    return [dots]
