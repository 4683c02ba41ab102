"""Simulated markets with scheduled shocks, where the true liquidations are known.

A calm random walk (volatility clustering, open interest drifting up, a trickle of liquidations on
ordinary wicks) with cascades scheduled at chosen steps: price is driven against one side over a
few steps with long wicks, open interest is flushed, and the liquidation orders of that side burst
(the demo's order generator, `maps.demo.venue_events`, turns the flushed share of open interest
into orders inside the wicks). An episode's true size is the notional of its side's orders during
its steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from maps import demo
from maps.engine.types import Bars

STEP_MS = 300_000


@dataclass(frozen=True)
class Shock:
    step: int
    side: str  # the side liquidated: "long" (price falls) or "short" (price rises)
    depth: float  # log move against the side over the shock
    flush: float  # share of open interest liquidated
    steps: int = 2


@dataclass(frozen=True)
class Episode:
    side: str
    first: int
    last: int
    start: int  # open time of the first step (ms)
    end: int  # open time of the last step (ms)
    notional: float


@dataclass(frozen=True)
class ShockMarket:
    bars: Bars
    funding: np.ndarray
    events: demo.VenueEvents
    episodes: list[Episode]  # by true size, largest first


def shocks_scheduled(rng: np.random.Generator, days: int, count: int) -> list[Shock]:
    """`count` shocks of varied size on distinct days, none in the first two days (the market's
    own baseline needs a day of history) nor the last one."""
    per_day = 86_400_000 // STEP_MS
    days_picked = rng.choice(np.arange(2, days - 1), size=count, replace=False)
    shocks = []
    for day in sorted(days_picked.tolist()):
        step = day * per_day + int(rng.integers(12, per_day - 12))
        side = "long" if rng.random() < 0.6 else "short"
        shocks.append(
            Shock(
                step=step,
                side=side,
                depth=float(rng.uniform(0.02, 0.07)),
                flush=float(rng.uniform(0.03, 0.16)),
                steps=int(rng.integers(1, 4)),
            )
        )
    return shocks


def shock_market(
    *, seed: int, days: int, end_ms: int, shocks: list[Shock], coin_index: int = 0
) -> ShockMarket:
    coin, venue = demo.COINS[coin_index], demo.VENUES[0]
    count = days * 86_400_000 // STEP_MS
    ts = end_ms - STEP_MS * np.arange(count - 1, -1, -1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    path = _path(rng, coin, ts, shocks)
    bars, funding = demo.venue_series(rng, coin, venue, path)
    events = demo.venue_events(rng, coin, path, bars)
    return ShockMarket(bars, funding, events, _episodes(ts, events, shocks))


def _path(
    rng: np.random.Generator, coin: demo.Coin, ts: np.ndarray, shocks: list[Shock]
) -> demo.CoinPath:
    n = len(ts)
    plan = {}
    for shock in shocks:
        parts = rng.dirichlet(np.full(shock.steps, 2.0)) if shock.steps > 1 else np.ones(1)
        for k, part in enumerate(parts):
            plan[shock.step + k] = (shock.side, shock.depth * part, shock.flush * part)
    out = {name: np.zeros(n) for name in demo.CoinPath.__dataclass_fields__ if name != "ts"}
    shock = rng.standard_normal((n, 6))
    season = demo.seasonality(ts)
    log_vol = log_price = log_oi = 0.0
    recovery = 0.0
    for i in range(n):
        log_vol = 0.985 * log_vol + 0.07 * shock[i, 0]
        sigma = coin.vol * math.exp(log_vol) * (0.75 + 0.25 * season[i])
        side, move, flush = plan.get(i, (None, 0.0, 0.0))
        sign = -1.0 if side == "long" else 1.0
        drift = -0.0003 * log_price + recovery
        recovery *= 0.9
        ret = drift + sigma * shock[i, 1] + sign * move * 0.7
        if side is not None:
            recovery += -sign * move * 0.03
        log_price += ret
        out["log_close"][i] = log_price
        tail_down, tail_up = sigma * 0.45 * np.abs(shock[i, 2:4])
        out["wick_down"][i] = tail_down + (move * 0.3 if side == "long" else 0.0)
        out["wick_up"][i] = tail_up + (move * 0.3 if side == "short" else 0.0)
        out["sigma"][i] = sigma
        log_oi += 0.0004 - 0.0006 * log_oi + 0.0012 * shock[i, 4] - flush
        out["log_oi"][i] = log_oi
        out["activity"][i] = season[i] * (sigma / coin.vol) ** 1.2 * (1 + 4 * flush / 0.02)
        out["taker_share"][i] = 0.5 + 0.18 * math.tanh(0.6 * ret / sigma) + 0.025 * shock[i, 5]
        out["premium"][i] = 0.0001
        if side is not None:
            out["flush_long" if side == "long" else "flush_short"][i] = flush
    return demo.CoinPath(ts=ts, **out)


def _episodes(ts: np.ndarray, events: demo.VenueEvents, shocks: list[Shock]) -> list[Episode]:
    price_qty = events.price * events.quantity
    found = []
    for shock in shocks:
        first, last = shock.step, shock.step + shock.steps - 1
        inside = (
            (events.time >= ts[first])
            & (events.time < ts[last] + STEP_MS)
            & (events.is_long == (shock.side == "long"))
        )
        found.append(
            Episode(
                side=shock.side,
                first=first,
                last=last,
                start=int(ts[first]),
                end=int(ts[last]),
                notional=float(price_qty[inside].sum()),
            )
        )
    return sorted(found, key=lambda e: -e.notional)


def found_by(episode: Episode, cascades: list[dict], step_ms: int = STEP_MS) -> bool:
    """Whether a cascade of the episode's side overlaps its steps (one step of slack)."""
    return any(
        c["side"] == episode.side
        and c["start"] <= episode.end + step_ms
        and c["end"] >= episode.start - step_ms
        for c in cascades
    )


def market_store(market, sim: ShockMarket, *, events: bool = True) -> None:
    """Store the simulated bars (and, with `events`, the true liquidations as the market's
    events) for a market of the test database."""
    from maps.models import BAR_VALUE_FIELDS, Bar, LiquidationEvent, ms_to_datetime

    bars = sim.bars
    columns = [getattr(bars, name).tolist() for name in BAR_VALUE_FIELDS]
    Bar.objects.bulk_create(
        (
            Bar(
                market=market,
                time=ms_to_datetime(t),
                funding_rate=f,
                **dict(zip(BAR_VALUE_FIELDS, row, strict=True)),
            )
            for t, f, *row in zip(bars.ts.tolist(), sim.funding.tolist(), *columns, strict=True)
        ),
        batch_size=2000,
    )
    if events:
        e = sim.events
        seen = set()
        rows = []
        for t, is_long, p, q in zip(
            e.time.tolist(), e.is_long.tolist(), e.price.tolist(), e.quantity.tolist(), strict=True
        ):
            key = (t, is_long, p, q)
            if key in seen:
                continue
            seen.add(key)
            rows.append(
                LiquidationEvent(
                    market=market,
                    time=ms_to_datetime(t),
                    side="long" if is_long else "short",
                    price=p,
                    quantity=q,
                    notional_usd=round(p * q, 2),
                    source="demo",
                )
            )
        LiquidationEvent.objects.bulk_create(rows, batch_size=2000)
    market.last_bar_at = ms_to_datetime(int(bars.ts[-1]))
    market.save(update_fields=["last_bar_at"])
