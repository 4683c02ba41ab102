"""What the pages show: query options, page contexts, cache headers and the chart data responses.

The views stay thin: they validate the URL, call one function here, and render. Every figure
shown comes from a stored snapshot (`maps.selectors`) or from `maps.charts`; nothing here does
arithmetic on the data beyond picking and labelling it.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_cache_control, patch_vary_headers
from django.utils.http import http_date, quote_etag

from maps import charts
from maps.engine.clusters import MIN_DISTANCE_PCT, distance_pct, magnet_score
from maps.engine.types import Events
from maps.levels import pages as levels_pages
from maps.market_signals import pages as signal_pages
from maps.market_signals import replay
from maps.models import WINDOWS, MapSnapshot, Market, ms_to_datetime
from maps.selectors import (
    Freshness,
    coin_bases,
    coin_events_arrays,
    coin_snapshots_for_listing,
    market_bars_arrays,
    market_by_slugs,
    market_by_symbol,
    market_latest_calibration,
    market_snapshot_light,
    market_windows_start,
    markets_for_listing,
    snapshot_freshness,
    snapshots_of_markets,
)
from maps.services import coin_result, snapshot_to_result
from maps.whales import charts as whales_charts
from maps.whales import pages as whales_pages
from maps.whales.screener import screener_apply
from maps.whales.selectors import positioning_stored

SIDES = {"both": "Both", "long": "Longs", "short": "Shorts"}
DOCS = Path(settings.BASE_DIR) / "docs"


class BadQuery(ValueError):
    """A query option with a value the page does not know; lists the allowed ones."""

    def __init__(self, message: str, name: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.name = name
        self.allowed = allowed


def query_choice(request: HttpRequest, name: str, allowed: list[str], default: str) -> str:
    raw = request.GET.get(name)
    value = default if raw is None or raw == "" else raw.strip().lower()
    if value not in allowed:
        message = f"{name}={raw!r} is not allowed: use one of {', '.join(allowed)}"
        raise BadQuery(message, name, allowed)
    return value


def query_window(request: HttpRequest) -> str:
    return query_choice(
        request, "window", settings.LIQSITE_WINDOWS, settings.LIQSITE_DEFAULT_WINDOW
    )


def query_side(request: HttpRequest) -> str:
    return query_choice(request, "side", list(SIDES), "both")


def query_at(request: HttpRequest) -> int | None:
    """`at`: replay the map as it stood at that moment (epoch ms), or None for the live map."""
    raw = request.GET.get("at", "").strip()
    if not raw:
        return None
    try:
        return replay.at_parse(raw)
    except replay.ReplayError as exc:
        raise BadQuery(str(exc), "at", []) from None


def pair_snapshot(*, market: Market, window: str, at: int | None) -> MapSnapshot | None:
    """The map a pair view shows: the stored snapshot, or with `at` the map as it stood then
    (maps.market_signals.replay)."""
    if at is None:
        return market_snapshot_light(market=market, window=window)
    try:
        return replay.replay_snapshot(market=market, window=window, at_ms=at)
    except replay.ReplayError as exc:
        raise BadQuery(str(exc), "at", []) from None


def at_query(at: int | None) -> dict:
    return {} if at is None else {"at": replay.at_text(at)}


def replay_header(snapshot: MapSnapshot) -> dict:
    """A replayed document names the moment asked for: {"at": ...} (nothing for the live map)."""
    if not replay.is_replay(snapshot):
        return {}
    return {"at": replay.at_text(snapshot.replay_at)}


def market_or_404(*, exchange: str, symbol: str) -> Market:
    """The market by its URL slug, or else by the exchange's own symbol, in any case."""
    exchange = exchange.lower()
    market = market_by_slugs(exchange=exchange, symbol=symbol.lower())
    if market is None:
        market = market_by_symbol(exchange=exchange, symbol=symbol)
    if market is None:
        raise Http404(f"No market {exchange}/{symbol} is tracked here")
    return market


