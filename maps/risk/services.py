"""Writes and plans: bracket tables, risk profiles, position plans, what-ifs, saved positions.

A plan reads one stored snapshot (the map), the market's brackets and the snapshot's risk profile,
and hands the arithmetic to `maps.analytics.risk`. Bad inputs raise RiskError naming the field.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Alert
from accounts.services import alert_save, watch_add
from maps.analytics import risk
from maps.analytics.risk import RiskError
from maps.charts import cached
from maps.connectors import connector_for
from maps.formatting import price as fmt_price
from maps.formatting import usd
from maps.models import (
    WINDOWS,
    MapSnapshot,
    MarginBracket,
    Market,
    RiskProfile,
    SavedPosition,
    ms_to_datetime,
)
from maps.pages import snapshot_version
from maps.risk.brackets import (
    LIVE_EXCHANGES,
    BracketError,
    live_payload,
    recorded_payload,
    rows_from_payload,
)
from maps.risk.selectors import MarketBrackets, market_brackets, risk_profile, snapshot_arrays
from maps.selectors import market_bars_arrays

log = logging.getLogger(__name__)

DEFAULT_NOTIONAL_USD = 10_000.0  # the size assumed when only a leverage is given
MAX_ENTRY_DISTANCE = 0.5  # an entry more than 50 % from the last price is refused
CONSISTENCY = 0.01  # size, leverage and margin given together must agree within 1 %


# Bracket tables.


def market_brackets_replace(*, market: Market, rows: list[dict], source: str) -> int:
    """Replace the market's table with these rows (checked by `brackets.checked`)."""
    with transaction.atomic():
        MarginBracket.objects.filter(market=market).delete()
        MarginBracket.objects.bulk_create(
            MarginBracket(market=market, source=source[:200], **row) for row in rows
        )
    return len(rows)


@dataclass(frozen=True)
class BracketLoad:
    market: Market
    loaded: int = 0
    error: str = ""


def brackets_load(*, markets: list[Market], live: bool = False) -> list[BracketLoad]:
    """Store each market's published table: from the exchange's public endpoint with `live`
    (Bybit, OKX), else from the recorded tables. A market the source has no table for keeps the
    one it has; every outcome is reported."""
    payloads: dict[str, object] = {}
    out = []
    for market in markets:
        ccxt_id = market.exchange.ccxt_id
        try:
            if live and ccxt_id in LIVE_EXCHANGES:
                payload = live_payload(connector_for(ccxt_id).exchange, ccxt_id, market.symbol)
                source = f"{market.exchange.name} public endpoint, {timezone.now():%Y-%m-%d}"
            else:
                if ccxt_id not in payloads:
                    payloads[ccxt_id] = recorded_payload(ccxt_id)
                payload = payloads[ccxt_id]
                source = f"{market.exchange.name} published table (recorded)"
            rows = rows_from_payload(ccxt_id, payload, market.symbol, market.contract_size)
        except (BracketError, OSError) as exc:
            out.append(BracketLoad(market, error=str(exc)))
            continue
        except Exception as exc:  # a live endpoint's network or exchange error
            log.warning("brackets for %s: %s", market, exc)
            out.append(BracketLoad(market, error=f"{type(exc).__name__}: {exc}"))
            continue
        loaded = market_brackets_replace(market=market, rows=rows, source=source)
        out.append(BracketLoad(market, loaded))
    return out


# Risk profiles: hourly ATR and the impact of liquidations, per snapshot.


def risk_profile_for(*, snapshot: MapSnapshot) -> RiskProfile:
    """The snapshot's risk profile, fitted and stored the first time it is asked for."""
    version = snapshot_version(snapshot)
    profile = risk_profile(market=snapshot.market, window=snapshot.window)
    if profile is not None and profile.snapshot_version == version:
        return profile
    values = risk_profile_values(snapshot)
    try:
        with transaction.atomic():
            profile, _ = RiskProfile.objects.update_or_create(
                market=snapshot.market,
                window=snapshot.window,
                defaults={"snapshot_version": version, "computed_at": timezone.now(), **values},
            )
    except IntegrityError:  # another request stored it first
        profile = risk_profile(market=snapshot.market, window=snapshot.window)
    return profile


