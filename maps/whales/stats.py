"""Whale statistics, pure numpy: who is long (top traders against all accounts), and which steps
were unusual for the market itself.

Long % of a long/short ratio R is 100 R / (1 + R): the top-trader position ratio gives the whales'
long %, the global account ratio the accounts' (retail), and their delta runs from -100 to 100.
Anomalies are robust z-scores, z = (x - median) / (1.4826 MAD), against the market's own trailing
BASELINE_MS (7 days) before each hour: the baseline is recomputed at every hour boundary from the
values strictly before it, so a step is never part of its own baseline. A baseline needs
MIN_BASELINE values; where the MAD is 0 (a mostly flat series) the mean absolute deviation times
1.2533 stands in, and where that is 0 too there is no z. Runs of consecutive steps beyond
Z_THRESHOLD on one metric, with one sign and less than MERGE_MS (1 hour) apart, make one event,
at the largest |z|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
BASELINE_MS = 7 * DAY_MS
REFRESH_MS = HOUR_MS
MIN_BASELINE = 48
Z_THRESHOLD = 3.0
MAD_SCALE = 1.4826
MEAN_AD_SCALE = 1.2533
MERGE_MS = HOUR_MS  # steps beyond the threshold closer than this make one event
TREND_MS = 4 * HOUR_MS
TREND_MIN_PTS = 0.5  # a long % moving less than this over TREND_MS is "steady"

METRICS = {
    "oi_change": "open interest change per step (%)",
    "oi_change_1h": "open interest change per hour (%)",
    "taker_imbalance": "taker imbalance, (buy - sell) / volume",
    "volume": "volume (USD; z on its logarithm)",
    "delta": "whale-vs-retail delta (points)",
    "liquidations": "liquidations over the hour ending with the step (USD; z on log(1 + USD))",
}
ONE_SIDED = ("liquidations",)  # an hour without liquidations is no event
OI_PRICE_KINDS = {
    (1, 1): "longs opening",
    (1, -1): "shorts covering",
    (-1, 1): "shorts opening",
    (-1, -1): "longs closing",
}


@dataclass(frozen=True)
class Inputs:
    """One row per step (ascending open time, ms); NaN where a series has no value."""

    ts: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    taker_buy_volume: np.ndarray
    open_interest: np.ndarray
    global_ratio: np.ndarray
    top_position_ratio: np.ndarray
    top_account_ratio: np.ndarray
    taker_ratio: np.ndarray
    liquidations_long: np.ndarray
    liquidations_short: np.ndarray
    funding_rate: np.ndarray
    step_ms: int = 300_000

    def __len__(self) -> int:
        return len(self.ts)


def long_pct(ratio: np.ndarray) -> np.ndarray:
    """100 R / (1 + R) of a long/short ratio; NaN where R is missing or not positive."""
    ratio = np.asarray(ratio, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = 100.0 * ratio / (1.0 + ratio)
    return np.where(np.isfinite(ratio) & (ratio > 0), pct, np.nan)


def change_pct(values: np.ndarray, ts: np.ndarray, lag_ms: int) -> np.ndarray:
    """100 (x_t / x_{t - lag} - 1), NaN where no step opens exactly lag_ms before."""
    at = np.searchsorted(ts, ts - lag_ms)
    at_clipped = np.minimum(at, len(ts) - 1)
    found = (at < len(ts)) & (ts[at_clipped] == ts - lag_ms)
    before = np.where(found, values[at_clipped], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 100.0 * (values / before - 1.0)
    return np.where(np.isfinite(out), out, np.nan)


def robust_z(
    values: np.ndarray,
    ts: np.ndarray,
    *,
    baseline_ms: int = BASELINE_MS,
    refresh_ms: int = REFRESH_MS,
    min_baseline: int = MIN_BASELINE,
) -> np.ndarray:
    """Each value's robust z against the values of the `baseline_ms` before its hour began."""
    values = np.asarray(values, dtype=np.float64)
    z = np.full(len(values), np.nan)
    if not len(values):
        return z
    blocks = ts // refresh_ms
    starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]])
    ends = np.r_[starts[1:], len(ts)]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        begin = blocks[a] * refresh_ms
        first = int(np.searchsorted(ts, begin - baseline_ms))
        window = values[first:a]
        window = window[np.isfinite(window)]
        if len(window) < min_baseline:
            continue
        median = float(np.median(window))
        deviation = np.abs(window - median)
        scale = MAD_SCALE * float(np.median(deviation))
        if scale <= 0:
            scale = MEAN_AD_SCALE * float(deviation.mean())
        if scale <= 0:
            continue
        z[a:b] = (values[a:b] - median) / scale
    return z


