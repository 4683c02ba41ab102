"""The pages. Exchange slugs never take a name reserved for the site's own sections, so the
`<exchange>/` catch-alls cannot shadow admin/, api/, accounts/, watchlist/, healthz and the rest."""

from __future__ import annotations

from django.urls import path, register_converter

from maps import views
from maps.levels import views as levels_views
from maps.market_signals import views as signal_views
from maps.models import RESERVED_SLUGS
from maps.risk import views as risk_views


class ExchangeConverter:
    """An exchange slug in any case (the view redirects to lowercase), never a reserved name."""

    regex = r"(?!(?:{})(?:/|$))[A-Za-z0-9][-A-Za-z0-9_]*".format("|".join(RESERVED_SLUGS))

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class SymbolConverter:
    """A market slug or coin in any case, e.g. btcusdt, BTCUSDT, btc-usdt-swap."""

    regex = r"[A-Za-z0-9][-A-Za-z0-9_]*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ExchangeConverter, "exchange")
register_converter(SymbolConverter, "symbol")

app_name = "maps"
urlpatterns = [
    path("", views.home, name="home"),
    path("_/markets/", views.markets_table, name="markets_table"),
    path("model/", views.model, name="model"),
    path("api/", views.api_docs, name="api_docs"),
    path("coin/", views.coins, name="coins"),
    path("coin/<symbol:base>/", views.coin, name="coin"),
    path("coin/<symbol:base>/proximity/", views.coin_proximity, name="coin_proximity"),
    path("coin/<symbol:base>/charts.json", views.coin_charts, name="coin_charts"),
    path("watchlist/positions/", risk_views.positions, name="positions"),
    path("watchlist/positions/<int:pk>/", risk_views.position, name="position"),
    path(
        "watchlist/positions/<int:pk>/delete/",
        risk_views.position_delete,
        name="position_delete",
    ),
    path("<exchange:exchange>/", views.exchange, name="exchange"),
    path("<exchange:exchange>/<symbol:symbol>/", views.pair, name="pair"),
    path(
        "<exchange:exchange>/<symbol:symbol>/proximity/",
        views.pair_proximity,
        name="pair_proximity",
    ),
    path("<exchange:exchange>/<symbol:symbol>/charts.json", views.pair_charts, name="pair_charts"),
    path("<exchange:exchange>/<symbol:symbol>/plan/", risk_views.planner, name="planner"),
    path("<exchange:exchange>/<symbol:symbol>/levels/", levels_views.levels, name="levels"),
    path(
        "<exchange:exchange>/<symbol:symbol>/plan/save/",
        risk_views.planner_save,
        name="planner_save",
    ),
    path(
        "<exchange:exchange>/<symbol:symbol>/signals/",
        signal_views.pair_signals,
        name="pair_signals",
    ),
    path(
        "<exchange:exchange>/<symbol:symbol>/backtest/",
        signal_views.pair_backtest,
        name="pair_backtest",
    ),
]