def refresh_seconds() -> int:
    return settings.LIQSITE_REFRESH_SECONDS


def revalidate(response: HttpResponse) -> HttpResponse:
    """Pages and fragments that change with every refresh: revalidate each time."""
    patch_cache_control(response, private=True, no_cache=True)
    return response


def is_partial(request: HttpRequest) -> bool:
    """An htmx swap of a page's main view (a history restore needs the whole page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


# Listings: home, exchange, coins.


@dataclass(frozen=True)
class ListingRow:
    market: Market
    snapshot: MapSnapshot | None
    freshness: Freshness | None
    screen: whales_pages.ScreenerRow | None = None

    @property
    def below(self) -> dict | None:
        return self.snapshot.proximity.get("long") if self.snapshot else None

    @property
    def above(self) -> dict | None:
        return self.snapshot.proximity.get("short") if self.snapshot else None

    @property
    def active(self) -> dict:
        """Active notional per side from the snapshot's report ({} without one)."""
        if self.snapshot is None:
            return {}
        totals = self.snapshot.report.get("totals", {})
        return {side: totals.get(side, {}).get("active") for side in ("long", "short")}


def listing_rows(*, window: str, exchange=None, base: str | None = None) -> list[ListingRow]:
    markets = markets_for_listing(exchange=exchange, base=base)
    snapshots = snapshots_of_markets(window=window, markets=markets)
    rows = []
    for market in markets:
        snapshot = snapshots.get(market.pk)
        freshness = None
        if snapshot is not None:
            freshness = snapshot_freshness(snapshot=snapshot, market=market)
        rows.append(ListingRow(market, snapshot, freshness))
    return rows


def listing_context(request: HttpRequest, *, window: str, exchange=None) -> dict:
    """The home and exchange pages' screener: every listed market's row from its stored map
    and positioning, filtered, sorted and coloured by the query (maps.whales.screener)."""
    screen = whales_pages.screener_query(request)
    page_query = {"window": window, **screen.params()}
    query = {**page_query, **({"exchange": exchange.slug} if exchange is not None else {})}
    path = exchange.get_absolute_url() if exchange is not None else reverse("maps:home")
    rows = listing_rows(window=window, exchange=exchange)
    if exchange is None:
        rows.sort(key=lambda row: (row.market.base, row.market.exchange.name))
    any_markets = bool(rows)
    all_demo = any_markets and all(row.market.is_demo for row in rows)
    rows = screener_rows(rows, screen)
    return {
        "window": window,
        "rows": rows,
        "all_demo": all_demo,
        "any_markets": any_markets,
        "group_by_coin": exchange is None and screen.sort is None,
        "window_links": window_links(path, window, screen.params()),
        "table_url": f"{reverse('maps:markets_table')}?{urlencode(query)}",
        "page_url": f"{path}?{urlencode(page_query)}",
        "path": path,
        "screen": screen,
        "screen_header": whales_pages.screener_header(
            screen,
            path,
            window,
            reverse("maps:markets_table"),
            {"exchange": exchange.slug} if exchange is not None else {},
        ),
        "refresh_seconds": refresh_seconds(),
        "canonical_url": request.build_absolute_uri(f"{path}?{urlencode({'window': window})}"),
    }


def screener_rows(rows: list[ListingRow], screen) -> list[ListingRow]:
    """The listing rows the screener keeps, in its order, each with its screener row."""
    stored = whales_pages.positioning_for_listing([row.market.pk for row in rows])
    screened = [
        whales_pages.screener_row(i, row.market, row.snapshot, stored.get(row.market.pk))
        for i, row in enumerate(rows)
    ]
    kept = screener_apply(
        screened,
        sort=screen.sort,
        descending=screen.descending,
        filters=screen.filters,
        colour=screen.colour,
    )
    return [replace(rows[s.key], screen=s) for s in kept]


def coins_context() -> dict:
    return {"coins": coin_bases()}


