"""Simulated demo data: three exchanges, three coins, a month of 5-minute bars and liquidations,
and two thin altcoin markets (THIN_MARKETS) whose maps grade lower than the majors'.

Each coin follows one simulated market shared by every exchange; each exchange sees it through
a small basis, its own open interest size and its own volume noise. The market switches between
regimes: ranges, trends, and leverage build-ups where open interest climbs while the price grinds
in the crowded direction. The longer a build-up runs, the likelier a cascade: a sharp wick against
the crowd that flushes open interest and liquidates positions at prices inside the wick. Every
number comes from one seeded generator, so the same seed and end time give the same rows.

Beside them, `demo_real_sample` imports a market of real data: 32 hours of Binance HYPEUSDT
(maps/demo_data/), untracked and shown as history, so a newcomer sees real numbers next to the
simulated ones.

Symbols are each exchange's own (BTCUSDT on Binance and Bybit, BTC-USDT-SWAP on OKX); the URL slug
is base + quote in lower case on every exchange (btcusdt), so /okx/btcusdt/ and /binance/btcusdt/
name the same coin. Sizes (bars, open interest, events) are in base units everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from maps.binance_vision import (
    ImportSummary,
    MarketImport,
    collect_files,
    market_for_symbol,
    plan_files,
)
from maps.engine.types import Bars
from maps.levels.demo import demo_books_refill
from maps.metrics_rows import ROW_FIELDS
from maps.models import (
    BAR_VALUE_FIELDS,
    Bar,
    Exchange,
    LiquidationEvent,
    Market,
    MetricsRow,
    ms_to_datetime,
)
from maps.services import market_rows_delete, rows_insert
from maps.whales.demo import demo_metrics_rows, demo_positioning, demo_positioning_rng

STEP_MS = 300_000
DAY_MS = 86_400_000
REAL_SAMPLE = Path(__file__).resolve().parent / "demo_data" / "real"
REAL_SAMPLE_SYMBOL = "HYPEUSDT"

RANGE, TREND_UP, TREND_DOWN, BUILD_LONG, BUILD_SHORT = range(5)
REGIME_STEPS = {RANGE: 72, TREND_UP: 60, TREND_DOWN: 60, BUILD_LONG: 150, BUILD_SHORT: 130}
NEXT_REGIME = {
    RANGE: ([TREND_UP, TREND_DOWN, BUILD_LONG, BUILD_SHORT], [0.25, 0.25, 0.3, 0.2]),
    TREND_UP: ([RANGE, BUILD_LONG], [0.5, 0.5]),
    TREND_DOWN: ([RANGE, BUILD_SHORT], [0.6, 0.4]),
    BUILD_LONG: ([RANGE, TREND_UP], [0.7, 0.3]),
    BUILD_SHORT: ([RANGE, TREND_DOWN], [0.7, 0.3]),
}
DRIFT = {RANGE: 0.0, TREND_UP: 0.16, TREND_DOWN: -0.18, BUILD_LONG: 0.06, BUILD_SHORT: -0.05}
VOL_MULT = {RANGE: 0.85, TREND_UP: 1.15, TREND_DOWN: 1.2, BUILD_LONG: 0.7, BUILD_SHORT: 0.75}
OI_DRIFT = {
    RANGE: -0.0004,
    TREND_UP: 0.0001,
    TREND_DOWN: 0.0,
    BUILD_LONG: 0.0008,
    BUILD_SHORT: 0.0007,
}


@dataclass(frozen=True)
class Coin:
    base: str
    price: float
    vol: float  # standard deviation of a 5-minute log return in calm markets
    open_interest: float  # base units on the largest exchange
    volume: float  # base units per 5 minutes on the largest exchange
    lot: float
    min_order_usd: float
    ratio: float  # typical global long/short account ratio


@dataclass(frozen=True)
class Venue:
    slug: str
    name: str
    ccxt_id: str
    size: float  # open interest and volume relative to the largest exchange
    basis_bps: float

    def symbol(self, base: str, quote: str = "USDT") -> str:
        """The exchange's own symbol: BTC-USDT-SWAP on OKX, BTCUSDT elsewhere."""
        return f"{base}-{quote}-SWAP" if self.slug == "okx" else f"{base}{quote}"


