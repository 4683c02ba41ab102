"""What the planner panel and the positions pages show: inputs kept from the URL, the plan, the
what-if, a price rail placing them on one line, and the links to share or query them.

Every number comes from `maps.risk.services` (which calls `maps.analytics.risk`); this module only
picks, labels and positions them for the screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse

from maps.analytics.risk import RiskError, distance_pct
from maps.models import Market, SavedPosition
from maps.risk import services
from maps.risk.forms import AlertsForm, planner_form
from maps.risk.selectors import market_snapshot_full, market_user_positions, user_positions
from maps.selectors import market_snapshot_light, snapshot_freshness

PLAN_KEYS = ("plan", "entry", "leverage", "size", "margin", "stop", "price")
DEFAULT_LEVERAGE = "10"
FORMULA_NAMES = {
    "binance": "Binance USD-M isolated",
    "bybit": "Bybit USDT perpetual isolated",
    "okx": "OKX USDT-margined swap isolated",
}


def plain(value: float | None) -> str:
    """A number as typed in a form: 64123.4, not 64,123.4 or 64123.40000000001."""
    return "" if value is None else f"{float(value):.10g}"


def plan_query(query, window: str) -> dict:
    """The plan's inputs from a query, for links (empty ones dropped)."""
    kept = {key: query.get(key, "").strip() for key in PLAN_KEYS}
    return {"window": window, **{k: v for k, v in kept.items() if v}}


def address_bar_url(context: dict, query) -> str | None:
    """Where the address bar should point after an htmx update: the page the panel is on, with
    the plan's inputs (and, on the pair page, its own side filter), so a reload or a shared link
    shows the same plan. None before any input was given."""
    if not any(query.get(key, "").strip() for key in PLAN_KEYS):
        return None
    kept = plan_query(query, context["window"])
    if context["view"] != "pair":
        return f"{context['planner_url']}?{urlencode(kept)}"
    if context.get("pair_side"):
        kept = {"window": kept.pop("window"), "side": context["pair_side"], **kept}
    return f"{context['pair_url']}?{urlencode(kept)}"


@dataclass(frozen=True)
class Marker:
    label: str
    price: float
    left: float
    kind: str


def price_rail(plan, what_if, last_close: float) -> dict | None:
    """Where the last price, entry, stop, liquidation, what-if price and the clusters involved
    sit on one horizontal line (left in % of the rail)."""
    if plan is None:
        return None
    points = [("Last", last_close, "last"), ("Entry", plan.inputs.entry, "entry")]
    if plan.stop is not None:
        points.append(("Stop", plan.stop, "stop"))
    if plan.has_liquidation:
        points.append(("Liquidation", plan.liquidation.price, "liq"))
    if what_if is not None:
        points.append(("What if", what_if.price, "whatif"))
        points.append(("Runs to", what_if.cascade.price, "cascade"))
    clusters = [c for c in (plan.inside_cluster, plan.nearest_cluster, plan.stop_cluster) if c]
    prices = [p for _, p, _ in points]
    prices += [v for c in clusters for v in (c["price_low"], c["price_high"])]
    low, high = min(prices), max(prices)
    pad = (high - low) * 0.06 or high * 0.01
    low, high = low - pad, high + pad

    def left(value: float) -> float:
        return round(100.0 * (value - low) / (high - low), 2)

    bands, seen = [], set()
    for c in clusters:
        key = (c["side"], c["price_low"])
        if key in seen:
            continue
        seen.add(key)
        start, end = left(c["price_low"]), left(c["price_high"])
        bands.append({"cluster": c, "left": start, "width": max(end - start, 0.6)})
    markers = sorted((Marker(n, p, left(p), k) for n, p, k in points), key=lambda m: m.left)
    return {"markers": markers, "bands": bands, "low": low, "high": high}