def window_links(path: str, current: str, extra: dict, coverage: dict | None = None) -> list[dict]:
    """The window selector's links; with `coverage` (window -> Coverage), a window longer than
    its data says so."""
    coverage = coverage or {}
    return [
        {
            "window": w,
            "url": f"{path}?{urlencode({'window': w, **extra})}",
            "current": w == current,
            "short": coverage.get(w),
        }
        for w in settings.LIQSITE_WINDOWS
    ]


@dataclass(frozen=True)
class Coverage:
    """A window longer than its data: the data starts at `since`, `days` after the window's."""

    since: datetime
    held_days: float
    window: str


def snapshot_coverage(snapshot: MapSnapshot | None, step_ms: int) -> Coverage | None:
    """None when the snapshot's data fills its window, else when its data starts."""
    if snapshot is None:
        return None
    start = snapshot.report.get("window_start")
    return window_coverage(snapshot.window, snapshot.as_of, start, step_ms)


def window_coverage(
    window: str, as_of: datetime, start: int | str | None, step_ms: int
) -> Coverage | None:
    """None when data starting at `start` (ms) fills the window ending with the step `as_of`."""
    if start is None:
        return None
    end = int(as_of.timestamp() * 1000) + step_ms
    if int(start) <= end - WINDOWS[window] + step_ms:
        return None
    return Coverage(ms_to_datetime(int(start)), (end - int(start)) / 86_400_000, window)


def market_coverage(market: Market) -> dict[str, Coverage]:
    """Per window, the coverage of the market's snapshot when its data is shorter."""
    out = {}
    for row in market_windows_start(market=market):
        coverage = window_coverage(row["window"], row["as_of"], row["window_start"], market.step_ms)
        if coverage is not None:
            out[row["window"]] = coverage
    return out


def side_links(path: str, window: str, current: str, extra: dict | None = None) -> list[dict]:
    return [
        {
            "side": s,
            "label": label,
            "url": f"{path}?{urlencode({'window': window, 'side': s, **(extra or {})})}",
            "current": s == current,
        }
        for s, label in SIDES.items()
    ]


# The pair and coin pages.


@dataclass
class PageView:
    """A page's context, and what its cache headers need."""

    context: dict
    etag: str | None = None
    last_modified: datetime | None = None
    freshness: Freshness | None = None
    not_modified: HttpResponse | None = None
    cacheable: bool = field(default=False)


def pair_title(market: Market, window: str) -> str:
    return (
        f"{market.symbol} {market.exchange.name} liquidation heatmap ({window}) "
        f"— {settings.SITE_NAME}"
    )


def query_colour(request: HttpRequest) -> str:
    """`colour`: the heatmap's colours, by notional (the default) or by z-score."""
    return query_choice(request, "colour", list(whales_charts.COLOUR_MODES), "notional")