def risk_profile_values(snapshot: MapSnapshot) -> dict:
    """Hourly ATR at the snapshot's end, and the impact fitted on the steps of its window."""
    step = timedelta(milliseconds=snapshot.market.step_ms)
    start = snapshot.as_of - timedelta(milliseconds=WINDOWS[snapshot.window]) + step
    if "window_start" in snapshot.report:
        start = ms_to_datetime(int(snapshot.report["window_start"]))
    bars = market_bars_arrays(market_id=snapshot.market_id, start=start, end=snapshot.as_of + step)
    recent = bars.ts >= (bars.ts[-1] if len(bars.ts) else 0) - (risk.ATR_HOURS + 1) * 3_600_000
    atr = risk.hourly_atr(
        ts=bars.ts[recent], high=bars.high[recent], low=bars.low[recent], close=bars.close[recent]
    )
    impact = _impact(snapshot, bars)
    return {
        "atr": atr,
        "impact_per_usd": impact.per_usd,
        "impact_r2": impact.r2,
        "impact_steps": impact.steps,
    }


def _impact(snapshot: MapSnapshot, bars) -> risk.Impact:
    arrays = snapshot_arrays(snapshot, ("liq_times", "liq_long", "liq_short"))
    times = np.asarray(arrays["liq_times"], dtype=np.int64)
    if len(times) == 0 or len(bars.ts) < 2:
        return risk.Impact(None, None, 0)
    long = np.asarray(arrays["liq_long"], dtype=np.float64).reshape(len(times), -1).sum(1)
    short = np.asarray(arrays["liq_short"], dtype=np.float64).reshape(len(times), -1).sum(1)
    at = np.searchsorted(bars.ts, times)
    ok = (at >= 1) & (at < len(bars.ts))
    ok[ok] &= bars.ts[at[ok]] == times[ok]
    return risk.impact_fit(
        close=bars.close[at[ok]],
        previous=bars.close[at[ok] - 1],
        long_usd=long[ok],
        short_usd=short[ok],
    )


CURVE_ARRAYS = ("cum_long", "cum_short", "map_long", "map_short")


def snapshot_curves(snapshot: MapSnapshot) -> risk.Curves:
    """The snapshot's curves, built once per snapshot version and kept in the cache (the
    snapshot's arrays are read only on a miss)."""
    return cached(f"risk:curves:{snapshot_version(snapshot)}", lambda: _curves(snapshot))


def _curves(snapshot: MapSnapshot) -> risk.Curves:
    arrays = snapshot_arrays(snapshot, CURVE_ARRAYS)
    totals = snapshot.report.get("totals", {})
    beyond = tuple(float(totals.get(s, {}).get("beyond_close", 0.0) or 0.0) for s in risk.SIDES)
    return risk.Curves.from_map(
        edges=snapshot.edges,
        cum_long=arrays["cum_long"],
        cum_short=arrays["cum_short"],
        map_long=arrays["map_long"],
        map_short=arrays["map_short"],
        last_close=snapshot.last_close,
        beyond=beyond,
    )


# Plans.


@dataclass(frozen=True)
class PlanInput:
    """What the trader gives: side and entry, and a leverage or a size and a margin."""

    side: str
    entry: float
    leverage: float | None = None
    size: float | None = None
    margin: float | None = None
    stop: float | None = None


@dataclass(frozen=True)
class Sizing:
    leverage: float
    quantity: float
    margin: float
    sized: bool  # False: no size was given, DEFAULT_NOTIONAL_USD is assumed

    @property
    def notional(self) -> float:
        return self.margin * self.leverage


def plan_sizing(*, inputs: PlanInput, table: MarketBrackets, market: Market) -> Sizing:
    """Leverage, size (base units) and margin (USD) from any two of them (or a leverage alone),
    refused when the leverage exceeds the exchange's maximum for that position."""
    entry, lev, size, margin = inputs.entry, inputs.leverage, inputs.size, inputs.margin
    sized = True
    if lev is not None and size is not None:
        expected = size * entry / lev
        if margin is not None and abs(margin - expected) > CONSISTENCY * expected:
            raise RiskError(
                f"margin {margin:g} does not match size x entry / leverage = {expected:,.2f}; "
                "give two of size, leverage and margin",
                "margin",
            )
        margin = expected
    elif lev is not None and margin is not None:
        size = margin * lev / entry
    elif size is not None and margin is not None:
        lev = size * entry / margin
    elif lev is not None:
        size, margin, sized = DEFAULT_NOTIONAL_USD / entry, DEFAULT_NOTIONAL_USD / lev, False
    else:
        raise RiskError("give a leverage, or a size and a margin", "leverage")
    if lev < 1:
        raise RiskError(f"leverage must be at least 1x, not {lev:g}x", "leverage")
    limit = table.brackets.max_leverage_at(size, entry)
    if lev > limit * (1 + 1e-9):
        raise RiskError(
            f"leverage {lev:g}x is above {market.exchange.name}'s maximum of {limit:g}x for a "
            f"{usd(size * entry)} {market.symbol} position",
            "leverage",
        )
    return Sizing(float(lev), float(size), float(margin), sized)


