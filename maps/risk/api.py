"""/api/v1/<exchange>/<symbol>/position and /what-if (see docs/api.md): the planner's numbers as
JSON, read from the market's snapshot for `window=` like the other documents. A bad input is a
400 whose `field` names it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from maps import pages as map_pages
from maps.analytics.risk import RiskError
from maps.api import cluster_out, error, market_json, price_value, ratio, snapshot_times, usd
from maps.pages import BadQuery
from maps.risk import services
from maps.risk.forms import planner_form
from maps.risk.selectors import market_snapshot_full
from maps.selectors import market_by_slugs, snapshot_freshness

REQUIRED = {"position": ("side", "entry"), "what-if": ("price",)}


def field_error(field: str, message: str) -> JsonResponse:
    return error(400, message, field=field)


def planner_view(kind: str):
    @require_safe
    def view(request: HttpRequest, exchange: str, symbol: str) -> HttpResponse:
        market = market_by_slugs(exchange=exchange.lower(), symbol=symbol.lower())
        if market is None:
            return error(404, f"no market {exchange}/{symbol} is tracked here")
        try:
            window = map_pages.query_window(request)
        except BadQuery as exc:
            return error(400, str(exc), field="window", allowed=exc.allowed)
        for name in REQUIRED[kind]:
            if not request.GET.get(name, "").strip():
                return field_error(name, f"{name} is required")
        form = planner_form(request.GET)
        if not form.is_valid():
            return field_error(*form.first_error())
        snapshot = market_snapshot_full(market=market, window=window)
        if snapshot is None:
            return error(404, f"no data yet for {market.symbol} over {window}", window=window)
        try:
            body = BUILDERS[kind](market, snapshot, form)
        except RiskError as exc:
            return field_error(exc.field, f"{exc.field}: {exc}")
        header = {
            "market": market_json(request, market),
            "window": window,
            **snapshot_times(snapshot, market),
            "last_close": snapshot.last_close,
        }
        response = JsonResponse({**header, **body})
        max_age = snapshot_freshness(snapshot=snapshot, market=market).max_age
        response.headers["Cache-Control"] = f"public, max-age={max_age}"
        return response

    view.__name__ = f"{kind.replace('-', '_')}_view"
    return view


def position_body(market, snapshot, form) -> dict:
    inputs = form.plan_input(last_close=snapshot.last_close)
    plan = services.position_plan(market=market, snapshot=snapshot, inputs=inputs)
    lp = plan.liquidation
    return {
        "side": inputs.side,
        "entry": price_value(inputs.entry),
        "leverage": ratio(plan.sizing.leverage),
        "size": plan.sizing.quantity,
        "size_given": plan.sizing.sized,
        "margin_usd": usd(plan.sizing.margin),
        "notional_usd": usd(plan.sizing.notional),
        "liquidation_price": price_value(lp.price) if plan.has_liquidation else None,
        "maintenance_rate": lp.rate,
        "maintenance_amount_usd": usd(lp.amount),
        "bracket": lp.bracket + 1,
        "formula": plan.table.formula,
        "brackets_source": plan.table.source,
        "distance_pct": ratio(plan.distance_pct) if plan.has_liquidation else None,
        "inside_cluster": cluster_out(plan.inside_cluster),
        "nearest_cluster": cluster_out(plan.nearest_cluster),
        "notional_before": usd(plan.notional_before),
        "atr": price_value(plan.atr),
        "suggested_stop": price_value(plan.suggested_stop),
        "stop_cluster": cluster_out(plan.stop_cluster),
        "stop": price_value(plan.stop),
        "loss_at_stop_usd": usd(plan.loss_at_stop_usd),
        "max_safe_leverage": plan.max_safe_leverage,
        "warnings": plan.warnings,
    }


def what_if_body(market, snapshot, form) -> dict:
    result = services.what_if(snapshot=snapshot, price=form.cleaned_data["price"])
    impact = result.impact
    return {
        "price": price_value(result.price),
        "long_usd": usd(result.long_usd),
        "short_usd": usd(result.short_usd),
        "by_tier": {
            "leverages": result.leverages,
            "long": [usd(v) for v in result.long_by_tier],
            "short": [usd(v) for v in result.short_by_tier],
        },
        "cascade_to": price_value(result.cascade.price),
        "cascade_usd": usd(result.cascade.liquidated_usd),
        "cascade_beyond_map": result.cascade.beyond_map,
        "impact": {"per_usd": impact.per_usd, "r2": ratio(impact.r2), "steps": impact.steps},
    }


BUILDERS = {"position": position_body, "what-if": what_if_body}
position = planner_view("position")
what_if = planner_view("what-if")