def pair_view(
    request: HttpRequest, *, market: Market, window: str, side: str, at: int | None = None
) -> PageView:
    path = market.get_absolute_url()
    colour = query_colour(request)
    moment = at_query(at)
    query = urlencode({"window": window, "side": side, **moment})
    coverage = market_coverage(market)
    context = {
        "market": market,
        "exchange": market.exchange,
        "window": window,
        "side": side,
        "window_links": window_links(path, window, {"side": side, **moment}, coverage),
        "side_links": side_links(path, window, side, moment),
        "coverage": coverage.get(window),
        "canonical_url": request.build_absolute_uri(f"{path}?{query}"),
        "page_title": pair_title(market, window),
        "meta_description": (
            f"Estimated liquidation levels for {market.symbol} on {market.exchange.name} over "
            f"{window}: heatmap, leverage map, clusters and the nearest long and short liquidity."
        ),
        "refresh_seconds": refresh_seconds(),
    }
    snapshot = pair_snapshot(market=market, window=window, at=at)
    if snapshot is None:
        return PageView(context)
    version = snapshot_version(snapshot)
    positioning = positioning_stored(market_id=market.pk, arrays=False)
    view = PageView(
        context,
        etag=page_etag(request, version, window, side, colour, whales_pages.version(positioning)),
        last_modified=snapshot.computed_at,
        freshness=snapshot_freshness(snapshot=snapshot, market=market),
        cacheable=True,
    )
    view.not_modified = not_modified(request, view)
    if view.not_modified is not None:
        return view

    def summary() -> charts.Summary:
        result = snapshot_to_result(snapshot)
        return charts.result_summary(result, events=real_events([market.pk], result))

    colour_query = {"colour": colour} if colour != "notional" else {}
    charts_query = urlencode(
        {
            "window": window,
            "side": side,
            **moment,
            **colour_query,
            "v": charts_version(f"{version}.{whales_pages.version(positioning)}"),
        }
    )
    calibration = market_latest_calibration(market=market)
    context.update(
        snapshot=snapshot,
        freshness=view.freshness,
        clusters=side_clusters(snapshot.clusters, side),
        ladder=cluster_ladder(side_clusters(snapshot.clusters, side), snapshot.last_close),
        proximity=proximity_display(snapshot.proximity),
        summary=charts.cached(f"pair:{version}", summary),
        calibration=calibration,
        calibration_tiers=calibration_tiers(calibration),
        version=version,
        charts_url=f"{reverse('maps:pair_charts', args=[market.exchange.slug, market.slug])}"
        f"?{charts_query}",
        proximity_url="" if at is not None else proximity_url(market, window, side, version),
        api_urls=api_urls(market, window, moment),
        **signal_pages.pair_context(
            market=market, snapshot=snapshot, path=path, query={"window": window, "side": side}
        ),
    )
    levels = {key: context[key] for key in ("clusters", "proximity")}
    context.update(levels_pages.pair_levels(snapshot=snapshot, **levels))
    context["positioning"] = whales_pages.positioning_panel(market, positioning)
    context["colour_links"] = whales_pages.colour_links(
        path, colour, {"window": window, "side": side, **moment}
    )
    return view


def real_events(market_ids: list[int], result) -> Events:
    """The real liquidations the markets' exchanges reported over the result's window."""
    return coin_events_arrays(
        market_ids=market_ids,
        start=ms_to_datetime(charts.window_start_ms(result)),
        end=ms_to_datetime(int(result.as_of) + result.step_ms),
    )


def proximity_display(proximity: dict) -> dict:
    """The proximity with what the widget states beside the engine's figures: each cluster's
    peak distance from the close, and the magnet rule's score of each side."""
    if not proximity:
        return proximity
    shown = dict(proximity)
    close = proximity.get("last_close")
    for side in ("long", "short"):
        cluster = proximity.get(side)
        if cluster is None or not close:
            continue
        peak = cluster["peak_price"]
        shown[side] = dict(
            cluster,
            peak_distance_pct=distance_pct(peak, peak, close),
            abs_distance_pct=abs(cluster["distance_pct"]),
            score=magnet_score(cluster),
            floored=abs(cluster["distance_pct"]) < MIN_DISTANCE_PCT,
        )
    shown["min_distance_pct"] = MIN_DISTANCE_PCT
    return shown


def cluster_ladder(clusters: list[dict], last_close: float) -> dict:
    """The clusters as a price ladder: those above the close (highest first), those holding
    it, and those below (highest first); each with its bar length relative to the largest."""
    largest = max((c["notional_usd"] for c in clusters), default=0.0) or 1.0
    rows = [dict(c, bar=c["notional_usd"] / largest) for c in clusters]
    by_price = sorted(rows, key=lambda c: -c["price_high"])
    return {
        "above": [c for c in by_price if c["price_low"] > last_close],
        "at": [c for c in by_price if c["price_low"] <= last_close <= c["price_high"]],
        "below": [c for c in by_price if c["price_high"] < last_close],
        "last_close": last_close,
    }


