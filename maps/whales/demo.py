"""The demo's positioning series: what a simulated market's metrics rows carry besides open
interest (top traders' ratios by position and by account, the taker buy/sell ratio).

Top traders lean less than the crowd (their log ratio follows a third of the accounts') and drift
on their own: a slow AR(1) that partly leans against the last hour's price move, as whales fading
the crowd do. Numbers come from their own generator, seeded by the market and its first step, so
the bars, events and books of a seed are unchanged.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from maps.engine.types import Bars

PHI = 0.995
NOISE = 0.012
FADE = 0.8  # how much whales lean against the last hour's log return
CROWD_SHARE = 0.35


def demo_positioning_rng(*, market_key: str, seed: int, first_ts: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(market_key.encode()), first_ts // 300_000])


def demo_positioning(
    bars: Bars, rng: np.random.Generator, *, start: float = 0.0
) -> dict[str, np.ndarray]:
    """top_position_ratio, top_account_ratio and taker_ratio per bar; `start` is the whales' own
    drift at the step before the first (so a roll-forward continues the seeded series)."""
    n = len(bars.ts)
    crowd = np.log(bars.long_short_ratio) if bars.long_short_ratio is not None else np.zeros(n)
    log_close = np.log(bars.close)
    hour_return = log_close - np.concatenate([np.full(12, log_close[0]), log_close[:-12]])[:n]
    shocks = rng.standard_normal((n, 2))
    own = np.empty(n)
    drift = start
    for i in range(n):
        drift = PHI * drift + NOISE * shocks[i, 0] - (1 - PHI) * FADE * 10 * hour_return[i]
        own[i] = drift
    top_position = np.exp(CROWD_SHARE * crowd + own)
    top_account = np.exp(0.6 * crowd + 0.5 * own + 0.01 * shocks[:, 1])
    sell = bars.volume - bars.taker_buy_volume
    with np.errstate(divide="ignore", invalid="ignore"):
        taker = np.where(sell > 0, bars.taker_buy_volume / sell, np.nan)
    return {
        "top_position_ratio": np.round(top_position, 4),
        "top_account_ratio": np.round(top_account, 4),
        "taker_ratio": np.round(taker, 4),
    }


def demo_positioning_start(*, top_position_ratio: float | None, long_short_ratio: float | None):
    """The whales' own drift implied by a stored row (0 when it lacks either ratio)."""
    if not top_position_ratio or not long_short_ratio:
        return 0.0
    return math.log(top_position_ratio) - CROWD_SHARE * math.log(long_short_ratio)


def demo_metrics_rows(bars: Bars, positioning: dict[str, np.ndarray], step_ms: int) -> list[dict]:
    """One metrics row per bar, closing its step: snapshot at the step's end, stamped with the
    start of its 5-minute period, as Binance stamps rows since 2024-03-04."""
    rows = []
    for i, ts in enumerate(bars.ts.tolist()):
        snapshot = ts + step_ms
        oi = float(bars.open_interest[i])
        rows.append(
            {
                "stamped_ms": snapshot - 300_000,
                "snapshot_ms": snapshot,
                "open_interest": oi,
                "open_interest_value": round(oi * float(bars.close[i]), 2),
                "long_short_ratio": _finite(bars.long_short_ratio, i),
                "top_account_ratio": _finite(positioning["top_account_ratio"], i),
                "top_position_ratio": _finite(positioning["top_position_ratio"], i),
                "taker_ratio": _finite(positioning["taker_ratio"], i),
            }
        )
    return rows


def _finite(values: np.ndarray | None, i: int) -> float | None:
    if values is None:
        return None
    value = float(values[i])
    return value if math.isfinite(value) else None
