"""The demo's simulated markets rolled forward: new steps appended to each one, continuing from
its last bar.

Each coin's new steps come from the demo's own simulator (`maps.demo.simulate_coin`) anchored on
each exchange's last close and open interest, so the markets keep moving together with their own
basis and size, with regimes, wicks and liquidation events as in the seeded history. The random
numbers are seeded by the coin and the first new step, so the same gap always gives the same rows.
Bars older than the longest window (plus a day) are dropped, so the demo stays the same size.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.db import transaction

from maps.demo import (
    COINS,
    STEP_MS,
    THIN_MARKETS,
    VENUES,
    Coin,
    ThinMarket,
    Venue,
    VenueEvents,
    sparse_trading,
    venue_events,
    venue_series,
)
from maps.demo import simulate_coin as simulate_path
from maps.engine.types import Bars
from maps.metrics_rows import metrics_rows_upsert
from maps.models import WINDOWS, Bar, LiquidationEvent, Market, datetime_to_ms, ms_to_datetime
from maps.whales.demo import (
    demo_metrics_rows,
    demo_positioning,
    demo_positioning_rng,
    demo_positioning_start,
)

ROLL_SEED = 8_675_309
MAX_ROLL_STEPS = 288 * 7
KEEP_MS = max(WINDOWS.values()) + 86_400_000


@dataclass
class RollReport:
    market_ids: list[int] = field(default_factory=list)
    steps: int = 0
    events: int = 0
    too_far_behind: bool = False


@dataclass(frozen=True)
class _Tip:
    market: Market
    venue: Venue
    ts: int
    close: float
    open_interest: float


def demo_roll_forward(*, now_ms: int, max_steps: int = MAX_ROLL_STEPS) -> RollReport:
    """Append the steps that closed since each demo market's last bar (at most `max_steps`; a
    demo further behind is reported `too_far_behind` and left for a new seed)."""
    report = RollReport()
    end = (now_ms // STEP_MS) * STEP_MS - STEP_MS
    groups = [(index, coin, _tips(coin, VENUES), None) for index, coin in enumerate(COINS)]
    for k, thin in enumerate(THIN_MARKETS):
        venue = next(v for v in VENUES if v.slug == thin.venue)
        one = dataclasses.replace(venue, size=1.0, basis_bps=0.0)  # as maps.demo.simulate_thin
        groups.append((100 + k, thin.coin, _tips(thin.coin, (one,)), thin))
    for index, coin, tips, thin in groups:
        if not tips:
            continue
        start = min(tip.ts for tip in tips) + STEP_MS
        if start > end:
            continue
        if (end - start) // STEP_MS + 1 > max_steps:
            report.too_far_behind = True
            continue
        ts = np.arange(start, end + 1, STEP_MS, dtype=np.int64)
        path = simulate_path(np.random.default_rng([ROLL_SEED, index, start // STEP_MS]), coin, ts)
        for v, tip in enumerate(tips):
            rng = np.random.default_rng([ROLL_SEED, index, v + 1, start // STEP_MS])
            added = _extend(tip, coin, path, rng, thin)
            if added:
                report.market_ids.append(tip.market.pk)
                report.steps += added[0]
                report.events += added[1]
    return report


def _tips(coin: Coin, venues) -> list[_Tip]:
    """The coin's demo markets (simulated, 5-minute steps) on these venues, with their last bar."""
    tips = []
    for venue in venues:
        market = (
            Market.objects.select_related("exchange")
            .filter(exchange__slug=venue.slug, slug=f"{coin.base}usdt".lower(), is_demo=True)
            .filter(step_ms=STEP_MS)
            .first()
        )
        last = market.bars.order_by("-time").first() if market else None
        if last is not None:
            tips.append(
                _Tip(market, venue, datetime_to_ms(last.time), last.close, last.open_interest)
            )
    return tips


