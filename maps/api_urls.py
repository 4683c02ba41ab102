"""The API: /api/v1/ (its index), /api/v1/markets/,
/api/v1/<exchange>/<symbol>/heatmap|map|clusters|proximity (and position|what-if,
maps.risk.api; cascades|sweeps|signals|backtest, maps.market_signals.api; whales,
maps.whales.api), /api/v1/screener/ and /api/v1/coin/<base>/heatmap|map|clusters|proximity
("coin" is never an exchange's name); any other URL under /api/v1/ is a JSON 404."""

from __future__ import annotations

from django.urls import path, re_path

import maps.urls  # noqa: F401  (registers the exchange and symbol path converters)
from maps import api
from maps.levels import api as levels_api
from maps.market_signals import api as signal_api
from maps.risk import api as risk_api
from maps.whales import api as whales_api

app_name = "api"
urlpatterns = [
    path("", api.index, name="index"),
    path("markets/", api.markets, name="markets"),
    path("screener/", whales_api.screener, name="screener"),
    path("<exchange:exchange>/<symbol:symbol>/heatmap", api.heatmap, name="heatmap"),
    path("<exchange:exchange>/<symbol:symbol>/map", api.map_view, name="map"),
    path("<exchange:exchange>/<symbol:symbol>/clusters", api.clusters, name="clusters"),
    path("<exchange:exchange>/<symbol:symbol>/proximity", api.proximity, name="proximity"),
    path("<exchange:exchange>/<symbol:symbol>/position", risk_api.position, name="position"),
    path("<exchange:exchange>/<symbol:symbol>/what-if", risk_api.what_if, name="what_if"),
    path("<exchange:exchange>/<symbol:symbol>/cascades", signal_api.cascades, name="cascades"),
    path("<exchange:exchange>/<symbol:symbol>/sweeps", signal_api.sweeps, name="sweeps"),
    path("<exchange:exchange>/<symbol:symbol>/signals", signal_api.signals, name="signals"),
    path("<exchange:exchange>/<symbol:symbol>/backtest", signal_api.backtest, name="backtest"),
    path("<exchange:exchange>/<symbol:symbol>/levels", levels_api.levels, name="levels"),
    path("<exchange:exchange>/<symbol:symbol>/orderbook", levels_api.orderbook, name="orderbook"),
    path("<exchange:exchange>/<symbol:symbol>/whales", whales_api.whales, name="whales"),
    path("coin/<symbol:base>/heatmap", api.coin_heatmap, name="coin_heatmap"),
    path("coin/<symbol:base>/map", api.coin_map, name="coin_map"),
    path("coin/<symbol:base>/clusters", api.coin_clusters, name="coin_clusters"),
    path("coin/<symbol:base>/proximity", api.coin_proximity, name="coin_proximity"),
    re_path(r"^(?P<rest>.*)$", api.not_found, name="not_found"),
]
