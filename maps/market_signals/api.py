"""The signal documents of the API (docs/api.md): /api/v1/<exchange>/<symbol>/cascades, sweeps,
signals and backtest, with the conventions of the map documents (window=, at=, format=, times in
ms, USD in cents, ETag and gzip).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from maps import api, pages
from maps.engine.types import EngineError
from maps.market_signals import services
from maps.market_signals.pages import snapshot_signals
from maps.market_signals.replay import ReplayError, at_text, replay_as_of
from maps.market_signals.selectors import market_latest_snapshot
from maps.models import MapSnapshot, Market, ms_to_datetime
from maps.pages import BadQuery
from maps.selectors import market_by_slugs, snapshot_freshness

BACKTEST_CACHE_SECONDS = 3600
CASCADE_CSV = (
    "start",
    "end",
    "side",
    "notional_usd",
    "source",
    "price_start",
    "price_extreme",
    "move_pct",
    "oi_change_pct",
    "cluster_price_low",
    "cluster_price_high",
    "cluster_notional_usd",
    "cluster_through",
    "detected",
    "reversal_confirmed_at",
)
SWEEP_CSV = (
    "time",
    "side",
    "cluster_price_low",
    "cluster_price_high",
    "cluster_notional_usd",
    "wick_price",
    "depth_pct",
    "fake",
    "back_at",
    "return_1h_pct",
    "return_4h_pct",
)
BACKTEST_CSV = (
    "question",
    "horizon",
    "cases",
    "enough",
    "hit_rate",
    "chance_rate",
    "edge",
    "edge_low",
    "edge_high",
    "mean_return_pct",
    "unconditional_pct",
)


def _pct(value: float | None) -> float | None:
    return api.ratio(value)


CLUSTER_KEYS = ("price_low", "price_high", "peak_price", "notional_usd", "share", "through")


def cluster_out(cluster: dict | None) -> dict | None:
    """A cluster as documented (stored JSON does not keep key order): prices as written, USD in
    cents, share to 4 places."""
    if cluster is None:
        return None
    out = api.cluster_out({k: cluster[k] for k in CLUSTER_KEYS if k in cluster})
    if "through" in out:
        out["through"] = bool(out["through"])
    return out


def cascade_out(c: dict) -> dict:
    """A cascade as documented: the issue's fields first, then the details."""
    return {
        "start": c["start"],
        "end": c["end"],
        "side": c["side"],
        "notional_usd": api.usd(c["notional_usd"]),
        "source": c["source"],
        "price_start": api.price_value(c["price_start"]),
        "price_extreme": api.price_value(c["price_extreme"]),
        "oi_change_pct": _pct(c["oi_change_pct"]),
        "cluster": cluster_out(c["cluster"]),
        "detected": c["detected"],
        "steps": c["steps"],
        "peak_usd": api.usd(c["peak_usd"]),
        "peak_time": c["peak_time"],
        "extreme_time": c["extreme_time"],
        "move_pct": _pct(c["move_pct"]),
        "score": round(c["score"], 2),
        "move_score": round(c["move_score"], 2),
        "oi_score": round(c.get("oi_score", 0.0), 2),
        "reversal_confirmed_at": c["reversal_confirmed_at"],
        "reversal_watching": c["reversal_watching"],
        "reversal": checklist_out(c["reversal"]),
    }


def sweep_out(s: dict) -> dict:
    return {
        "time": s["time"],
        "side": s["side"],
        "cluster": cluster_out(s["cluster"]),
        "map_time": s["map_time"],
        "wick_price": api.price_value(s["wick_price"]),
        "depth_pct": _pct(s["depth_pct"]),
        "fake": s["fake"],
        "back_at": s["back_at"],
        "close": api.price_value(s["close"]),
        "return_1h_pct": _pct(s["return_1h_pct"]),
        "return_4h_pct": _pct(s["return_4h_pct"]),
        "opposite": cluster_out(s["opposite"]),
    }


CHECKLIST_KEYS = (
    "cascade_start",
    "side",
    "direction",
    "time",
    "confirmed",
    "confirmations",
    "extreme_price",
    "extreme_time",
)
REASON_VALUES = {
    "exhausted": ("recent_usd", "peak_usd"),
    "stalled": ("steps_since_extreme",),
    "rsi": ("reached", "rsi"),
    "divergence": ("rsi_at_extreme", "rsi"),
    "candle": ("time",),
    "open_interest": ("change_pct",),
}


def checklist_out(checklist: dict | None) -> dict | None:
    """A reversal checklist: times in ms, USD in cents, RSI and % to 4 places; every reason with
    whether it holds and its figures."""
    if checklist is None:
        return None
    out = {k: checklist[k] for k in CHECKLIST_KEYS}
    out["extreme_price"] = api.price_value(checklist["extreme_price"])
    out["reasons"] = [
        {
            "key": r["key"],
            "holds": r["holds"],
            **{k: _reason_value(k, r.get(k)) for k in REASON_VALUES[r["key"]]},
        }
        for r in checklist["reasons"]
    ]
    return out