def calibration_tiers(calibration) -> list[dict]:
    """The fitted weight of each tier, labelled with the tier's leverage."""
    if calibration is None:
        return []
    return [
        {"leverage": prior[0], "weight": weight}
        for prior, weight in zip(calibration.prior, calibration.weights, strict=False)
    ]


def side_clusters(clusters: list[dict], side: str) -> list[dict]:
    return [c for c in clusters if side == "both" or c["side"] == side]


def view_query(window: str, side: str, **extra: str) -> str:
    """The query string of a view; the default side is left out."""
    query = {"window": window} if side == "both" else {"window": window, "side": side}
    return urlencode({**query, **extra})


def proximity_url(market: Market, window: str, side: str, version: str) -> str:
    url = reverse("maps:pair_proximity", args=[market.exchange.slug, market.slug])
    return f"{url}?{view_query(window, side, v=version)}"


def api_urls(market: Market, window: str, extra: dict | None = None) -> dict:
    args = [market.exchange.slug, market.slug]
    query = urlencode({"window": window, **(extra or {})})
    return {
        kind: f"{reverse(f'api:{kind}', args=args)}?{query}"
        for kind in ("heatmap", "map", "clusters", "proximity")
    }


def coin_api_urls(base: str, window: str) -> dict:
    return {
        kind: f"{reverse(f'api:coin_{kind}', args=[base])}?window={window}"
        for kind in ("heatmap", "map", "clusters", "proximity")
    }


def widget_context(
    request: HttpRequest,
    *,
    proximity: dict,
    freshness: Freshness,
    version: str,
    shown: str,
    urls: tuple[str, str],
    query: tuple[str, str],
) -> dict:
    """The proximity widget's context. `urls` are the widget's and the page's paths, `query` the
    window and side; `shown` is the snapshot version the page was drawn from ('' when unknown)."""
    widget_path, page_path = urls
    window, side = query
    return {
        "proximity": proximity_display(proximity),
        "freshness": freshness,
        "proximity_url": f"{widget_path}?{view_query(window, side, v=shown or version)}",
        "newer": bool(shown) and shown != version,
        "refresh_seconds": refresh_seconds(),
        "reload_url": request.build_absolute_uri(f"{page_path}?{view_query(window, side)}"),
    }


def proximity_context(
    request: HttpRequest,
    *,
    market: Market,
    window: str,
    side: str,
    shown: str,
    at: int | None = None,
) -> dict:
    """The pair's widget: the snapshot's proximity, its age, and whether it is newer than the
    page's; with `at`, the replayed moment's (which never changes, so it is not polled)."""
    snapshot = pair_snapshot(market=market, window=window, at=at)
    context = {"market": market, "window": window, "snapshot": snapshot}
    if snapshot is None:
        return context
    widget_path = reverse("maps:pair_proximity", args=[market.exchange.slug, market.slug])
    context.update(
        widget_context(
            request,
            proximity=snapshot.proximity,
            freshness=snapshot_freshness(snapshot=snapshot, market=market),
            version=snapshot_version(snapshot),
            shown=shown,
            urls=(widget_path, market.get_absolute_url()),
            query=(window, side),
        )
    )
    if at is not None:
        context.update(proximity_url="", newer=False)
    context.update(levels_pages.widget_levels(snapshot=snapshot, proximity=context["proximity"]))
    return context


def snapshot_version(snapshot: MapSnapshot) -> str:
    """Names one computation of one snapshot: its id and when it was computed (a replayed map:
    its market, window, moment and data)."""
    if replay.is_replay(snapshot):
        return snapshot.replay_version
    return f"{snapshot.pk}.{int(snapshot.computed_at.timestamp() * 1000)}"


def page_etag(request: HttpRequest, version: str, *parts: str) -> str:
    user = request.user.pk if request.user.is_authenticated else 0
    shape = "partial" if is_partial(request) else "page"
    zone = timezone.get_current_timezone_name()
    text = "|".join([version, *parts, shape, str(user), zone, str(charts.CHARTS_VERSION)])
    return quote_etag(hashlib.blake2b(text.encode(), digest_size=12).hexdigest())


