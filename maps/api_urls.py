"""The API: /api/v1/markets/ and /api/v1/<exchange>/<symbol>/heatmap|map|clusters|proximity."""

from __future__ import annotations

from django.urls import path

import maps.urls  # noqa: F401  (registers the exchange and symbol path converters)
from maps import api

app_name = "api"
urlpatterns = [
    path("markets/", api.markets, name="markets"),
    path("<exchange:exchange>/<symbol:symbol>/heatmap", api.heatmap, name="heatmap"),
    path("<exchange:exchange>/<symbol:symbol>/map", api.map_view, name="map"),
    path("<exchange:exchange>/<symbol:symbol>/clusters", api.clusters, name="clusters"),
    path("<exchange:exchange>/<symbol:symbol>/proximity", api.proximity, name="proximity"),
]
