"""/api/v1/<exchange>/<symbol>/whales (see docs/api.md): the stored positioning of a market over a
window, its series per step and its anomaly feed, as JSON. A bad option is a 400 whose `field`
names it; the ETag follows the stored result."""

from __future__ import annotations

import numpy as np
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from maps import pages as map_pages
from maps.api import canonical_redirect, error, market_json
from maps.models import WINDOWS, Market, datetime_to_ms
from maps.pages import BadQuery
from maps.selectors import market_by_slugs, market_by_symbol
from maps.whales import pages, services
from maps.whales.stats import BASELINE_MS, METRICS, Z_THRESHOLD

SERIES_OUT = {
    "whale_long_pct": "whale_long_pct",
    "retail_long_pct": "retail_long_pct",
    "delta": "delta",
    "top_account_long_pct": "top_account_long_pct",
    "oi": "oi",
    "close": "close",
    "taker_ratio": "taker_ratio",
}


@require_safe
def whales(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
    market = market_by_slugs(exchange=exchange.lower(), symbol=symbol.lower())
    if market is None:
        if named := market_by_symbol(exchange=exchange.lower(), symbol=symbol):
            return canonical_redirect(request, "api:whales", [named.exchange.slug, named.slug])
        return error(404, f"no market {exchange}/{symbol} is tracked here")
    try:
        window = map_pages.query_window(request)
        map_pages.query_choice(request, "format", ["json"], "json")
    except BadQuery as exc:
        return error(400, str(exc), field=exc.name, allowed=exc.allowed)
    stored = services.market_positioning_current(market=market)
    if stored is None:
        return error(404, f"no data yet for {market.symbol}", window=window)
    etag = f'"whales-{stored.pk}-{stored.version}-{stored.computed_at.timestamp()}-{window}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponse(status=304, headers={"ETag": etag})
    response = JsonResponse(whales_json(request, market, stored, window))
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "max-age=30"
    return response


def whales_json(request: HttpRequest, market: Market, stored, window: str) -> dict:
    start = datetime_to_ms(stored.as_of) + market.step_ms - WINDOWS[window]
    arrays = stored.arrays
    keep = arrays["times"] >= start
    series = {"times": [pages.iso(int(t)) for t in arrays["times"][keep]]}
    for out, name in SERIES_OUT.items():
        series[out] = _floats(arrays[name][keep])
    return {
        "market": market_json(request, market),
        "window": window,
        "as_of": pages.iso(datetime_to_ms(stored.as_of)),
        "computed_at": stored.computed_at.isoformat().replace("+00:00", "Z"),
        "positioning": pages.positioning_out(stored.positioning),
        "latest_z": stored.latest_z,
        "method": {
            "z": "robust: (x - median) / (1.4826 MAD) of the trailing window before each hour",
            "baseline_hours": BASELINE_MS // 3_600_000,
            "threshold": Z_THRESHOLD,
            "metrics": METRICS,
        },
        "series": series,
        "anomalies": [
            {**a, "time": pages.iso(a["time"])} for a in stored.anomalies if a["time"] >= start
        ],
    }


def _floats(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in values.tolist()]


@require_safe
def screener(request: HttpRequest) -> HttpResponse:
    """The screener's rows (the home page's table) with the same options: window, sort, colour,
    magnet, min_whale, max_whale, min_delta, min_oi_z, q."""
    try:
        window = map_pages.query_window(request)
        map_pages.query_choice(request, "format", ["json"], "json")
        query = pages.screener_query(request)
    except BadQuery as exc:
        return error(400, str(exc), field=exc.name, allowed=exc.allowed)
    rows = map_pages.screener_rows(map_pages.listing_rows(window=window), query)
    response = JsonResponse(
        {
            "window": window,
            "sort": query.params().get("sort"),
            "colour": query.colour,
            "rows": [screener_row_json(request, r) for r in rows],
        }
    )
    response.headers["Cache-Control"] = "max-age=15"
    return response


def screener_row_json(request: HttpRequest, row) -> dict:
    v = row.screen.values
    cascade = None
    if v.get("cascade") is not None:
        cascade = {
            "start": pages.iso(v["cascade"]),
            "side": v["cascade_side"],
            "notional_usd": v["cascade_usd"],
        }
    return {
        "exchange": row.market.exchange.slug,
        "symbol": row.market.symbol,
        "url": request.build_absolute_uri(row.market.get_absolute_url()),
        "grade": row.market.grade or None,
        "demo": row.market.is_demo,
        "price": v.get("price"),
        "change_24h_pct": v.get("change"),
        "long_cluster_distance_pct": v.get("long_distance"),
        "long_cluster_usd": v.get("long_usd"),
        "short_cluster_distance_pct": v.get("short_distance"),
        "short_cluster_usd": v.get("short_usd"),
        "magnet": v.get("magnet"),
        "whale_long_pct": v.get("whale_long"),
        "delta": v.get("delta"),
        "oi_change_z": v.get("oi_z"),
        "funding_rate": v.get("funding"),
        "last_cascade": cascade,
        "tones": row.screen.tones,
    }
