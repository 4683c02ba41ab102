"""Speed and memory of maps.engine.run on deterministic synthetic markets.

    .venv/bin/python benchmarks/engine_bench.py [--repeat 3] [--calibration]

Targets (issue 3): one year of 5-minute steps (105,120), 5 tiers, ~1,000 bins and a 1,000-column
heatmap in under 1 s and 500 MB on one core; 30 days in under 0.1 s. Also times the plain
per-group reference from tests/engine_reference.py on 7 days, when it exists, and prints the ratio.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from maps.engine import ENGINE_VERSION, Bars, Events, Params, run  # noqa: E402

STEP = 300_000
DAY_STEPS = 288
YEAR = 365 * DAY_STEPS
START = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MB = 1024 * 1024


def synthetic_bars(steps: int, seed: int = 20240101) -> Bars:
    """A random walk pulled back around slow trends, with OI build-ups, flushes and turnover."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    trend = 0.17 * np.sin(2 * np.pi * t / (90 * DAY_STEPS)) + 0.05 * np.sin(t / (9 * DAY_STEPS))
    noise = np.empty(steps)
    level = 0.0
    shocks = rng.normal(0, 0.0016, steps)
    for i in range(steps):  # mean-reverting log price around the trend
        level += shocks[i] - 0.002 * level
        noise[i] = level
    close = 40_000 * np.exp(trend + noise)
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.abs(rng.normal(0, 0.0012, (2, steps)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    volume = rng.gamma(2.0, 60.0, steps)
    taker = volume * np.clip(rng.normal(0.5, 0.12, steps), 0, 1)
    build = rng.normal(0.00025, 0.0025, steps)
    flush = rng.random(steps) < 0.004
    build[flush] -= rng.uniform(0.03, 0.12, flush.sum())
    oi = 80_000 * np.exp(np.cumsum(build) - 0.00025 * t)
    return Bars(
        ts=START + t * STEP,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        taker_buy_volume=taker,
        open_interest=oi,
        long_short_ratio=np.exp(rng.normal(0.1, 0.2, steps)),
    )


def synthetic_events(bars: Bars, result, seed: int = 7) -> Events:
    """Liquidation events near the model's own estimates, for timing calibration."""
    rng = np.random.default_rng(seed)
    times, is_long, price, usd = [], [], [], []
    for side, series in ((True, result.liq_long.sum(1)), (False, result.liq_short.sum(1))):
        steps = np.flatnonzero(series > 0)
        times.append(result.liq_times[steps] + rng.integers(0, STEP, steps.size))
        is_long.append(np.full(steps.size, side))
        row = np.searchsorted(bars.ts, result.liq_times[steps])
        price.append(bars.low[row] if side else bars.high[row])
        usd.append(series[steps] * rng.uniform(0.2, 2.0, steps.size))
    return Events(*(np.concatenate(part) for part in (times, is_long, price, usd)))


def timed(function, repeat: int) -> tuple[float, float, object]:
    """(first, best of repeat) seconds and the last return value."""
    times = []
    value = None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return times[0], min(times), value


def peak_mb(function) -> float:
    gc.collect()
    tracemalloc.start()
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / MB


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def bench_window(label: str, bars: Bars, days: int, repeat: int, limit_s: float, limit_mb=None):
    params = Params(window_ms=days * 86_400_000, max_columns=1000)
    first, best, result = timed(lambda: run(bars, params), repeat)
    peak = peak_mb(lambda: run(bars, params))
    steps = result.report["steps"]
    bins = len(result.edges) - 1
    target = f"< {limit_s:g} s" + (f", < {limit_mb} MB" if limit_mb else "")
    ok = best < limit_s and (limit_mb is None or peak < limit_mb)
    print(
        f"{label:<5} {steps:>7,} steps, {len(params.tiers)} tiers, {bins:,} bins, "
        f"{len(result.heat_times):,} columns: best {best:.3f} s (first {first:.3f} s), "
        f"{steps / best:,.0f} steps/s, peak {peak:.0f} MB traced, process max RSS so far "
        f"{maxrss_mb():.0f} MB  [target {target}] {verdict(ok)}"
    )
    return params, result


def bench_reference(bars: Bars, repeat: int) -> None:
    try:
        from tests.engine_reference import reference_run
    except ImportError as exc:
        print(f"7d    reference skipped: tests/engine_reference.py not importable ({exc})")
        return
    week = Bars(**{k: getattr(bars, k)[-7 * DAY_STEPS :] for k in Bars.__dataclass_fields__})
    params = Params(window_ms=7 * 86_400_000, max_columns=1000)
    _, fast, _ = timed(lambda: run(week, params), repeat)
    _, slow, _ = timed(lambda: reference_run(week, params), 1)
    print(
        f"7d    {7 * DAY_STEPS:,} steps: engine {fast:.4f} s, per-group reference {slow:.2f} s: "
        f"{slow / fast:,.0f}x faster"
    )


def bench_calibration(bars: Bars, days: int, repeat: int) -> None:
    params = Params(window_ms=days * 86_400_000, max_columns=1000)
    events = synthetic_events(bars, run(bars, params))
    first, best, result = timed(lambda: run(bars, params, events), repeat)
    calibration = result.calibration
    print(
        f"calib {days}d, {len(events):,} events: best {best:.2f} s (first {first:.2f} s), "
        f"hit rate {calibration['hit_rate']:.3f} vs coverage {calibration['coverage']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calibration", action="store_true", help="also time calibration")
    args = parser.parse_args()
    print(f"maps.engine {ENGINE_VERSION}, numpy {np.__version__}, Python {sys.version.split()[0]}")
    bars = synthetic_bars(YEAR)
    bench_window("year", bars, 365, args.repeat, 1.0, 500)
    bench_window("30d", bars, 30, args.repeat, 0.1)
    bench_reference(bars, args.repeat)
    if args.calibration:
        bench_calibration(bars, 30, args.repeat)
        bench_calibration(bars, 365, 1)
    print(f"process max RSS {maxrss_mb():.0f} MB")


if __name__ == "__main__":
    main()
