"""What the signal alert kinds watch (accounts: cascade started, cluster swept, reversal
confirmed): a market's signal events, each at the step it became known, with what to say."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from maps.engine.types import EngineError
from maps.formatting import pct, price, usd
from maps.market_signals import services
from maps.models import Market, ms_to_datetime

log = logging.getLogger(__name__)

KINDS = ("cascade", "sweep", "reversal")
WHO = {"long": "long", "short": "short"}


@dataclass(frozen=True)
class SignalEvent:
    time: datetime  # open time of the step whose data made it known
    message: str
    detail: dict


def market_signal_events(
    *, market: Market, kind: str, side: str, min_usd: float | None, as_of: datetime
) -> dict[datetime, SignalEvent]:
    """The market's events of `kind` ("cascade": a cascade detected, "sweep": a cluster swept,
    "reversal": a reversal checklist confirmed) on `side` ("any", "long", "short") and of at least
    `min_usd`, by step, from its signals up to `as_of` (computed now if they are older)."""
    try:
        stored = services.market_signals_current(market=market, as_of=as_of)
    except EngineError:
        log.exception("signals of market %s failed: its signal alerts see nothing", market.pk)
        return {}
    if stored is None:
        return {}
    found: dict[datetime, SignalEvent] = {}
    for event in _events(market, kind, stored.cascades, stored.sweeps, stored.source):
        if side not in ("any", event.detail["side"]):
            continue
        if min_usd and event.detail.get("notional_usd", 0.0) < min_usd:
            continue
        found.setdefault(event.time, event)
    return found


def _events(
    market: Market, kind: str, cascades: list[dict], sweeps: list[dict], source: str
) -> list[SignalEvent]:
    name = f"{market.symbol} ({market.exchange.name})"
    if kind == "cascade":
        return [_cascade_event(name, c, source) for c in cascades]
    if kind == "sweep":
        return [_sweep_event(name, s) for s in sweeps]
    return [_reversal_event(name, c) for c in cascades if c["reversal_confirmed_at"] is not None]


def _cascade_event(name: str, c: dict, source: str) -> SignalEvent:
    start = ms_to_datetime(c["start"])
    message = (
        f"{name}: a {c['side']} liquidation cascade started at {start:%H:%M} UTC: "
        f"{usd(c['notional_usd'])} of {c['side']}s liquidated ({source}), price "
        f"{price(c['price_start'])} to {price(c['price_extreme'])} ({pct(c['move_pct'])})"
    )
    detail = {
        "side": c["side"],
        "notional_usd": c["notional_usd"],
        "start": c["start"],
        "price_start": c["price_start"],
        "price_extreme": c["price_extreme"],
        "source": source,
    }
    return SignalEvent(ms_to_datetime(c["detected"]), message, detail)


def _sweep_event(name: str, s: dict) -> SignalEvent:
    cluster = s["cluster"]
    where = "below" if s["side"] == "long" else "above"
    message = (
        f"{name}: the {usd(cluster['notional_usd'])} {s['side']} cluster {where} "
        f"({price(cluster['price_low'])} to {price(cluster['price_high'])}) was swept at "
        f"{ms_to_datetime(s['time']):%H:%M} UTC, the wick going {s['depth_pct']:.2f}% beyond it"
    )
    detail = {"side": s["side"], "notional_usd": cluster["notional_usd"], "cluster": cluster}
    return SignalEvent(ms_to_datetime(s["time"]), message, detail)


def _reversal_event(name: str, c: dict) -> SignalEvent:
    checklist = c["reversal"]
    way = "up" if c["side"] == "long" else "down"
    held = [r["key"].replace("_", " ") for r in checklist["reasons"] if r["holds"]]
    message = (
        f"{name}: the checklist for a turn {way} after the {c['side']} cascade of "
        f"{ms_to_datetime(c['start']):%H:%M} UTC holds ({', '.join(held)}). A checklist of what "
        "the data shows, not advice."
    )
    detail = {"side": c["side"], "notional_usd": c["notional_usd"], "checklist": checklist}
    return SignalEvent(ms_to_datetime(c["reversal_confirmed_at"]), message, detail)
