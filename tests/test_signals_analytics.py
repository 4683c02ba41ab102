"""maps.analytics.signals alone (no database): the sliding book against the engine, baselines,
RSI, cascades, reversal checklists, sweeps and the backtest's statistics."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from maps import engine
from maps.analytics import signals as S
from maps.engine.types import Bars, Params
from tests.conftest import synthetic_bars
from tests.shock_market import Shock, found_by, shock_market

END_MS = 1_800_000_000_000 // 300_000 * 300_000
STEP = 300_000
DAY_STEPS = 288


def bars_with(base: Bars, **columns) -> Bars:
    fields = {name: getattr(base, name) for name in S.Bars.__dataclass_fields__}
    return Bars(**(fields | columns))


@pytest.fixture(scope="module")
def walk() -> Bars:
    return synthetic_bars(steps=3 * DAY_STEPS, seed=11, price=50_000.0, end_ms=END_MS)


# The book: one run of the model read as the map of a sliding window.


def test_it_reads_the_same_maps_as_the_engine_run_ending_at_each_step(walk):
    params = Params(window_ms=86_400_000)
    book = S.book_build(walk, params)
    steps = np.array([2, 150, 287, 288, 500, 700, len(walk) - 1])
    for moment in S.book_maps(book, steps):
        result = engine.run(S.bars_slice(walk, 0, moment.index + 1), replace(params, max_columns=1))
        significant = [c for c in result.clusters if c["share"] >= S.SIGNIFICANT_SHARE]
        assert len(moment.clusters) == len(significant)
        for ours, theirs in zip(moment.clusters, significant, strict=True):
            for key in ("side", "price_low", "price_high", "peak_price", "distance_pct"):
                assert ours[key] == theirs[key]
            assert ours["notional_usd"] == pytest.approx(theirs["notional_usd"], rel=1e-9)
        assert_same_proximity(moment.proximity, result.proximity)


def assert_same_proximity(ours: dict, theirs: dict) -> None:
    for key in ("nearer", "larger", "magnet", "direction", "last_close"):
        assert ours[key] == theirs[key]
    for side in ("long", "short"):
        if theirs[side] is None:
            assert ours[side] is None
        else:
            assert ours[side] == pytest.approx(theirs[side], rel=1e-9)


def test_it_estimates_each_steps_liquidations_as_the_window_ending_there(walk):
    params = Params(window_ms=12 * 3_600_000)
    long, short = S.book_liquidations(S.book_build(walk, params))
    for t in (10, 144, 400, len(walk) - 1):
        result = engine.run(S.bars_slice(walk, 0, t + 1), replace(params, max_columns=1))
        assert long[t] == pytest.approx(result.liq_long[-1].sum(), rel=1e-9, abs=1e-6)
        assert short[t] == pytest.approx(result.liq_short[-1].sum(), rel=1e-9, abs=1e-6)
    assert (long > 0).any() and (short > 0).any()


def test_it_lists_the_steps_that_end_on_the_hour():
    ts = END_MS - STEP * np.arange(30, -1, -1, dtype=np.int64)
    steps = S.hourly_steps(ts, STEP, int(ts[0]), int(ts[-1]))
    assert np.all((ts[steps] + STEP) % S.HOUR_MS == 0)
    assert np.all(np.diff(steps) == 12) and len(steps) in (2, 3)


# Baselines and RSI.


def test_it_scores_a_step_against_the_week_before_its_hour():
    rng = np.random.default_rng(3)
    n = 9 * DAY_STEPS
    ts = END_MS - STEP * np.arange(n - 1, -1, -1, dtype=np.int64)
    x = rng.pareto(1.5, n) * 100
    baseline = S.trailing_baseline(ts, x, STEP)
    t = n - 7
    hour = int(ts[t]) - int(ts[t]) % S.HOUR_MS
    window = x[(ts >= hour - S.BASELINE_MS) & (ts < hour)]
    median = np.median(window)
    mad = np.median(np.abs(window - median))
    tail = np.percentile(window, 99)
    assert baseline.median[t] == pytest.approx(median)
    assert baseline.scale[t] == pytest.approx(max(1.4826 * mad, (tail - median) / 2.326))
    assert np.isnan(baseline.median[: DAY_STEPS - 1]).all()
    assert np.isfinite(baseline.median[DAY_STEPS + 12 :]).all()


def test_it_keeps_a_scale_when_most_steps_are_zero():
    n = 3 * DAY_STEPS
    ts = END_MS - STEP * np.arange(n - 1, -1, -1, dtype=np.int64)
    x = np.zeros(n)
    x[::40] = 1_000.0
    baseline = S.trailing_baseline(ts, x, STEP)
    assert baseline.median[-1] == 0.0
    assert baseline.scale[-1] > 0


def test_it_computes_wilders_rsi():
    close = np.array([44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89,
                      46.03, 45.61, 46.28, 46.28, 46.00, 46.03, 46.41, 46.22, 45.64])  # fmt: skip
    changes = np.diff(close)
    gain = np.clip(changes[:14], 0, None).mean()
    loss = np.clip(-changes[:14], 0, None).mean()
    expected = [100 - 100 / (1 + gain / loss)]
    for change in changes[14:]:
        gain = (gain * 13 + max(change, 0)) / 14
        loss = (loss * 13 + max(-change, 0)) / 14
        expected.append(100 - 100 / (1 + gain / loss))
    rsi = S.rsi_wilder(close)
    assert np.isnan(rsi[:14]).all()
    assert rsi[14:] == pytest.approx(expected)
    assert rsi[14] == pytest.approx(70.46, abs=0.01)  # Wilder's own worked example
    assert S.rsi_wilder(np.full(20, 3.0))[-1] == 50.0
    assert S.rsi_wilder(np.arange(1.0, 21.0))[-1] == 100.0


# Cascades.


def shocked(rules_source: str, *, flush: bool = True, whale: bool = False):
    """Four calm days, then longs flushed over three steps: price down 4 %, open interest down
    8 % (unless not flush), real liquidations 200 times their usual size. `whale`: one huge real
    liquidation on a calm step instead."""
    base = synthetic_bars(steps=4 * DAY_STEPS, seed=5, price=100.0, end_ms=END_MS)
    n = len(base)
    close, low, open_ = base.close.copy(), base.low.copy(), base.open.copy()
    high, oi = base.high.copy(), base.open_interest.copy()
    real_long = np.full(n, 1_000.0)
    real_long[::7] = 3_000.0
    k = 3 * DAY_STEPS
    if whale:
        real_long[k] = 2_000_000.0
    else:
        drop = np.array([0.985, 0.975, 0.99])
        for i, f in enumerate(drop):
            t = k + i
            open_[t] = close[t - 1]
            close[t] = open_[t] * f
            low[t] = close[t] * 0.995
            high[t] = max(high[t], open_[t] * 1.001)
            real_long[t] = 200_000.0
        after = close[k + 2] / base.close[k + 2]
        close[k + 3 :] *= after
        open_[k + 3 :] *= after
        high[k + 3 :] *= after
        low[k + 3 :] *= after
        if flush:
            oi[k:] *= 0.92
    bars = bars_with(base, open=open_, high=high, low=low, close=close, open_interest=oi)
    real = (real_long, np.full(n, 1_000.0)) if rules_source == "real" else None
    return S.study_build(bars, Params(), real), k


def test_it_finds_a_cascade_in_real_liquidations_with_its_figures():
    study, k = shocked("real")
    cascades, _ = S.study_cascades(study, int(study.ts[0]))
    (cascade,) = cascades
    assert cascade["side"] == "long" and cascade["source"] == "real"
    assert cascade["start"] == study.ts[k] and cascade["end"] == study.ts[k + 2]
    assert cascade["notional_usd"] == pytest.approx(600_000.0)
    assert cascade["price_start"] == pytest.approx(study.prices.open[k])
    assert cascade["price_extreme"] == pytest.approx(study.prices.low[k : k + 3].min())
    assert cascade["oi_change_pct"] == pytest.approx(-8.0, abs=0.2)
    assert study.ts[k] <= cascade["detected"] <= study.ts[k + 2]


def test_it_does_not_call_a_lone_large_liquidation_in_a_calm_market_a_cascade():
    study, _ = shocked("real", whale=True)
    assert S.study_cascades(study, int(study.ts[0]))[0] == []


def test_it_needs_open_interest_to_fall_when_the_liquidations_are_estimated():
    study, k = shocked("estimated")
    cascades, _ = S.study_cascades(study, int(study.ts[0]))
    (cascade,) = [c for c in cascades if c["start"] <= study.ts[k + 2] <= c["end"] + STEP]
    assert cascade["side"] == "long" and cascade["source"] == "estimated"
    assert cascade["oi_score"] >= S.RULES["estimated"].oi_score
    calm, k = shocked("estimated", flush=False)
    found = S.study_cascades(calm, int(calm.ts[0]))[0]
    same = [c for c in found if c["start"] <= calm.ts[k + 2] and c["end"] >= calm.ts[k]]
    # without the fall in open interest only liquidations extreme enough on their own count
    assert all(c["score"] >= S.RULES["estimated"].alone_score for c in same)
    strict = replace(S.RULES["estimated"], alone_score=None)
    assert not [
        c
        for c in S.find_cascades(calm.prices, calm.liquidations, calm.evidence, strict)
        if calm.ts[c.first] <= calm.ts[k + 2] and calm.ts[c.last] >= calm.ts[k]
    ]


def test_it_merges_extreme_steps_within_fifteen_minutes():
    ts = END_MS - STEP * np.arange(9, -1, -1, dtype=np.int64)
    mask = np.zeros(10, dtype=bool)
    mask[[1, 4, 9]] = True  # 1 and 4 are 10 minutes apart; 4 and 9 are 20 minutes apart
    assert S.runs(mask, ts, STEP, S.MERGE_GAP_MS) == [(1, 4), (9, 9)]


@pytest.mark.parametrize("source", ["real", "estimated"])
def test_it_finds_scheduled_shocks_without_flooding(source):
    shocks = [
        Shock(step=2 * DAY_STEPS + 40, side="long", depth=0.05, flush=0.12, steps=3),
        Shock(step=3 * DAY_STEPS + 100, side="short", depth=0.04, flush=0.09, steps=2),
        Shock(step=4 * DAY_STEPS + 10, side="long", depth=0.03, flush=0.06, steps=1),
    ]
    sim = shock_market(seed=8, days=5, end_ms=END_MS, shocks=shocks)
    real = None
    if source == "real":
        real = tuple(
            np.bincount(
                np.searchsorted(sim.bars.ts, sim.events.time[mask], side="right") - 1,
                weights=(sim.events.price * sim.events.quantity)[mask],
                minlength=len(sim.bars),
            )
            for mask in (sim.events.is_long, ~sim.events.is_long)
        )
    study = S.study_build(sim.bars, Params(), real)
    cascades, _ = S.study_cascades(study, int(study.ts[0]))
    assert all(found_by(e, cascades) for e in sim.episodes)
    assert len(cascades) <= 3 * len(sim.episodes)


# Reversal checklists.


def test_it_recognises_a_hammer_and_a_shooting_star():
    assert S.hammer(100.0, 100.4, 97.0, 100.2, "long")
    assert not S.hammer(100.0, 101.0, 99.0, 100.1, "long")  # wicks both sides
    assert S.hammer(100.0, 103.0, 99.8, 99.9, "short")
    assert not S.hammer(100.0, 103.0, 99.8, 99.9, "long")
    assert not S.hammer(100.0, 100.0, 100.0, 100.0, "long")


def test_it_shows_every_reason_of_the_checklist_whether_it_holds_or_not():
    study, _ = shocked("real")
    cascades, _ = S.study_cascades(study, int(study.ts[0]))
    checklist = cascades[0]["reversal"]
    keys = [r["key"] for r in checklist["reasons"]]
    assert keys == ["exhausted", "stalled", "rsi", "divergence", "candle", "open_interest"]
    assert all(isinstance(r["holds"], bool) for r in checklist["reasons"])
    assert checklist["direction"] == "up" and checklist["side"] == "long"
    assert checklist["confirmations"] in (0, 1, 2, 3)
    holds = {r["key"]: r["holds"] for r in checklist["reasons"]}
    momentum = holds["rsi"] or holds["divergence"]
    count = int(momentum) + int(holds["candle"]) + int(holds["open_interest"])
    assert checklist["confirmations"] == count
    assert checklist["confirmed"] == (holds["exhausted"] and holds["stalled"] and count >= 2)
    assert "buy" not in str(checklist).lower()


def test_it_confirms_a_reversal_only_once_the_cascade_faded_and_stalled():
    study, k = shocked("real")
    (cascade,) = S.find_cascades(
        study.prices, study.liquidations, study.evidence, S.RULES["real"], study.covered
    )
    reasons = S.reversal_reasons(study.prices, study.rsi, study.liquidations[0], cascade, k + 30)
    during = reasons.steps <= cascade.last
    assert not reasons.confirmed[during].any()
    assert not reasons.stalled[reasons.steps == cascade.extreme].any()
    assert reasons.exhausted[reasons.steps >= cascade.last + 3].all()


# Sweeps.


def sweep_prices(lows: list[float], closes: list[float]) -> S.Prices:
    n = len(lows)
    ts = END_MS - STEP * np.arange(n - 1, -1, -1, dtype=np.int64)
    close = np.array(closes)
    low = np.array(lows)
    return S.Prices(ts, close, np.maximum(close, 101.0), low, close, np.ones(n), STEP)


def moment_with_long_cluster(close: float = 100.0) -> S.MomentMap:
    cluster = {
        "side": "long",
        "price_low": 95.0,
        "price_high": 96.0,
        "peak_price": 95.5,
        "notional_usd": 5e6,
        "share": 0.4,
        "distance_pct": -4.0,
    }
    short = {**cluster, "side": "short", "price_low": 104.0, "price_high": 105.0}
    clusters = [cluster, short]
    proximity = engine.proximity_from_clusters(clusters, close)
    return S.MomentMap(0, END_MS, close, clusters, proximity)


def test_it_marks_a_sweep_that_closes_back_within_the_hour_as_a_fake_breakout():
    lows = [100, 99, 94.5, 95.5, 97, *([99] * 60)]
    closes = [100, 99.5, 95.2, 96.5, 98, *([100] * 60)]
    prices = sweep_prices(lows, closes)
    (sweep,) = S.find_sweeps(prices, [replace(moment_with_long_cluster(), index=0)])
    assert sweep["side"] == "long" and sweep["time"] == prices.ts[2]
    assert sweep["fake"] is True and sweep["back_at"] == prices.ts[3]
    assert sweep["depth_pct"] == pytest.approx(100 * 0.5 / 95)
    assert sweep["return_1h_pct"] == pytest.approx(100 * (closes[14] / closes[2] - 1))
    assert sweep["opposite"]["price_low"] == 104.0


def test_it_tells_a_real_breakout_and_an_undecided_sweep():
    held = sweep_prices([100, 94.0, *([93.0] * 20)], [100, 94.5, *([93.5] * 20)])
    (sweep,) = S.find_sweeps(held, [moment_with_long_cluster()])
    assert sweep["fake"] is False and sweep["back_at"] is None
    assert sweep["depth_pct"] == pytest.approx(100 * 2 / 95)
    early = sweep_prices([100, 99, 94.0], [100, 99, 94.5])
    (sweep,) = S.find_sweeps(early, [moment_with_long_cluster()])
    assert sweep["fake"] is None and sweep["return_1h_pct"] is None


def test_it_watches_only_clusters_on_their_own_side_of_the_price():
    inside = moment_with_long_cluster(close=95.5)  # price inside the long cluster
    prices = sweep_prices([95.5, 94.0, 94.0], [95.5, 94.5, 94.5])
    assert [s["side"] for s in S.find_sweeps(prices, [inside])] == []


# The backtest's statistics.


def test_it_says_too_few_instead_of_a_rate():
    small = S.rate_summary(np.ones(5), np.full(5, 0.5), np.arange(5), 10, 1)
    assert small["enough"] is False and small["cases"] == 5
    assert small["hit_rate"] is None and small["edge_low"] is None
    days = np.repeat(np.arange(3), 20)
    assert S.rate_summary(np.ones(60), np.full(60, 0.5), days, 30, 5)["enough"] is False


def test_it_gives_the_edge_with_a_bootstrap_interval_around_it():
    rng = np.random.default_rng(0)
    hit = (rng.random(400) < 0.6).astype(float)
    chance = np.full(400, 0.5)
    days = np.repeat(np.arange(20), 20)
    out = S.rate_summary(hit, chance, days, 30, 5)
    assert out["enough"] and out["cases"] == 400 and out["groups"] == 20
    assert out["hit_rate"] == pytest.approx(hit.mean())
    assert out["edge"] == pytest.approx(hit.mean() - 0.5)
    assert out["edge_low"] < out["edge"] < out["edge_high"]
    assert out == S.rate_summary(hit, chance, days, 30, 5)  # seeded: the same every time