def check_entry(*, inputs: PlanInput, last_close: float) -> None:
    if inputs.side not in risk.SIDES:
        raise RiskError(f"side must be long or short, not {inputs.side!r}", "side")
    if abs(inputs.entry / last_close - 1) > MAX_ENTRY_DISTANCE:
        raise RiskError(
            f"entry {fmt_price(inputs.entry)} is more than {MAX_ENTRY_DISTANCE:.0%} from the last "
            f"price {fmt_price(last_close)}",
            "entry",
        )
    stop, entry = inputs.stop, fmt_price(inputs.entry)
    if stop is not None and inputs.side == "long" and stop >= inputs.entry:
        raise RiskError(f"a long's stop must lie below the entry {entry}", "stop")
    if stop is not None and inputs.side == "short" and stop <= inputs.entry:
        raise RiskError(f"a short's stop must lie above the entry {entry}", "stop")


@dataclass
class Plan:
    inputs: PlanInput
    sizing: Sizing
    table: MarketBrackets
    last_close: float
    liquidation: risk.Liquidation
    distance_pct: float
    inside_cluster: dict | None
    nearest_cluster: dict | None
    notional_before: float
    atr: float | None
    suggested_stop: float | None
    stop_cluster: dict | None
    stop: float | None
    loss_at_stop_usd: float | None
    max_safe_leverage: int | None
    warnings: list[str] = field(default_factory=list)

    @property
    def has_liquidation(self) -> bool:
        return self.liquidation.price > 0

    @property
    def stop_is_suggested(self) -> bool:
        return self.inputs.stop is None and self.stop is not None


def position_plan(*, market: Market, snapshot: MapSnapshot, inputs: PlanInput) -> Plan:
    """The position against the map (see docs/model.md, "Position planner")."""
    check_entry(inputs=inputs, last_close=snapshot.last_close)
    table = market_brackets(market=market)
    sizing = plan_sizing(inputs=inputs, table=table, market=market)
    side, entry, quantity = inputs.side, inputs.entry, sizing.quantity
    exchange = {"brackets": table.brackets, "formula": table.formula, "fee_rate": table.fee_rate}
    liquidation = risk.liquidation_price(
        side=side, entry=entry, quantity=quantity, margin=sizing.margin, **exchange
    )
    profile = risk_profile_for(snapshot=snapshot)
    lp, close, clusters = liquidation.price, snapshot.last_close, snapshot.clusters
    curves = snapshot_curves(snapshot)
    read = curves.long_to if side == "long" else curves.short_to
    inside = risk.cluster_at(clusters, side, lp) if lp > 0 else None
    suggestion = risk.suggested_stop(
        side=side, entry=entry, last_close=close, clusters=clusters, atr=profile.atr
    )
    suggested, stop_cluster = suggestion if suggestion else (None, None)
    stop = inputs.stop if inputs.stop is not None else suggested
    plan = Plan(
        inputs=inputs,
        sizing=sizing,
        table=table,
        last_close=close,
        liquidation=liquidation,
        distance_pct=100.0 * (lp - close) / close,
        inside_cluster=inside,
        nearest_cluster=None if inside or lp <= 0 else risk.nearest_cluster(clusters, side, lp),
        notional_before=read(max(lp, 0.0)),
        atr=profile.atr,
        suggested_stop=suggested,
        stop_cluster=stop_cluster,
        stop=stop,
        loss_at_stop_usd=None
        if stop is None
        else risk.loss_at(side=side, entry=entry, quantity=quantity, stop=stop),
        max_safe_leverage=None
        if stop is None
        else risk.max_safe_leverage(
            side=side, entry=entry, quantity=quantity, stop=stop, **exchange
        ),
    )
    plan.warnings = plan_warnings(plan)
    return plan


