"""The reference model, checked by hand, and the fast engine held to it on random inputs."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from maps.engine import run as engine_run
from maps.engine.types import Bars, Events, Params, Result, Tier
from tests import engine_reference as ref

STEP = 300_000


def make_bars(
    rows: list[tuple[float, float, float, float, float]],
    *,
    ts: list[int] | None = None,
    volume: list[float] | None = None,
    taker: list[float] | None = None,
    ratio: list[float] | None = None,
) -> Bars:
    """Bars from (open, high, low, close, open_interest) rows, 5-minute steps from t = 0."""
    count = len(rows)
    columns = list(zip(*rows, strict=True))
    vol = volume if volume is not None else [1.0] * count
    return Bars(
        ts=np.array(ts if ts is not None else [i * STEP for i in range(count)], dtype=np.int64),
        open=np.array(columns[0], dtype=float),
        high=np.array(columns[1], dtype=float),
        low=np.array(columns[2], dtype=float),
        close=np.array(columns[3], dtype=float),
        volume=np.array(vol, dtype=float),
        taker_buy_volume=np.array(
            taker if taker is not None else [v / 2 for v in vol], dtype=float
        ),
        open_interest=np.array(columns[4], dtype=float),
        long_short_ratio=None if ratio is None else np.array(ratio, dtype=float),
    )


def one_tier(leverage: float = 2, **changes: object) -> Params:
    base = Params(
        tiers=(Tier(leverage, 1.0),), mmr=0.0, long_share="even", holding_ms=None, bin_bps=10.0
    )
    return replace(base, **changes)


# --------------------------------------------------------------------------------------------
# Hand-computed cases for the reference itself
# --------------------------------------------------------------------------------------------


def test_it_runs_consume_close_open_by_hand() -> None:
    # One tier 2x, m = 0, even split, no turnover.
    # step 0: OI 1 (only sets OI).
    # step 1: H 110 L 90 C 100 -> EP 100; OI 1 -> 3, S = 1, N = 2 * 100 = 200:
    #         long 100 at LP 100 * (1 - 1/2) = 50, short 100 at LP 100 * (1 + 1/2) = 150.
    # step 2: high 150 = short LP -> the short (100) is consumed at equality; OI 3 -> 1.5 so
    #         f = min(1, 0.5) = 0.5: the long 100 -> 50, 50 closed; OI < S, nothing opens.
    # step 3: low 50 = long LP -> the long (50) is consumed; OI flat, nothing opens.
    # Totals: opened 200 = liquidated 150 + closed 50 + active 0.
    bars = make_bars(
        [
            (100, 100, 100, 100, 1.0),
            (100, 110, 90, 100, 3.0),
            (100, 150, 100, 125, 1.5),
            (125, 125, 50, 75, 1.5),
        ]
    )
    out = ref.reference_run(bars, one_tier(), keep_states=True)
    assert out["liquidated"]["long"][:, 0].tolist() == [0.0, 0.0, 50.0]
    assert out["liquidated"]["short"][:, 0].tolist() == [0.0, 100.0, 0.0]
    assert out["opened"]["long"][:, 0].tolist() == [100.0, 0.0, 0.0]
    assert out["closed"]["long"][:, 0].tolist() == [0.0, 50.0, 0.0]
    assert out["states"][1] == [
        ref.Group("long", 0, 50.0, 100.0, 1),
        ref.Group("short", 0, 150.0, 100.0, 1),
    ]
    assert out["states"][3] == []
    report = out["report"]
    assert report["opened"] == {"long": 100.0, "short": 100.0}
    assert report["liquidated"] == {"long": 50.0, "short": 100.0}
    assert report["closed"] == {"long": 50.0, "short": 0.0}
    assert report["active"] == {"long": 0.0, "short": 0.0}


def test_it_never_consumes_new_groups_on_their_own_step() -> None:
    # step 1: H 200 L 10 C 90 -> EP 100; the new long LP 50 and short LP 150 lie inside
    #         [10, 200] but are not consumed on their own step.
    # step 2: range [60, 60]: neither LP reached.
    # step 3: low 50 -> the long (N * 0.5 = 100 * 0.5 = 50) is consumed.
    bars = make_bars(
        [
            (100, 100, 100, 100, 1.0),
            (100, 200, 10, 90, 2.0),
            (60, 60, 60, 60, 2.0),
            (60, 60, 50, 55, 2.0),
        ]
    )
    out = ref.reference_run(bars, one_tier())
    assert out["liquidated"]["long"][:, 0].tolist() == [0.0, 0.0, 50.0]
    assert out["liquidated"]["short"][:, 0].tolist() == [0.0, 0.0, 0.0]
    assert [g.lp for g in out["final_state"]] == [150.0]


def test_it_applies_binance_liquidation_prices() -> None:
    # EP 100, 10x, m 0.004: long 100 * 0.9 / 0.996, short 100 * 1.1 / 1.004.
    assert ref.long_liquidation_price(100.0, 10, 0.004) == pytest.approx(90.36144578313252)
    assert ref.short_liquidation_price(100.0, 10, 0.004) == pytest.approx(109.56175298804781)
    assert ref.entry_price(110.0, 90.0, 100.0) == 100.0


def test_it_turns_positions_over_at_the_holding_time() -> None:
    # H ~ dt / ln 2 -> h ~ 1/2 each step. OI flat at 1 and price flat at 100 (EP 100):
    # step 1: S = 1 - h, nothing to close, N = h * 100 (~50) -> long and short h * 50 (~25).
    # step 2: those groups shrink to h * 50 * (1 - h) (~12.5; ~25 closed in all), N = h * 100 again.
    bars = make_bars([(100, 100, 100, 100, 1.0)] * 3)
    params = one_tier(holding_ms=round(STEP / math.log(2)))
    h = 1 - math.exp(-STEP / params.holding_ms)
    assert h == pytest.approx(0.5, rel=1e-5)
    out = ref.reference_run(bars, params, keep_states=True)
    notionals = sorted(g.notional for g in out["states"][2])
    old, new = h * 50 * (1 - h), h * 50
    assert notionals == pytest.approx([old, old, new, new], rel=1e-12)
    closed = out["closed"]["long"][:, 0] + out["closed"]["short"][:, 0]
    assert closed.tolist() == pytest.approx([0.0, 2 * h * 50 * h], rel=1e-12)


def test_it_closes_pro_rata_when_oi_falls_faster_than_turnover() -> None:
    # h = 1/2 but OI falls 4 -> 1: f = min(1/2, 1/4) = 1/4, and OI 1 < S = 2 opens nothing.
    bars = make_bars([(100, 100, 100, 100, oi) for oi in (2.0, 4.0, 1.0)])
    params = one_tier(holding_ms=round(STEP / math.log(2)))
    out = ref.reference_run(bars, params, keep_states=True)
    before = sum(g.notional for g in out["states"][1])
    after = sum(g.notional for g in out["states"][2])
    assert after == pytest.approx(before / 4)
    assert out["opened"]["long"][1, 0] == 0.0


def test_it_reopens_after_open_interest_drops_to_zero() -> None:
    # OI 1 -> 2 (N = 100) -> 0 (f = 0: all 100 closed, no groups left) -> 2: OI_{i-1} = 0 so
    # f = 1 - h = 1 and S = 0, N = 2 * 100 = 200.
    bars = make_bars([(100, 100, 100, 100, oi) for oi in (1.0, 2.0, 0.0, 2.0)])
    out = ref.reference_run(bars, one_tier(), keep_states=True)
    assert out["states"][2] == []
    assert out["closed"]["long"][:, 0].tolist() == [0.0, 50.0, 0.0]
    assert out["opened"]["long"][:, 0].tolist() == [50.0, 0.0, 100.0]


@pytest.mark.parametrize(
    ("mode", "kwargs", "share"),
    [
        ("taker", {"volume": 10.0, "taker_buy_volume": 3.0}, 0.3),
        ("taker", {"volume": 10.0, "taker_buy_volume": 9.5}, 0.9),
        ("taker", {"volume": 10.0, "taker_buy_volume": 0.0}, 0.1),
        ("taker", {"volume": 0.0, "taker_buy_volume": 0.0}, 0.5),
        ("ratio", {"ratio": 3.0}, 0.75),
        ("candle", {"open_": 1.0, "close": 2.0}, 1.0),
        ("candle", {"open_": 2.0, "close": 1.0}, 0.0),
        ("candle", {"open_": 2.0, "close": 2.0}, 0.5),
        ("even", {}, 0.5),
    ],
)
def test_it_splits_new_notional_by_the_long_share_mode(
    mode: str, kwargs: dict[str, float], share: float
) -> None:
    values = {
        "open_": 1.0,
        "close": 1.0,
        "volume": 1.0,
        "taker_buy_volume": 0.5,
        "ratio": math.nan,
        "ts_ms": 0,
    }
    assert ref.long_share(mode, **{**values, **kwargs}) == share


def test_it_makes_no_groups_of_zero_notional() -> None:
    # candle mode, close > open: s = 1, so no short group; the zero-weight tier has none at all.
    bars = make_bars([(100, 100, 100, 100, 1.0), (100, 110, 90, 105, 2.0)])
    params = one_tier(tiers=(Tier(2, 1.0), Tier(10, 0.0)), long_share="candle")
    out = ref.reference_run(bars, params)
    assert [(g.side, g.tier) for g in out["final_state"]] == [("long", 0)]


def test_it_refuses_ratio_mode_without_a_ratio_in_the_window() -> None:
    bars = make_bars([(100, 100, 100, 100, 1.0)] * 3, ratio=[math.nan, 1.0, 1.0])
    with pytest.raises(ValueError, match="1970-01-01T00:00:00"):
        ref.reference_run(bars, one_tier(long_share="ratio"))
    ref.reference_run(bars, one_tier(long_share="ratio", window_ms=2 * STEP))


def test_it_selects_the_window_ending_at_the_last_step_end() -> None:
    # last_end = 900k + 300k = 1.2M; window 600k keeps ts >= 600k: rows 2 and 3.
    assert ref.window_start([0, 300_000, 600_000, 900_000], STEP, 600_000) == 2
    assert ref.window_start([0, 300_000, 600_000, 900_000], STEP, 599_999) == 3
    bars = make_bars([(100, 100, 100, 100, 1.0)] * 4)
    with pytest.raises(ValueError, match="fewer than 2 steps"):
        ref.reference_run(bars, one_tier(window_ms=STEP))


def test_it_reports_gaps() -> None:
    assert ref.gaps([0, STEP, 4 * STEP], STEP) == [
        {"after": STEP, "before": 4 * STEP, "missing_steps": 2}
    ]


def test_it_picks_heatmap_columns_counted_back_from_the_last_step() -> None:
    # m = 10 candidates, at most 3 columns -> k = 4: steps 10, 6, 2.
    assert ref.heat_column_steps(11, 3) == [2, 6, 10]
    assert ref.heat_column_steps(11, 10) == list(range(1, 11))
    assert ref.heat_column_steps(11, 1) == [10]
    assert ref.heat_column_steps(2, 500) == [1]


def test_it_builds_the_grid_around_the_last_close() -> None:
    # close 100, 10 bps -> w = 0.1; LP 99.95 is bin -1, LP 100.25 bin 2.
    width = ref.bin_width(100.0, 10.0)
    assert width == pytest.approx(0.1)
    assert ref.bin_index(99.95, 100.0, width) == -1
    assert ref.bin_index(100.25, 100.0, width) == 2
    assert ref.grid_bounds([-1, 2]) == (-1, 2)
    assert ref.grid_bounds([-5, -3]) == (-5, -1)
    assert ref.grid_bounds([3]) == (0, 3)
    assert ref.grid_bounds([]) == (-1, 0)
    assert ref.grid_edges(100.0, 0.5, -1, 0) == [99.5, 100.0, 100.5]
    with pytest.raises(ValueError, match="20001 bins"):
        ref.grid_bounds([-20_000, 0])


def test_it_counts_last_step_groups_beyond_the_close_at_every_level() -> None:
    # close 100, w 1, bins -2..1 (edges 98..102).
    # long 50 at 98.5 (bin -2), long 30 at 101.5 opened on the last step (beyond the close),
    # long 20 at 100.5 opened earlier (bin 0).
    groups = [
        ref.Group("long", 0, 98.5, 50.0, 1),
        ref.Group("long", 0, 101.5, 30.0, 3),
        ref.Group("long", 0, 100.5, 20.0, 2),
        ref.Group("short", 0, 99.5, 7.0, 3),
        ref.Group("short", 0, 101.5, 5.0, 3),
    ]
    options = {"close": 100.0, "width": 1.0, "j_lo": -2, "bins": 4, "last_step": 3}
    assert ref.cumulative(groups, "long", **options) == [100.0, 50.0, 50.0, 30.0]
    assert ref.cumulative(groups, "short", **options) == [7.0, 7.0, 7.0, 12.0]


def test_it_finds_clusters_by_the_hot_bin_rule() -> None:
    # total 85.5 over 14 non-empty bins -> hot at >= 2 * 85.5 / 14 = 12.21: bins 2, 4, 8.
    # 2 and 4 are one bin apart -> one cluster [2, 4] of 56; 8 is 3 bins from 4 -> alone, 20.
    values = [1, 1, 30, 1, 25, 1, 1, 1, 20, 1, 1, 1, 1, 0.5]
    edges = [93.0 + b for b in range(15)]
    found = ref.find_clusters(values, edges, "long", 100.0)
    assert found == [
        {
            "side": "long",
            "price_low": 95.0,
            "price_high": 98.0,
            "peak_price": 95.5,
            "notional_usd": 56,
            "share": 56 / 85.5,
            "distance_pct": -2.0,
        },
        {
            "side": "long",
            "price_low": 101.0,
            "price_high": 102.0,
            "peak_price": 101.5,
            "notional_usd": 20,
            "share": 20 / 85.5,
            "distance_pct": 1.0,
        },
    ]


def test_it_drops_clusters_under_one_percent_and_single_bin_sides() -> None:
    # 251 non-empty bins: threshold 2 * 252.1 / 251 = 2.009, so 2.1 is hot but holds 0.83%.
    values = [1.0] * 250 + [2.1]
    edges = [float(b) for b in range(252)]
    assert ref.hot_runs(values) == [(250, 250)]
    assert ref.find_clusters(values, edges, "short", 1.0) == []
    # One non-empty bin is never twice the average of the non-empty bins.
    assert ref.find_clusters([0.0, 5.0, 0.0], [0.0, 1.0, 2.0, 3.0], "long", 1.0) == []
    assert ref.find_clusters([0.0, 0.0], [0.0, 1.0, 2.0], "long", 1.0) == []


def test_it_reads_proximity_from_significant_clusters() -> None:
    def cluster(side: str, low: float, high: float, usd: float, share: float) -> dict:
        return {
            "side": side,
            "price_low": low,
            "price_high": high,
            "peak_price": (low + high) / 2,
            "notional_usd": usd,
            "share": share,
            "distance_pct": ref.distance_pct(low, high, 100.0),
        }

    clusters = [
        cluster("long", 90, 92, 1000, 0.5),  # significant, 8% below
        cluster("long", 97, 98, 10, 0.04),  # nearer but not significant
        cluster("long", 95, 96, 600, 0.3),  # the nearest significant long: -4%
        cluster("short", 101, 102, 300, 0.2),  # the nearest significant short: +1%
        cluster("short", 99, 101, 900, 0.6),  # straddles the close: not above it
    ]
    prox = ref.proximity(clusters, 100.0)
    assert prox["long"]["price_high"] == 96 and prox["long"]["distance_pct"] == -4.0
    assert prox["short"]["price_low"] == 101 and prox["short"]["distance_pct"] == 1.0
    assert prox["nearer"] == "short"
    assert prox["larger"] == "long"
    # pull: long 600 / 4 = 150, short 300 / 1 = 300 -> short magnet, up.
    assert (prox["magnet"], prox["direction"]) == ("short", "up")
    only_long = ref.proximity(clusters[:3], 100.0)
    assert (only_long["nearer"], only_long["magnet"], only_long["direction"]) == (
        "long",
        "long",
        "down",
    )
    assert ref.proximity([], 100.0)["magnet"] is None


def test_it_solves_nnls_over_supports() -> None:
    # A = [[1, 0], [0, 1], [1, 1]], y = [1, -1, 0]: unconstrained w = (1, -1); with w >= 0 the
    # second weight is 0 and min ||(w1 - 1, 1, w1)|| gives w1 = 1/2.
    assert ref.nnls([[1, 0, 1], [0, 1, 1]], [1, -1, 0]) == pytest.approx([0.5, 0.0])
    assert ref.nnls([[1, 0], [0, 1]], [2, 3]) == pytest.approx([2.0, 3.0])
    assert ref.nnls([[1, 1]], [-1, -1]) == [0.0]


def test_it_measures_zone_coverage_of_the_step_range() -> None:
    zones = [{"price_low": 90.0, "price_high": 95.0}, {"price_low": 94.0, "price_high": 97.0}]
    # union [90, 97] clipped to [92, 100] = 5 of 8.
    assert ref.event_hit_and_coverage(zones, 96.0, 92.0, 100.0) == (True, 5 / 8)
    assert ref.event_hit_and_coverage(zones, 98.0, 92.0, 100.0) == (False, 5 / 8)
    assert ref.event_hit_and_coverage(zones, 93.0, 93.0, 93.0) == (True, 1.0)
    assert ref.event_hit_and_coverage([], 93.0, 93.0, 93.0) == (False, 0.0)
    assert ref.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert ref.pearson([1, 1, 1], [2, 4, 6]) is None


def _sweeping_bars() -> Bars:
    # Two tiers (2x, 4x) opened at EP 100, then prices sweep down and up so both liquidate on
    # different steps: long LP 50 / 75, short LP 150 / 125.
    return make_bars(
        [
            (100, 100, 100, 100, 1.0),
            (100, 110, 90, 100, 2.0),
            (100, 100, 74, 90, 2.0),
            (90, 100, 90, 100, 3.0),
            (100, 126, 100, 110, 3.0),
            (110, 110, 40, 60, 3.0),
            (60, 160, 60, 150, 3.0),
        ]
    )


def test_it_recovers_known_weights_from_events_built_from_them() -> None:
    bars = _sweeping_bars()
    params = one_tier(tiers=(Tier(2, 0.5), Tier(4, 0.5)))
    unit = ref.simulate(bars, params, weights=[1.0, 1.0])
    truth = [0.3, 0.7]
    times, sides, usd, prices = [], [], [], []
    for side in ("long", "short"):
        for i, per_tier in enumerate(unit.liquidated[side], start=1):
            value = sum(w * c for w, c in zip(truth, per_tier, strict=True))
            if value > 0:
                times.append(unit.ts[i] + 1000)
                sides.append(side)
                usd.append(value * 2.0)
                prices.append(unit.low[i] if side == "long" else unit.high[i])
    times.append(10**12)  # far outside the window
    sides.append("long")
    usd.append(1.0)
    prices.append(1.0)
    events = ref_events(times, sides, usd, prices)
    cal = ref.reference_run(bars, params, events)["calibration"]
    assert cal["identified"] == [True, True]
    assert cal["weights"] == pytest.approx(truth)
    assert cal["scale"] == pytest.approx(2.0)
    assert cal["corr_long"] == pytest.approx(1.0)
    assert cal["corr_short"] == pytest.approx(1.0)
    assert (cal["events_used"], cal["events_outside"]) == (len(times) - 1, 1)


def test_it_keeps_the_prior_weight_of_an_unidentified_tier() -> None:
    # The 1x tier has long LP 0 and short LP 200 / (1 + m): never reached, so not identified.
    bars = _sweeping_bars()
    params = one_tier(tiers=(Tier(1, 0.2), Tier(2, 0.4), Tier(4, 0.4)))
    events = ref_events([unit_time(5)], ["long"], [100.0], [50.0])
    cal = ref.reference_run(bars, params, events)["calibration"]
    assert cal["identified"] == [False, True, True]
    assert cal["weights"][0] == 0.2
    assert sum(cal["weights"]) == pytest.approx(1.0)


def test_it_scores_hits_against_the_previous_state() -> None:
    # Four long tiers at EP 100 (step 1, N = (2 - 1) * 100 = 100, even split -> 50 a side):
    # 2x w .7 -> 35 at 50; 3x, 4x, 5x w .1 -> 5 each at 66.7, 75, 80. Threshold 2 * 50 / 4 = 25,
    # so the bin holding 50 is the one long zone (35, 70%); the shorts mirror it at 150.
    # Step 2 sweeps [45, 100]; last close 60 -> w = 0.06, the zone is bin floor(-10 / .06) = -167,
    # [49.98, 50.04). Long event at 50 (usd 30): hit, coverage 0.06 / 55. Short event at 100
    # (usd 10): the short zone near 150 misses and covers nothing of [45, 100].
    # An event on step 1 (usd 60) sees the empty state of step 0: a miss with coverage 0.
    bars = make_bars(
        [
            (100, 100, 100, 100, 1.0),
            (100, 110, 90, 100, 2.0),
            (100, 100, 45, 60, 2.0),
        ]
    )
    tiers = (Tier(2, 0.7), Tier(3, 0.1), Tier(4, 0.1), Tier(5, 0.1))
    params = one_tier(tiers=tiers)
    events = ref_events(
        [unit_time(2), unit_time(2), unit_time(1)],
        ["long", "short", "long"],
        [30.0, 10.0, 60.0],
        [50.0, 100.0, 95.0],
    )
    cal = ref.reference_run(bars, params, events)["calibration"]
    assert cal["hit_rate"] == pytest.approx(30 / 100)
    assert cal["coverage"] == pytest.approx(30 * (0.06 / 55) / 100)
    empty = ref.reference_run(bars, params, ref_events([], [], [], []))["calibration"]
    assert (empty["hit_rate"], empty["coverage"], empty["events_used"]) == (None, None, 0)


def unit_time(step: int) -> int:
    return step * STEP + 1


def ref_events(times: list[int], sides: list[str], usd: list[float], prices: list[float]) -> Events:
    return Events(
        time=np.array(times, dtype=np.int64),
        is_long=np.array([side == "long" for side in sides], dtype=bool),
        price=np.array(prices, dtype=float),
        notional=np.array(usd, dtype=float),
    )


# --------------------------------------------------------------------------------------------
# The fast engine against the reference
# --------------------------------------------------------------------------------------------

LEVERAGES = (1, 2, 3, 5, 10, 20, 25, 50, 75, 100, 125)
MODES = ("taker", "ratio", "candle", "even")


@dataclass(frozen=True)
class Scenario:
    bars: Bars
    params: Params
    events: Events | None


def random_bars(
    rng: np.random.Generator,
    step_ms: int,
    rows: int,
    *,
    gap_every: int = 0,
    sigma: float = 0.005,
    big: float = 0.05,
    start: int = 0,
) -> Bars:
    """Random-walk prices with occasional big candles (share `big` of the steps), OI that rises,
    falls, goes flat, drops to 0 and recovers, a gap about every `gap_every` steps, zero-volume
    steps and a long/short ratio."""
    dts = [
        step_ms * (int(rng.integers(2, 6)) if gap_every and rng.random() < 1 / gap_every else 1)
        for _ in range(rows - 1)
    ]
    ts = np.cumsum([start * step_ms, *dts]).astype(np.int64)
    price = 10 ** rng.uniform(-1, 5)
    oi = rng.uniform(1, 1000)
    opens, highs, lows, closes, ois = [], [], [], [], []
    for _ in range(rows):
        open_ = price
        close = open_ * math.exp(rng.normal(0, sigma))
        high = max(open_, close) * math.exp(abs(rng.normal(0, sigma)))
        low = min(open_, close) * math.exp(-abs(rng.normal(0, sigma)))
        if rng.random() < big:
            swing = rng.uniform(0.02, 0.7)
            if rng.random() < 0.5:
                high *= 1 + swing
                close = rng.uniform(open_, high) if rng.random() < 0.5 else close
            else:
                low *= 1 - swing
                close = rng.uniform(low, open_) if rng.random() < 0.5 else close
        event = rng.random()
        if event < 0.08:
            oi = 0.0
        elif event < 0.2:
            pass
        elif event < 0.3:
            oi = oi * rng.uniform(0.2, 0.8)
        elif oi == 0:
            oi = rng.uniform(1, 1000)
        else:
            oi = oi * math.exp(rng.normal(0.01, 0.05))
        opens.append(open_)
        highs.append(max(high, open_, close))
        lows.append(min(low, open_, close))
        closes.append(close)
        ois.append(oi)
        price = close
    volume = rng.uniform(0, 100, rows) * (rng.random(rows) > 0.15)
    taker = volume * rng.choice([0.0, 1.0, 0.5], rows, p=[0.1, 0.1, 0.8]) * rng.uniform(0, 1, rows)
    ratio = np.exp(rng.normal(0, 0.5, rows))
    return Bars(
        ts=ts,
        open=np.array(opens),
        high=np.array(highs),
        low=np.array(lows),
        close=np.array(closes),
        volume=volume,
        taker_buy_volume=np.minimum(taker, volume),
        open_interest=np.array(ois),
        long_short_ratio=ratio,
    )


def random_params(draw: st.DrawFn, rng: np.random.Generator, step_ms: int, rows: int) -> Params:
    count = draw(st.integers(1, 6))
    leverages = [draw(st.sampled_from(LEVERAGES)) for _ in range(count)]
    raw = rng.dirichlet(np.ones(count))
    if count > 1 and draw(st.booleans()):
        raw[draw(st.integers(0, count - 1))] = 0.0
    weights = raw / math.fsum(raw)
    mmr = draw(st.sampled_from([0.0, 0.004, 0.01, 0.05]))
    mmr = min(mmr, 0.9 / max(leverages))
    holding = draw(
        st.sampled_from(
            [
                None,
                1,
                step_ms,
                3_600_000,
                86_400_000,
                int(rng.integers(step_ms // 4, 100 * step_ms)),
            ]
        )
    )
    window = draw(
        st.sampled_from(
            [
                10**15,
                10**15,
                step_ms * int(rng.integers(1, rows + 3)),
                int(rng.integers(1, 10**8)),
            ]
        )
    )
    return Params(
        tiers=tuple(Tier(float(lev), float(w)) for lev, w in zip(leverages, weights, strict=True)),
        mmr=float(mmr),
        long_share=draw(st.sampled_from(MODES)),
        holding_ms=holding,
        bin_bps=draw(st.sampled_from([1.0, 2.5, 10.0, 37.0, 100.0, 250.0])),
        window_ms=window,
        max_columns=draw(st.sampled_from([1, 2, 3, 7, 500])),
        step_ms=step_ms,
    )


def random_events(rng: np.random.Generator, bars: Bars, params: Params) -> Events:
    """Events in and around the bars (some exactly on a step's start or end): priced anywhere in
    their step's range, outside it, or at the liquidation price of a group opened on an earlier
    step (where the zones are); a few carry no USD."""
    count = int(rng.integers(0, 30))
    rows = rng.integers(0, len(bars.ts), count)
    offsets = rng.integers(-params.step_ms, 2 * params.step_ms, count)
    edges = rng.choice([0, params.step_ms - 1, params.step_ms], count)
    times = bars.ts[rows] + np.where(rng.random(count) < 0.2, edges, offsets)
    is_long = rng.random(count) < 0.5
    earlier = (rng.random(count) * rows).astype(int)
    ep = (bars.high[earlier] + bars.low[earlier] + bars.close[earlier]) / 3
    leverage = rng.choice([t.leverage for t in params.tiers], count)
    at_lp = np.where(
        is_long,
        ep * (1 - 1 / leverage) / (1 - params.mmr),
        ep * (1 + 1 / leverage) / (1 + params.mmr),
    )
    low, high = bars.low[rows], bars.high[rows]
    kind = rng.random(count)
    prices = np.where(
        kind < 0.4,
        rng.uniform(low, high),
        np.where(kind < 0.5, high * rng.uniform(0.5, 1.5, count), at_lp),
    )
    return Events(
        time=times,
        is_long=is_long,
        price=np.maximum(prices, 1e-9),
        notional=rng.uniform(1, 1e6, count) * (rng.random(count) > 0.05),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    step_ms = draw(st.sampled_from([60_000, 300_000, 3_600_000]))
    rows = draw(st.integers(2, 50))
    bars = random_bars(
        rng,
        step_ms,
        rows,
        gap_every=draw(st.sampled_from([0, 0, 3, 7])),
        sigma=draw(st.sampled_from([0.001, 0.005, 0.02])),
        big=draw(st.sampled_from([0.0, 0.05, 0.2])),
        start=draw(st.integers(0, 10**6)),
    )
    params = random_params(draw, rng, step_ms, rows)
    bars = with_ratio_gaps_before_window(bars, params)
    events = random_events(rng, bars, params) if draw(st.booleans()) else None
    return Scenario(bars, params, events)


def with_ratio_gaps_before_window(bars: Bars, params: Params) -> Bars:
    """NaN ratios on rows before the window: they are not modelled, so never an error."""
    start = ref.window_start(bars.ts.tolist(), params.step_ms, params.window_ms)
    ratio = bars.long_short_ratio.copy()
    ratio[:start] = np.nan
    return replace(bars, long_short_ratio=ratio)


def tolerance(expected: dict) -> float:
    """'every figure within 1e-9 x the total opened notional'."""
    opened = sum(expected["report"]["opened"].values())
    return 1e-9 * max(opened, np.finfo(float).tiny)


def assert_near(actual: object, expected: object, tol: float, what: str) -> None:
    actual_array = np.asarray(actual, dtype=float)
    expected_array = np.asarray(expected, dtype=float)
    assert actual_array.shape == expected_array.shape, (
        f"{what}: shape {actual_array.shape} != {expected_array.shape}"
    )
    gap = np.abs(actual_array - expected_array)
    worst = float(gap.max()) if gap.size else 0.0
    assert worst <= tol, f"{what}: off by {worst:.3g} (tolerance {tol:.3g})"


def both(scenario: Scenario) -> tuple[Result, dict] | None:
    """The engine's result and the reference's, or None when both refuse the input."""
    try:
        expected = ref.reference_run(scenario.bars, scenario.params, scenario.events)
    except ValueError as refused:
        with pytest.raises(ValueError):
            engine_run(scenario.bars, scenario.params, scenario.events)
        note(f"both refuse: {refused}")
        return None
    return engine_run(scenario.bars, scenario.params, scenario.events), expected


def engine_grid(result: Result, expected: dict) -> tuple[int, int]:
    """(j_lo, bins) of the engine's grid, after checking that it is the decisions' grid: uniform
    bins of width w with the last close as an edge."""
    close, width = expected["last_close"], expected["width"]
    edges = np.asarray(result.edges, dtype=float)
    offsets = (edges - close) / width
    j_lo = round(float(offsets[0]))
    bins = len(edges) - 1
    assert bins >= 1
    assert_near(offsets, np.arange(j_lo, j_lo + bins + 1), 1e-6, "edge offsets in bin widths")
    assert np.min(np.abs(edges - close)) <= 1e-12 * close, "the last close is not an edge"
    return j_lo, bins


def check_series(result: Result, expected: dict) -> None:
    tol = tolerance(expected)
    assert result.as_of == expected["as_of"]
    assert result.last_close == expected["last_close"]
    assert np.array_equal(result.liq_times, expected["liquidated"]["times"])
    for side, actual in (("long", result.liq_long), ("short", result.liq_short)):
        per_tier = expected["liquidated"][side]
        assert_near(actual, per_tier, tol, f"liquidated {side} per step and tier")
    assert np.array_equal(result.heat_times, expected["heat_times"])


def check_heatmap(result: Result, expected: dict) -> None:
    tol = tolerance(expected)
    j_lo, bins = engine_grid(result, expected)
    for side, actual in (("long", result.heat_long), ("short", result.heat_short)):
        columns = [ref.dense(binned[side], j_lo, bins) for binned in expected["heat_binned"]]
        assert_near(actual, columns, tol, f"heatmap {side}")


def check_minimal_grid(result: Result, expected: dict) -> None:
    assert len(result.edges) == len(expected["grid"]["edges"]), "grid size"
    assert_near(result.edges, expected["grid"]["edges"], 1e-9 * expected["last_close"], "edges")


def check_map(result: Result, expected: dict) -> None:
    tol = tolerance(expected)
    j_lo, bins = engine_grid(result, expected)
    close, width = expected["last_close"], expected["width"]
    state, tiers = expected["final_state"], len(expected["opened"]["long"][0])
    for side, actual, curve in (
        ("long", result.map_long, result.cum_long),
        ("short", result.map_short, result.cum_short),
    ):
        assert_near(
            actual, ref.tier_map(state, side, tiers, close, width, j_lo, bins), tol, f"map {side}"
        )
        wanted = ref.cumulative(
            state, side, close=close, width=width, j_lo=j_lo, bins=bins, last_step=expected["n"] - 1
        )
        assert_near(curve, wanted, tol, f"cumulative {side}")


def check_report(result: Result, expected: dict) -> None:
    tol = tolerance(expected)
    for name in ("opened", "liquidated", "closed", "active"):
        for side in ("long", "short"):
            actual = result.report["totals"][side][name]
            assert_near(actual, expected["report"][name][side], tol, f"{name} {side}")
    assert result.report["gaps"] == expected["report"]["gaps"]


CLUSTER_PRICES = ("price_low", "price_high", "peak_price")


def reference_clusters(result: Result, expected: dict) -> list[dict]:
    """The reference's clusters of its final state binned on the engine's grid."""
    j_lo, bins = engine_grid(result, expected)
    binned = ref.bin_state(expected["final_state"], expected["last_close"], expected["width"])
    return ref.pair_clusters(
        ref.dense(binned["long"], j_lo, bins),
        ref.dense(binned["short"], j_lo, bins),
        [float(edge) for edge in result.edges],
        expected["last_close"],
    )


def assert_same_cluster(actual: dict, wanted: dict, tol: float, close: float) -> None:
    assert actual["side"] == wanted["side"]
    for key in CLUSTER_PRICES:
        assert_near(actual[key], wanted[key], 1e-9 * close, f"cluster {key}")
    assert_near(actual["notional_usd"], wanted["notional_usd"], tol, "cluster notional")
    assert_near(actual["distance_pct"], wanted["distance_pct"], 1e-7, "cluster distance_pct")


def check_clusters(result: Result, expected: dict) -> None:
    tol, close = tolerance(expected), expected["last_close"]
    wanted = reference_clusters(result, expected)
    notionals = [c["notional_usd"] for c in result.clusters]
    assert all(a >= b - tol for a, b in itertools.pairwise(notionals)), "not ranked by notional"
    assert len(result.clusters) == len(wanted), (
        f"{len(result.clusters)} clusters, the reference finds {len(wanted)}"
    )
    by_place = sorted(result.clusters, key=lambda c: (c["side"], c["price_low"]))
    for actual, reference in zip(
        by_place, sorted(wanted, key=lambda c: (c["side"], c["price_low"])), strict=True
    ):
        assert_same_cluster(actual, reference, tol, close)


def clear_pick(long_key: float, short_key: float, slack: float) -> bool:
    return abs(long_key - short_key) > slack


def check_proximity(result: Result, expected: dict) -> None:
    tol, close = tolerance(expected), expected["last_close"]
    wanted = ref.proximity(reference_clusters(result, expected), close)
    actual = result.proximity
    assert_near(actual["last_close"], close, 0.0, "proximity last_close")
    for side in ("long", "short"):
        if wanted[side] is None:
            assert actual[side] is None, f"proximity {side}: the reference has none"
            continue
        assert actual[side] is not None, f"proximity {side}: the engine has none"
        assert_same_cluster(
            {"side": side, **actual[side]}, {"side": side, **wanted[side]}, tol, close
        )
    long_zone, short_zone = wanted["long"], wanted["short"]
    if long_zone is None or short_zone is None:
        keys = ("nearer", "larger", "magnet", "direction")
        assert {k: actual[k] for k in keys} == {k: wanted[k] for k in keys}
        return
    if clear_pick(abs(long_zone["distance_pct"]), abs(short_zone["distance_pct"]), 1e-7):
        assert actual["nearer"] == wanted["nearer"]
    if clear_pick(long_zone["notional_usd"], short_zone["notional_usd"], tol):
        assert actual["larger"] == wanted["larger"]
    pull_long, pull_short = ref._pull(long_zone), ref._pull(short_zone)
    if clear_pick(pull_long, pull_short, 1e-7 * max(pull_long, pull_short)):
        assert (actual["magnet"], actual["direction"]) == (wanted["magnet"], wanted["direction"])


def implied_fit(calibration: dict, params: Params) -> np.ndarray:
    """The raw NNLS weights behind the engine's reported weights and scale."""
    prior = np.array([t.weight for t in params.tiers])
    identified = np.array(calibration["identified"], dtype=bool)
    fit_sum = calibration["scale"] * prior[identified].sum()
    weights = np.array(calibration["weights"], dtype=float)
    return np.where(identified, weights * fit_sum / (1 - prior[~identified].sum()), 0.0)


def check_calibration(result: Result, expected: dict, params: Params) -> None:
    wanted, actual = expected["calibration"], result.calibration
    if wanted is None:
        assert actual is None
        return
    assert (actual["events_used"], actual["events_outside"]) == (
        wanted["events_used"],
        wanted["events_outside"],
    )
    assert list(actual["identified"]) == wanted["identified"]
    for key in ("hit_rate", "coverage"):
        if wanted[key] is None:
            assert actual[key] is None, key
        else:
            assert_near(actual[key], wanted[key], 1e-9, key)
    design, target = wanted["design"], wanted["target"]
    if wanted["scale"] is None:
        assert actual["scale"] is None
        if wanted["events_used"] == 0:
            assert_near(actual["weights"], [t.weight for t in params.tiers], 0, "prior weights")
        return
    if wanted["scale"] == 0.0 or design.shape[1] == 0:
        assert actual["scale"] == 0.0
        assert_near(actual["weights"], [t.weight for t in params.tiers], 1e-12, "prior weights")
        return
    unique = np.linalg.matrix_rank(design) == design.shape[1] and np.linalg.cond(design) < 1e6
    if not unique:
        identified = np.array(wanted["identified"], dtype=bool)
        fit = implied_fit(actual, params)[identified]
        best = np.array(wanted["w_fit"])[identified]
        engine_residual = np.linalg.norm(design @ fit - target)
        reference_residual = np.linalg.norm(design @ best - target)
        assert engine_residual <= reference_residual * (1 + 1e-6) + 1e-9 * np.abs(target).sum()
        return
    assert_near(actual["weights"], wanted["weights"], 1e-6, "calibrated weights")
    assert_near(actual["scale"], wanted["scale"], 1e-6 * max(1.0, wanted["scale"]), "scale")
    for key in ("corr_long", "corr_short"):
        if wanted[key] is None:
            assert actual[key] is None, key
        else:
            assert_near(actual[key], wanted[key], 1e-6, key)


EQUIVALENCE = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@EQUIVALENCE
@given(scenarios())
def test_it_matches_the_reference_liquidations_and_times(scenario: Scenario) -> None:
    if pair := both(scenario):
        check_series(*pair)


@EQUIVALENCE
@given(scenarios())
def test_it_matches_the_reference_heatmap_on_its_grid(scenario: Scenario) -> None:
    if pair := both(scenario):
        check_heatmap(*pair)


@EQUIVALENCE
@given(scenarios())
def test_it_builds_the_smallest_grid_the_decisions_allow(scenario: Scenario) -> None:
    if pair := both(scenario):
        check_minimal_grid(*pair)


@EQUIVALENCE
@given(scenarios())
def test_it_matches_the_reference_map_and_cumulative_curves(scenario: Scenario) -> None:
    if pair := both(scenario):
        check_map(*pair)


@EQUIVALENCE
@given(scenarios())
def test_it_matches_the_reference_report_totals(scenario: Scenario) -> None:
    if pair := both(scenario):
        check_report(*pair)


@EQUIVALENCE
@given(scenarios())
def test_it_matches_the_reference_clusters_and_proximity(scenario: Scenario) -> None:
    if pair := both(scenario):
        check_clusters(*pair)
        check_proximity(*pair)


@EQUIVALENCE
@given(scenarios())
def test_it_matches_the_reference_calibration(scenario: Scenario) -> None:
    rng = np.random.default_rng(7)
    events = scenario.events or random_events(rng, scenario.bars, scenario.params)
    scenario = replace(scenario, events=events)
    if pair := both(scenario):
        check_calibration(*pair, scenario.params)


@EQUIVALENCE
@given(scenarios())
def test_it_keeps_the_reference_invariants_on_random_inputs(scenario: Scenario) -> None:
    # The reference itself: opened = active + liquidated + closed, monotone cumulative curves,
    # the last heatmap column is the final state, no long LP above its entry, no short below.
    try:
        out = ref.reference_run(scenario.bars, scenario.params, keep_states=True)
    except ValueError:
        return
    tol, report = tolerance(out), out["report"]
    for side in ("long", "short"):
        rest = report["active"][side] + report["liquidated"][side] + report["closed"][side]
        assert_near(rest, report["opened"][side], tol, f"conservation {side}")
        assert_near(out["heatmap"][side][-1], out["map"][side].sum(axis=0), tol, f"last {side}")
    assert all(np.diff(out["cumulative"]["long"]) <= tol)
    assert all(np.diff(out["cumulative"]["short"]) >= -tol)
    rows = range(out["start_row"], len(scenario.bars.ts))
    bars = scenario.bars
    for states in out["states"].values():
        for g in states:
            row = rows[g.opened]
            ep = ref.entry_price(bars.high[row], bars.low[row], bars.close[row])
            assert g.notional > 0
            assert g.lp <= ep if g.side == "long" else g.lp >= ep


def check_everything(scenario: Scenario) -> None:
    pair = both(scenario)
    assert pair is not None
    for check in (check_series, check_heatmap, check_minimal_grid, check_map, check_report):
        check(*pair)
    check_clusters(*pair)
    check_proximity(*pair)
    check_calibration(*pair, scenario.params)


def test_it_consumes_at_equality_like_the_reference() -> None:
    # The first hand case: LPs 50 and 150 are exact in every evaluation order, and step 2's high
    # and step 3's low touch them exactly.
    bars = make_bars(
        [
            (100, 100, 100, 100, 1.0),
            (100, 110, 90, 100, 3.0),
            (100, 150, 100, 125, 1.5),
            (125, 125, 50, 75, 1.5),
        ]
    )
    result = engine_run(bars, one_tier())
    assert result.liq_long[:, 0].tolist() == [0.0, 0.0, 50.0]
    assert result.liq_short[:, 0].tolist() == [0.0, 100.0, 0.0]
    check_everything(Scenario(bars, one_tier(), None))


def test_it_spares_new_groups_on_their_own_step_like_the_reference() -> None:
    bars = make_bars(
        [
            (100, 100, 100, 100, 1.0),
            (100, 200, 10, 90, 2.0),
            (60, 60, 60, 60, 2.0),
            (60, 60, 50, 55, 2.0),
        ]
    )
    result = engine_run(bars, one_tier())
    assert result.liq_long[:, 0].tolist() == [0.0, 0.0, 50.0]
    check_everything(Scenario(bars, one_tier(), None))


def test_it_scores_only_the_top_five_zones_like_the_reference() -> None:
    # Flat candles rising 1% a step from 100 (nothing long is ever consumed), 10x, m = 0, no
    # turnover, even split. OI grows by 10..15 on steps 3, 8, ..., 28 and by 0.1 elsewhere, so
    # six long bins (about 7 bins apart) hold ~515..990 each against ~5 for the others: six hot
    # zones. The smallest, step 3's (LP 0.9 * 100 * 1.01^3), is sixth, outside the top 5; the
    # largest is step 28's. One long event of equal USD at each LP, on step 31: hit rate 1/2.
    prices = [100 * 1.01**i for i in range(31)]
    big = {3: 10.0, 8: 11.0, 13: 12.0, 18: 13.0, 23: 14.0, 28: 15.0}
    oi = [1.0]
    for i in range(1, 31):
        oi.append(oi[-1] + big.get(i, 0.1))
    rows = [(p, p, p, p, o) for p, o in zip(prices, oi, strict=True)]
    rows.append((prices[30], prices[30], 0.85 * 0.9 * prices[3], prices[30], oi[-1]))
    bars = make_bars(rows)
    params = one_tier(leverage=10)
    at = [0.9 * prices[3], 0.9 * prices[28]]
    events = ref_events([unit_time(31)] * 2, ["long", "long"], [1.0, 1.0], at)
    expected = ref.reference_run(bars, params, events)
    sim = ref.simulate(bars, params, record_steps=[30])
    zones = ref.find_clusters(
        *_dense_side(sim.binned[30]["long"], expected["width"], expected["last_close"]),
        "long",
        expected["last_close"],
    )
    assert len(zones) == 6
    assert zones[5]["price_low"] <= at[0] <= zones[5]["price_high"]
    assert expected["calibration"]["hit_rate"] == 0.5
    result = engine_run(bars, params, events)
    assert result.calibration["hit_rate"] == pytest.approx(0.5, abs=1e-12)
    check_everything(Scenario(bars, params, events))


def _dense_side(binned: dict[int, float], width: float, close: float) -> tuple[list, list]:
    j_lo, j_hi = min(binned), max(binned)
    return ref.dense(binned, j_lo, j_hi - j_lo + 1), ref.grid_edges(close, width, j_lo, j_hi)


def test_it_scores_events_on_unevenly_spaced_steps_like_the_reference() -> None:
    # Flat at 100; OI 1 -> 2 on step 4 opens long 50 (2x, 80%: LP 50), 6.25 (10x: LP 90) and
    # 6.25 (20x: LP 95). Three non-empty bins, threshold 2/3 of the total: the LP-50 bin is the
    # one zone. Long events at 50 on steps 1, 3, 4 and 7 (1 USD each) see the states after steps
    # 0, 2, 3 and 6: only step 6's holds the zone (step 4's groups do not exist after step 3), so
    # the hit rate is 1/4. The previous steps 0, 2, 3, 6 are unevenly spaced.
    bars = make_bars([(100, 100, 100, 100, oi) for oi in (1, 1, 1, 1, 2, 2, 2, 2)])
    params = one_tier(tiers=(Tier(2, 0.8), Tier(10, 0.1), Tier(20, 0.1)))
    steps = (1, 3, 4, 7)
    events = ref_events([unit_time(s) for s in steps], ["long"] * 4, [1.0] * 4, [50.0] * 4)
    assert ref.reference_run(bars, params, events)["calibration"]["hit_rate"] == 0.25
    assert engine_run(bars, params, events).calibration["hit_rate"] == 0.25


def test_it_scores_events_however_far_the_earlier_state_lies_from_the_last_close() -> None:
    # 2x at EP 100 (long LP 50, short LP 150), wiped by OI 0 on step 2, then the price falls to
    # a last close of 1: at 1 bp (w = 0.0001) the state after step 1 lies ~1.5M bins above the
    # close. With one heatmap column (step 3, empty) the output grid is the two bins around the
    # close. The long event on step 2 sees one long bin (LP 50): never hot, so a miss (0, 0).
    # The decisions cap only the output grid at 20,000 bins; the zone test has no cap.
    bars = make_bars(
        [
            (100, 100, 100, 100, 1.0),
            (100, 100, 100, 100, 2.0),
            (100, 100, 100, 100, 0.0),
            (100, 100, 1, 1, 0.0),
        ]
    )
    params = one_tier(bin_bps=1.0, max_columns=1)
    events = ref_events([unit_time(2)], ["long"], [1.0], [50.0])
    expected = ref.reference_run(bars, params, events)["calibration"]
    assert (expected["hit_rate"], expected["coverage"]) == (0.0, 0.0)
    actual = engine_run(bars, params, events).calibration
    assert (actual["hit_rate"], actual["coverage"]) == (0.0, 0.0)


def test_it_refuses_a_missing_ratio_on_the_first_window_step() -> None:
    # MODEL.md: 'the steps that lie inside the last W ... are modelled, and the first of them only
    # sets OI' and '`ratio` mode on a step without a ratio is an error naming the step'.
    bars = make_bars([(100, 100, 100, 100, 1.0)] * 3, ratio=[math.nan, 1.0, 1.0])
    params = one_tier(long_share="ratio")
    with pytest.raises(ValueError, match="1970-01-01T00:00:00"):
        ref.reference_run(bars, params)
    with pytest.raises(ValueError, match="1970-01-01T00:00:00"):
        engine_run(bars, params)


def test_it_refuses_a_grid_over_20000_bins_like_the_reference() -> None:
    # 1x longs have LP 0: 10,000 bins below the close at 1 bp, and the 1x short LP 2 EP / (1 + m)
    # adds about as many above.
    bars = make_bars([(100, 100, 100, 100, 1.0), (100, 101, 99, 100, 2.0)])
    params = one_tier(leverage=1, bin_bps=1.0)
    with pytest.raises(ValueError, match="20001 bins"):
        ref.reference_run(bars, params)
    with pytest.raises(ValueError, match="20001"):
        engine_run(bars, params)


def test_it_matches_the_reference_on_two_days_of_default_parameters() -> None:
    rng = np.random.default_rng(2024)
    bars = random_bars(rng, STEP, 576, gap_every=50, start=19_000 * 288)
    events = random_events(rng, bars, Params())
    check_everything(Scenario(bars, Params(max_columns=100), events))


def smooth_bars(rng: np.random.Generator, rows: int) -> Bars:
    """A calm market: BTC-like 5-minute random walk, OI drifting without resets."""
    close = 60_000 * np.exp(np.cumsum(rng.normal(0, 0.002, rows)))
    open_ = np.concatenate([[60_000.0], close[:-1]])
    volume = rng.uniform(10, 100, rows)
    return Bars(
        ts=1_700_000_000_000 + STEP * np.arange(rows, dtype=np.int64),
        open=open_,
        high=np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.001, rows))),
        low=np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.001, rows))),
        close=close,
        volume=volume,
        taker_buy_volume=volume * rng.uniform(0.3, 0.7, rows),
        open_interest=80_000 * np.exp(np.cumsum(rng.normal(0, 0.003, rows))),
    )


def test_it_matches_the_reference_on_two_calm_days() -> None:
    rng = np.random.default_rng(3)
    bars = smooth_bars(rng, 576)
    params = Params(max_columns=200, window_ms=86_400_000 * 2)
    check_everything(Scenario(bars, params, random_events(rng, bars, params)))