def planner_context(
    request: HttpRequest, *, market: Market, window: str, query, view: str = "plan"
) -> dict:
    """The panel's context: the form as typed, the plan or the field in error, the what-if."""
    args = [market.exchange.slug, market.slug]
    kept = plan_query(query, window)
    context = {
        "market": market,
        "exchange": market.exchange,
        "window": window,
        "view": view,
        "planner_url": reverse("maps:planner", args=args),
        "pair_url": market.get_absolute_url(),
        "save_url": reverse("maps:planner_save", args=args),
        "values": {**{k: query.get(k, "") for k in PLAN_KEYS}, "window": window},
        "share_url": request.build_absolute_uri(f"{market.get_absolute_url()}?{urlencode(kept)}"),
        "positions": market_user_positions(user=request.user, market=market),
        "pair_side": query.get("side", "") if query.get("side") in ("long", "short") else "",
    }
    snapshot = market_snapshot_full(market=market, window=window)
    context["snapshot"] = snapshot
    if snapshot is None:
        return context
    context["freshness"] = snapshot_freshness(snapshot=snapshot, market=market)
    context["values"].setdefault("entry", "")
    if not context["values"]["entry"]:
        context["entry_placeholder"] = plain(snapshot.last_close)
    if not any(context["values"][k] for k in ("leverage", "size", "margin")):
        context["values"]["leverage"] = DEFAULT_LEVERAGE
    form = planner_form({**context["values"], "plan": query.get("plan", "")}, side_key="plan")
    context.update(form=form, plan=None, what_if=None, errors={})
    if not form.is_valid():
        context["errors"] = {name: f"{name}: {errs[0]}" for name, errs in form.errors.items()}
        return context
    _plan_and_what_if(context, market=market, snapshot=snapshot, form=form)
    if context["plan"] is None:
        return context
    api_query = urlencode({**_api_params(context), "window": window})
    context["api_urls"] = {
        "position": f"{reverse('api:position', args=args)}?{api_query}",
        "what-if": f"{reverse('api:what_if', args=args)}?{api_query}",
    }
    return context


def _plan_and_what_if(context: dict, *, market: Market, snapshot, form) -> None:
    inputs = form.plan_input(last_close=snapshot.last_close)
    try:
        plan = services.position_plan(market=market, snapshot=snapshot, inputs=inputs)
    except RiskError as exc:
        context["errors"] = {exc.field: str(exc)}
        return
    context["plan"] = plan
    context["formula_name"] = FORMULA_NAMES[plan.table.formula]
    context["maintenance_label"] = f"{plan.liquidation.rate * 100:.4g}%"
    price = form.cleaned_data.get("price") or default_what_if_price(snapshot, plan)
    try:
        context["what_if"] = services.what_if(snapshot=snapshot, price=price)
    except RiskError as exc:
        context["errors"] = {exc.field: str(exc)}
    context["rail"] = price_rail(plan, context["what_if"], snapshot.last_close)
    context["alerts_form"] = AlertsForm()


def default_what_if_price(snapshot, plan) -> float:
    """Without a price: the far edge of the cluster the suggested stop clears, else the
    liquidation price, else 5 % against the position."""
    if plan.stop_cluster is not None:
        c = plan.stop_cluster
        return c["price_low"] if plan.inputs.side == "long" else c["price_high"]
    edges = snapshot.edges
    if plan.has_liquidation and edges[0] <= plan.liquidation.price <= edges[-1]:
        return plan.liquidation.price
    return snapshot.last_close * (0.95 if plan.inputs.side == "long" else 1.05)


def _api_params(context: dict) -> dict:
    plan = context["plan"]
    params = {"side": plan.inputs.side, "entry": plain(plan.inputs.entry)}
    params["leverage"] = plain(plan.sizing.leverage)
    if plan.sizing.sized:
        params["size"] = plain(plan.sizing.quantity)
    if plan.inputs.stop is not None:
        params["stop"] = plain(plan.inputs.stop)
    if context["what_if"] is not None:
        params["price"] = plain(context["what_if"].price)
    return params


# Saved positions.


@dataclass(frozen=True)
class PositionRow:
    position: SavedPosition
    last_close: float | None
    stop_distance_pct: float | None
    liquidation_distance_pct: float | None
    open_url: str


def position_open_url(position: SavedPosition) -> str:
    """The pair page with the position in the planner."""
    query = {
        "window": position.window,
        "plan": position.side,
        "entry": plain(position.entry),
        "size": plain(position.quantity),
        "leverage": plain(position.leverage),
    }
    if position.stop is not None:
        query["stop"] = plain(position.stop)
    return f"{position.market.get_absolute_url()}?{urlencode(query)}"


def position_row(position: SavedPosition) -> PositionRow:
    snapshot = market_snapshot_light(market=position.market, window=position.window)
    last = snapshot.last_close if snapshot is not None else None
    return PositionRow(
        position,
        last,
        distance_pct(position.stop, last),
        distance_pct(position.liquidation_price, last),
        position_open_url(position),
    )


def positions_context(*, user) -> dict:
    return {"rows": [position_row(p) for p in user_positions(user=user)]}


def position_back_url(market: Market, data, window: str) -> str:
    """Where a failed save returns: the pair page with the plan as typed."""
    return f"{market.get_absolute_url()}?{urlencode(plan_query(data, window))}"


def save_error(snapshot, form, alerts) -> str:
    if snapshot is None:
        return "Not saved: this market has no map for that window yet."
    for bound in (form, alerts):
        if bound.errors:
            name, errors = next(iter(bound.errors.items()))
            return f"Not saved: {name}: {errors[0]}"
    return "Not saved."
