"""The JSON and CSV API under /api/v1/ (see docs/api.md): the stored snapshots as they are, and
each coin's markets summed on one grid (the coin page's numbers).

Every document names its market (or coin), window and times; USD amounts are rounded to cents.
Bodies are built once per snapshot version, gzip-compressed and cached; clients get an ETag,
Last-Modified and a max-age that ends when the next snapshot is expected.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

import numpy as np
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import Resolver404, resolve, reverse
from django.views.decorators.http import require_safe

from maps import charts, pages
from maps.engine.serialize import params_to_json
from maps.engine.types import Result
from maps.levels import pages as levels_pages
from maps.models import MapSnapshot, Market
from maps.pages import BadQuery
from maps.selectors import (
    Freshness,
    market_by_slugs,
    market_by_symbol,
    markets_for_listing,
    snapshot_freshness,
)
from maps.services import coin_result

FORMATS = ["json", "csv"]
BODY_VERSION = 2  # names the shape of the cached bodies; bump it when a document changes
KINDS = ("heatmap", "map", "clusters", "proximity")
CLUSTER_FIELDS = (
    "side",
    "price_low",
    "price_high",
    "peak_price",
    "notional_usd",
    "share",
    "distance_pct",
)


def error(status: int, message: str, **extra: object) -> JsonResponse:
    response = JsonResponse({"error": message, **extra}, status=status)
    response.headers["Cache-Control"] = "no-cache"
    return response


def canonical_redirect(request: HttpRequest, name: str, args: list[str]) -> HttpResponseRedirect:
    """A permanent redirect to the document's canonical URL, keeping the query string."""
    url = reverse(name, args=args)
    if query := request.META.get("QUERY_STRING"):
        url = f"{url}?{query}"
    return HttpResponseRedirect(url, status=301)


def query_format(request: HttpRequest) -> str:
    return pages.query_choice(request, "format", FORMATS, "json")


@require_safe
def markets(request: HttpRequest) -> HttpResponse:
    try:
        window, fmt = pages.query_window(request), query_format(request)
    except BadQuery as exc:
        return error(400, str(exc), allowed=exc.allowed)
    rows = pages.listing_rows(window=window)
    if fmt == "csv":
        response = csv_response(markets_csv(request, rows), f"markets-{window}.csv")
    else:
        response = JsonResponse({"window": window, "markets": markets_json(request, rows)})
    response.headers["Cache-Control"] = "public, max-age=15"
    return response


def markets_json(request: HttpRequest, rows: list[pages.ListingRow]) -> list[dict]:
    out = []
    for row in rows:
        item = market_json(request, row.market)
        item["api"] = {
            kind: request.build_absolute_uri(reverse(f"api:{kind}", args=market_args(row.market)))
            for kind in KINDS
        }
        item["snapshot"] = None
        if row.snapshot is not None:
            item["snapshot"] = {
                **snapshot_times(row.snapshot, row.market),
                "stale": row.freshness.stale,
                "last_close": row.snapshot.last_close,
                "proximity": proximity_out(row.snapshot.proximity),
            }
        out.append(item)
    return out


def markets_csv(request: HttpRequest, rows: list[pages.ListingRow]) -> list[list]:
    table: list[list] = [
        [
            "exchange",
            "symbol",
            "slug",
            "base",
            "quote",
            "is_demo",
            "url",
            "as_of",
            "last_close",
            "long_price_high",
            "long_distance_pct",
            "long_notional_usd",
            "short_price_low",
            "short_distance_pct",
            "short_notional_usd",
            "grade",
            "grade_reasons",
        ]
    ]
    for row in rows:
        m = row.market
        url = request.build_absolute_uri(m.get_absolute_url())
        line = [m.exchange.slug, m.symbol, m.slug, m.base, m.quote, int(m.is_demo), url]
        grade = [m.grade, grade_text(m)]
        if row.snapshot is None:
            table.append(line + [""] * 8 + grade)
            continue
        below, above = cluster_out(row.below) or {}, cluster_out(row.above) or {}
        line += [iso(row.snapshot.as_of), row.snapshot.last_close]
        line += [below.get("price_high"), below.get("distance_pct"), below.get("notional_usd")]
        line += [above.get("price_low"), above.get("distance_pct"), above.get("notional_usd")]
        table.append(line + grade)
    return table