def not_modified(request: HttpRequest, view: PageView) -> HttpResponse | None:
    """A 304 when the client's copy is current (anonymous visitors only: a signed-in user's page
    also shows their watchlist, which the validators do not cover)."""
    if request.user.is_authenticated or is_partial(request):
        return None
    response = get_conditional_response(
        request, etag=view.etag, last_modified=int(view.last_modified.timestamp())
    )
    if response is None:
        return None
    return page_cache_headers(request, response, view)


def page_cache_headers(
    request: HttpRequest, response: HttpResponse, view: PageView
) -> HttpResponse:
    """Anonymous visitors may keep a page until the next snapshot is expected; signed-in users'
    pages are revalidated every time; htmx swaps are never stored, so a browser cannot answer a
    later navigation to the same URL with a fragment."""
    patch_vary_headers(response, ["HX-Request", "Cookie"])
    if is_partial(request):
        patch_cache_control(response, no_store=True)
        return response
    if not view.cacheable or request.user.is_authenticated:
        return revalidate(response)
    response.headers["ETag"] = view.etag
    response.headers["Last-Modified"] = http_date(view.last_modified.timestamp())
    patch_cache_control(response, private=True, max_age=view.freshness.max_age)
    return response


def charts_version(version: str) -> str:
    """What the chart URL's `v` names: the data's version and the drawing code's, so a new
    layout reaches browsers that keep the old JSON."""
    return f"{version}~{charts.CHARTS_VERSION}"


def chart_response(request: HttpRequest, payload: bytes, *, version: str) -> HttpResponse:
    """Chart JSON. A URL naming the current version never changes, so it may be kept long."""
    if request.GET.get("v") == charts_version(version):
        cache_control = {"public": True, "max_age": 31_536_000, "immutable": True}
    else:
        cache_control = {"public": True, "max_age": 60}
    return compressed_response(request, payload, "application/json", cache_control)


def compressed_response(
    request: HttpRequest,
    payload: bytes,
    content_type: str,
    cache_control: dict,
    last_modified: datetime | None = None,
) -> HttpResponse:
    """A cached gzip body sent as is (inflated for the rare client without gzip), with an ETag
    of its content and a 304 when the client has it."""
    etag = quote_etag(hashlib.blake2b(payload, digest_size=12).hexdigest())
    stamp = int(last_modified.timestamp()) if last_modified is not None else None
    response = get_conditional_response(request, etag=etag, last_modified=stamp)
    if response is None:
        response = HttpResponse(content_type=content_type)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.content = payload
            response.headers["Content-Encoding"] = "gzip"
        else:
            response.content = gzip.decompress(payload)
    response.headers["ETag"] = etag
    if stamp is not None:
        response.headers["Last-Modified"] = http_date(stamp)
    patch_cache_control(response, **cache_control)
    patch_vary_headers(response, ["Accept-Encoding"])
    return response


def empty_charts_response() -> HttpResponse:
    response = HttpResponse(status=404, content_type="application/json")
    response.content = b'{"error": "no snapshot for this window yet"}'
    return revalidate(response)


def pair_charts_response(
    request: HttpRequest, *, market: Market, window: str, side: str, at: int | None = None
) -> HttpResponse:
    colour = query_colour(request)
    snapshot = pair_snapshot(market=market, window=window, at=at)
    if snapshot is None:
        return empty_charts_response()
    positioning = whales_pages.version(positioning_stored(market_id=market.pk, arrays=False))
    version = f"{snapshot_version(snapshot)}.{positioning}"

    def build() -> bytes:
        result = snapshot_to_result(snapshot)
        candles = market_candles(market, result)
        title = chart_title(f"{market.symbol} · {market.exchange.name}", window, side, result)
        events = real_events([market.pk], result)
        start = int(result.heat_times[0]) if len(result.heat_times) else int(result.as_of)
        layers = signal_pages.chart_layers(market=market, snapshot=snapshot, heat_start=start)
        if levels := levels_pages.chart_layers(market=market, snapshot=snapshot, result=result):
            layers["levels"] = levels
        layers.update(whales_charts.chart_layers(market=market, heat_start=start, colour=colour))
        return charts.chart_json(result, candles, side, title, events, layers)

    payload = charts.cached(f"charts:pair:{version}:{side}:{colour}", build)
    return chart_response(request, payload, version=version)