def metric_series(inputs: Inputs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each metric of METRICS: (its value per step, what its z is computed on)."""
    ts, step = inputs.ts, inputs.step_ms
    oi_step = change_pct(inputs.open_interest, ts, step)
    oi_hour = change_pct(inputs.open_interest, ts, HOUR_MS)
    volume = inputs.volume
    with np.errstate(invalid="ignore", divide="ignore"):
        imbalance = np.where(volume > 0, (2 * inputs.taker_buy_volume - volume) / volume, np.nan)
        volume_usd = volume * inputs.close
        log_volume = np.where(volume_usd > 0, np.log(volume_usd), np.nan)
    delta = long_pct(inputs.top_position_ratio) - long_pct(inputs.global_ratio)
    liquidations = rolling_sum(inputs.liquidations_long + inputs.liquidations_short, ts, HOUR_MS)
    return {
        "oi_change": (oi_step, oi_step),
        "oi_change_1h": (oi_hour, oi_hour),
        "taker_imbalance": (imbalance, imbalance),
        "volume": (volume_usd, log_volume),
        "delta": (delta, delta),
        "liquidations": (liquidations, np.log1p(liquidations)),
    }


def rolling_sum(values: np.ndarray, ts: np.ndarray, span_ms: int) -> np.ndarray:
    """The sum of the values of the steps opening in (t - span_ms, t]."""
    total = np.concatenate([[0.0], np.cumsum(np.nan_to_num(values))])
    first = np.searchsorted(ts, ts - span_ms, side="right")
    return total[1:] - total[first]


def oi_price_kind(oi_change: float, price_change: float) -> str:
    """Open interest against price: price up + OI up = longs opening, and so on."""
    if not (np.isfinite(oi_change) and np.isfinite(price_change)):
        return ""
    if oi_change == 0 or price_change == 0:
        return "open interest flat" if oi_change == 0 else "price flat"
    return OI_PRICE_KINDS[(1 if price_change > 0 else -1, 1 if oi_change > 0 else -1)]


def _kind(metric: str, i: int, z: float, inputs: Inputs, moves: dict) -> str:
    if metric in moves:
        oi, price = moves[metric]
        return oi_price_kind(float(oi[i]), float(price[i]))
    if metric == "taker_imbalance":
        return "aggressive buying" if z > 0 else "aggressive selling"
    if metric == "volume":
        return "volume surge" if z > 0 else "volume drought"
    if metric == "delta":
        return "whales lean long against retail" if z > 0 else "whales lean short against retail"
    long_side = inputs.liquidations_long[i] >= inputs.liquidations_short[i]
    return "longs liquidated" if long_side else "shorts liquidated"


def anomalies(
    inputs: Inputs,
    *,
    since_ms: int | None = None,
    threshold: float = Z_THRESHOLD,
    zscores: dict[str, np.ndarray] | None = None,
) -> list[dict]:
    """The |z| >= threshold events from `since_ms` on, oldest first: one per run of steps beyond
    the threshold with one sign, at its largest |z|, with the price move over the hour ending
    with that step and open interest against price over that hour."""
    series = metric_series(inputs)
    zscores = zscores if zscores is not None else metric_zscores(inputs, series)
    price_1h = change_pct(inputs.close, inputs.ts, HOUR_MS)
    oi_1h = series["oi_change_1h"][0]
    moves = {
        "oi_change": (series["oi_change"][0], change_pct(inputs.close, inputs.ts, inputs.step_ms)),
        "oi_change_1h": (oi_1h, price_1h),
    }
    first = 0 if since_ms is None else int(np.searchsorted(inputs.ts, since_ms))
    found = []
    for metric, z in zscores.items():
        if metric in ONE_SIDED:
            z = np.where(z > 0, z, np.nan)
        for i in _run_peaks(z, inputs.ts, threshold, first):
            value = float(series[metric][0][i])
            found.append(
                {
                    "time": int(inputs.ts[i]),
                    "metric": metric,
                    "value": _round(value),
                    "z": round(float(z[i]), 2),
                    "price_change_pct": _round(float(price_1h[i])),
                    "kind": _kind(metric, i, float(z[i]), inputs, moves),
                    "oi_vs_price": oi_price_kind(float(oi_1h[i]), float(price_1h[i])),
                }
            )
    return sorted(found, key=lambda a: (a["time"], a["metric"]))


def metric_zscores(inputs: Inputs, series: dict | None = None) -> dict[str, np.ndarray]:
    series = series if series is not None else metric_series(inputs)
    return {name: robust_z(basis, inputs.ts) for name, (_, basis) in series.items()}


def _run_peaks(z: np.ndarray, ts: np.ndarray, threshold: float, first: int) -> list[int]:
    """The index of the largest |z| of each episode beyond the threshold with one sign (steps
    less than MERGE_MS apart belong to one episode), for episodes peaking at or after `first`."""
    beyond = np.flatnonzero(np.isfinite(z) & (np.abs(np.nan_to_num(z)) >= threshold))
    peaks: list[int] = []
    last_time, last_sign = None, 0
    for i in beyond.tolist():
        sign = 1 if z[i] > 0 else -1
        if peaks and sign == last_sign and ts[i] - last_time < MERGE_MS:
            if abs(z[i]) > abs(z[peaks[-1]]):
                peaks[-1] = i
        else:
            peaks.append(i)
        last_time, last_sign = ts[i], sign
    return [i for i in peaks if i >= first]


def _round(value: float) -> float | None:
    return None if not np.isfinite(value) else float(f"{value:.6g}")


@dataclass(frozen=True)
class Positioning:
    """Who leans which way at the last step with the ratios, and how that moved over TREND_MS."""

    time: int | None
    whale_long_pct: float | None
    retail_long_pct: float | None
    delta: float | None
    whale_trend: float | None  # points over TREND_MS
    retail_trend: float | None
    delta_trend: float | None
    sentence: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def positioning(inputs: Inputs) -> Positioning:
    whale = long_pct(inputs.top_position_ratio)
    retail = long_pct(inputs.global_ratio)
    last = _last_finite(whale, retail)
    if last is None:
        return Positioning(None, None, None, None, None, None, None, _sentence(None, None, None))
    w, r = _value(whale, last), _value(retail, last)
    delta = None if w is None or r is None else w - r
    then = int(np.searchsorted(inputs.ts, inputs.ts[last] - TREND_MS))
    wt = _trend(whale, then, last)
    rt = _trend(retail, then, last)
    dt = None if wt is None or rt is None else wt - rt
    return Positioning(int(inputs.ts[last]), w, r, delta, wt, rt, dt, _sentence(w, wt, r, rt))


def _last_finite(*series: np.ndarray) -> int | None:
    mask = np.zeros(len(series[0]), dtype=bool)
    for s in series:
        mask |= np.isfinite(s)
    found = np.flatnonzero(mask)
    return int(found[-1]) if len(found) else None


def _value(series: np.ndarray, i: int) -> float | None:
    return float(series[i]) if np.isfinite(series[i]) else None


def _trend(series: np.ndarray, then: int, last: int) -> float | None:
    window = series[then : last + 1]
    finite = np.flatnonzero(np.isfinite(window))
    if len(finite) < 2:
        return None
    return float(window[finite[-1]] - window[finite[0]])


def _sentence(
    whale: float | None,
    whale_trend: float | None,
    retail: float | None = None,
    retail_trend: float | None = None,
) -> str:
    """Who is leaning which way, in words."""
    if whale is None and retail is None:
        return "No long/short ratio is published for this market: positioning is unknown."
    if whale is None:
        return (
            f"Accounts {_retail_verb(retail_trend)} ({retail:.1f} % long); the exchange "
            "publishes no top-trader position ratio for this market."
        )
    if retail is None:
        return f"Top traders are {_whale_verb(whale_trend)} ({whale:.1f} % long)."
    same = _direction(whale_trend) == _direction(retail_trend)
    link = "and" if same else "while"
    lean = "more long than" if whale > retail else "more short than" if whale < retail else "as"
    return (
        f"Top traders are {_whale_verb(whale_trend)} {link} accounts {_retail_verb(retail_trend)}: "
        f"whales {whale:.1f} % long, accounts {retail:.1f} %, so whales are {lean} the crowd "
        f"(delta {whale - retail:+.1f} points)."
    )


def _direction(trend: float | None) -> int:
    if trend is None or abs(trend) < TREND_MIN_PTS:
        return 0
    return 1 if trend > 0 else -1


def _whale_verb(trend: float | None) -> str:
    return {1: "adding longs", -1: "reducing longs", 0: "holding their positioning"}[
        _direction(trend)
    ]


def _retail_verb(trend: float | None) -> str:
    return {1: "keep buying", -1: "keep selling", 0: "hold steady"}[_direction(trend)]


def latest_z(zscores: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Each metric's z at its last step with one."""
    out = {}
    for name, z in zscores.items():
        finite = np.flatnonzero(np.isfinite(z))
        out[name] = round(float(z[finite[-1]]), 2) if len(finite) else None
    return out


def screener_figures(inputs: Inputs) -> dict:
    """What the screener shows beside the map: the last price, its change over 24 hours and how
    unusual that change is for the market (robust z of the 24-hour changes), the last funding
    rate, and the robust z of the whales' long % and of the delta at the last step."""
    if not len(inputs):
        return {}
    change = change_pct(inputs.close, inputs.ts, DAY_MS)
    whale = long_pct(inputs.top_position_ratio)
    funding = inputs.funding_rate[np.isfinite(inputs.funding_rate)]
    return {
        "price": _round(float(inputs.close[-1])),
        "change_24h_pct": _round(float(change[-1])),
        "change_24h_z": _last_z(change, inputs.ts),
        "whale_long_z": _last_z(whale, inputs.ts),
        "funding_rate": float(funding[-1]) if len(funding) else None,
        "funding_z": _last_z(inputs.funding_rate, inputs.ts),
    }


def _last_z(values: np.ndarray, ts: np.ndarray) -> float | None:
    """The robust z of the last value (the last hour's baseline only: what robust_z gives it)."""
    hour = int(ts[-1]) // REFRESH_MS * REFRESH_MS
    first = int(np.searchsorted(ts, hour - BASELINE_MS))
    z = robust_z(values[first:], ts[first:])
    return round(float(z[-1]), 2) if len(z) and np.isfinite(z[-1]) else None


def cell_zscores(values: np.ndarray) -> np.ndarray:
    """How unusual each heatmap cell's notional is within the window: the robust z of its
    logarithm against every non-empty cell (median and 1.4826 MAD); NaN for empty cells."""
    values = np.asarray(values, dtype=np.float64)
    z = np.full(values.shape, np.nan)
    filled = np.isfinite(values) & (values > 0)
    if filled.sum() < 3:
        return z
    logs = np.log(values[filled])
    median = float(np.median(logs))
    scale = MAD_SCALE * float(np.median(np.abs(logs - median)))
    if scale <= 0:
        scale = MEAN_AD_SCALE * float(np.abs(logs - median).mean()) or 1.0
    z[filled] = (logs - median) / scale
    return z
