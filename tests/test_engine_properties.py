"""Properties that hold on any input: conservation, monotone curves, sane liquidation prices,
heatmap columns adding up, and bad rows always named."""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from maps.engine import Bars, EngineError, Params, Tier, run, simulate
from maps.engine.simulate import build_path, open_groups

STEP = 300_000
T0 = 1_704_067_200_000
LEVERAGES = (1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 75.0, 100.0, 125.0)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def markets(draw) -> tuple[Bars, Params]:
    n = draw(st.integers(2, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    vol = draw(st.sampled_from([0.001, 0.01, 0.05]))
    close = 100 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, vol, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, vol, n)))
    oi = 1e3 * np.exp(np.cumsum(rng.normal(0, 0.05, n)))
    oi[rng.random(n) < draw(st.sampled_from([0.0, 0.15]))] = 0.0
    repeat = rng.random(n) < 0.2
    oi[1:][repeat[1:]] = oi[:-1][repeat[1:]]
    volume = np.where(rng.random(n) < 0.1, 0.0, rng.uniform(1, 10, n))
    gaps = np.cumsum(rng.random(n) < draw(st.sampled_from([0.0, 0.2])))
    bars = Bars(
        ts=T0 + (np.arange(n) + gaps) * STEP,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        taker_buy_volume=volume * rng.uniform(0, 1, n),
        open_interest=oi,
        long_short_ratio=rng.uniform(0.2, 5, n),
    )
    return bars, draw(parameters(n))


@st.composite
def parameters(draw, n: int) -> Params:
    count = draw(st.integers(1, 4))
    leverages = draw(st.lists(st.sampled_from(LEVERAGES), min_size=count, max_size=count))
    raw = draw(st.lists(st.sampled_from([0.0, 0.1, 0.3, 1.0]), min_size=count, max_size=count))
    if sum(raw) == 0:
        raw[0] = 1.0
    weights = [w / sum(raw) for w in raw]
    weights[-1] = 1.0 - math.fsum(weights[:-1])
    tiers = tuple(Tier(lev, w) for lev, w in zip(leverages, weights, strict=True))
    return Params(
        tiers=tiers,
        mmr=draw(st.sampled_from([0.0, 0.004, 0.0075])),
        long_share=draw(st.sampled_from(["taker", "ratio", "candle", "even"])),
        holding_ms=draw(st.sampled_from([None, STEP, 3_600_000, 86_400_000])),
        bin_bps=draw(st.sampled_from([5.0, 10.0, 50.0])),
        window_ms=draw(st.integers(2, n + 5)) * STEP,
        max_columns=draw(st.integers(1, 12)),
    )


def run_or_skip(bars: Bars, params: Params):
    try:
        return run(bars, params)
    except EngineError as exc:
        assert "fewer than 2 steps" in str(exc) or "raise bin_bps" in str(exc)
        return None


@SETTINGS
@given(markets())
def test_it_conserves_notional(market):
    result = run_or_skip(*market)
    if result is None:
        return
    for side in ("long", "short"):
        t = result.report["totals"][side]
        balance = t["active"] + t["liquidated"] + t["closed"]
        assert abs(t["opened"] - balance) <= 1e-9 * max(t["opened"], 1e-300)


@SETTINGS
@given(markets())
def test_it_draws_monotone_cumulative_curves(market):
    result = run_or_skip(*market)
    if result is None:
        return
    assert np.all(np.diff(result.cum_long) <= 0)
    assert np.all(np.diff(result.cum_short) >= 0)
    active = result.report["totals"]
    assert result.cum_long[0] == pytest.approx(active["long"]["active"], rel=1e-9, abs=1e-9)
    assert result.cum_short[-1] == pytest.approx(active["short"]["active"], rel=1e-9, abs=1e-9)


@SETTINGS
@given(markets())
def test_it_never_puts_a_long_liquidation_above_entry_or_a_short_below(market):
    bars, params = market
    try:
        path = build_path(bars, params)
    except EngineError:
        return
    tiers = np.arange(len(params.tiers))
    long = open_groups(path, params, True, tiers)
    short = open_groups(path, params, False, tiers)
    assert np.all(long.lp < path.ep[long.step])
    assert np.all(short.lp > path.ep[short.step])
    dead = long.death < path.n
    assert np.all(path.low[long.death[dead]] <= long.lp[dead])
    assert np.all(long.death > long.step) and np.all(short.death > short.step)