def chart_title(name: str, window: str, side: str, result) -> str:
    """The heatmap's title; a window longer than its data says since when the data runs."""
    title = f"{name} · {window} · {SIDES[side].lower()}"
    start = charts.window_start_ms(result)
    end = int(result.as_of) + result.step_ms
    if start > end - WINDOWS[window] + result.step_ms:
        title += f" · data since {ms_to_datetime(start):%b %-d}"
    return title


def market_candles(market: Market, result) -> charts.Candles:
    """The market's bars over the result's window as candles (one per step)."""
    if not len(result.heat_times):
        return charts.Candles.empty(result.step_ms)
    bars = market_bars_arrays(
        market_id=market.pk,
        start=ms_to_datetime(charts.window_start_ms(result)),
        end=ms_to_datetime(int(result.as_of) + result.step_ms),
    )
    return charts.Candles.from_bars(bars, result.step_ms)


# The coin page: every tracked market of one coin on one grid.


def coin_markets_or_404(*, base: str) -> list[Market]:
    markets = markets_for_listing(base=base)
    if not markets:
        raise Http404(f"No coin {base.upper()!r} is tracked here")
    return markets


def coin_snapshots(*, base: str, window: str) -> list[MapSnapshot]:
    return coin_snapshots_for_listing(window=window, base=base)


def coin_version(snapshots: list[MapSnapshot]) -> str:
    return "-".join(snapshot_version(s) for s in snapshots)


def reference_snapshot(snapshots: list[MapSnapshot]) -> MapSnapshot:
    """The market the aggregate is anchored on: the latest as_of, the first on ties (as in
    `engine.aggregate`)."""
    return max(enumerate(snapshots), key=lambda pair: (pair[1].as_of, -pair[0]))[1]


@dataclass(frozen=True)
class CoinBundle:
    last_close: float
    clusters: list
    proximity: dict
    summary: charts.Summary
    reference_market_id: int


def coin_bundle(snapshots: list[MapSnapshot]) -> CoinBundle | None:
    def build() -> CoinBundle | None:
        result = coin_result(snapshots=with_arrays(snapshots))
        if result is None:
            return None
        return CoinBundle(
            last_close=result.last_close,
            clusters=result.clusters,
            proximity=result.proximity,
            summary=charts.result_summary(
                result, events=real_events([s.market_id for s in snapshots], result)
            ),
            reference_market_id=reference_snapshot(snapshots).market_id,
        )

    return charts.cached(f"coin:{coin_version(snapshots)}", build)


def with_arrays(snapshots: list[MapSnapshot]) -> list[MapSnapshot]:
    """The same snapshots with their arrays loaded (one query)."""
    full = MapSnapshot.objects.select_related("market").in_bulk([s.pk for s in snapshots])
    return [full[s.pk] for s in snapshots]


