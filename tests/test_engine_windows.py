"""run_windows: every window from one pass equals run() on that window, bit for bit."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maps.engine import Bars, EngineError, Params, Tier, run, run_windows

STEP = 300_000
T0 = 1_704_067_200_000
HOUR = 3_600_000
DAY = 86_400_000
WINDOWS = {"12h": 12 * HOUR, "24h": DAY, "3d": 3 * DAY, "7d": 7 * DAY, "30d": 30 * DAY}
ARRAYS = [f.name for f in dataclasses.fields(Bars) if f.name != "long_short_ratio"]


def walk(n: int, seed: int, *, gaps: float = 0.0, zero_oi: float = 0.0) -> Bars:
    """A seeded random walk with OI build-ups and flushes, optional gaps and OI wipe-outs."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.003, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.003, n)))
    oi = 5e4 * np.exp(np.cumsum(rng.normal(0.0002, 0.01, n)))
    oi[rng.random(n) < zero_oi] = 0.0
    volume = np.where(rng.random(n) < 0.05, 0.0, rng.uniform(10, 100, n))
    skips = np.cumsum(rng.random(n) < gaps)
    return Bars(
        ts=T0 + (np.arange(n) + skips) * STEP,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        taker_buy_volume=volume * rng.uniform(0, 1, n),
        open_interest=oi,
        long_short_ratio=rng.uniform(0.4, 3, n),
    )


def by_window(base: Params, windows: dict[str, int] = WINDOWS, **per_window) -> dict:
    return {
        name: dataclasses.replace(base, window_ms=ms, **per_window.get(name, {}))
        for name, ms in windows.items()
    }


def assert_same_result(got, want) -> None:
    """Every array equal element for element (NaN nowhere), every other field equal."""
    for field in dataclasses.fields(want):
        a, b = getattr(got, field.name), getattr(want, field.name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape, field.name
            assert np.array_equal(a, b), field.name
        else:
            assert a == b, field.name


def assert_equals_separate_runs(bars: Bars, params_by_window: dict) -> dict:
    together = run_windows(bars, params_by_window)
    for name, params in params_by_window.items():
        try:
            alone = run(bars, params)
        except EngineError as exc:
            assert together.errors[name] == str(exc)
            assert name not in together.results
            continue
        assert name not in together.errors
        assert_same_result(together.results[name], alone)
    return together.results


def test_it_gives_each_window_exactly_what_a_separate_run_gives():
    bars = walk(12 * 288, seed=7)

    results = assert_equals_separate_runs(bars, by_window(Params(max_columns=200)))

    assert list(results) == list(WINDOWS)
    assert len({len(r.liq_times) for r in results.values()}) == len(WINDOWS)


@pytest.mark.parametrize("long_share", ["taker", "ratio", "candle", "even"])
@pytest.mark.parametrize("holding_ms", [None, HOUR, DAY])
def test_it_matches_separate_runs_in_every_long_share_mode_and_holding_time(long_share, holding_ms):
    bars = walk(4 * 288, seed=11, gaps=0.01, zero_oi=0.002)
    base = Params(long_share=long_share, holding_ms=holding_ms, max_columns=90)

    assert_equals_separate_runs(bars, by_window(base))


def test_it_lets_each_window_keep_its_own_columns_and_bin_width():
    bars = walk(3 * 288, seed=3)
    base = Params(max_columns=500)
    per_window = {"12h": {"max_columns": 7, "bin_bps": 2.5}, "3d": {"bin_bps": 40.0}}

    assert_equals_separate_runs(bars, by_window(base, **per_window))


def test_it_reports_a_window_the_data_cannot_serve_and_computes_the_others():
    bars = walk(2 * 288, seed=5)
    ratio = bars.long_short_ratio.copy()
    ratio[300] = np.nan  # inside the 24h window (rows 288 on), not the 12h one (rows 432 on)
    holed = Bars(**{name: getattr(bars, name) for name in ARRAYS}, long_short_ratio=ratio)
    params = by_window(Params(long_share="ratio"), {"12h": 12 * HOUR, "24h": DAY, "3d": 3 * DAY})

    together = run_windows(holed, params)

    assert list(together.results) == ["12h"]
    assert set(together.errors) == {"24h", "3d"}
    assert "missing at row 300" in together.errors["3d"]
    assert_equals_separate_runs(holed, params)


def test_it_reports_every_window_when_there_is_too_little_data():
    bars = walk(1, seed=1)

    together = run_windows(bars, by_window(Params()))

    assert together.results == {}
    assert set(together.errors) == set(WINDOWS)
    assert all("fewer than 2 steps" in e for e in together.errors.values())


def test_it_refuses_windows_whose_groups_would_differ():
    bars = walk(300, seed=2)
    params = {
        "12h": Params(window_ms=12 * HOUR),
        "24h": Params(window_ms=DAY, mmr=0.005),
    }

    with pytest.raises(EngineError, match="window '24h': mmr differs"):
        run_windows(bars, params)


def test_it_refuses_bad_arguments():
    with pytest.raises(EngineError, match="bars must be a Bars"):
        run_windows([], {"12h": Params()})
    with pytest.raises(EngineError, match="at least one window"):
        run_windows(walk(10, seed=1), {})
    with pytest.raises(EngineError, match="params must be a Params"):
        run_windows(walk(10, seed=1), {"12h": {"window_ms": HOUR}})


TIER_SETS = [
    (Tier(10, 1.0),),
    (Tier(5, 0.2), Tier(25, 0.0), Tier(100, 0.8)),
    (Tier(2, 0.5), Tier(50, 0.5)),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 160),
    seed=st.integers(0, 2**32 - 1),
    gaps=st.sampled_from([0.0, 0.1]),
    zero_oi=st.sampled_from([0.0, 0.05]),
    tiers=st.sampled_from(TIER_SETS),
    long_share=st.sampled_from(["taker", "ratio", "candle", "even"]),
    holding_ms=st.sampled_from([None, STEP, HOUR]),
    windows=st.lists(st.integers(1, 200), min_size=1, max_size=6, unique=True),
    columns=st.integers(1, 40),
)
def test_it_equals_separate_runs_on_any_market(
    n, seed, gaps, zero_oi, tiers, long_share, holding_ms, windows, columns
):
    bars = walk(n, seed, gaps=gaps, zero_oi=zero_oi)
    base = Params(tiers=tiers, long_share=long_share, holding_ms=holding_ms, max_columns=columns)
    params = by_window(base, {f"w{steps}": steps * STEP for steps in windows})

    assert_equals_separate_runs(bars, params)


def test_it_keeps_the_weights_exact_when_a_tier_weighs_nothing():
    weights = [0.3, 0.0, 0.7]
    assert math.isclose(sum(weights), 1.0)
    bars = walk(500, seed=9)
    base = Params(tiers=tuple(Tier(lev, w) for lev, w in zip((5, 20, 50), weights, strict=True)))

    results = assert_equals_separate_runs(bars, by_window(base))

    assert all(r.liq_long[:, 1].sum() == 0 for r in results.values())