@SETTINGS
@given(markets())
def test_it_fills_each_heatmap_column_with_that_steps_active_notional(market):
    bars, params = market
    result = run_or_skip(bars, params)
    if result is None:
        return
    path = build_path(bars, params)
    active = _active_by_step(path, params, result)
    steps = np.searchsorted(path.ts, result.heat_times)
    scale = max(result.report["totals"]["long"]["opened"], 1.0)
    for heat, side in ((result.heat_long, 0), (result.heat_short, 1)):
        assert np.all(heat >= 0)
        assert np.abs(heat.sum(axis=1) - active[side][steps]).max() <= 1e-9 * scale
    last = result.map_long.sum(axis=0)
    assert np.abs(result.heat_long[-1] - last).max() <= 1e-9 * scale
    assert result.last_close in result.edges.tolist()


def _active_by_step(path, params, result) -> tuple[np.ndarray, np.ndarray]:
    """Active notional per side after each step, by the scalar recurrence on the totals."""
    n = path.n
    share = path.share
    weight = params.weights.sum()
    out = []
    for side, liquidated in ((share, result.liq_long), (1 - share, result.liq_short)):
        active = np.zeros(n)
        for i in range(1, n):
            opened = path.opened[i] * side[i] * weight
            active[i] = (active[i - 1] - liquidated[i - 1].sum()) * path.f[i] + opened
        out.append(active)
    return out[0], out[1]


ROW_DAMAGE = {
    "nan close": ("close", float("nan"), "close is nan"),
    "high below low": ("high", 0.5, "high 0.5 is below low"),
    "negative oi": ("open_interest", -2.0, "open_interest -2 is negative"),
    "negative volume": ("volume", -1.0, "volume -1 is negative"),
}


@settings(max_examples=30, deadline=None)
@given(markets(), st.sampled_from(sorted(ROW_DAMAGE)), st.data())
def test_it_names_the_first_bad_row(market, damage, data):
    bars, _ = market
    column, value, reason = ROW_DAMAGE[damage]
    row = data.draw(st.integers(0, len(bars) - 1))
    values = {name: getattr(bars, name).copy() for name in Bars.__dataclass_fields__}
    values[column][row] = value
    if column == "high":
        values["low"][row] = 1.0
        values["open"][row] = values["close"][row] = 1.0
    with pytest.raises(EngineError, match=rf"^row {row} \(.*\): {reason}"):
        Bars(**values)


@contextmanager
def tiny_chunks():
    """Shrink the states' chunks so that every heatmap column becomes a chunk of its own."""
    saved = simulate.CHUNK_CELLS
    simulate.CHUNK_CELLS = 1
    try:
        yield
    finally:
        simulate.CHUNK_CELLS = saved


@settings(max_examples=25, deadline=None)
@given(markets())
def test_it_draws_the_same_heatmap_however_the_columns_are_chunked(market):
    bars, params = market
    whole = run_or_skip(bars, params)
    if whole is None:
        return
    with tiny_chunks():
        chunked = run(bars, params)
    scale = max(whole.report["totals"]["long"]["opened"], 1.0)
    assert np.abs(whole.heat_long - chunked.heat_long).max(initial=0) <= 1e-9 * scale
    assert np.abs(whole.heat_short - chunked.heat_short).max(initial=0) <= 1e-9 * scale


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 60), min_size=1, max_size=12, unique=True),
    st.lists(st.integers(0, 70), max_size=20),
)
@example(cols=[0, 2, 3, 6], steps=[0, 1, 2, 3, 4, 5, 6, 7])  # ends evenly spaced, middle not
def test_it_finds_the_first_column_at_or_after_a_step(cols, steps):
    cols = np.array(sorted(cols), dtype=np.int64)
    steps = np.array(steps, dtype=np.int64)
    expected = np.searchsorted(cols, steps, side="left")
    assert simulate.column_index(cols, steps).tolist() == expected.tolist()
    even = np.arange(1, 40, 3, dtype=np.int64)  # the heatmap's evenly spaced case
    assert simulate.column_index(even, steps).tolist() == np.searchsorted(even, steps).tolist()
