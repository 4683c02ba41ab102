"""The levels page of one market (`/<exchange>/<symbol>/levels/?window=`) and, for htmx, the levels
card alone (the same card the pair page includes)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from maps import pages as map_pages
from maps.levels import pages
from maps.views import bad_query_is_400


@require_safe
@bad_query_is_400
def levels(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
    market = map_pages.market_or_404(exchange=exchange.lower(), symbol=symbol.lower())
    window = map_pages.query_window(request)
    context = pages.levels_page_context(request, market=market, window=window)
    partial = map_pages.is_partial(request)
    template = "maps/levels/_levels.html" if partial else "maps/levels/page.html"
    return map_pages.revalidate(render(request, template, context))
