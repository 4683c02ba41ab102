"""The pages: home, coins, coin, exchange and pair, their htmx fragments and their chart data.

Views check the URL and query, call the page functions in `maps.pages`, and render. Pages carry
their options in the query string (`?window=7d&side=both`), so every view can be linked to.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe
from django_htmx.http import push_url

from liqsite.middleware import csp_allows_chart_code
from maps import pages
from maps.models import Exchange
from maps.pages import BadQuery


def bad_query_is_400(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer a bad window, side or other option with a 400 naming the allowed values."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: str, **kwargs: str) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except BadQuery as exc:
            return bad_request(request, exc)

    return wrapper


@require_safe
@bad_query_is_400
def home(request: HttpRequest) -> HttpResponse:
    window = pages.query_window(request)
    context = pages.listing_context(request, window=window)
    context.update(
        page_title=f"Crypto liquidation heatmaps and maps ({window}) — {settings.SITE_NAME}",
        meta_description=(
            "Estimated liquidation levels of crypto perpetual futures: nearest long and short "
            "clusters per market, heatmaps, maps and an open model."
        ),
    )
    return pages.revalidate(render(request, "maps/home.html", context))


@require_safe
@bad_query_is_400
def markets_table(request: HttpRequest) -> HttpResponse:
    """The home (or exchange) markets table alone, for its 15-second htmx refresh."""
    window = pages.query_window(request)
    exchange = None
    if slug := request.GET.get("exchange"):
        exchange = Exchange.objects.filter(slug=slug.lower()).first()
        if exchange is None:
            raise Http404(f"No exchange {slug!r}")
    push = pages.query_choice(request, "push", ["", "1"], "")
    context = pages.listing_context(request, window=window, exchange=exchange)
    response = render(request, "maps/_markets_table.html", context)
    if push and request.htmx:
        push_url(response, context["page_url"])  # the address bar keeps the screener's state
    return pages.revalidate(response)


@require_safe
@bad_query_is_400
def exchange(request: HttpRequest, exchange: str) -> HttpResponse:
    if exchange != exchange.lower():
        return canonical_redirect(request, "maps:exchange", exchange.lower())
    venue = Exchange.objects.filter(slug=exchange).first()
    if venue is None:
        raise Http404(f"No exchange {exchange!r} is tracked here")
    window = pages.query_window(request)
    context = pages.listing_context(request, window=window, exchange=venue)
    context.update(
        venue=venue,
        page_title=f"{venue.name} liquidation heatmaps ({window}) — {settings.SITE_NAME}",
        meta_description=(
            f"Estimated liquidation levels for {venue.name} perpetual futures: nearest long and "
            "short clusters, heatmaps and maps per market."
        ),
    )
    return pages.revalidate(render(request, "maps/exchange.html", context))


@require_safe
@csp_allows_chart_code
@bad_query_is_400
def pair(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
    market = pages.market_or_404(exchange=exchange, symbol=symbol)
    if (exchange, symbol) != (market.exchange.slug, market.slug):
        return canonical_redirect(request, "maps:pair", market.exchange.slug, market.slug)
    window, side = pages.query_window(request), pages.query_side(request)
    at = pages.query_at(request)
    view = pages.pair_view(request, market=market, window=window, side=side, at=at)
    if view.not_modified is not None:
        return view.not_modified
    template = "maps/_pair_swap.html" if pages.is_partial(request) else "maps/pair.html"
    response = render(request, template, view.context)
    return pages.page_cache_headers(request, response, view)


@require_safe
@bad_query_is_400
def pair_proximity(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
    """The proximity widget alone (the pair page polls it every 15 seconds)."""
    market = pages.market_or_404(exchange=exchange.lower(), symbol=symbol.lower())
    window, side = pages.query_window(request), pages.query_side(request)
    context = pages.proximity_context(
        request,
        market=market,
        window=window,
        side=side,
        shown=request.GET.get("v", ""),
        at=pages.query_at(request),
    )
    return pages.revalidate(render(request, "maps/_proximity.html", context))


@require_safe
@bad_query_is_400
def pair_charts(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
    """The pair's charts as Bokeh embed JSON (gzip when the client takes it)."""
    market = pages.market_or_404(exchange=exchange.lower(), symbol=symbol.lower())
    window, side = pages.query_window(request), pages.query_side(request)
    at = pages.query_at(request)
    return pages.pair_charts_response(request, market=market, window=window, side=side, at=at)


