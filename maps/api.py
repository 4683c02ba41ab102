"""The JSON and CSV API under /api/v1/ (see docs/api.md): the stored snapshots as they are.

Every document names its market, window and times; USD amounts are rounded to cents. Bodies are
built once per snapshot version, gzip-compressed and cached; clients get an ETag, Last-Modified
and a max-age that ends when the next snapshot is expected.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_safe

from maps import charts, pages
from maps.models import MapSnapshot, Market
from maps.pages import BadQuery
from maps.selectors import market_by_slugs, market_snapshot_light, snapshot_freshness

FORMATS = ["json", "csv"]
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
                "proximity": row.snapshot.proximity,
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
        ]
    ]
    for row in rows:
        m = row.market
        url = request.build_absolute_uri(m.get_absolute_url())
        line = [m.exchange.slug, m.symbol, m.slug, m.base, m.quote, int(m.is_demo), url]
        if row.snapshot is None:
            table.append(line + [""] * 8)
            continue
        below, above = row.below or {}, row.above or {}
        line += [iso(row.snapshot.as_of), row.snapshot.last_close]
        line += [below.get("price_high"), below.get("distance_pct"), usd(below.get("notional_usd"))]
        line += [above.get("price_low"), above.get("distance_pct"), usd(above.get("notional_usd"))]
        table.append(line)
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
    }


def market_args(market: Market) -> list[str]:
    return [market.exchange.slug, market.slug]


def snapshot_times(snapshot: MapSnapshot, market: Market) -> dict:
    freshness = snapshot_freshness(snapshot=snapshot, step_ms=market.step_ms)
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


def snapshot_view(kind: str) -> Callable[[HttpRequest, str, str], HttpResponse]:
    """The view for one kind of document about one market's snapshot."""

    @require_safe
    def view(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
        market = market_by_slugs(exchange=exchange.lower(), symbol=symbol.lower())
        if market is None:
            return error(404, f"no market {exchange}/{symbol} is tracked here")
        try:
            window, fmt = pages.query_window(request), query_format(request)
        except BadQuery as exc:
            return error(400, str(exc), allowed=exc.allowed)
        snapshot = market_snapshot_light(market=market, window=window)
        if snapshot is None:
            return error(404, f"no data yet for {market.symbol} over {window}", window=window)
        return snapshot_response(request, market, snapshot, kind, fmt)

    view.__name__ = f"{kind}_view"
    return view


def snapshot_response(
    request: HttpRequest, market: Market, snapshot: MapSnapshot, kind: str, fmt: str
) -> HttpResponse:
    version = pages.snapshot_version(snapshot)
    base_url = request.build_absolute_uri("/")

    def build() -> bytes:
        if fmt == "csv":
            body = csv_text(CSV_BUILDERS[kind](snapshot))
        else:
            document = {
                "market": market_json(request, market),
                "window": snapshot.window,
                **snapshot_times(snapshot, market),
                "engine_version": snapshot.engine_version,
                "last_close": snapshot.last_close,
                **JSON_BUILDERS[kind](snapshot),
            }
            body = json.dumps(document, separators=(",", ":"))
        return gzip.compress(body.encode(), compresslevel=6)

    payload = charts.cached(f"api:{version}:{kind}:{fmt}:{base_url}", build)
    content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    freshness = snapshot_freshness(snapshot=snapshot, step_ms=market.step_ms)
    response = pages.compressed_response(
        request,
        payload,
        content_type,
        {"public": True, "max_age": freshness.max_age},
        last_modified=snapshot.computed_at,
    )
    if fmt == "csv":
        name = f"{market.exchange.slug}-{market.slug}-{snapshot.window}-{kind}.csv"
        response.headers["Content-Disposition"] = f'inline; filename="{name}"'
    return response


def bins_json(snapshot: MapSnapshot) -> dict:
    return {"start": snapshot.bin_start, "width": snapshot.bin_width, "count": snapshot.bin_count}


def leverages(snapshot: MapSnapshot) -> list[float]:
    tiers = snapshot.params.get("tiers") or [{"leverage": lev} for lev, _ in snapshot.market.tiers]
    return [t["leverage"] for t in tiers]


def heatmap_json(snapshot: MapSnapshot) -> dict:
    arrays = snapshot.arrays
    return {
        "step_ms": snapshot.market.step_ms,
        "bins": bins_json(snapshot),
        "times": arrays["heat_times"].tolist(),
        "long": cents(arrays["heat_long"]),
        "short": cents(arrays["heat_short"]),
    }


def map_json(snapshot: MapSnapshot) -> dict:
    arrays = snapshot.arrays
    return {
        "bins": bins_json(snapshot),
        "leverages": leverages(snapshot),
        "long": cents(arrays["map_long"]),
        "short": cents(arrays["map_short"]),
        "long_total": cents(arrays["map_long"].sum(0)),
        "short_total": cents(arrays["map_short"].sum(0)),
        "cum_long": cents(arrays["cum_long"]),
        "cum_short": cents(arrays["cum_short"]),
    }


def clusters_json(snapshot: MapSnapshot) -> dict:
    return {"clusters": snapshot.clusters}


def proximity_json(snapshot: MapSnapshot) -> dict:
    return {"proximity": snapshot.proximity}


def heatmap_csv(snapshot: MapSnapshot) -> list[list]:
    """One row per non-empty cell: the column's time, the bin's price range, both sides."""
    arrays = snapshot.arrays
    long, short = arrays["heat_long"], arrays["heat_short"]
    edges = prices(snapshot.edges)
    times = arrays["heat_times"].tolist()
    stamps = [iso(datetime.fromtimestamp(ms / 1000, tz=UTC)) for ms in times]
    cols, cells = np.nonzero((long > 0) | (short > 0))
    long_usd = np.round(long[cols, cells].astype(np.float64), 2).tolist()
    short_usd = np.round(short[cols, cells].astype(np.float64), 2).tolist()
    table: list[list] = [["time", "time_ms", "price_low", "price_high", "long_usd", "short_usd"]]
    table += [
        [stamps[c], times[c], edges[b], edges[b + 1], lo, sh]
        for c, b, lo, sh in zip(cols.tolist(), cells.tolist(), long_usd, short_usd, strict=True)
    ]
    return table


def map_csv(snapshot: MapSnapshot) -> list[list]:
    arrays = snapshot.arrays
    names = [f"{lev:g}x" for lev in leverages(snapshot)]
    header = ["price_low", "price_high"]
    header += [f"long_{n}" for n in names] + [f"short_{n}" for n in names]
    header += ["long_total", "short_total", "cum_long", "cum_short"]
    edges = prices(snapshot.edges)
    columns = [edges[:-1], edges[1:]]
    columns += [cents(row) for row in arrays["map_long"]]
    columns += [cents(row) for row in arrays["map_short"]]
    columns += [cents(arrays["map_long"].sum(0)), cents(arrays["map_short"].sum(0))]
    columns += [cents(arrays["cum_long"]), cents(arrays["cum_short"])]
    return [header, *map(list, zip(*columns, strict=True))]


def clusters_csv(snapshot: MapSnapshot) -> list[list]:
    table: list[list] = [["rank", *CLUSTER_FIELDS]]
    for rank, cluster in enumerate(snapshot.clusters, start=1):
        table.append([rank, *(cluster.get(name) for name in CLUSTER_FIELDS)])
    return table


def proximity_csv(snapshot: MapSnapshot) -> list[list]:
    p = snapshot.proximity
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