def coin_view(
    request: HttpRequest, *, base: str, markets: list[Market], window: str, side: str
) -> PageView:
    coin = markets[0].base.upper()
    path = reverse("maps:coin", args=[base])
    query = urlencode({"window": window, "side": side})
    rows = listing_rows(window=window, base=base)
    context = {
        "coin": coin,
        "base": base,
        "window": window,
        "side": side,
        "rows": rows,
        "is_demo": any(m.is_demo for m in markets),
        "window_links": window_links(path, window, {"side": side}),
        "side_links": side_links(path, window, side),
        "canonical_url": request.build_absolute_uri(f"{path}?{query}"),
        "coin_signals": signal_pages.coin_signal_rows(markets=markets),
        "page_title": f"{coin} liquidation heatmap across exchanges ({window}) "
        f"— {settings.SITE_NAME}",
        "meta_description": (
            f"Estimated {coin} liquidation levels summed across {len(markets)} exchange "
            f"market{'s' if len(markets) != 1 else ''} over {window}: heatmap, map and clusters."
        ),
    }
    snapshots = [r.snapshot for r in rows if r.snapshot is not None]
    if not snapshots:
        return PageView(context)
    version = coin_version(snapshots)
    reference = reference_snapshot(snapshots)
    view = PageView(
        context,
        etag=page_etag(request, version, window, side),
        last_modified=max(s.computed_at for s in snapshots),
        freshness=snapshot_freshness(snapshot=reference, market=reference.market),
        cacheable=True,
    )
    view.not_modified = not_modified(request, view)
    if view.not_modified is not None:
        return view
    bundle = coin_bundle(snapshots)
    if bundle is None:
        return view
    context["coverage"] = snapshot_coverage(reference, reference.market.step_ms)
    charts_query = urlencode({"window": window, "side": side, "v": charts_version(version)})
    context.update(
        bundle=bundle,
        reference=reference,
        freshness=view.freshness,
        clusters=side_clusters(bundle.clusters, side),
        ladder=cluster_ladder(side_clusters(bundle.clusters, side), bundle.last_close),
        proximity=proximity_display(bundle.proximity),
        summary=bundle.summary,
        charts_url=f"{reverse('maps:coin_charts', args=[base])}?{charts_query}",
        proximity_url=f"{reverse('maps:coin_proximity', args=[base])}?"
        f"{view_query(window, side, v=version)}",
        refresh_seconds=refresh_seconds(),
        api_urls=coin_api_urls(base, window),
    )
    return view


def coin_proximity_context(
    request: HttpRequest, *, base: str, window: str, side: str, shown: str
) -> dict:
    """The coin's widget: the aggregate's proximity (the page's numbers), the reference market's
    age, and whether the markets have a newer map than the page's."""
    snapshots = coin_snapshots(base=base, window=window)
    bundle = coin_bundle(snapshots) if snapshots else None
    context: dict = {"window": window, "snapshot": None}
    if bundle is None:
        return context
    reference = reference_snapshot(snapshots)
    context["snapshot"] = reference
    context.update(
        widget_context(
            request,
            proximity=bundle.proximity,
            freshness=snapshot_freshness(snapshot=reference, market=reference.market),
            version=coin_version(snapshots),
            shown=shown,
            urls=(reverse("maps:coin_proximity", args=[base]), reverse("maps:coin", args=[base])),
            query=(window, side),
        )
    )
    return context


def coin_charts_response(
    request: HttpRequest, *, base: str, markets: list[Market], window: str, side: str
) -> HttpResponse:
    snapshots = coin_snapshots(base=base, window=window)
    if not snapshots:
        return empty_charts_response()
    version = coin_version(snapshots)
    coin = markets[0].base.upper()

    def build() -> bytes:
        full = with_arrays(snapshots)
        result = coin_result(snapshots=full)
        if result is None:
            return b""
        candles = market_candles(reference_snapshot(full).market, result)
        title = chart_title(f"{coin} · {len(full)} markets summed", window, side, result)
        events = real_events([s.market_id for s in full], result)
        return charts.chart_json(result, candles, side, title, events)

    payload = charts.cached(f"charts:coin:{version}:{side}", build)
    if not payload:
        return empty_charts_response()
    return chart_response(request, payload, version=version)


def doc_text(name: str) -> str:
    """One of the project's documents (docs/<name>), as Markdown."""
    try:
        return (DOCS / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"# Missing\n\ndocs/{name} is missing from this installation."
