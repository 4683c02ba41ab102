"""/api/v1/<exchange>/<symbol>/levels and /orderbook (see docs/api.md): the stored levels of a
snapshot and the market's stored order books as JSON. A bad option is a 400 whose `field` names
it; bodies are cached (levels per snapshot version, books per last stored book)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import numpy as np
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from maps import charts
from maps import pages as map_pages
from maps.analytics import orderbook as ob
from maps.api import (
    canonical_redirect,
    cents,
    error,
    market_json,
    price_value,
    ratio,
    snapshot_times,
)
from maps.levels import pages, services
from maps.levels.selectors import book_history, common_edges
from maps.models import WINDOWS, Market, OrderBookSnapshot
from maps.pages import BadQuery
from maps.selectors import (
    market_by_slugs,
    market_by_symbol,
    market_snapshot_light,
    snapshot_freshness,
)

BODY_VERSION = 1
COLUMNS_DEFAULT, COLUMNS_RANGE = 300, (10, 1440)
MAX_BINS = 400
BOOK_MAX_AGE = 30


class BadOption(ValueError):
    def __init__(self, message: str, field: str, **extra: object) -> None:
        super().__init__(message)
        self.field = field
        self.extra = extra


def options(request: HttpRequest, *, columns: bool = False) -> tuple[str, int]:
    """(window, columns) from the query, or BadOption naming the option."""
    try:
        window = map_pages.query_window(request)
        map_pages.query_choice(request, "format", ["json"], "json")
    except BadQuery as exc:
        raise BadOption(str(exc), exc.name, allowed=exc.allowed) from None
    count = COLUMNS_DEFAULT
    raw = request.GET.get("columns", "").strip()
    if columns and raw:
        low, high = COLUMNS_RANGE
        if not raw.isdigit() or not low <= int(raw) <= high:
            message = f"columns={raw!r} is not allowed: use a whole number from {low} to {high}"
            raise BadOption(message, "columns")
        count = int(raw)
    return window, count


def market_view(kind: str):
    """The view of one document about one market: the market by slug (the exchange's own symbol
    answers a 301 to it), the options checked, then the document."""

    @require_safe
    def view(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
        market = market_by_slugs(exchange=exchange.lower(), symbol=symbol.lower())
        if market is None:
            if named := market_by_symbol(exchange=exchange.lower(), symbol=symbol):
                return canonical_redirect(request, f"api:{kind}", [named.exchange.slug, named.slug])
            return error(404, f"no market {exchange}/{symbol} is tracked here")
        try:
            window, columns = options(request, columns=kind == "orderbook")
        except BadOption as exc:
            return error(400, str(exc), field=exc.field, **exc.extra)
        if kind == "levels":
            return levels_response(request, market, window)
        return orderbook_response(request, market, window, columns)

    view.__name__ = f"{kind}_view"
    return view


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def gzip_json(document: dict) -> bytes:
    return gzip.compress(json.dumps(document, separators=(",", ":")).encode(), compresslevel=6)


# levels


def levels_response(request: HttpRequest, market: Market, window: str) -> HttpResponse:
    snapshot = market_snapshot_light(market=market, window=window)
    if snapshot is None:
        return error(404, f"no data yet for {market.symbol} over {window}", window=window)
    version = map_pages.snapshot_version(snapshot)

    def build() -> bytes:
        levels = pages.levels_or_none(snapshot)
        if levels is None:
            return b""
        header = {
            "market": market_json(request, market),
            "window": window,
            **snapshot_times(snapshot, market),
            "last_close": snapshot.last_close,
        }
        return gzip_json({**header, **levels_json(levels)})

    key = f"api:levels:v{BODY_VERSION}:{version}:{request.build_absolute_uri('/')}"
    payload = charts.cached(key, build)
    if not payload:
        return error(404, f"the levels of {market.symbol} over {window} are not available")
    freshness = snapshot_freshness(snapshot=snapshot, market=market)
    return map_pages.compressed_response(
        request,
        payload,
        "application/json",
        {"public": True, "max_age": freshness.max_age},
        last_modified=snapshot.computed_at,
    )


def levels_json(levels) -> dict:
    profile = levels.volume_profile or {}
    area = profile.get("value_area") or {}
    return {
        "atr": {"1h": price_value(levels.atr_1h), "4h": price_value(levels.atr_4h)},
        "support_resistance": [
            {
                "price": price_value(lv["price"]),
                "kind": lv["kind"],
                "touches": lv["touches"],
                "last_touch": iso(lv["last_touch"]),
                "first_touch": iso(lv["first_touch"]),
                "band": [price_value(lv["band_low"]), price_value(lv["band_high"])],
                "timeframes": lv["timeframes"],
            }
            for lv in levels.support_resistance
        ],
        "volume_profile": {
            "edges": [price_value(e) for e in profile.get("edges", [])],
            "volume": cents(profile.get("volume", [])),
            "poc": price_value(profile.get("poc")),
            "value_area": {
                "low": price_value(area.get("low")),
                "high": price_value(area.get("high")),
                "share": ratio(area.get("share")),
            },
            "nodes": [node_json(n) for n in profile.get("nodes", [])],
        },
        "rsi": {tf: rsi_json(series) for tf, series in (levels.rsi or {}).items()},
        "divergences": [
            {
                "timeframe": d["timeframe"],
                "kind": d["kind"],
                "start": iso(d["start"]),
                "end": iso(d["end"]),
                "price_start": price_value(d["price_start"]),
                "price_end": price_value(d["price_end"]),
                "rsi_start": ratio(d["rsi_start"]),
                "rsi_end": ratio(d["rsi_end"]),
            }
            for d in levels.divergences
        ],
        "walls": [wall_json(w) for w in levels.walls],
    }


def rsi_json(series: dict) -> dict:
    return {
        "times": series.get("times", []),
        "values": series.get("values", []),
        "last": ratio(series.get("last")),
    }


def node_json(node: dict) -> dict:
    volume = round(float(node["volume"]), 2)
    return {"kind": node["kind"], "price": price_value(node["price"]), "volume": volume}


def wall_json(wall: dict) -> dict:
    return {
        "side": wall["side"],
        "price": price_value(wall["price"]),
        "price_low": price_value(wall["price_low"]),
        "price_high": price_value(wall["price_high"]),
        "usd": round(float(wall["usd"]), 2),
        "peak_usd": round(float(wall["peak_usd"]), 2),
        "multiple": ratio(wall["multiple"]),
        "appeared": iso(wall["appeared"]),
        "last_seen": iso(wall["last_seen"]),
        "stood_ms": int(wall["stood_ms"]),
        "standing": bool(wall["standing"]),
    }


# orderbook


def orderbook_response(
    request: HttpRequest, market: Market, window: str, columns: int
) -> HttpResponse:
    last = (
        OrderBookSnapshot.objects.filter(market=market)
        .order_by("-time")
        .values_list("time", flat=True)
        .first()
    )
    if last is None:
        return error(404, f"no order book is recorded for {market.symbol}", window=window)
    end = int(last.timestamp() * 1000) + ob.MINUTE_MS
    start = end - WINDOWS[window]

    def build() -> bytes:
        document = orderbook_json(market, start=start, end=end, columns=columns)
        header = {"market": market_json(request, market), "window": window}
        return gzip_json({**header, **document})

    base = request.build_absolute_uri("/")
    key = f"api:orderbook:v{BODY_VERSION}:{market.pk}:{end}:{window}:{columns}:{base}"
    payload = charts.cached(key, build)
    cache_control = {"public": True, "max_age": BOOK_MAX_AGE}
    return map_pages.compressed_response(
        request, payload, "application/json", cache_control, last_modified=last
    )


def orderbook_json(market: Market, *, start: int, end: int, columns: int) -> dict:
    """The depth heatmap over [start, end) in at most `columns` columns (each the latest book
    at or before it), every book redrawn on the latest one's grid; the walls standing in the last
    book (followed over the day before it) and the walls seen in the columns."""
    depth = pages.depth_columns(market=market, start=start, end=end, limit=columns)
    retention = settings.LIQSITE_ORDERBOOK_DAYS
    body: dict = {"from": iso(start), "until": iso(end), "retention_days": retention}
    if depth is None:
        empty = {"times": [], "bids": [], "asks": [], "mid": [], "walls": [], "wall_history": []}
        return {**body, "step_ms": None, "bins": None, **empty}
    edges = common_edges(depth.rows, max_bins=MAX_BINS)
    shown = depth.pick >= 0
    bids = np.full((len(depth.times), len(edges) - 1), np.nan)
    asks = np.full_like(bids, np.nan)
    mids = np.full(len(depth.times), np.nan)
    if shown.any():
        history = book_history(depth.rows, edges)
        bids[shown], asks[shown] = history.bids[depth.pick[shown]], history.asks[depth.pick[shown]]
        mids[shown] = depth.rows.mids[depth.pick[shown]]
    walls = services.standing_walls(market_id=market.pk, end=end)
    return {
        **body,
        "step_ms": int(depth.spacing),
        "bins": {
            "start": price_value(edges[0]),
            "width": price_value(edges[1] - edges[0]),
            "count": len(edges) - 1,
        },
        "times": (depth.times - ob.MINUTE_MS).tolist(),
        "bids": [None if not s else cents(row) for s, row in zip(shown, bids, strict=True)],
        "asks": [None if not s else cents(row) for s, row in zip(shown, asks, strict=True)],
        "mid": [None if not s else price_value(m) for s, m in zip(shown, mids, strict=True)],
        "walls": [wall_json(w) for w in walls],
        "wall_history": [wall_json(w) for w in pages.chart_walls(depth)],
    }


levels = market_view("levels")
orderbook = market_view("orderbook")