def _reason_value(key: str, value: object) -> object:
    if not isinstance(value, float):
        return value
    return api.usd(value) if key.endswith("_usd") else api.ratio(value)


def signals_json(found: dict) -> dict:
    cascades = sorted(found["cascades"], key=lambda c: c["start"])
    last = cascades[-1] if cascades else None
    running = last is not None and found["as_of"] - last["end"] <= services.signals.MERGE_GAP_MS
    thresholds = {
        side: None if t is None else {k: api.usd(v) for k, v in t.items()}
        for side, t in (found.get("thresholds") or {}).items()
    }
    return {
        "current_cascade": cascade_out(last) if running else None,
        "last_cascade": cascade_out(last) if last else None,
        "last_sweep": sweep_out(found["sweeps"][-1]) if found["sweeps"] else None,
        "reversal": checklist_out(found["reversal"] or (last["reversal"] if last else None)),
        "thresholds": thresholds,
    }


def header(
    request: HttpRequest, market: Market, snapshot: MapSnapshot, window: str, found: dict
) -> dict:
    return {
        "market": api.market_json(request, market),
        "window": window,
        **pages.replay_header(snapshot),
        **api.snapshot_times(snapshot, market),
        "source": found["source"],
    }


def json_response(request: HttpRequest, body: dict, *, max_age: int, modified) -> HttpResponse:
    payload = gzip.compress(json.dumps(body, separators=(",", ":")).encode(), compresslevel=6)
    return pages.compressed_response(
        request, payload, "application/json", {"public": True, "max_age": max_age}, modified
    )


def csv_response(
    request: HttpRequest, table: list[list], filename: str, *, max_age: int, modified
) -> HttpResponse:
    payload = gzip.compress(api.csv_text(table).encode(), compresslevel=6)
    response = pages.compressed_response(
        request, payload, "text/csv; charset=utf-8", {"public": True, "max_age": max_age}, modified
    )
    response.headers["Content-Disposition"] = f'inline; filename="{filename}.csv"'
    return response


def _market(exchange: str, symbol: str) -> Market | None:
    return market_by_slugs(exchange=exchange.lower(), symbol=symbol.lower())


