"""Hand-computed cases for each rule of the model (MODEL.md + engine decisions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from maps.engine import Bars, EngineError, Params, Tier, run
from maps.engine.simulate import build_path, open_groups

STEP = 300_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
ONE_TIER = (Tier(10, 1.0),)
LONG_LP_100 = 100 * (1 - 1 / 10) / (1 - 0.004)  # 90.3614...
SHORT_LP_100 = 100 * (1 + 1 / 10) / (1 + 0.004)  # 109.5617...


def make_bars(rows, step=STEP, ts=None, ratio=None) -> Bars:
    """rows: dicts with high, low, close, oi and optionally open, volume, taker."""
    n = len(rows)
    close = [r["close"] for r in rows]
    return Bars(
        ts=np.array(ts if ts is not None else [T0 + i * step for i in range(n)], dtype=np.int64),
        open=[r.get("open", r["close"]) for r in rows],
        high=[r["high"] for r in rows],
        low=[r["low"] for r in rows],
        close=close,
        volume=[r.get("volume", 10.0) for r in rows],
        taker_buy_volume=[r.get("taker", 5.0) for r in rows],
        open_interest=[r["oi"] for r in rows],
        long_short_ratio=ratio,
    )


def flat(price, oi, **extra) -> dict:
    return {"high": price, "low": price, "close": price, "oi": oi, **extra}


def params(**kw) -> Params:
    base = {"tiers": ONE_TIER, "long_share": "even", "holding_ms": None, "window_ms": 10**12}
    base.update(kw)
    return Params(**base)


def opening_at_100(oi=10.0) -> dict:
    """A step with typical price (101 + 99 + 100) / 3 = 100."""
    return {"high": 101.0, "low": 99.0, "close": 100.0, "oi": oi}


def bin_of(result, price) -> int:
    return int(np.searchsorted(result.edges, price, side="right")) - 1


# --- liquidation prices ---------------------------------------------------------------------


def test_it_places_liquidation_prices_by_the_isolated_formula():
    bars = make_bars([flat(100.0, 0.0), opening_at_100()])
    p = params()
    path = build_path(bars, p)
    long = open_groups(path, p, True, np.array([0]))
    short = open_groups(path, p, False, np.array([0]))
    assert long.lp.tolist() == [pytest.approx(90.36144578313253, rel=1e-15)]
    assert short.lp.tolist() == [pytest.approx(109.56175298804781, rel=1e-15)]
    assert long.base.tolist() == [500.0] and short.base.tolist() == [500.0]


def test_it_puts_each_group_in_the_bin_of_its_liquidation_price():
    result = run(make_bars([flat(100.0, 0.0), opening_at_100()]), params())
    assert result.map_long[0, bin_of(result, LONG_LP_100)] == pytest.approx(500.0)
    assert result.map_short[0, bin_of(result, SHORT_LP_100)] == pytest.approx(500.0)
    assert result.map_long.sum() == pytest.approx(500.0)
    assert result.map_short.sum() == pytest.approx(500.0)


# --- consumption ----------------------------------------------------------------------------


def test_it_consumes_a_long_when_the_low_equals_its_liquidation_price():
    rows = [flat(100.0, 0.0), opening_at_100(), {**flat(100.0, 10.0), "low": LONG_LP_100}]
    result = run(make_bars(rows), params())
    assert result.liq_long[:, 0].tolist() == [0.0, 500.0]
    assert result.liq_short[:, 0].tolist() == [0.0, 0.0]
    assert result.map_long.sum() == 0.0
    assert result.map_short.sum() == pytest.approx(500.0)


def test_it_consumes_a_short_when_the_high_equals_its_liquidation_price():
    rows = [flat(100.0, 0.0), opening_at_100(), {**flat(100.0, 10.0), "high": SHORT_LP_100}]
    result = run(make_bars(rows), params())
    assert result.liq_short[:, 0].tolist() == [0.0, 500.0]
    assert result.liq_long.sum() == 0.0


def test_it_keeps_a_long_whose_liquidation_price_is_just_below_the_low():
    low = float(np.nextafter(LONG_LP_100, np.inf))
    rows = [flat(100.0, 0.0), opening_at_100(), {**flat(100.0, 10.0), "low": low}]
    result = run(make_bars(rows), params())
    assert result.liq_long.sum() == 0.0
    assert result.map_long.sum() == pytest.approx(500.0)


def test_it_never_consumes_new_groups_on_their_own_step():
    wide = {"open": 110.0, "high": 110.0, "low": 80.0, "close": 110.0, "oi": 10.0}  # EP 100
    rows = [flat(100.0, 0.0), wide, flat(100.0, 10.0), flat(90.0, 10.0)]
    result = run(make_bars(rows), params())
    assert result.liq_long[:, 0].tolist() == [0.0, 0.0, 500.0]
    assert result.liq_short.sum() == 0.0
    assert result.map_short.sum() == pytest.approx(500.0)


# --- closing: turnover and pro-rata ---------------------------------------------------------


def test_it_turns_positions_over_with_the_holding_time():
    survive = math.exp(-STEP / 3_600_000)
    rows = [flat(100.0, 0.0), opening_at_100(), flat(102.0, 10.0)]
    result = run(make_bars(rows), params(holding_ms=3_600_000))
    old = bin_of(result, LONG_LP_100)
    new = bin_of(result, 102 * 0.9 / 0.996)
    assert result.map_long[0, old] == pytest.approx(500 * survive, rel=1e-12)
    # S = survive * 10 is expected to stay; the rest reopens at EP 102: (10 - S) * 102 / 2
    assert result.map_long[0, new] == pytest.approx(510 * (1 - survive), rel=1e-12)
    totals = result.report["totals"]["long"]
    assert totals["closed"] == pytest.approx(500 * (1 - survive), rel=1e-12)
    assert totals["opened"] == pytest.approx(500 + 510 * (1 - survive), rel=1e-12)


def test_it_closes_pro_rata_when_open_interest_falls_faster_than_turnover():
    rows = [flat(100.0, 0.0), opening_at_100(), flat(100.0, 6.0)]
    result = run(make_bars(rows), params(holding_ms=3_600_000))
    assert result.map_long.sum() == pytest.approx(300.0, rel=1e-12)
    assert result.map_short.sum() == pytest.approx(300.0, rel=1e-12)
    assert result.report["totals"]["long"]["closed"] == pytest.approx(200.0, rel=1e-12)
    assert result.report["totals"]["long"]["opened"] == pytest.approx(500.0)


def test_it_handles_open_interest_falling_to_zero_and_coming_back():
    rows = [flat(100.0, 0.0), opening_at_100(), flat(100.0, 0.0), flat(120.0, 5.0)]
    result = run(make_bars(rows), params(holding_ms=3_600_000))
    assert result.map_long.sum() == pytest.approx(5 * 120 / 2)
    assert result.map_long[0, bin_of(result, 120 * 0.9 / 0.996)] == pytest.approx(300.0)
    assert result.heat_long[1].sum() == 0.0  # after the step with OI 0 nothing is left
    totals = result.report["totals"]["long"]
    assert totals["closed"] == pytest.approx(500.0)
    assert totals["liquidated"] == 0.0


def test_it_opens_nothing_while_open_interest_is_flat_without_turnover():
    rows = [flat(100.0, 10.0), flat(101.0, 10.0), flat(99.0, 10.0)]
    result = run(make_bars(rows), params())
    assert result.report["totals"]["long"]["opened"] == 0.0
    assert result.map_long.sum() == 0.0 and result.map_short.sum() == 0.0


# --- long share modes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("volume", "taker", "share"),
    [(10.0, 3.0, 0.3), (10.0, 9.5, 0.9), (10.0, 0.2, 0.1), (0.0, 0.0, 0.5)],
)
def test_it_takes_the_long_share_from_taker_volume(volume, taker, share):
    rows = [flat(100.0, 0.0), {**opening_at_100(), "volume": volume, "taker": taker}]
    result = run(make_bars(rows), params(long_share="taker"))
    assert result.report["totals"]["long"]["opened"] == pytest.approx(1000 * share)
    assert result.report["totals"]["short"]["opened"] == pytest.approx(1000 * (1 - share))


def test_it_takes_the_long_share_from_the_long_short_ratio():
    rows = [flat(100.0, 0.0), opening_at_100()]
    result = run(make_bars(rows, ratio=[1.0, 3.0]), params(long_share="ratio"))
    assert result.report["totals"]["long"]["opened"] == pytest.approx(750.0)
    assert result.report["totals"]["short"]["opened"] == pytest.approx(250.0)


def test_it_rejects_ratio_mode_on_a_step_without_a_ratio_naming_the_step():
    rows = [flat(100.0, 0.0), opening_at_100(), opening_at_100(20.0)]
    with pytest.raises(EngineError, match=r"row 2 \(2024-01-01T00:10:00Z\)"):
        run(make_bars(rows, ratio=[1.0, 2.0, np.nan]), params(long_share="ratio"))
    with pytest.raises(EngineError, match=r"long_short_ratio.*row 0"):
        run(make_bars(rows), params(long_share="ratio"))


def test_it_needs_a_ratio_on_every_window_step_but_not_before_the_window():
    rows = [flat(100.0, 0.0), flat(100.0, 0.0), opening_at_100(), opening_at_100(20.0)]
    bars = make_bars(rows, ratio=[np.nan, np.nan, 1.0, 3.0])
    with pytest.raises(EngineError, match=r"missing at row 1 \(2024-01-01T00:05:00Z\)"):
        run(bars, params(long_share="ratio", window_ms=3 * STEP))  # row 1 only sets OI
    result = run(bars, params(long_share="ratio", window_ms=2 * STEP))
    assert result.report["totals"]["long"]["opened"] == pytest.approx(10 * 100 * 0.75)


@pytest.mark.parametrize(("open_", "long_share"), [(99.5, 1.0), (100.5, 0.0), (100.0, 0.5)])
def test_it_takes_the_long_share_from_the_candle(open_, long_share):
    rows = [flat(100.0, 0.0), {**opening_at_100(), "open": open_}]
    result = run(make_bars(rows), params(long_share="candle"))
    assert result.report["totals"]["long"]["opened"] == pytest.approx(1000 * long_share)
    assert result.map_short.sum() == pytest.approx(1000 * (1 - long_share))
    if long_share == 1.0:
        assert not result.map_short.any()


def test_it_splits_evenly_in_even_mode():
    rows = [flat(100.0, 0.0), {**opening_at_100(), "volume": 10.0, "taker": 9.0}]
    result = run(make_bars(rows), params(long_share="even"))
    assert result.report["totals"]["long"]["opened"] == pytest.approx(500.0)


def test_it_splits_new_notional_over_tiers_by_weight():
    tiers = (Tier(5, 0.25), Tier(10, 0.75))
    result = run(make_bars([flat(100.0, 0.0), opening_at_100()]), params(tiers=tiers))
    assert result.map_long.sum(axis=1).tolist() == pytest.approx([125.0, 375.0])
    assert result.map_long[0, bin_of(result, 100 * 0.8 / 0.996)] == pytest.approx(125.0)


# --- window and heatmap columns -------------------------------------------------------------


def test_it_models_only_the_steps_inside_the_window():
    rows = [opening_at_100(10.0 + i) for i in range(10)]
    bars = make_bars(rows)
    result = run(bars, params(window_ms=3 * STEP))
    assert result.report["steps"] == 3
    assert result.report["window_start"] == int(bars.ts[7])
    assert result.liq_times.tolist() == bars.ts[8:].tolist()
    assert result.as_of == int(bars.ts[9])
    assert result.report["totals"]["long"]["opened"] == pytest.approx(2 * 100 / 2)


def test_it_reports_gaps_inside_the_window():
    ts = [T0 + k * STEP for k in (0, 1, 2, 3, 4, 5, 6, 7, 9, 10)]
    bars = make_bars([opening_at_100(10.0 + i) for i in range(10)], ts=ts)
    result = run(bars, params(window_ms=4 * STEP))
    assert result.report["steps"] == 3
    assert result.report["gaps"] == [
        {"after": T0 + 7 * STEP, "before": T0 + 9 * STEP, "missing_steps": 1}
    ]


def test_it_needs_two_steps_in_the_window():
    bars = make_bars([opening_at_100(10.0 + i) for i in range(3)])
    with pytest.raises(EngineError, match="fewer than 2 steps"):
        run(bars, params(window_ms=STEP))


@pytest.mark.parametrize(
    ("max_columns", "steps"),
    [(4, [1, 4, 7, 10]), (3, [2, 6, 10]), (10, list(range(1, 11))), (500, list(range(1, 11)))],
)
def test_it_picks_heatmap_columns_counted_back_from_the_last_step(max_columns, steps):
    bars = make_bars([opening_at_100(10.0 + i) for i in range(11)])
    result = run(bars, params(max_columns=max_columns))
    assert result.heat_times.tolist() == bars.ts[steps].tolist()
    assert result.heat_long.shape == (len(steps), len(result.edges) - 1)


def test_it_fills_each_heatmap_column_with_the_state_after_that_step():
    rows = [flat(100.0, 0.0), opening_at_100(), flat(100.0, 10.0), flat(90.0, 10.0)]
    result = run(make_bars(rows), params())
    assert result.heat_long.sum(axis=1).tolist() == pytest.approx([500.0, 500.0, 0.0])
    assert result.heat_short.sum(axis=1).tolist() == pytest.approx([500.0, 500.0, 500.0])
    assert result.heat_long[0, bin_of(result, LONG_LP_100)] == pytest.approx(500.0)


# --- price grid -----------------------------------------------------------------------------


def test_it_puts_one_grid_edge_on_the_last_close_and_covers_every_group():
    rows = [flat(100.0, 0.0), opening_at_100(), flat(97.3, 10.0)]
    result = run(make_bars(rows), params(bin_bps=10))
    width = 97.3 * 10 / 1e4
    assert 97.3 in result.edges.tolist()
    assert np.diff(result.edges) == pytest.approx(width, rel=1e-9)
    assert result.edges[0] <= LONG_LP_100 < result.edges[1]
    assert result.edges[-2] <= SHORT_LP_100 < result.edges[-1]


@pytest.mark.parametrize(("price", "side"), [(120.0, "below"), (80.0, "above")])
def test_it_keeps_the_last_close_an_edge_when_every_group_lies_on_one_side(price, side):
    rows = [flat(100.0, 0.0), opening_at_100(), flat(price, 10.0)]  # one side is consumed
    result = run(make_bars(rows), params())
    assert (result.edges[-1] if side == "below" else result.edges[0]) == price


def test_it_uses_two_bins_around_the_close_when_nothing_is_active():
    rows = [flat(100.0, 10.0), flat(100.0, 9.0), flat(100.0, 8.0)]
    result = run(make_bars(rows), params())
    assert result.edges.tolist() == pytest.approx([99.9, 100.0, 100.1])
    assert result.edges[1] == 100.0
    assert result.map_long.shape == (1, 2)
    assert result.clusters == []


def test_it_refuses_a_grid_of_more_than_twenty_thousand_bins():
    rows = [flat(100.0, 0.0), opening_at_100()]
    with pytest.raises(EngineError, match=r"\d+ bins .*raise bin_bps"):
        run(make_bars(rows), params(bin_bps=0.01))


# --- cumulative curves ----------------------------------------------------------------------


def test_it_builds_cumulative_curves_counting_last_step_groups_beyond_the_close():
    spike = {"open": 100.0, "high": 140.0, "low": 100.0, "close": 100.0, "oi": 20.0}  # EP 113.33
    rows = [flat(100.0, 0.0), opening_at_100(), spike]
    result = run(make_bars(rows), params())
    new_long = 10 * (340 / 3) / 2
    assert result.liq_short[:, 0].tolist() == [0.0, pytest.approx(500.0)]
    assert result.report["totals"]["long"]["beyond_close"] == pytest.approx(new_long)
    assert result.cum_long[-1] == pytest.approx(new_long)  # above every LP: the beyond group
    assert result.cum_long[0] == pytest.approx(new_long + 500.0)
    old = bin_of(result, LONG_LP_100)
    assert result.cum_long[old] == pytest.approx(new_long + 500.0)
    assert result.cum_long[old + 1] == pytest.approx(new_long)
    assert result.cum_short[0] == 0.0
    assert result.cum_short[-1] == pytest.approx(new_long)
    assert np.all(np.diff(result.cum_long) <= 0) and np.all(np.diff(result.cum_short) >= 0)


def test_it_counts_last_step_shorts_below_the_close_at_every_level():
    dip = {"open": 100.0, "high": 100.0, "low": 60.0, "close": 100.0, "oi": 10.0}  # EP 86.67
    result = run(make_bars([flat(100.0, 0.0), dip]), params())
    beyond = 10 * (260 / 3) / 2
    assert result.report["totals"]["short"]["beyond_close"] == pytest.approx(beyond)
    assert result.cum_short[0] == pytest.approx(beyond)
    assert result.cum_short[-1] == pytest.approx(beyond)
    assert result.cum_long[0] == pytest.approx(beyond)


# --- conservation in a hand case ------------------------------------------------------------


def test_it_accounts_for_every_dollar_opened():
    rows = [flat(100.0, 0.0), opening_at_100(), flat(102.0, 12.0), flat(90.0, 11.0)]
    result = run(make_bars(rows), params(holding_ms=3_600_000))
    for side in ("long", "short"):
        t = result.report["totals"][side]
        assert t["opened"] == pytest.approx(t["active"] + t["liquidated"] + t["closed"], rel=1e-12)


# --- parameter and bar validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tiers": (Tier(10, 0.5),)}, "sum to 1"),
        ({"tiers": (Tier(10, 1.2), Tier(5, -0.2))}, "weight must be >= 0"),
        ({"tiers": (Tier(300, 1.0),)}, "must stay below 1"),
        ({"tiers": (Tier(0.5, 1.0),)}, "leverage must be >= 1"),
        ({"tiers": ()}, "at least one"),
        ({"mmr": 1.0}, "mmr"),
        ({"long_share": "vibes"}, "long_share"),
        ({"holding_ms": 0}, "holding_ms"),
        ({"bin_bps": 0.0}, "bin_bps"),
        ({"max_columns": 0}, "max_columns"),
        ({"window_ms": -1}, "window_ms"),
        ({"step_ms": 0}, "step_ms"),
    ],
)
def test_it_rejects_bad_parameters(kwargs, message):
    with pytest.raises(EngineError, match=message):
        Params(**kwargs)


GOOD = {"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5, "oi": 10.0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"high": 98.0}, r"row 2 \(2024-01-01T00:10:00Z\): high 98 is below low 99"),
        ({"high": 100.2}, r"row 2 .*high 100.2 is below open/close 100.5"),
        ({"low": 100.2}, r"row 2 .*low 100.2 is above open/close 100"),
        ({"low": 0.0, "open": 0.0}, r"row 2 .*open 0 is not positive"),
        ({"close": float("nan")}, r"row 2 .*close is nan"),
        ({"oi": -1.0}, r"row 2 .*open_interest -1 is negative"),
        ({"volume": -1.0}, r"row 2 .*volume -1 is negative"),
        ({"taker": 11.0}, r"row 2 .*taker_buy_volume 11 exceeds volume 10"),
        ({"oi": float("inf")}, r"row 2 .*open_interest is inf"),
    ],
)
def test_it_rejects_bad_bars_naming_the_row(change, message):
    rows = [GOOD, GOOD, {**GOOD, **change}, GOOD]
    with pytest.raises(EngineError, match=message):
        make_bars(rows)


def test_it_rejects_duplicate_and_unsorted_steps():
    rows = [GOOD] * 3
    with pytest.raises(EngineError, match=r"duplicate step at row 2"):
        make_bars(rows, ts=[T0, T0 + STEP, T0 + STEP])
    with pytest.raises(EngineError, match=r"rows out of order at row 2"):
        make_bars(rows, ts=[T0, T0 + 2 * STEP, T0 + STEP])


def test_it_rejects_bad_ratios_and_ragged_columns():
    with pytest.raises(EngineError, match=r"row 1 .*long_short_ratio 0 is not positive"):
        make_bars([GOOD, GOOD], ratio=[1.0, 0.0])
    with pytest.raises(EngineError, match="high has 1 rows, ts has 2"):
        Bars([T0, T0 + STEP], [1, 1], [1], [1, 1], [1, 1], [1, 1], [1, 1], [1, 1])


def test_it_returns_per_step_and_per_tier_liquidation_series():
    tiers = (Tier(5, 0.2), Tier(10, 0.3), Tier(100, 0.5))
    rows = [flat(100.0, 0.0), opening_at_100(), flat(98.0, 10.0), flat(85.0, 10.0)]
    result = run(make_bars(rows), params(tiers=tiers))
    assert result.liq_long.shape == (3, 3)
    # 100x (LP 99.40) dies at the 98 step, 10x (90.36) at the 85 step, 5x (80.32) survives
    assert result.liq_long[1].tolist() == [0.0, 0.0, pytest.approx(250.0)]
    assert result.liq_long[2].tolist() == [0.0, pytest.approx(150.0), 0.0]
    assert result.map_long.sum(axis=1).tolist() == pytest.approx([100.0, 0.0, 0.0])
