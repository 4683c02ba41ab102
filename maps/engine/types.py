"""The engine's typed inputs and outputs: tiers, parameters, bars, events and the result."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

LONG_SHARE_MODES = ("taker", "ratio", "candle", "even")
TAKER_TOLERANCE = 1e-9
TIME_MIN_MS = 1_262_304_000_000  # 2010-01-01T00:00:00Z
TIME_MAX_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
EVENT_MAX_PRICE = 1e9
EVENT_MAX_NOTIONAL_USD = 1e11
"""Bounds no real market data crosses: a time outside [2010, 2100), a liquidation price above
$1e9 or a notional above $1e11 (a hundred billion) is a broken or hostile input, refused."""


class EngineError(ValueError):
    """Bad input or parameters; the message names the offending row or parameter."""


def iso_utc(ts_ms: int) -> str:
    """An epoch-ms time as ISO 8601 UTC, e.g. 2024-01-01T00:05:00Z."""
    stamp = datetime.fromtimestamp(int(ts_ms) / 1000, tz=UTC)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    if int(ts_ms) % 1000:
        text += f".{int(ts_ms) % 1000:03d}"
    return text + "Z"


def time_problem(ts_ms: float) -> str | None:
    """Why an epoch-ms time cannot be market data, or None."""
    if not math.isfinite(ts_ms) or not TIME_MIN_MS <= ts_ms < TIME_MAX_MS:
        return f"time {num(ts_ms)} ms lies outside 2010-2100"
    return None


def event_problem(time_ms: float, price: float, quantity: float) -> str | None:
    """Why a liquidation (time, average price, base quantity) cannot be real, or None: the
    one check the importer, the stream, the command line and the calibration share."""
    problem = time_problem(time_ms)
    if problem:
        return problem
    for name, value in (("price", price), ("quantity", quantity)):
        if not math.isfinite(value) or value <= 0:
            return f"{name} {num(value)} is not a positive finite number"
    if price > EVENT_MAX_PRICE:
        return f"price {num(price)} is above {num(EVENT_MAX_PRICE)}"
    notional = price * quantity
    if not notional <= EVENT_MAX_NOTIONAL_USD:
        return f"notional {num(notional)} USD is above {num(EVENT_MAX_NOTIONAL_USD)}"
    return None


def num(value: float) -> str:
    """A number as a short, exact-enough string for error messages (41000, not 41000.0)."""
    return f"{float(value):.12g}"


@dataclass(frozen=True)
class Tier:
    leverage: float
    weight: float


DEFAULT_TIERS = (Tier(5, 0.15), Tier(10, 0.30), Tier(25, 0.25), Tier(50, 0.20), Tier(100, 0.10))


@dataclass(frozen=True)
class Params:
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    mmr: float = 0.004
    long_share: str = "taker"
    holding_ms: int | None = 86_400_000
    bin_bps: float = 10.0
    window_ms: int = 7 * 86_400_000
    max_columns: int = 500
    step_ms: int = 300_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", tuple(self.tiers))
        self.validate()

    def validate(self) -> None:
        """Raise EngineError naming the first bad parameter."""
        _check_tiers(self.tiers, self.mmr)
        if self.long_share not in LONG_SHARE_MODES:
            raise EngineError(
                f"long_share must be one of {', '.join(LONG_SHARE_MODES)}, not {self.long_share!r}"
            )
        if self.holding_ms is not None and not _positive_int(self.holding_ms):
            raise EngineError(
                f"holding_ms must be a positive integer or None, not {self.holding_ms}"
            )
        if not (_finite(self.bin_bps) and self.bin_bps > 0):
            raise EngineError(f"bin_bps must be positive, not {self.bin_bps}")
        for name in ("window_ms", "max_columns", "step_ms"):
            if not _positive_int(getattr(self, name)):
                raise EngineError(f"{name} must be a positive integer, not {getattr(self, name)}")

    @property
    def leverages(self) -> np.ndarray:
        return np.array([float(t.leverage) for t in self.tiers])

    @property
    def weights(self) -> np.ndarray:
        return np.array([float(t.weight) for t in self.tiers])


def _finite(value: object) -> bool:
    return isinstance(value, int | float | np.number) and math.isfinite(value)


def _positive_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0


def _check_tiers(tiers: tuple[Tier, ...], mmr: float) -> None:
    if not (_finite(mmr) and 0 <= mmr < 1):
        raise EngineError(f"mmr must lie in [0, 1), not {mmr}")
    if not tiers:
        raise EngineError("at least one leverage tier is needed")
    for k, tier in enumerate(tiers):
        if not isinstance(tier, Tier):
            raise EngineError(f"tier {k} is not a Tier: {tier!r}")
        if not (_finite(tier.leverage) and tier.leverage >= 1):
            raise EngineError(f"tier {k}: leverage must be >= 1, not {tier.leverage}")
        if not (_finite(tier.weight) and tier.weight >= 0):
            raise EngineError(f"tier {k}: weight must be >= 0, not {tier.weight}")
        if tier.leverage * mmr >= 1:
            raise EngineError(
                f"tier {k}: leverage {num(tier.leverage)} x mmr {num(mmr)} must stay below 1"
            )
    total = math.fsum(float(t.weight) for t in tiers)
    if abs(total - 1) > 1e-9:
        raise EngineError(f"tier weights must sum to 1, not {num(total)}")


BAR_FLOAT_FIELDS = ("open", "high", "low", "close", "volume", "taker_buy_volume", "open_interest")


@dataclass(frozen=True)
class Bars:
    """One row per step, ascending ts (int64 ms, the step's open time); the rest float64."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    taker_buy_volume: np.ndarray
    open_interest: np.ndarray
    long_short_ratio: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", _as_ts(self.ts))
        for name in BAR_FLOAT_FIELDS:
            object.__setattr__(self, name, _as_float(getattr(self, name), name))
        if self.long_short_ratio is not None:
            ratio = _as_float(self.long_short_ratio, "long_short_ratio")
            object.__setattr__(self, "long_short_ratio", ratio)
        self.validate()

    def __len__(self) -> int:
        return len(self.ts)

    def where(self, i: int) -> str:
        """'row i (ISO time)', how error messages name a row."""
        return f"row {int(i)} ({iso_utc(self.ts[i])})"

    def validate(self) -> None:
        """Raise EngineError naming the first bad row."""
        n = len(self.ts)
        names = ("ts", *BAR_FLOAT_FIELDS)
        if self.long_short_ratio is not None:
            names += ("long_short_ratio",)
        for name in names:
            if len(getattr(self, name)) != n:
                raise EngineError(f"{name} has {len(getattr(self, name))} rows, ts has {n}")
        self._check_order()
        self._check_values()

    def _check_order(self) -> None:
        step = np.diff(self.ts)
        bad = np.flatnonzero(step <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            if step[i - 1] == 0:
                raise EngineError(f"duplicate step at {self.where(i)}")
            raise EngineError(f"rows out of order at {self.where(i)}")

    def _check_values(self) -> None:
        for name in BAR_FLOAT_FIELDS:
            values = getattr(self, name)
            self._reject(~np.isfinite(values), lambda i, n=name, v=values: f"{n} is {v[i]}")
        for name in ("open", "high", "low", "close"):
            values = getattr(self, name)
            self._reject(
                values <= 0, lambda i, n=name, v=values: f"{n} {num(v[i])} is not positive"
            )
        high, low = self.high, self.low
        self._reject(high < low, lambda i: f"high {num(high[i])} is below low {num(low[i])}")
        top = np.maximum(self.open, self.close)
        self._reject(high < top, lambda i: f"high {num(high[i])} is below open/close {num(top[i])}")
        bottom = np.minimum(self.open, self.close)
        self._reject(
            low > bottom, lambda i: f"low {num(low[i])} is above open/close {num(bottom[i])}"
        )
        for name in ("volume", "taker_buy_volume", "open_interest"):
            values = getattr(self, name)
            self._reject(values < 0, lambda i, n=name, v=values: f"{n} {num(v[i])} is negative")
        taker, volume = self.taker_buy_volume, self.volume
        self._reject(
            taker > volume * (1 + TAKER_TOLERANCE),
            lambda i: f"taker_buy_volume {num(taker[i])} exceeds volume {num(volume[i])}",
        )
        ratio = self.long_short_ratio
        if ratio is not None:
            self._reject(
                np.isinf(ratio) | (ratio <= 0),
                lambda i: f"long_short_ratio {num(ratio[i])} is not positive and finite",
            )

    def _reject(self, mask: np.ndarray, reason: Callable[[int], str]) -> None:
        """Raise for the first row where mask holds, with the reason for that row."""
        bad = np.flatnonzero(mask)
        if bad.size:
            i = int(bad[0])
            raise EngineError(f"{self.where(i)}: {reason(i)}")


def _as_ts(values: object) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise EngineError("ts must be one-dimensional")
    if array.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(array) | (array != np.round(array)))
        if bad.size:
            raise EngineError(
                f"ts at row {int(bad[0])} is not a whole number of ms: {array[bad[0]]}"
            )
    elif array.size and array.dtype.kind not in "iu":
        raise EngineError(f"ts must hold integers (ms), not {array.dtype}")
    return array.astype(np.int64)


def _as_float(values: object, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EngineError(f"{name} must hold numbers: {exc}") from None
    if array.ndim != 1:
        raise EngineError(f"{name} must be one-dimensional")
    return array


@dataclass(frozen=True)
class Events:
    """Real liquidations: time (int64 ms), is_long (the liquidated position was long), price
    and notional (USD)."""

    time: np.ndarray
    is_long: np.ndarray
    price: np.ndarray
    notional: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", _as_ts(self.time))
        object.__setattr__(self, "is_long", np.asarray(self.is_long, dtype=bool))
        object.__setattr__(self, "price", _as_float(self.price, "price"))
        object.__setattr__(self, "notional", _as_float(self.notional, "notional"))
        n = len(self.time)
        for name in ("is_long", "price", "notional"):
            if len(getattr(self, name)) != n:
                raise EngineError(
                    f"events: {name} has {len(getattr(self, name))} rows, time has {n}"
                )
        bad = np.flatnonzero(~np.isfinite(self.price) | (self.price <= 0))
        if bad.size:
            i = int(bad[0])
            raise EngineError(
                f"event {i} ({iso_utc(self.time[i])}): price {self.price[i]} is not positive"
            )
        bad = np.flatnonzero(~np.isfinite(self.notional) | (self.notional < 0))
        if bad.size:
            i = int(bad[0])
            raise EngineError(
                f"event {i} ({iso_utc(self.time[i])}): notional {self.notional[i]} is not >= 0"
            )

    def __len__(self) -> int:
        return len(self.time)


@dataclass
class Result:
    """Everything one run produces; arrays are numpy, see docs/model.md for their meaning."""

    as_of: int
    last_close: float
    step_ms: int
    params: Params
    edges: np.ndarray
    map_long: np.ndarray
    map_short: np.ndarray
    cum_long: np.ndarray
    cum_short: np.ndarray
    heat_times: np.ndarray
    heat_long: np.ndarray
    heat_short: np.ndarray
    liq_times: np.ndarray
    liq_long: np.ndarray
    liq_short: np.ndarray
    clusters: list[dict]
    proximity: dict
    calibration: dict | None = None
    report: dict = field(default_factory=dict)