def market_json(request: HttpRequest, market: Market) -> dict:
    return {
        "exchange": market.exchange.slug,
        "exchange_name": market.exchange.name,
        "symbol": market.symbol,
        "slug": market.slug,
        "base": market.base,
        "quote": market.quote,
        "is_demo": market.is_demo,
        "step_ms": market.step_ms,
        "url": request.build_absolute_uri(market.get_absolute_url()),
        "grade": grade_out(market),
    }


def grade_out(market: Market) -> dict | None:
    """The market's reliability grade and every criterion's reason (docs/model.md), or None
    before its first computation."""
    if not market.grade:
        return None
    return {
        "grade": market.grade,
        "reasons": [
            {"criterion": r.get("criterion"), "grade": r.get("grade"), "text": r.get("text")}
            for r in market.grade_reasons
        ],
        "graded_at": iso(market.graded_at) if market.graded_at else None,
    }


def grade_text(market: Market) -> str:
    """The reasons in one CSV cell: 'D: Open interest $3M: ...; A: ...'."""
    return "; ".join(f"{r.get('grade') or '-'}: {r.get('text')}" for r in market.grade_reasons)


def market_args(market: Market) -> list[str]:
    return [market.exchange.slug, market.slug]


def snapshot_times(snapshot: MapSnapshot, market: Market) -> dict:
    freshness = snapshot_freshness(snapshot=snapshot, market=market)
    return {
        "as_of": iso(snapshot.as_of),
        "data_until": iso(freshness.data_until),
        "computed_at": iso(snapshot.computed_at),
    }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def usd(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def cents(values: np.ndarray) -> list:
    return np.round(np.asarray(values, dtype=np.float64), 2).tolist()


def prices(values: np.ndarray) -> list:
    """Bin edges as written: 10 significant digits, without float noise (56161.82, not
    56161.82000000001)."""
    return [float(f"{v:.10g}") for v in np.asarray(values, dtype=np.float64).tolist()]


def price_value(value: float | None) -> float | None:
    return None if value is None else float(f"{float(value):.10g}")


def ratio(value: float | None) -> float | None:
    """A share or a percentage without float noise (8.9, not 8.900000000000002)."""
    return None if value is None else round(float(value), 4)


ROUNDING: dict[str, Callable[[float | None], float | None]] = {
    "price_low": price_value,
    "price_high": price_value,
    "peak_price": price_value,
    "notional_usd": usd,
    "share": ratio,
    "distance_pct": ratio,
}


def cluster_out(cluster: dict | None) -> dict | None:
    """A cluster as documented: prices as written, USD in cents, share and distance to 4 places."""
    if cluster is None:
        return None
    return {
        key: ROUNDING[key](value) if key in ROUNDING else value for key, value in cluster.items()
    }


def proximity_out(proximity: dict) -> dict:
    return {
        **proximity,
        "last_close": price_value(proximity.get("last_close")),
        "long": cluster_out(proximity.get("long")),
        "short": cluster_out(proximity.get("short")),
    }


@dataclass
class Source:
    """What a document is built from: one market's snapshot, or a coin's markets summed. The
    arrays (with the bin `edges`) load on first use, so clusters and proximity never read them."""

    load: Callable[[], dict[str, np.ndarray]]
    bins: dict
    leverages: list[float]
    step_ms: int
    clusters: list[dict]
    proximity: dict

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        return self.load()


def snapshot_source(snapshot: MapSnapshot) -> Source:
    clusters, proximity = levels_pages.snapshot_confluence(snapshot)  # with their confluence
    return Source(
        load=lambda: {**snapshot.arrays, "edges": snapshot.edges},
        bins={
            "start": snapshot.bin_start,
            "width": snapshot.bin_width,
            "count": snapshot.bin_count,
        },
        leverages=leverages(snapshot),
        step_ms=snapshot.market.step_ms,
        clusters=[cluster_out(c) for c in clusters],
        proximity=proximity_out(proximity),
    )


def result_source(result: Result) -> Source:
    """A coin's aggregate; its bins are the common grid of docs/model.md's aggregation."""
    names = ("heat_times", "heat_long", "heat_short", "map_long", "map_short")
    arrays = {name: getattr(result, name) for name in (*names, "cum_long", "cum_short", "edges")}
    edges = result.edges
    return Source(
        load=lambda: arrays,
        bins={
            "start": price_value(edges[0]),
            "width": price_value(edges[1] - edges[0]),
            "count": len(edges) - 1,
        },
        leverages=[t["leverage"] for t in params_to_json(result.params)["tiers"]],
        step_ms=result.step_ms,
        clusters=[cluster_out(c) for c in result.clusters],
        proximity=proximity_out(result.proximity),
    )


@dataclass(frozen=True)
class Document:
    """One answer: its header fields, how to build its source, and its cache identity."""

    header: dict
    source: Callable[[], Source | None]
    version: str
    freshness: Freshness
    computed_at: datetime
    filename: str


def snapshot_view(kind: str) -> Callable[[HttpRequest, str, str], HttpResponse]:
    """The view for one kind of document about one market's snapshot."""

    @require_safe
    def view(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
        market = market_by_slugs(exchange=exchange.lower(), symbol=symbol.lower())
        if market is None:
            if named := market_by_symbol(exchange=exchange.lower(), symbol=symbol):
                return canonical_redirect(request, f"api:{kind}", market_args(named))
            return error(404, f"no market {exchange}/{symbol} is tracked here")
        try:
            window, fmt = pages.query_window(request), query_format(request)
            snapshot = pages.pair_snapshot(market=market, window=window, at=pages.query_at(request))
        except BadQuery as exc:
            return error(400, str(exc), allowed=exc.allowed)
        if snapshot is None:
            return error(404, f"no data yet for {market.symbol} over {window}", window=window)
        return document_response(request, market_document(request, market, snapshot), kind, fmt)

    view.__name__ = f"{kind}_view"
    return view


def market_document(request: HttpRequest, market: Market, snapshot: MapSnapshot) -> Document:
    return Document(
        header={
            "market": market_json(request, market),
            "window": snapshot.window,
            **pages.replay_header(snapshot),
            **snapshot_times(snapshot, market),
            "engine_version": snapshot.engine_version,
            "last_close": snapshot.last_close,
        },
        source=lambda: snapshot_source(snapshot),
        version=f"market:{pages.snapshot_version(snapshot)}",
        freshness=snapshot_freshness(snapshot=snapshot, market=market),
        computed_at=snapshot.computed_at,
        filename=f"{market.exchange.slug}-{market.slug}-{snapshot.window}",
    )


def coin_view(kind: str) -> Callable[[HttpRequest, str], HttpResponse]:
    """The view for one kind of document about a coin: its tracked markets summed on one grid."""

    @require_safe
    def view(request: HttpRequest, base: str) -> HttpResponse:
        markets = markets_for_listing(base=base)
        if not markets:
            return error(404, f"no coin {base.upper()} is tracked here")
        try:
            window, fmt = pages.query_window(request), query_format(request)
        except BadQuery as exc:
            return error(400, str(exc), allowed=exc.allowed)
        snapshots = pages.coin_snapshots(base=base, window=window)
        if not snapshots:
            coin = markets[0].base.upper()
            return error(404, f"no data yet for {coin} over {window}", window=window)
        document = coin_document(request, markets, snapshots)
        return document_response(request, document, kind, fmt)

    view.__name__ = f"coin_{kind}_view"
    return view


def coin_document(
    request: HttpRequest, markets: list[Market], snapshots: list[MapSnapshot]
) -> Document:
    """The coin's header: its markets (those with a snapshot for the window are summed) and the
    reference market whose last close and steps anchor the grid, as on the coin page."""
    reference = pages.reference_snapshot(snapshots)
    coin = markets[0].base.upper()
    summed = {s.market_id for s in snapshots}
    items = [{**market_json(request, m), "summed": m.pk in summed} for m in markets]
    window = reference.window
    url = request.build_absolute_uri(reverse("maps:coin", args=[coin.lower()]))

    def source() -> Source | None:
        result = coin_result(snapshots=pages.with_arrays(snapshots))
        return None if result is None else result_source(result)

    return Document(
        header={
            "coin": {"base": coin, "is_demo": any(m.is_demo for m in markets), "url": url},
            "markets": items,
            "reference": f"{reference.market.exchange.slug}/{reference.market.slug}",
            "window": window,
            **snapshot_times(reference, reference.market),
            "computed_at": iso(max(s.computed_at for s in snapshots)),
            "engine_version": reference.engine_version,
            "last_close": reference.last_close,
        },
        source=source,
        version=f"coin:{pages.coin_version(snapshots)}",
        freshness=snapshot_freshness(snapshot=reference, market=reference.market),
        computed_at=max(s.computed_at for s in snapshots),
        filename=f"coin-{coin.lower()}-{window}",
    )


def document_response(
    request: HttpRequest, document: Document, kind: str, fmt: str
) -> HttpResponse:
    base_url = request.build_absolute_uri("/")

    def build() -> bytes:
        source = document.source()
        if source is None:
            return b""
        if fmt == "csv":
            body = csv_text(CSV_BUILDERS[kind](source))
        else:
            body = json.dumps(
                {**document.header, **JSON_BUILDERS[kind](source)}, separators=(",", ":")
            )
        return gzip.compress(body.encode(), compresslevel=6)

    key = f"api:v{BODY_VERSION}:{document.version}:{kind}:{fmt}:{base_url}"
    payload = charts.cached(key, build)
    if not payload:
        window = document.header["window"]
        return error(404, f"the markets cannot be summed on one grid over {window}", window=window)
    content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    response = pages.compressed_response(
        request,
        payload,
        content_type,
        {"public": True, "max_age": document.freshness.max_age},
        last_modified=document.computed_at,
    )
    if fmt == "csv":
        response.headers["Content-Disposition"] = (
            f'inline; filename="{document.filename}-{kind}.csv"'
        )
    return response


def leverages(snapshot: MapSnapshot) -> list[float]:
    tiers = snapshot.params.get("tiers") or [{"leverage": lev} for lev, _ in snapshot.market.tiers]
    return [t["leverage"] for t in tiers]


def heatmap_json(source: Source) -> dict:
    arrays = source.arrays
    return {
        "step_ms": source.step_ms,
        "bins": source.bins,
        "times": np.asarray(arrays["heat_times"]).tolist(),
        "long": cents(arrays["heat_long"]),
        "short": cents(arrays["heat_short"]),
    }


def map_json(source: Source) -> dict:
    arrays = source.arrays
    return {
        "bins": source.bins,
        "leverages": source.leverages,
        "long": cents(arrays["map_long"]),
        "short": cents(arrays["map_short"]),
        "long_total": cents(arrays["map_long"].sum(0)),
        "short_total": cents(arrays["map_short"].sum(0)),
        "cum_long": cents(arrays["cum_long"]),
        "cum_short": cents(arrays["cum_short"]),
    }


def clusters_json(source: Source) -> dict:
    return {"clusters": source.clusters}


def proximity_json(source: Source) -> dict:
    return {"proximity": source.proximity}


def heatmap_csv(source: Source) -> list[list]:
    """One row per cell with at least a cent on a side: the column's time, the bin's price range,
    both sides."""
    arrays = source.arrays
    long, short = arrays["heat_long"], arrays["heat_short"]
    edges = prices(arrays["edges"])
    times = np.asarray(arrays["heat_times"]).tolist()
    stamps = [iso(datetime.fromtimestamp(ms / 1000, tz=UTC)) for ms in times]
    long_cents = np.round(np.asarray(long, dtype=np.float64), 2)
    short_cents = np.round(np.asarray(short, dtype=np.float64), 2)
    cols, cells = np.nonzero((long_cents > 0) | (short_cents > 0))
    long_usd = long_cents[cols, cells].tolist()
    short_usd = short_cents[cols, cells].tolist()
    table: list[list] = [["time", "time_ms", "price_low", "price_high", "long_usd", "short_usd"]]
    table += [
        [stamps[c], times[c], edges[b], edges[b + 1], lo, sh]
        for c, b, lo, sh in zip(cols.tolist(), cells.tolist(), long_usd, short_usd, strict=True)
    ]
    return table


def map_csv(source: Source) -> list[list]:
    arrays = source.arrays
    names = [f"{lev:g}x" for lev in source.leverages]
    header = ["price_low", "price_high"]
    header += [f"long_{n}" for n in names] + [f"short_{n}" for n in names]
    header += ["long_total", "short_total", "cum_long", "cum_short"]
    edges = prices(arrays["edges"])
    columns = [edges[:-1], edges[1:]]
    columns += [cents(row) for row in arrays["map_long"]]
    columns += [cents(row) for row in arrays["map_short"]]
    columns += [cents(arrays["map_long"].sum(0)), cents(arrays["map_short"].sum(0))]
    columns += [cents(arrays["cum_long"]), cents(arrays["cum_short"])]
    return [header, *map(list, zip(*columns, strict=True))]


def clusters_csv(source: Source) -> list[list]:
    table: list[list] = [["rank", *CLUSTER_FIELDS]]
    for rank, cluster in enumerate(source.clusters, start=1):
        table.append([rank, *(cluster.get(name) for name in CLUSTER_FIELDS)])
    return table


def proximity_csv(source: Source) -> list[list]:
    p = source.proximity
    fields = CLUSTER_FIELDS[1:]
    summary = [p.get("last_close"), p.get("nearer"), p.get("larger"), p.get("magnet")]
    table: list[list] = [["side", *fields, "last_close", "nearer", "larger", "magnet", "direction"]]
    for side in ("long", "short"):
        cluster = p.get(side) or {}
        table.append([side, *(cluster.get(f) for f in fields), *summary, p.get("direction")])
    return table


JSON_BUILDERS = {
    "heatmap": heatmap_json,
    "map": map_json,
    "clusters": clusters_json,
    "proximity": proximity_json,
}
CSV_BUILDERS = {
    "heatmap": heatmap_csv,
    "map": map_csv,
    "clusters": clusters_csv,
    "proximity": proximity_csv,
}


def csv_text(table: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([["" if v is None else v for v in row] for row in table])
    return buffer.getvalue()


def csv_response(table: list[list], filename: str) -> HttpResponse:
    response = HttpResponse(csv_text(table), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


heatmap = snapshot_view("heatmap")
map_view = snapshot_view("map")
clusters = snapshot_view("clusters")
proximity = snapshot_view("proximity")
coin_heatmap = coin_view("heatmap")
coin_map = coin_view("map")
coin_clusters = coin_view("clusters")
coin_proximity = coin_view("proximity")


# The index and every other URL under /api/v1/


@require_safe
def index(request: HttpRequest) -> JsonResponse:
    """What /api/v1/ serves: every document's URL pattern, the options, and the documentation."""
    root = request.build_absolute_uri(reverse("api:index"))
    market = {kind: f"{root}{{exchange}}/{{symbol}}/{kind}" for kind in KINDS}
    coin = {kind: f"{root}coin/{{base}}/{kind}" for kind in KINDS}
    response = JsonResponse(
        {
            "documentation": request.build_absolute_uri(reverse("maps:api_docs")),
            "markets": request.build_absolute_uri(reverse("api:markets")),
            "screener": request.build_absolute_uri(reverse("api:screener")),
            "whales": f"{root}{{exchange}}/{{symbol}}/whales",
            "market": market,
            "coin": coin,
            "options": {"window": settings.LIQSITE_WINDOWS, "format": FORMATS},
            "slugs": "{exchange} and {symbol} as in the pair page's URL (/binance/btcusdt/) or "
            "the exchange's own symbol (/okx/SOL-USDT-SWAP/), {base} as in /coin/btc/; any case",
        }
    )
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any URL under /api/v1/ that is no document: a JSON 404, whatever DEBUG says. A URL that
    lacks only its final slash is sent to it, as everywhere on the site."""
    if not request.path.endswith("/"):
        try:
            match = resolve(f"{request.path}/")
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            url = f"{request.path}/"
            if query := request.META.get("QUERY_STRING"):
                url = f"{url}?{query}"
            return HttpResponseRedirect(url, status=301)
    index_url = reverse("api:index")
    return error(404, f"no API document at {request.path}: {index_url} lists them", index=index_url)
