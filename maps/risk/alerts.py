"""Alerts on a saved position: price near its stop, price near its liquidation price, and a
cluster forming between price and its stop. `accounts.services` checks them after each snapshot
like the other alerts (fire once while armed, re-arm when the condition is false again).

No import of `accounts` here: `accounts.models` reads `position_alert_describe`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maps.formatting import price, usd
from maps.models import MapSnapshot

NEAR_STOP, NEAR_LIQUIDATION, STOP_CLUSTER = "near_stop", "near_liq", "stop_cluster"


@dataclass(frozen=True)
class PositionCheck:
    """The condition at one snapshot, and what to say if it fires."""

    hit: bool
    message: str = ""
    detail: dict = field(default_factory=dict)


def position_words(position) -> str:
    """'long 0.5 BTC @ 60,000'."""
    return f"{position.side} {position.quantity:g} {position.market.base} @ {price(position.entry)}"


def position_alert_describe(alert) -> str:
    """The condition in words, for the alert list and emails."""
    position = alert.position
    what = position_words(position)
    if alert.kind == NEAR_STOP:
        return f"price within {alert.within_pct:g}% of the stop at {price(position.stop)} ({what})"
    if alert.kind == NEAR_LIQUIDATION:
        return (
            f"price within {alert.within_pct:g}% of the liquidation price "
            f"{price(position.liquidation_price)} ({what})"
        )
    return (
        f"a cluster of at least {usd(alert.min_notional_usd)} between price and the stop at "
        f"{price(position.stop)} ({what}, {alert.window} map)"
    )


def near(last: float, level: float | None, side: str, within_pct: float) -> float | None:
    """The distance in % from `last` to `level` when within `within_pct` or already beyond it
    (below for a long, above for a short); None otherwise."""
    if level is None or level <= 0:
        return None
    distance = 100.0 * (last - level) / last if side == "long" else 100.0 * (level - last) / last
    return distance if distance <= within_pct else None


def position_alert_check(alert, snapshot: MapSnapshot) -> PositionCheck:
    position, last = alert.position, snapshot.last_close
    market = position.market
    head = f"{market.symbol} ({market.exchange.name}) at {price(last)}"
    detail = {"last_close": last, "window": snapshot.window, "position": position.pk}
    if alert.kind in (NEAR_STOP, NEAR_LIQUIDATION):
        stop = alert.kind == NEAR_STOP
        level = position.stop if stop else position.liquidation_price
        distance = near(last, level, position.side, alert.within_pct)
        if distance is None:
            return PositionCheck(False)
        name = "stop" if stop else "liquidation price"
        where = "beyond" if distance < 0 else f"{distance:.2f}% from"
        message = f"{head} is {where} your {name} {price(level)} ({position_words(position)})"
        return PositionCheck(True, message, {**detail, "level": level, "distance_pct": distance})
    return _cluster_check(alert, snapshot, head, detail)


def _cluster_check(alert, snapshot: MapSnapshot, head: str, detail: dict) -> PositionCheck:
    """Hit when a cluster of the position's side, of the wanted size, overlaps the stretch
    between the last price and the stop."""
    position, last = alert.position, snapshot.last_close
    if position.stop is None:
        return PositionCheck(False)
    low, high = sorted((position.stop, last))
    between = [
        c
        for c in snapshot.clusters
        if c["side"] == position.side
        and c["notional_usd"] >= alert.min_notional_usd
        and c["price_low"] < high
        and c["price_high"] > low
    ]
    if not between:
        return PositionCheck(False)
    cluster = max(between, key=lambda c: c["notional_usd"])
    message = (
        f"{head}: a {usd(cluster['notional_usd'])} {cluster['side']} cluster "
        f"({price(cluster['price_low'])} to {price(cluster['price_high'])}) lies between price "
        f"and your stop {price(position.stop)} ({position_words(position)})"
    )
    return PositionCheck(True, message, {**detail, "cluster": cluster})