def window_view(kind: str) -> Callable[[HttpRequest, str, str], HttpResponse]:
    """The view of one signal document over a window of the pair's map (live, or with `at` the
    replayed moment)."""

    @require_safe
    def view(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
        market = _market(exchange, symbol)
        if market is None:
            return api.error(404, f"no market {exchange}/{symbol} is tracked here")
        try:
            window, fmt = pages.query_window(request), api.query_format(request)
            if kind == "signals" and fmt == "csv":
                raise BadQuery("the signals document is served as JSON only", "format", ["json"])
            at = pages.query_at(request)
            snapshot = pages.pair_snapshot(market=market, window=window, at=at)
        except BadQuery as exc:
            return api.error(400, str(exc), allowed=exc.allowed)
        if snapshot is None and at is None:  # the signals need the market's bars, not this map
            snapshot = market_latest_snapshot(market_id=market.pk)
        if snapshot is None:
            return api.error(404, f"no data yet for {market.symbol} over {window}", window=window)
        found = snapshot_signals(market=market, snapshot=snapshot, window=window)
        if found is None:
            return api.error(
                404, f"no signals yet for {market.symbol}: it needs more bars", window=window
            )
        freshness = snapshot_freshness(snapshot=snapshot, market=market)
        name = f"{market.exchange.slug}-{market.slug}-{window}-{kind}"
        if fmt == "csv":
            table = CSV_TABLES[kind](found[kind])
            return csv_response(
                request, table, name, max_age=freshness.max_age, modified=snapshot.computed_at
            )
        body = {**header(request, market, snapshot, window, found), **JSON_BODIES[kind](found)}
        return json_response(
            request, body, max_age=freshness.max_age, modified=snapshot.computed_at
        )

    view.__name__ = f"{kind}_view"
    return view


def cascades_csv(cascades: list[dict]) -> list[list]:
    table: list[list] = [list(CASCADE_CSV)]
    for c in map(cascade_out, cascades):
        cluster = c["cluster"] or {}
        row = {
            **c,
            "move_pct": c["move_pct"],
            "cluster_price_low": cluster.get("price_low"),
            "cluster_price_high": cluster.get("price_high"),
            "cluster_notional_usd": cluster.get("notional_usd"),
            "cluster_through": cluster.get("through"),
        }
        table.append([row.get(name) for name in CASCADE_CSV])
    return table


def sweeps_csv(sweeps: list[dict]) -> list[list]:
    table: list[list] = [list(SWEEP_CSV)]
    for s in map(sweep_out, sweeps):
        cluster = s["cluster"] or {}
        row = {
            **s,
            "cluster_price_low": cluster.get("price_low"),
            "cluster_price_high": cluster.get("price_high"),
            "cluster_notional_usd": cluster.get("notional_usd"),
        }
        table.append([row.get(name) for name in SWEEP_CSV])
    return table


JSON_BODIES: dict[str, Callable[[dict], dict]] = {
    "cascades": lambda found: {"cascades": [cascade_out(c) for c in found["cascades"]]},
    "sweeps": lambda found: {"sweeps": [sweep_out(s) for s in found["sweeps"]]},
    "signals": signals_json,
}
CSV_TABLES: dict[str, Callable[[list], list[list]]] = {
    "cascades": cascades_csv,
    "sweeps": sweeps_csv,
}


# The backtest.


RATE_KEYS = (
    "cases",
    "groups",
    "enough",
    "hit_rate",
    "chance_rate",
    "edge",
    "edge_low",
    "edge_high",
)
HORIZON_KEYS = (
    "mean_return_pct",
    "unconditional_pct",
    "edge",
    "edge_low",
    "edge_high",
    "rebound_share",
    "chance_share",
)


def _rounded(values: dict, keys: tuple[str, ...]) -> dict:
    return {k: (_pct(values[k]) if isinstance(values[k], float) else values[k]) for k in keys}


def backtest_out(results: dict) -> dict:
    """The backtest as documented, in a fixed key order, rates and edges to 4 places."""
    after = results["after_cascades"]
    return {
        "period_start": results["period_start"],
        "period_end": results["period_end"],
        "moments": results["moments"],
        "moments_with_horizon": results["moments_with_horizon"],
        "source": results["source"],
        "magnet": _rounded(results["magnet"], RATE_KEYS),
        "reach_above": _rounded(results["reach_above"], RATE_KEYS),
        "reach_below": _rounded(results["reach_below"], RATE_KEYS),
        "after_cascades": {
            "cases": after["cases"],
            "enough": after["enough"],
            "horizons": {
                h: _rounded(after["horizons"][h], HORIZON_KEYS) for h in ("1h", "4h", "24h")
            },
        },
        "after_fake_breakouts": _rounded(results["after_fake_breakouts"], RATE_KEYS),
    }


def backtest_csv(results: dict) -> list[list]:
    table: list[list] = [list(BACKTEST_CSV)]
    for name in ("magnet", "reach_above", "reach_below", "after_fake_breakouts"):
        stat = results[name]
        table.append([name, "24h", *(stat.get(k) for k in BACKTEST_CSV[2:9]), None, None])
    after = results["after_cascades"]
    for horizon in ("1h", "4h", "24h"):
        values = after["horizons"][horizon]
        table.append(
            [
                "after_cascades",
                horizon,
                after["cases"],
                after["enough"],
                values.get("rebound_share"),
                values.get("chance_share"),
                values.get("edge"),
                values.get("edge_low"),
                values.get("edge_high"),
                values.get("mean_return_pct"),
                values.get("unconditional_pct"),
            ]
        )
    return table


def backtest_at(*, market: Market, at: int) -> dict | None:
    """The backtest over the BACKTEST_DAYS before the moment `at` (cached, not stored)."""
    try:
        as_of = replay_as_of(market=market, at_ms=at)
    except ReplayError as exc:
        raise BadQuery(str(exc), "at", []) from None
    key = f"backtest:{market.pk}:{as_of}:{services.VERSION}"
    found = cache.get(key)
    if found is None:
        found = services.backtest_compute(market=market, as_of_ms=as_of) or {}
        cache.set(key, found, BACKTEST_CACHE_SECONDS)
    return found or None


@require_safe
def backtest(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
    market = _market(exchange, symbol)
    if market is None:
        return api.error(404, f"no market {exchange}/{symbol} is tracked here")
    try:
        fmt = api.query_format(request)
        at = pages.query_at(request)
        if at is None:
            stored = services.market_backtest_current(market=market)
            results = stored.results if stored else None
            computed_at = stored.computed_at if stored else None
        else:
            results = backtest_at(market=market, at=at)
            computed_at = None
    except BadQuery as exc:
        return api.error(400, str(exc), allowed=exc.allowed)
    except EngineError as exc:
        return api.error(404, f"no backtest for {market.symbol}: {exc}")
    if results is None:
        return api.error(404, f"no backtest yet for {market.symbol}: it needs more bars")
    modified = computed_at or ms_to_datetime(results["period_end"])
    name = f"{market.exchange.slug}-{market.slug}-backtest"
    if fmt == "csv":
        return csv_response(request, backtest_csv(results), name, max_age=300, modified=modified)
    body = {
        "market": api.market_json(request, market),
        **({"at": at_text(at)} if at is not None else {}),
        "map_window": services.map_window(),
        "computed_at": api.iso(modified),
        **backtest_out(results),
    }
    return json_response(request, body, max_age=300, modified=modified)


cascades = window_view("cascades")
sweeps = window_view("sweeps")
signals = window_view("signals")