@require_safe
def coins(request: HttpRequest) -> HttpResponse:
    context = pages.coins_context()
    context.update(
        page_title=f"Coins — liquidation heatmaps across exchanges — {settings.SITE_NAME}",
        meta_description="Every tracked coin, its liquidation map summed across exchanges.",
    )
    return pages.revalidate(render(request, "maps/coins.html", context))


@require_safe
@csp_allows_chart_code
@bad_query_is_400
def coin(request: HttpRequest, base: str) -> HttpResponse:
    if base != base.lower():
        return canonical_redirect(request, "maps:coin", base.lower())
    snapshots_markets = pages.coin_markets_or_404(base=base)
    window, side = pages.query_window(request), pages.query_side(request)
    view = pages.coin_view(request, base=base, markets=snapshots_markets, window=window, side=side)
    if view.not_modified is not None:
        return view.not_modified
    template = "maps/_coin_swap.html" if pages.is_partial(request) else "maps/coin.html"
    response = render(request, template, view.context)
    return pages.page_cache_headers(request, response, view)


@require_safe
@bad_query_is_400
def coin_proximity(request: HttpRequest, base: str) -> HttpResponse:
    """The coin's proximity widget alone (the coin page polls it every 15 seconds)."""
    pages.coin_markets_or_404(base=base.lower())
    window, side = pages.query_window(request), pages.query_side(request)
    context = pages.coin_proximity_context(
        request, base=base.lower(), window=window, side=side, shown=request.GET.get("v", "")
    )
    return pages.revalidate(render(request, "maps/_proximity.html", context))


@require_safe
@bad_query_is_400
def coin_charts(request: HttpRequest, base: str) -> HttpResponse:
    markets = pages.coin_markets_or_404(base=base.lower())
    window, side = pages.query_window(request), pages.query_side(request)
    return pages.coin_charts_response(
        request, base=base.lower(), markets=markets, window=window, side=side
    )


@require_safe
def model(request: HttpRequest) -> HttpResponse:
    context = {
        "doc": pages.doc_text("model.md"),
        "crumb": "Model",
        "page_title": f"How the liquidation model works — {settings.SITE_NAME}",
        "meta_description": "How liqsite estimates liquidation levels: inputs, parameters, "
        "the state and one step, outputs, calibration.",
    }
    return render(request, "maps/doc.html", context)


@require_safe
def api_docs(request: HttpRequest) -> HttpResponse:
    context = {
        "doc": pages.doc_text("api.md"),
        "crumb": "API",
        "page_title": f"JSON and CSV API — {settings.SITE_NAME}",
        "meta_description": "The liqsite API: markets, heatmaps, maps, clusters and proximity "
        "as JSON or CSV, with the pages' numbers.",
    }
    return render(request, "maps/doc.html", context)


def bad_request(request: HttpRequest, error: BadQuery) -> HttpResponse:
    """A 400 naming the allowed values, each linked with the rest of the query kept."""
    rest = {k: v for k, v in request.GET.items() if k not in (error.name, "v")}
    context = {
        "message": str(error),
        "allowed": [
            {"value": value, "url": f"{request.path}?{urlencode({**rest, error.name: value})}"}
            for value in error.allowed
        ],
        "page_title": f"Bad request — {settings.SITE_NAME}",
    }
    return pages.revalidate(render(request, "400.html", context, status=400))


def canonical_redirect(request: HttpRequest, name: str, *args: str) -> HttpResponseRedirect:
    """A permanent redirect to the canonical URL (lowercase, the market's slug), keeping the query
    string."""
    url = reverse(name, args=args)
    if query := request.META.get("QUERY_STRING"):
        url = f"{url}?{query}"
    return HttpResponseRedirect(url, status=301)