COINS = (
    Coin("BTC", 64_000.0, 0.0011, 80_000.0, 900.0, 0.001, 1_500.0, 1.25),
    Coin("ETH", 3_300.0, 0.0014, 1_900_000.0, 16_000.0, 0.01, 800.0, 1.6),
    Coin("SOL", 145.0, 0.0021, 9_000_000.0, 110_000.0, 1.0, 300.0, 2.1),
)
VENUES = (
    Venue("binance", "Binance", "binanceusdm", 1.0, 0.0),
    Venue("bybit", "Bybit", "bybit", 0.55, 1.2),
    Venue("okx", "OKX", "okx", 0.38, -0.8),
)
CONTRACT_SIZES = {("okx", "BTC"): 0.01, ("okx", "ETH"): 0.1, ("okx", "SOL"): 1.0}


@dataclass(frozen=True)
class ThinMarket:
    """A thin altcoin perpetual listed on one exchange: small open interest, and trades in only
    `trade_share` of the steps (a step without a trade keeps the last price and open interest).
    Its reliability grade comes out of these numbers by the rules, not from a label."""

    coin: Coin
    venue: str
    trade_share: float


THIN_MARKETS = (
    ThinMarket(Coin("GHST", 1.15, 0.0035, 1_300_000.0, 2_600.0, 1.0, 25.0, 1.4), "bybit", 0.45),
    ThinMarket(Coin("ALPACA", 0.085, 0.0032, 90_000_000.0, 420_000.0, 1.0, 25.0, 1.6), "okx", 0.9),
)


@dataclass
class CoinPath:
    """The coin's common market, one entry per step (log units relative to the start)."""

    ts: np.ndarray
    log_close: np.ndarray
    wick_down: np.ndarray
    wick_up: np.ndarray
    sigma: np.ndarray
    log_oi: np.ndarray
    activity: np.ndarray
    taker_share: np.ndarray
    log_ratio: np.ndarray
    premium: np.ndarray  # the funding rate the market would settle at this step
    flush_long: np.ndarray  # share of open interest liquidated on the long side this step
    flush_short: np.ndarray


@dataclass
class VenueEvents:
    time: np.ndarray
    is_long: np.ndarray
    price: np.ndarray
    quantity: np.ndarray


