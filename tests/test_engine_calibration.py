"""Calibration: weights fitted to real liquidations, correlation, zone hit rate and coverage."""

from __future__ import annotations

import numpy as np
import pytest

from maps.engine import Bars, EngineError, Events, Params, Tier, run
from maps.engine.calibration import bucket_events, correlation, nnls

STEP = 300_000
T0 = 1_704_067_200_000


def volatile_bars(n: int, seed: int, vol: float) -> Bars:
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    volume = rng.uniform(10, 100, n)
    return Bars(
        ts=T0 + np.arange(n) * STEP,
        open=open_,
        high=np.maximum(open_, close) * (1 + np.abs(rng.normal(0, vol / 2, n))),
        low=np.minimum(open_, close) * (1 - np.abs(rng.normal(0, vol / 2, n))),
        close=close,
        volume=volume,
        taker_buy_volume=volume * rng.uniform(0, 1, n),
        open_interest=1e4 * np.exp(np.cumsum(rng.normal(0, 0.004, n))),
    )


def unit_series(bars: Bars, params: Params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-tier liquidations at weight 1 (every prior weight is positive here) and step times."""
    result = run(bars, params)
    return result.liq_long / params.weights, result.liq_short / params.weights, result.liq_times


def events_from(series_long, series_short, times, price=30_000.0) -> Events:
    """One real event per side and step carrying that step's liquidated notional."""
    time, is_long, notional = [], [], []
    for i, t in enumerate(times.tolist()):
        for long, usd in ((True, series_long[i]), (False, series_short[i])):
            if usd > 0:
                time.append(t + 1_000)
                is_long.append(long)
                notional.append(usd)
    return Events(time, is_long, np.full(len(time), price), notional)


def test_it_solves_non_negative_least_squares():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert nnls(a, np.array([1.0, 2.0, 3.0])) == pytest.approx([1.0, 2.0])
    assert nnls(np.eye(2), np.array([1.0, -1.0])) == pytest.approx([1.0, 0.0])
    assert nnls(np.array([[1.0], [1.0]]), np.array([-1.0, -2.0])) == pytest.approx([0.0])
    # unconstrained least squares would give a negative second weight here
    b = np.array([[1.0, 1.0], [1.0, 2.0], [1.0, 3.0]])
    x = nnls(b, np.array([3.0, 2.0, 1.0]))
    assert x[1] == 0.0 and x[0] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("seed", "truth"),
    [
        (1, [0.30, 0.10, 0.20, 0.25, 0.15]),
        (2, [0.05, 0.45, 0.10, 0.10, 0.30]),
        (2, [0.40, 0.00, 0.30, 0.00, 0.30]),
    ],
)
def test_it_recovers_the_weights_the_events_were_built_from(seed, truth):
    bars = volatile_bars(800, seed, 0.006)
    params = Params(window_ms=800 * STEP)
    c_long, c_short, times = unit_series(bars, params)
    assert np.linalg.matrix_rank(np.vstack([c_long, c_short])) == 5
    truth = np.array(truth)
    events = events_from(c_long @ truth, c_short @ truth, times)
    calibration = run(bars, params, events).calibration
    assert calibration["identified"] == [True] * 5
    assert calibration["weights"] == pytest.approx(truth, abs=1e-9)
    assert calibration["scale"] == pytest.approx(1.0, rel=1e-9)
    assert calibration["corr_long"] == pytest.approx(1.0, abs=1e-9)
    assert calibration["corr_short"] == pytest.approx(1.0, abs=1e-9)
    assert calibration["events_used"] == len(events) and calibration["events_outside"] == 0


def test_it_reports_the_raw_scale_of_over_estimation():
    bars = volatile_bars(800, 1, 0.006)
    params = Params(window_ms=800 * STEP)
    c_long, c_short, times = unit_series(bars, params)
    truth = np.array([0.30, 0.10, 0.20, 0.25, 0.15])
    events = events_from(0.25 * (c_long @ truth), 0.25 * (c_short @ truth), times)
    calibration = run(bars, params, events).calibration
    assert calibration["scale"] == pytest.approx(0.25, rel=1e-9)
    assert calibration["weights"] == pytest.approx(truth, abs=1e-9)


def test_it_fits_a_tier_whose_prior_weight_is_zero():
    bars = volatile_bars(800, 2, 0.006)
    fitted = Params(window_ms=800 * STEP, tiers=(Tier(10, 0.5), Tier(50, 0.5)))
    c_long, c_short, times = unit_series(bars, fitted)
    events = events_from(c_long @ [0.7, 0.3], c_short @ [0.7, 0.3], times)
    prior = Params(window_ms=800 * STEP, tiers=(Tier(10, 1.0), Tier(50, 0.0)))
    result = run(bars, prior, events)
    assert result.liq_long[:, 1].sum() == 0.0  # the configured map has no 50x positions
    assert result.calibration["identified"] == [True, True]
    assert result.calibration["weights"] == pytest.approx([0.7, 0.3], abs=1e-9)
    assert result.calibration["scale"] == pytest.approx(1.0, rel=1e-9)


def test_it_keeps_the_prior_weight_of_a_tier_it_cannot_identify():
    bars = volatile_bars(800, 0, 0.002)  # calm: 5x and 10x positions never liquidate
    params = Params(window_ms=800 * STEP)
    c_long, c_short, times = unit_series(bars, params)
    truth = np.array([0.0, 0.0, 0.2, 0.2, 0.2])
    events = events_from(c_long @ truth, c_short @ truth, times)
    calibration = run(bars, params, events).calibration
    assert calibration["identified"] == [False, False, True, True, True]
    # 5x and 10x keep 0.15 + 0.30; the fitted 1/3 each fill the remaining 0.55
    assert calibration["weights"] == pytest.approx([0.15, 0.30, 0.55 / 3, 0.55 / 3, 0.55 / 3])
    assert calibration["scale"] == pytest.approx(0.6 / 0.55, rel=1e-9)