def plan_warnings(plan: Plan) -> list[str]:
    side, lp, out = plan.inputs.side, plan.liquidation.price, []
    if lp <= 0:
        out.append("No liquidation price: the margin covers a fall to zero.")
    if plan.inside_cluster is not None:
        c = plan.inside_cluster
        out.append(
            f"Your liquidation at {fmt_price(lp)} is inside a {usd(c['notional_usd'])} {side} "
            f"cluster at {fmt_price(c['price_low'])} to {fmt_price(c['price_high'])}."
        )
    if plan.stop is not None and lp > 0:
        beyond = lp >= plan.stop if side == "long" else lp <= plan.stop
        if beyond:
            fix = (
                f"use {plan.max_safe_leverage}x or less"
                if plan.max_safe_leverage
                else "no leverage keeps it beyond the stop"
            )
            out.append(
                f"Your liquidation at {fmt_price(lp)} comes before the stop at "
                f"{fmt_price(plan.stop)}: {fix}."
            )
    return out


@dataclass(frozen=True)
class WhatIf:
    price: float
    long_usd: float
    short_usd: float
    leverages: list[float]
    long_by_tier: list[float]
    short_by_tier: list[float]
    cascade: risk.Cascade
    impact: risk.Impact
    last_close: float

    @property
    def direction(self) -> str:
        return "down" if self.price < self.last_close else "up"

    @property
    def liquidated_usd(self) -> float:
        return self.long_usd if self.direction == "down" else self.short_usd


def what_if(*, snapshot: MapSnapshot, price: float) -> WhatIf:
    """What a move to `price` liquidates (the cumulative curves, per tier) and how far the
    liquidations it meets are likely to push it (the fitted impact, run to a fixed point)."""
    if not (math.isfinite(price) and price > 0):
        raise RiskError("price must be a positive number", "price")
    edges = snapshot.edges
    if not (edges[0] <= price <= edges[-1]):
        raise RiskError(
            f"price {fmt_price(price)} is outside the map ({fmt_price(edges[0])} to "
            f"{fmt_price(edges[-1])})",
            "price",
        )
    curves = snapshot_curves(snapshot)
    profile = risk_profile_for(snapshot=snapshot)
    impact = risk.Impact(profile.impact_per_usd, profile.impact_r2, profile.impact_steps)
    long_tiers, short_tiers = curves.tiers_to(price)
    return WhatIf(
        price=price,
        long_usd=curves.long_to(price),
        short_usd=curves.short_to(price),
        leverages=[t["leverage"] for t in snapshot.params.get("tiers", [])],
        long_by_tier=long_tiers,
        short_by_tier=short_tiers,
        cascade=risk.cascade(price=price, curves=curves, impact=impact),
        impact=impact,
        last_close=snapshot.last_close,
    )


# Saved positions.


@dataclass(frozen=True)
class AlertChoice:
    near_stop_pct: float | None = None
    near_liquidation_pct: float | None = None
    cluster_min_usd: float | None = None


def position_save(
    *, user, market: Market, plan: Plan, window: str, note: str = "", alerts: AlertChoice
) -> SavedPosition:
    """Keep the plan as the user's position, with the alerts chosen (the market joins the
    watchlist, where alerts live). Alerts on the stop need a stop."""
    if plan.stop is None and (alerts.near_stop_pct or alerts.cluster_min_usd):
        raise RiskError("alerts on the stop need a stop: give one", "stop")
    with transaction.atomic():
        position = SavedPosition.objects.create(
            user=user,
            market=market,
            side=plan.inputs.side,
            entry=plan.inputs.entry,
            leverage=plan.sizing.leverage,
            quantity=plan.sizing.quantity,
            margin=plan.sizing.margin,
            stop=plan.stop,
            liquidation_price=plan.liquidation.price,
            window=window,
            note=note,
        )
        wanted = [
            (Alert.NEAR_STOP, {"within_pct": alerts.near_stop_pct}),
            (Alert.NEAR_LIQUIDATION, {"within_pct": alerts.near_liquidation_pct}),
            (Alert.STOP_CLUSTER, {"min_notional_usd": alerts.cluster_min_usd}),
        ]
        wanted = [(kind, values) for kind, values in wanted if None not in values.values()]
        if wanted:
            watch = watch_add(user=user, market=market)
            for kind, values in wanted:
                alert_save(
                    alert=Alert(watch=watch, kind=kind, window=window, position=position, **values)
                )
    return position


def position_delete(*, position: SavedPosition) -> None:
    position.delete()