def demo_end_ms(now_ms: int, step_ms: int = STEP_MS) -> int:
    """The open time of the last whole step before `now_ms`."""
    return (now_ms // step_ms) * step_ms - step_ms


def seasonality(ts: np.ndarray) -> np.ndarray:
    """Activity by time of day and week: busiest in the European/US overlap, quiet at weekends."""
    hour = (ts % DAY_MS) / 3_600_000
    weekday = (ts // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; 5 and 6 are the weekend
    day = (
        1.0 + 0.45 * np.exp(-(((hour - 14.5) / 2.5) ** 2)) - 0.25 * np.exp(-(((hour - 4) / 3) ** 2))
    )
    return day * np.where(weekday >= 5, 0.7, 1.0)


class _Regimes:
    """A Markov chain of regimes with geometric durations."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.state = RANGE
        self.left = int(rng.geometric(1 / REGIME_STEPS[RANGE]))

    def advance(self) -> int:
        self.left -= 1
        if self.left <= 0:
            choices, weights = NEXT_REGIME[self.state]
            self.switch(int(self.rng.choice(choices, p=weights)))
        return self.state

    def switch(self, state: int) -> None:
        self.state = state
        self.left = int(self.rng.geometric(1 / REGIME_STEPS[state]))


def simulate_coin(rng: np.random.Generator, coin: Coin, ts: np.ndarray) -> CoinPath:
    """Run the coin's common market over the steps `ts`."""
    n = len(ts)
    season = seasonality(ts)
    out = {name: np.zeros(n) for name in CoinPath.__dataclass_fields__ if name != "ts"}
    regimes = _Regimes(rng)
    log_vol, log_price, anchor, log_oi, oi_ref, log_ratio, heat = (0.0,) * 7
    cascade: list[tuple[float, float, float]] = []  # pending steps: (move, wick, oi flush)
    shock = rng.standard_normal((n, 8))
    for i in range(n):
        state = regimes.advance()
        log_vol = 0.985 * log_vol + 0.07 * shock[i, 0]
        sigma = coin.vol * math.exp(log_vol) * VOL_MULT[state] * (0.75 + 0.25 * season[i])
        if not cascade:
            cascade = _maybe_cascade(rng, state, log_oi - oi_ref, sigma)
            if cascade:
                log_vol += 0.9
        if cascade:
            move, wick, flush = cascade.pop(0)
            if not cascade:
                regimes.switch(
                    RANGE if rng.random() < 0.6 else TREND_UP if move > 0 else TREND_DOWN
                )
                anchor = log_price + move
        else:
            move, wick, flush = 0.0, 0.0, 0.0
        drift = DRIFT[state] * sigma - 0.0003 * log_price
        if state == RANGE:
            drift -= 0.03 * (log_price - anchor)
        else:
            anchor = 0.98 * anchor + 0.02 * log_price
        ret = drift + sigma * shock[i, 1] + move
        log_price += ret
        out["log_close"][i] = log_price
        tail_down, tail_up = sigma * 0.45 * np.abs(shock[i, 2:4])
        out["wick_down"][i] = tail_down + (wick if move < 0 else 0.0)
        out["wick_up"][i] = tail_up + (wick if move > 0 else 0.0)
        out["sigma"][i] = sigma
        growth = OI_DRIFT[state] - 0.0006 * log_oi + 0.0012 * shock[i, 4] - flush
        log_oi += growth
        oi_ref = 0.997 * oi_ref + 0.003 * log_oi
        out["log_oi"][i] = log_oi
        surprise = ret / sigma
        out["activity"][i] = season[i] * (sigma / coin.vol) ** 1.2 * (1 + 4 * flush / 0.02)
        out["taker_share"][i] = 0.5 + 0.18 * math.tanh(0.6 * surprise) + 0.025 * shock[i, 5]
        log_ratio = 0.995 * log_ratio - 0.004 * surprise + 0.01 * shock[i, 6]
        out["log_ratio"][i] = log_ratio
        heat = 0.99 * heat + 0.01 * surprise
        out["premium"][i] = 0.0001 + 0.0015 * heat + 0.002 * (log_oi - oi_ref)
        out["flush_long" if move < 0 else "flush_short"][i] = flush
    return CoinPath(ts=ts, **out)


def _maybe_cascade(
    rng: np.random.Generator, state: int, leverage: float, sigma: float
) -> list[tuple[float, float, float]]:
    """A cascade's steps (move, extra wick, share of OI flushed), or [] when none starts now."""
    crowded = {BUILD_LONG: -1, BUILD_SHORT: 1}.get(state)
    hazard = 1 / 1500
    if crowded is not None:
        hazard += 0.5 * max(0.0, leverage - 0.02) ** 1.5
    if rng.random() >= hazard:
        return []
    direction = crowded or (1 if rng.random() < 0.45 else -1)
    depth = sigma * rng.uniform(14, 34) * (1.4 if crowded else 1.0)
    flush = min(0.2, rng.uniform(0.3, 0.7) * max(leverage, 0.01) + rng.uniform(0.01, 0.04))
    length = int(rng.integers(1, 4))
    parts = rng.dirichlet(np.full(length, 2.0))
    steps = []
    for k, part in enumerate(parts):
        recovery = rng.uniform(0.3, 0.7) if k == length - 1 else rng.uniform(0.0, 0.3)
        move = direction * depth * part * (1 - recovery)
        steps.append((move, depth * part * recovery, flush * part))
    return steps


def venue_series(
    rng: np.random.Generator, coin: Coin, venue: Venue, path: CoinPath
) -> tuple[Bars, np.ndarray]:
    """One exchange's bars for the coin (the common market seen through its basis and size), and
    the funding rate settled by each step's end."""
    n = len(path.ts)
    noise = rng.standard_normal((n, 6))
    basis = venue.basis_bps * 1e-4 + 1.5e-4 * _ar1(noise[:, 0], 0.97)
    close = coin.price * np.exp(path.log_close + basis)
    open_ = np.empty(n)
    open_[0] = coin.price * math.exp(basis[0])
    open_[1:] = close[:-1]
    jitter_down = np.exp(0.1 * noise[:, 1])
    jitter_up = np.exp(0.1 * noise[:, 2])
    low = np.minimum(open_, close) * np.exp(-path.wick_down * jitter_down)
    high = np.maximum(open_, close) * np.exp(path.wick_up * jitter_up)
    volume = coin.volume * venue.size * path.activity * np.exp(0.35 * noise[:, 3] - 0.06)
    share = np.clip(path.taker_share + 0.02 * noise[:, 4], 0.05, 0.95)
    oi = coin.open_interest * venue.size * np.exp(path.log_oi + 0.004 * _ar1(noise[:, 5], 0.99))
    ratio = coin.ratio * np.exp(path.log_ratio + 0.05 * (venue.size - 1))
    decimals = _decimals(coin.price)
    bars = Bars(
        ts=path.ts,
        open=np.round(open_, decimals),
        high=np.round(high, decimals),
        low=np.round(low, decimals),
        close=np.round(close, decimals),
        volume=np.round(volume, 3),
        taker_buy_volume=np.round(volume * share, 3),
        open_interest=np.round(oi, 3),
        long_short_ratio=np.round(ratio, 4),
    )
    return bars, _funding(path, rng)


def _funding(path: CoinPath, rng: np.random.Generator) -> np.ndarray:
    """The last funding rate settled by each step's end: settlements at 00:00, 08:00 and 16:00."""
    settles = (path.ts + STEP_MS) % (8 * 3_600_000) == 0
    rates = np.clip(path.premium + rng.normal(0, 2e-5, len(path.ts)), -0.00075, 0.003)
    last = np.maximum.accumulate(np.where(settles, np.arange(len(path.ts)), 0))
    return np.round(rates[last], 6)


def venue_events(rng: np.random.Generator, coin: Coin, path: CoinPath, bars: Bars) -> VenueEvents:
    """Liquidation orders: a trickle on ordinary wicks, bursts in the cascades, heavy-tailed sizes.

    Longs are liquidated inside the step's down-wick (between its low and the lower of open and
    close), shorts inside its up-wick.
    """
    oi_usd = bars.open_interest * bars.close
    parts = []
    for is_long in (True, False):
        wick = path.wick_down if is_long else path.wick_up
        flush = path.flush_long if is_long else path.flush_short
        stress = (wick / path.sigma) ** 2
        target = oi_usd * (6e-7 * stress + 0.12 * flush)
        parts.append(_orders(rng, coin, bars, target, is_long))
    time, is_long, price, quantity = (np.concatenate(items) for items in zip(*parts, strict=True))
    order = np.argsort(time, kind="stable")
    return VenueEvents(time[order], is_long[order], price[order], quantity[order])


def _orders(
    rng: np.random.Generator, coin: Coin, bars: Bars, target: np.ndarray, is_long: bool
) -> tuple[np.ndarray, ...]:
    alpha, cap = 1.5, 150
    mean_size = coin.min_order_usd * alpha / (alpha - 1)
    counts = np.minimum(rng.poisson(target / mean_size), cap)
    step = np.repeat(np.arange(len(counts)), counts)
    size = coin.min_order_usd * (1 + rng.pareto(alpha, len(step)))
    capped = np.flatnonzero(counts == cap)
    if capped.size:
        sums = np.bincount(step, weights=size, minlength=len(counts))
        scale = np.ones(len(counts))
        scale[capped] = target[capped] / np.maximum(sums[capped], 1.0)
        size *= np.clip(scale[step], 1.0, 4.0)
    size = np.minimum(size, coin.min_order_usd * 3_000)
    if is_long:
        outer, inner = bars.low[step], np.minimum(bars.open, bars.close)[step]
    else:
        outer, inner = bars.high[step], np.maximum(bars.open, bars.close)[step]
    price = outer + (inner - outer) * rng.beta(1.3, 2.0, len(step))
    price = np.round(price, _decimals(coin.price))
    lots = np.maximum(np.round(size / price / coin.lot), 1)
    quantity = np.round(lots * coin.lot, 6)
    time = bars.ts[step] + rng.integers(0, STEP_MS, len(step))
    return time, np.full(len(step), is_long), price, quantity


def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    """A stationary AR(1) series with unit variance driven by `shocks`."""
    out = np.empty_like(shocks)
    level = shocks[0]
    scale = math.sqrt(1 - phi * phi)
    for i, shock in enumerate(shocks):
        level = phi * level + scale * shock if i else level
        out[i] = level
    return out


def _decimals(price: float) -> int:
    """Price decimals like an exchange's tick: 1 for BTC, 2 for ETH and SOL."""
    return 1 if price > 10_000 else 2


def simulate(
    *, seed: int, days: int, end_ms: int
) -> list[tuple[Coin, Venue, Bars, np.ndarray, VenueEvents]]:
    """The whole demo market: for every coin and exchange, its bars, funding rates and
    liquidation events."""
    count = days * DAY_MS // STEP_MS
    ts = end_ms - STEP_MS * np.arange(count - 1, -1, -1, dtype=np.int64)
    out = []
    for c, coin in enumerate(COINS):
        path = simulate_coin(np.random.default_rng([seed, c]), coin, ts)
        for v, venue in enumerate(VENUES):
            rng = np.random.default_rng([seed, c, v + 1])
            bars, funding = venue_series(rng, coin, venue, path)
            out.append((coin, venue, bars, funding, venue_events(rng, coin, path, bars)))
    out += [simulate_thin(seed, k, thin, ts) for k, thin in enumerate(THIN_MARKETS)]
    return out


def simulate_thin(
    seed: int, k: int, thin: ThinMarket, ts: np.ndarray
) -> tuple[Coin, Venue, Bars, np.ndarray, VenueEvents]:
    """A thin market: the coin's simulated market on its one exchange, traded in only some
    steps, with its funding and liquidations."""
    coin, venue = thin.coin, next(v for v in VENUES if v.slug == thin.venue)
    path = simulate_coin(np.random.default_rng([seed, 100 + k]), coin, ts)
    rng = np.random.default_rng([seed, 100 + k, 1])
    bars, funding = venue_series(rng, coin, replace(venue, size=1.0, basis_bps=0.0), path)
    bars = sparse_trading(bars, rng.random(len(ts)) < thin.trade_share)
    events = venue_events(rng, coin, path, bars)
    traded = bars.volume[(events.time - ts[0]) // STEP_MS] > 0  # a liquidation is a trade
    kept = VenueEvents(*(getattr(events, f)[traded] for f in VenueEvents.__dataclass_fields__))
    return coin, venue, bars, funding, kept


def sparse_trading(bars: Bars, traded: np.ndarray) -> Bars:
    """The bars as a thin book prints them: a step without a trade has no volume and keeps the
    last traded price (open = high = low = close) and the open interest; a step with trades
    opens at the last traded price."""
    traded = traded.copy()
    traded[0] = True
    last = np.maximum.accumulate(np.where(traded, np.arange(len(traded)), 0))
    close = bars.close[last]
    open_ = np.concatenate([[bars.open[0]], close[:-1]])
    high = np.where(traded, np.maximum(bars.high, np.maximum(open_, close)), close)
    low = np.where(traded, np.minimum(bars.low, np.minimum(open_, close)), close)
    high = np.maximum(high, open_)
    low = np.minimum(low, open_)
    return Bars(
        ts=bars.ts,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=np.where(traded, bars.volume, 0.0),
        taker_buy_volume=np.where(traded, bars.taker_buy_volume, 0.0),
        open_interest=bars.open_interest[last],
        long_short_ratio=bars.long_short_ratio,
    )


@dataclass
class DemoSummary:
    markets: list[Market] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # real markets left untouched
    bars: int = 0
    events: int = 0


def demo_seed(
    *, seed: int, days: int, end_ms: int, progress: Callable[[str], None] | None = None
) -> DemoSummary:
    """Create (or refill) the demo exchanges and markets with `days` of simulated data.

    Markets that hold real data (is_demo off) are never touched: they are listed in `kept`.
    """
    summary = DemoSummary()
    for coin, venue, bars, funding, events in simulate(seed=seed, days=days, end_ms=end_ms):
        market = _demo_market(coin, venue)
        if market is None:
            summary.kept.append(f"{venue.name} {venue.symbol(coin.base)}")
            continue
        with transaction.atomic():
            _market_refill(market, bars, funding, events)
            demo_metrics_refill(market=market, bars=bars, seed=seed)
            book_days = min(days, settings.LIQSITE_ORDERBOOK_DAYS)
            demo_books_refill(market=market, bars=bars, seed=seed, days=book_days)
        summary.markets.append(market)
        summary.bars += len(bars.ts)
        summary.events += len(events.time)
        if progress:
            progress(f"{market}: {len(bars.ts)} bars, {len(events.time)} liquidation events")
    return summary


def demo_real_sample() -> tuple[Market, ImportSummary | None]:
    """The demo's market of real data (Binance HYPEUSDT, maps/demo_data/real), imported once:
    an existing one that holds bars is left as it is (summary None). It is not tracked: nothing
    fetches it, and the pages show it as history, never as stale."""
    market, _ = market_for_symbol(exchange_slug="binance", symbol=REAL_SAMPLE_SYMBOL)
    if market.bars.exists():
        return market, None
    importer = MarketImport(market)
    for path, kind, first in plan_files(collect_files([REAL_SAMPLE]), symbol=REAL_SAMPLE_SYMBOL):
        importer.import_file(path, kind, first)
    return market, importer.finish()


def _demo_market(coin: Coin, venue: Venue) -> Market | None:
    """The demo market for the coin on the venue, created if missing; None if it holds real data."""
    exchange, _ = Exchange.objects.get_or_create(
        slug=venue.slug, defaults={"name": venue.name, "ccxt_id": venue.ccxt_id, "is_demo": True}
    )
    market, _ = Market.objects.select_related("exchange").get_or_create(
        exchange=exchange,
        slug=f"{coin.base}usdt".lower(),
        defaults={
            "symbol": venue.symbol(coin.base),
            "base": coin.base,
            "quote": "USDT",
            "ccxt_symbol": f"{coin.base}/USDT:USDT",
            "contract_size": CONTRACT_SIZES.get((venue.slug, coin.base), 1.0),
            "is_demo": True,
            "step_ms": STEP_MS,
        },
    )
    return market if market.is_demo and market.step_ms == STEP_MS else None


def _market_refill(market: Market, bars: Bars, funding: np.ndarray, events: VenueEvents) -> None:
    """Replace the market's rows by the simulated ones (raw inserts: the ORM is 10x slower)."""
    market_rows_delete(market=market)
    adapt = connection.ops.adapt_datetimefield_value
    times = [ms_to_datetime(ms) for ms in bars.ts.tolist()]
    columns = [getattr(bars, name).tolist() for name in BAR_VALUE_FIELDS]
    columns.append(funding.tolist())
    rows_insert(
        Bar,
        ["market_id", "time", *DEMO_BAR_FIELDS],
        [(market.pk, adapt(t), *row) for t, *row in zip(times, *columns, strict=True)],
    )
    unique = dict.fromkeys(
        zip(
            events.time.tolist(),
            events.is_long.tolist(),
            events.price.tolist(),
            events.quantity.tolist(),
            strict=True,
        )
    )
    rows_insert(
        LiquidationEvent,
        ["market_id", "time", "side", "price", "quantity", "notional_usd", "source"],
        [
            (
                market.pk,
                adapt(ms_to_datetime(ms)),
                "long" if is_long else "short",
                price,
                quantity,
                round(price * quantity, 2),
                "demo",
            )
            for ms, is_long, price, quantity in unique
        ],
    )
    market.last_bar_at = times[-1]
    market.last_error = ""
    market.save(update_fields=["last_bar_at", "last_error"])


def demo_metrics_refill(*, market: Market, bars: Bars, seed: int) -> int:
    """The market's metrics rows, one closing each bar's step, with the simulated positioning
    series (maps.whales.demo) beside the bars' open interest and account ratio."""
    MetricsRow.objects.filter(market=market).delete()
    if not len(bars.ts):
        return 0
    rng = demo_positioning_rng(
        market_key=f"{market.exchange.slug}:{market.slug}", seed=seed, first_ts=int(bars.ts[0])
    )
    rows = demo_metrics_rows(bars, demo_positioning(bars, rng), market.step_ms)
    adapt = connection.ops.adapt_datetimefield_value
    rows_insert(
        MetricsRow,
        ["market_id", "stamped_at", "snapshot_at", "source", *ROW_FIELDS],
        [
            (
                market.pk,
                adapt(ms_to_datetime(r["stamped_ms"])),
                adapt(ms_to_datetime(r["snapshot_ms"])),
                "demo",
                *(r[name] for name in ROW_FIELDS),
            )
            for r in rows
        ],
    )
    return len(rows)


DEMO_BAR_FIELDS = (*BAR_VALUE_FIELDS, "funding_rate")  # the columns _market_refill writes