def _extend(
    tip: _Tip, coin: Coin, path, rng: np.random.Generator, thin: ThinMarket | None = None
) -> tuple[int, int] | None:
    """Write the path's steps after the market's last bar; (steps, events) or None. A thin
    market trades in only some of the new steps, as in the seeded history."""
    keep = path.ts > tip.ts
    if not keep.any():
        return None
    part = dataclasses.replace(path, **{name: getattr(path, name)[keep] for name in _PATH_ARRAYS})
    anchored = dataclasses.replace(
        coin,
        price=tip.close / math.exp(tip.venue.basis_bps * 1e-4),
        open_interest=tip.open_interest / tip.venue.size,
    )
    bars, funding = venue_series(rng, anchored, tip.venue, part)
    bars = _continue_from(bars, tip.close)
    if thin is not None:
        bars = sparse_trading(bars, rng.random(len(bars.ts)) < thin.trade_share)
        bars = _continue_from(bars, tip.close)
    events = venue_events(rng, anchored, part, bars)
    if thin is not None:
        traded = bars.volume[(events.time - bars.ts[0]) // STEP_MS] > 0  # a liquidation trades
        events = VenueEvents(
            *(getattr(events, f)[traded] for f in VenueEvents.__dataclass_fields__)
        )
    with transaction.atomic():
        _write(tip.market, bars, funding, events)
    return len(bars.ts), len(events.time)


def _write_metrics(market: Market, bars: Bars) -> None:
    """The new steps' metrics rows, the whales' series continuing from the last stored row."""
    last = (
        market.metrics_rows.order_by("-stamped_at")
        .values("top_position_ratio", "long_short_ratio")
        .first()
    )
    start = demo_positioning_start(**last) if last else 0.0
    rng = demo_positioning_rng(
        market_key=f"{market.exchange.slug}:{market.slug}", seed=ROLL_SEED, first_ts=int(bars.ts[0])
    )
    positioning = demo_positioning(bars, rng, start=start)
    rows = demo_metrics_rows(bars, positioning, market.step_ms)
    metrics_rows_upsert(market=market, rows=rows, source="demo")


_PATH_ARRAYS = (
    "ts",
    "log_close",
    "wick_down",
    "wick_up",
    "sigma",
    "log_oi",
    "activity",
    "taker_share",
    "log_ratio",
    "premium",
    "flush_long",
    "flush_short",
)


def _continue_from(bars: Bars, last_close: float) -> Bars:
    """The first new bar opens at the last close; highs and lows stay around open and close."""
    opens = bars.open.copy()
    opens[0] = last_close
    return dataclasses.replace(
        bars,
        open=opens,
        high=np.maximum(bars.high, opens),
        low=np.minimum(bars.low, opens),
    )


def _write(market: Market, bars: Bars, funding: np.ndarray, events) -> None:
    _write_metrics(market, bars)
    Bar.objects.bulk_create(
        [
            Bar(
                market=market,
                time=ms_to_datetime(int(t)),
                open=o,
                high=h,
                low=lo,
                close=c,
                volume=v,
                taker_buy_volume=tb,
                open_interest=oi,
                long_short_ratio=r,
                funding_rate=f,
            )
            for t, o, h, lo, c, v, tb, oi, r, f in zip(
                bars.ts.tolist(),
                bars.open.tolist(),
                bars.high.tolist(),
                bars.low.tolist(),
                bars.close.tolist(),
                bars.volume.tolist(),
                bars.taker_buy_volume.tolist(),
                bars.open_interest.tolist(),
                bars.long_short_ratio.tolist(),
                funding.tolist(),
                strict=True,
            )
        ],
        ignore_conflicts=True,
    )
    LiquidationEvent.objects.bulk_create(
        [
            LiquidationEvent(
                market=market,
                time=ms_to_datetime(int(t)),
                side="long" if is_long else "short",
                price=p,
                quantity=q,
                notional_usd=round(p * q, 2),
                source="demo",
            )
            for t, is_long, p, q in zip(
                events.time.tolist(),
                events.is_long.tolist(),
                events.price.tolist(),
                events.quantity.tolist(),
                strict=True,
            )
        ],
        ignore_conflicts=True,
    )
    last = ms_to_datetime(int(bars.ts[-1]))
    cutoff = last - timedelta(milliseconds=KEEP_MS)
    market.bars.filter(time__lt=cutoff).delete()
    market.events.filter(time__lt=cutoff).delete()
    market.metrics_rows.filter(stamped_at__lt=cutoff).delete()
    Market.objects.filter(pk=market.pk).update(last_bar_at=last, last_error="")
