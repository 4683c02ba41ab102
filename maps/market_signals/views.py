"""The signals and backtest panels on their own: the pair page loads them (htmx) when they must
be computed on demand: the signals of a replayed moment, a backtest not stored yet."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from maps import pages
from maps.engine.types import EngineError
from maps.market_signals import services
from maps.market_signals.pages import backtest_words, signals_fragment_context
from maps.views import bad_query_is_400

log = logging.getLogger(__name__)


@require_safe
@bad_query_is_400
def pair_signals(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
    market = pages.market_or_404(exchange=exchange.lower(), symbol=symbol.lower())
    window, at = pages.query_window(request), pages.query_at(request)
    snapshot = pages.pair_snapshot(market=market, window=window, at=at)
    context = {"market": market, "window": window, "signals": None, "signals_url": ""}
    if snapshot is not None:
        context = signals_fragment_context(market=market, snapshot=snapshot)
    return pages.revalidate(render(request, "maps/_signals.html", context))


@require_safe
def pair_backtest(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
    market = pages.market_or_404(exchange=exchange.lower(), symbol=symbol.lower())
    try:
        stored = services.market_backtest_current(market=market)
    except EngineError:
        log.exception("backtest of market %s failed", market.pk)
        stored = None
    args = [market.exchange.slug, market.slug]
    context = {
        "market": market,
        "backtest": None,
        "backtest_missing": stored is None,
        "backtest_url": reverse("maps:pair_backtest", args=args),
        "backtest_api_url": reverse("api:backtest", args=args),
    }
    if stored is not None:
        context["backtest"] = backtest_words(
            stored.results, computed_at=stored.computed_at, source=stored.source
        )
    return pages.revalidate(render(request, "maps/_backtest.html", context))
