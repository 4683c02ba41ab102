"""The position planner's numbers: liquidation prices with each exchange's maintenance brackets,
where a position sits on the map, a stop beyond the nearest cluster, and "what if price reaches
X" with a fitted impact and a fixed-point cascade. Pure numpy, no Django.

Conventions: prices in quote currency (USDT), sizes in base units, USD notional = size x price.
`docs/model.md` ("Position planner") states every formula and choice made here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SIDES = ("long", "short")
FORMULAS = ("binance", "bybit", "okx")
BASES = ("notional", "quantity")
OKX_TAKER_FEE = 0.0005  # OKX's regular-user taker fee on USDT-margined swaps (0.05 %)
STOP_ATR_BUFFER = 0.5  # the stop lies this many ATRs beyond the cluster's far edge
STOP_MIN_SHARE = 0.05  # clusters that count for the stop: "significant" ones, as in proximity
ATR_HOURS = 14
MAX_CASCADE_ITERATIONS = 500


class RiskError(ValueError):
    """A bad input; `field` names it (side, entry, leverage, size, margin, stop, price)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _positive(value: float, field: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise RiskError(f"{field} must be a positive number, not {value:g}", field)
    return value


# Maintenance brackets.


@dataclass(frozen=True)
class Brackets:
    """An exchange's maintenance-margin table for one market, ascending.

    Bracket i covers [floor[i], cap[i]) of position notional in USD (`basis` "notional": Binance,
    Bybit) or of position size in base units (`basis` "quantity": OKX counts contracts). Its
    maintenance margin is `notional x rate[i] - amount[i]` (Binance's "maintenance amount",
    Bybit's "MM deduction"; 0 on OKX), and no position in it may use more than max_leverage[i].
    """

    floor: np.ndarray
    cap: np.ndarray
    rate: np.ndarray
    amount: np.ndarray
    max_leverage: np.ndarray
    basis: str = "notional"

    def __post_init__(self) -> None:
        for name in ("floor", "cap", "rate", "amount", "max_leverage"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        self.validate()

    @classmethod
    def single(cls, rate: float, max_leverage: float) -> Brackets:
        """One bracket for every size: MODEL.md's formula."""
        return cls([0.0], [math.inf], [rate], [0.0], [max_leverage])

    def __len__(self) -> int:
        return len(self.rate)

    def validate(self) -> None:
        """Raise RiskError (field "brackets") naming the first bad bracket."""
        n = len(self.rate)
        if n == 0:
            raise RiskError("a bracket table needs at least one bracket", "brackets")
        if self.basis not in BASES:
            raise RiskError(f"basis must be notional or quantity, not {self.basis!r}", "brackets")
        shapes = {len(a) for a in (self.floor, self.cap, self.amount, self.max_leverage)}
        if shapes != {n}:
            raise RiskError("every bracket needs a floor, cap, rate, amount, leverage", "brackets")
        for i in range(n):
            where = f"bracket {i + 1}"
            if not (np.isfinite(self.floor[i]) and self.floor[i] >= 0):
                raise RiskError(f"{where}: floor must be >= 0", "brackets")
            if not self.cap[i] > self.floor[i]:
                raise RiskError(f"{where}: cap must lie above its floor", "brackets")
            if not (0 <= self.rate[i] < 1):
                raise RiskError(f"{where}: maintenance rate must lie in [0, 1)", "brackets")
            if not (np.isfinite(self.amount[i]) and self.amount[i] >= 0):
                raise RiskError(f"{where}: maintenance amount must be >= 0", "brackets")
            if not (np.isfinite(self.max_leverage[i]) and self.max_leverage[i] >= 1):
                raise RiskError(f"{where}: max leverage must be >= 1", "brackets")
            if i and self.floor[i] != self.cap[i - 1]:
                raise RiskError(f"{where}: floor must equal the previous cap", "brackets")
        if self.floor[0] != 0:
            raise RiskError("bracket 1 must start at 0", "brackets")

    def index(self, value: np.ndarray | float) -> np.ndarray:
        """The bracket holding each value (notional or size); beyond the last cap: the last."""
        at = np.searchsorted(self.floor, np.asarray(value, dtype=np.float64), side="right") - 1
        return np.clip(at, 0, len(self) - 1)

    def measure(self, quantity: float, price: np.ndarray | float) -> np.ndarray:
        """What the table is indexed by: notional at `price`, or the size itself."""
        price = np.asarray(price, dtype=np.float64)
        if self.basis == "quantity":
            return np.full(price.shape, float(quantity))
        return quantity * price

    def max_leverage_at(self, quantity: float, price: float) -> float:
        return float(self.max_leverage[self.index(self.measure(quantity, price))])


def maintenance_amounts(floor: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Binance's maintenance amount formula, for tables that publish only rates:
    amount[n] = floor[n] x (rate[n] - rate[n-1]) + amount[n-1], amount[0] = 0."""
    floor = np.asarray(floor, dtype=np.float64)
    rate = np.asarray(rate, dtype=np.float64)
    steps = floor[1:] * np.diff(rate)
    return np.concatenate([[0.0], np.cumsum(steps)])


# Liquidation prices.


@dataclass(frozen=True)
class Liquidation:
    """A liquidation price and the bracket it was computed with. A price <= 0 means the margin
    covers a fall to zero (exchanges then show no liquidation price)."""

    price: float
    rate: float
    amount: float
    bracket: int


def liquidation_prices(
    *,
    side: str,
    entry: float,
    quantity: float,
    margin: np.ndarray | float,
    brackets: Brackets,
    formula: str = "binance",
    fee_rate: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Liquidation price of an isolated position for each margin (USD), and the bracket used.

    binance: LP = (M + cum - s Q EP) / (Q mmr - s Q), with the bracket whose range holds the
             notional at LP itself (Binance: recalculate with the bracket at the liquidation
             price when it differs from the bracket at entry);
    bybit:   LP = EP - s (M - MM) / Q, MM = Q EP mmr - deduction, bracket of the value at entry;
    okx:     LP = (Q EP - s M) / (Q (1 - s (mmr + fee))), bracket of the size (contracts);
    with s = +1 for a long, -1 for a short, M the isolated margin, Q the size in base units.
    """
    if side not in SIDES:
        raise RiskError(f"side must be long or short, not {side!r}", "side")
    if formula not in FORMULAS:
        raise RiskError(f"formula must be one of {', '.join(FORMULAS)}", "formula")
    entry = _positive(entry, "entry")
    quantity = _positive(quantity, "size")
    margin = np.atleast_1d(np.asarray(margin, dtype=np.float64))
    s = 1.0 if side == "long" else -1.0
    if formula == "binance":
        return _binance(s, entry, quantity, margin, brackets)
    if formula == "bybit":
        i = np.full(margin.shape, int(brackets.index(brackets.measure(quantity, entry))))
        maintenance = quantity * entry * brackets.rate[i] - brackets.amount[i]
        return entry - s * (margin - maintenance) / quantity, i
    i = np.full(margin.shape, int(brackets.index(brackets.measure(quantity, entry))))
    rate = brackets.rate[i] + fee_rate
    return (quantity * entry - s * margin) / (quantity * (1.0 - s * rate)), i


def _binance(
    s: float, entry: float, quantity: float, margin: np.ndarray, brackets: Brackets
) -> tuple[np.ndarray, np.ndarray]:
    rate, amount = brackets.rate[None, :], brackets.amount[None, :]
    lp = (margin[:, None] + amount - s * quantity * entry) / (quantity * rate - s * quantity)
    held = brackets.measure(quantity, np.maximum(lp, 0.0))
    consistent = (held >= brackets.floor[None, :]) & (held < brackets.cap[None, :])
    at_entry = int(brackets.index(brackets.measure(quantity, entry)))
    chosen = np.where(consistent.any(axis=1), consistent.argmax(axis=1), at_entry)
    return lp[np.arange(len(margin)), chosen], chosen


def liquidation_price(
    *,
    side: str,
    entry: float,
    quantity: float,
    margin: float,
    brackets: Brackets,
    formula: str = "binance",
    fee_rate: float = 0.0,
) -> Liquidation:
    prices, chosen = liquidation_prices(
        side=side,
        entry=entry,
        quantity=quantity,
        margin=margin,
        brackets=brackets,
        formula=formula,
        fee_rate=fee_rate,
    )
    i = int(chosen[0])
    return Liquidation(float(prices[0]), float(brackets.rate[i]), float(brackets.amount[i]), i)


def max_safe_leverage(
    *,
    side: str,
    entry: float,
    quantity: float,
    stop: float,
    brackets: Brackets,
    formula: str = "binance",
    fee_rate: float = 0.0,
) -> int | None:
    """The highest whole leverage (up to the bracket's maximum at entry) whose liquidation price
    stays beyond the stop: below it for a long, above it for a short. None if even 1x does not."""
    stop = _positive(stop, "stop")
    limit = math.floor(brackets.max_leverage_at(quantity, entry))
    leverages = np.arange(1, max(limit, 1) + 1, dtype=np.float64)
    prices, _ = liquidation_prices(
        side=side,
        entry=entry,
        quantity=quantity,
        margin=quantity * entry / leverages,
        brackets=brackets,
        formula=formula,
        fee_rate=fee_rate,
    )
    safe = prices < stop if side == "long" else prices > stop
    if not safe.any():
        return None
    return int(leverages[np.flatnonzero(safe)[-1]])


# The map: cumulative curves as functions of price.


@dataclass(frozen=True)
class Curves:
    """A map's cumulative curves as values at the bin edges, so any price can be read by linear
    interpolation inside its bin. `long_at[k]` is the long notional liquidated if price falls to
    edges[k] (longs with LP >= edges[k]); `short_at[k]` the short notional liquidated if price
    rises to edges[k]. Per tier (`long_tiers`, `short_tiers`: tiers x edges) each position counts
    at its own liquidation price."""

    edges: np.ndarray
    long_at: np.ndarray
    short_at: np.ndarray
    long_tiers: np.ndarray
    short_tiers: np.ndarray
    last_close: float

    @classmethod
    def from_map(
        cls,
        *,
        edges: np.ndarray,
        cum_long: np.ndarray,
        cum_short: np.ndarray,
        map_long: np.ndarray,
        map_short: np.ndarray,
        last_close: float,
        beyond: tuple[float, float] = (0.0, 0.0),
    ) -> Curves:
        """From the engine's map: cum_long[k] holds at edges[k] (LP >= the bin's lower edge),
        cum_short[k] at edges[k + 1] (LP below the bin's upper edge); `beyond` is what each
        side counts at every level (positions whose LP already lies beyond the close)."""
        edges = np.asarray(edges, dtype=np.float64)
        map_long = np.atleast_2d(np.asarray(map_long, dtype=np.float64))
        map_short = np.atleast_2d(np.asarray(map_short, dtype=np.float64))
        long_at = np.append(np.asarray(cum_long, dtype=np.float64), beyond[0])
        short_at = np.insert(np.asarray(cum_short, dtype=np.float64), 0, beyond[1])
        zeros = np.zeros((map_long.shape[0], 1))
        long_tiers = np.hstack([np.cumsum(map_long[:, ::-1], axis=1)[:, ::-1], zeros])
        short_tiers = np.hstack([zeros, np.cumsum(map_short, axis=1)])
        return cls(edges, long_at, short_at, long_tiers, short_tiers, float(last_close))

    def long_to(self, price: float) -> float:
        """Long notional liquidated by a fall to `price` (a price above the close: none but
        those counted at every level)."""
        return float(np.interp(min(price, self.last_close), self.edges, self.long_at))

    def short_to(self, price: float) -> float:
        return float(np.interp(max(price, self.last_close), self.edges, self.short_at))

    def tiers_to(self, price: float) -> tuple[list[float], list[float]]:
        low, high = min(price, self.last_close), max(price, self.last_close)
        long = [float(np.interp(low, self.edges, row)) for row in self.long_tiers]
        short = [float(np.interp(high, self.edges, row)) for row in self.short_tiers]
        return long, short


# Impact and cascades.


@dataclass(frozen=True)
class Impact:
    """Price move per liquidated USD, fitted on a market's history: per step,
    ln(close / previous close) = alpha + per_usd x (short liquidated - long liquidated)."""

    per_usd: float | None
    r2: float | None
    steps: int

    @property
    def identified(self) -> bool:
        return self.per_usd is not None and self.per_usd > 0

    @property
    def bps_per_100m(self) -> float | None:
        """The fitted move per $100M liquidated, in basis points."""
        return None if self.per_usd is None else self.per_usd * 1e8 * 1e4


def impact_fit(
    *, close: np.ndarray, previous: np.ndarray, long_usd: np.ndarray, short_usd: np.ndarray
) -> Impact:
    """Least squares of each step's log return on its net liquidations (shorts push price up,
    longs down). Not identified (per_usd None) with fewer than 3 steps or no liquidation."""
    close = np.asarray(close, dtype=np.float64)
    previous = np.asarray(previous, dtype=np.float64)
    ok = (close > 0) & (previous > 0)
    y = np.log(close[ok] / previous[ok])
    x = (np.asarray(short_usd, dtype=np.float64) - np.asarray(long_usd, dtype=np.float64))[ok]
    n = int(ok.sum())
    if n < 3 or not np.any(x != 0):
        return Impact(None, None, n)
    xc, yc = x - x.mean(), y - y.mean()
    sxx, syy = float(xc @ xc), float(yc @ yc)
    if sxx == 0:
        return Impact(None, None, n)
    beta = float(xc @ yc) / sxx
    r2 = float((xc @ yc) ** 2 / (sxx * syy)) if syy > 0 else 0.0
    return Impact(beta, r2, n)


@dataclass(frozen=True)
class Cascade:
    price: float
    liquidated_usd: float
    iterations: int
    beyond_map: bool


def cascade(*, price: float, curves: Curves, impact: Impact) -> Cascade:
    """How far a move to `price` is likely to run: the liquidations met on the way push price on
    by the fitted impact, which meets more liquidations, to a fixed point
    p = price x exp(-per_usd x long(p)) for a fall (exp(+per_usd x short(p)) for a rise). The
    iteration is monotone and stops at the map's edge (`beyond_map`)."""
    price = _positive(price, "price")
    down = price < curves.last_close
    read = curves.long_to if down else curves.short_to
    edge = float(curves.edges[0] if down else curves.edges[-1])
    if not impact.identified or price == curves.last_close:
        return Cascade(price, read(price), 0, False)
    sign = -1.0 if down else 1.0
    current, count, beyond = price, 0, False
    while count < MAX_CASCADE_ITERATIONS:
        count += 1
        nxt = price * math.exp(sign * impact.per_usd * read(current))
        if (down and nxt <= edge) or (not down and nxt >= edge):
            current, beyond = edge, True
            break
        converged = abs(nxt - current) <= 1e-9 * price
        current = nxt
        if converged:
            break
    return Cascade(current, read(current), count, beyond)


# Volatility and stops.


def hourly_atr(
    *, ts: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, hours: int = ATR_HOURS
) -> float | None:
    """Average true range of the last `hours` whole hours: steps grouped by UTC hour (high of
    highs, low of lows, last close), true range against the previous hour's close, plain mean.
    None with fewer than two hours of data."""
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) == 0:
        return None
    hour = ts // 3_600_000
    starts = np.flatnonzero(np.r_[True, hour[1:] != hour[:-1]])
    if len(starts) < 2:
        return None
    h = np.maximum.reduceat(np.asarray(high, dtype=np.float64), starts)
    lo = np.minimum.reduceat(np.asarray(low, dtype=np.float64), starts)
    last = np.r_[starts[1:] - 1, len(ts) - 1]
    c = np.asarray(close, dtype=np.float64)[last]
    tr = np.maximum(h[1:], c[:-1]) - np.minimum(lo[1:], c[:-1])
    return float(tr[-hours:].mean())


def cluster_at(clusters: list[dict], side: str, price: float) -> dict | None:
    """The cluster of `side` whose range holds `price`, if any."""
    for cluster in clusters:
        if cluster["side"] == side and cluster["price_low"] <= price <= cluster["price_high"]:
            return cluster
    return None


def nearest_cluster(clusters: list[dict], side: str, price: float) -> dict | None:
    """The cluster of `side` whose nearer edge is closest to `price`."""
    same = [c for c in clusters if c["side"] == side]
    if not same:
        return None
    return min(same, key=lambda c: max(c["price_low"] - price, price - c["price_high"], 0.0))


def suggested_stop(
    *,
    side: str,
    entry: float,
    last_close: float,
    clusters: list[dict],
    atr: float | None,
    buffer_atr: float = STOP_ATR_BUFFER,
) -> tuple[float, dict] | None:
    """A stop just beyond the nearest significant cluster on the adverse side, and that cluster.

    For a long: the nearest long cluster (share >= 5 %) that starts below both the entry and the
    last price; the stop lies `buffer_atr` ATRs below its lower edge. For a short: the nearest
    short cluster ending above both, the stop that far above its upper edge. None without one.
    """
    buffer = buffer_atr * (atr or 0.0)
    big = [c for c in clusters if c["side"] == side and c.get("share", 1.0) >= STOP_MIN_SHARE]
    if side == "long":
        below = [c for c in big if c["price_low"] < min(entry, last_close)]
        if not below:
            return None
        cluster = max(below, key=lambda c: c["price_high"])
        stop = cluster["price_low"] - buffer
        return (stop, cluster) if stop > 0 else None
    above = [c for c in big if c["price_high"] > max(entry, last_close)]
    if not above:
        return None
    cluster = min(above, key=lambda c: c["price_low"])
    return cluster["price_high"] + buffer, cluster


def distance_pct(level: float | None, last: float | None) -> float | None:
    """Signed distance in % from the last price to a level (None without both)."""
    if last is None or level is None or level <= 0 or last <= 0:
        return None
    return 100.0 * (level - last) / last


def loss_at(*, side: str, entry: float, quantity: float, stop: float) -> float:
    """What the position loses if closed at the stop (USD, fees left out)."""
    move = entry - stop if side == "long" else stop - entry
    return quantity * move