def test_it_reports_a_null_scale_and_keeps_the_weights_without_an_event_inside():
    bars = volatile_bars(200, 1, 0.006)
    params = Params(window_ms=200 * STEP)
    far = Events([T0 - 10 * STEP, T0 + 10**9], [True, False], [1.0, 1.0], [5.0, 5.0])
    calibration = run(bars, params, far).calibration
    assert calibration["events_used"] == 0 and calibration["events_outside"] == 2
    assert calibration["weights"] == pytest.approx(params.weights.tolist())
    assert calibration["scale"] is None
    assert "no liquidation event of this market" in calibration["reason"]
    assert calibration["corr_long"] is None and calibration["corr_short"] is None
    assert calibration["hit_rate"] is None and calibration["coverage"] is None


def test_it_buckets_events_into_simulated_steps_by_open_time():
    ts = np.array([T0, T0 + STEP, T0 + 2 * STEP, T0 + 4 * STEP])  # a gap after step 2
    times = [T0 + 5, T0 + STEP, T0 + 2 * STEP - 1, T0 + 3 * STEP, T0 + 4 * STEP + STEP - 1]
    events = Events(times, [True] * 5, [1.0] * 5, [1.0] * 5)
    assert bucket_events(events, ts, STEP).tolist() == [-1, 1, 1, -1, 3]


def test_it_measures_correlation_or_says_it_cannot():
    assert correlation(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.5])) > 0.99
    assert correlation(np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 0.0])) is None
    assert correlation(np.array([1.0]), np.array([1.0])) is None


def hand_case_bars() -> Bars:
    """Step 1 opens 1000 USD at typical price 100 (even split, flat OI afterwards, no
    turnover); step 2 trades 89..101 and closes at 100."""
    return Bars(
        ts=[T0, T0 + STEP, T0 + 2 * STEP],
        open=[100.0, 100.0, 100.0],
        high=[100.0, 101.0, 101.0],
        low=[100.0, 99.0, 89.0],
        close=[100.0, 100.0, 100.0],
        volume=[1.0, 1.0, 1.0],
        taker_buy_volume=[0.5, 0.5, 0.5],
        open_interest=[0.0, 10.0, 10.0],
    )


def test_it_scores_events_against_the_top_zones_of_the_previous_state():
    # Long LPs 80.32 (5x), 90.36 (10x), 96.39, 98.39, 99.40 hold 50, 300, 50, 50, 50: only the
    # 10x bin is hot (>= 2 x 100), so the long zone is that bin, [90.3, 90.4) at width 0.1.
    # The short zone is the 10x bin around 109.56: [109.5, 109.6).
    tiers = (Tier(5, 0.1), Tier(10, 0.6), Tier(25, 0.1), Tier(50, 0.1), Tier(100, 0.1))
    params = Params(tiers=tiers, long_share="even", holding_ms=None, window_ms=10**9)
    at_step_2 = T0 + 2 * STEP + 1
    events = Events(
        time=[at_step_2, at_step_2, at_step_2, T0 + STEP + 5, T0 + 1],
        is_long=[True, True, False, True, True],
        price=[90.35, 95.0, 109.55, 99.0, 100.0],
        notional=[1000.0, 3000.0, 1000.0, 500.0, 700.0],
    )
    calibration = run(hand_case_bars(), params, events).calibration
    assert calibration["events_used"] == 4 and calibration["events_outside"] == 1
    # hits: the 90.35 long and the 109.55 short; the step-1 event meets an empty state
    assert calibration["hit_rate"] == pytest.approx(2000 / 5500)
    # the long zone covers 0.1 of step 2's 12-wide range; the short zone lies outside it
    assert calibration["coverage"] == pytest.approx(4000 * (0.1 / 12) / 5500)


def test_it_rejects_bad_events_naming_the_event():
    with pytest.raises(EngineError, match=r"event 1 \(2024-01-01T00:00:00Z\): price -1"):
        Events([T0, T0], [True, False], [1.0, -1.0], [1.0, 1.0])
    with pytest.raises(EngineError, match=r"event 0 .*notional nan"):
        Events([T0], [True], [1.0], [float("nan")])
    with pytest.raises(EngineError, match="price has 1 rows, time has 2"):
        Events([T0, T0], [True, False], [1.0], [1.0, 1.0])


@pytest.mark.parametrize("seed", [3, 11])
def test_it_scores_zones_alike_on_the_dense_grid_and_on_occupied_bins_only(seed, monkeypatch):
    # A book spread over more bins than a dense grid may hold is scored one state at a time on its
    # occupied bins; both ways must give the same figures.
    from maps.engine import calibration as calibration_module

    bars = volatile_bars(600, seed, 0.004)
    params = Params(window_ms=10**9)
    rng = np.random.default_rng(seed)
    times = bars.ts[rng.integers(1, len(bars.ts), 300)] + 1_000
    is_long = rng.uniform(size=300) < 0.5
    index = np.searchsorted(bars.ts, times, side="right") - 1
    price = np.where(is_long, bars.low[index], bars.high[index])
    events = Events(times, is_long, price, rng.pareto(1.5, 300) * 1e4 + 100)
    dense = run(bars, params, events).calibration
    monkeypatch.setattr(calibration_module, "MAX_DENSE_ZONE_BINS", 1)
    sparse = run(bars, params, events).calibration
    assert dense["hit_rate"] > 0
    assert sparse["hit_rate"] == pytest.approx(dense["hit_rate"], rel=1e-9)
    assert sparse["coverage"] == pytest.approx(dense["coverage"], rel=1e-9)
