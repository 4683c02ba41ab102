"""The planner's numbers (maps/analytics/risk.py): liquidation prices against the exchanges'
documented examples and MODEL.md's formula, brackets, stops, the map's curves, impact, cascades."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from maps import engine
from maps.analytics import risk
from maps.analytics.risk import Brackets, Curves, Impact, RiskError
from maps.engine.types import Params
from maps.risk.brackets import binance_rows, brackets_from_rows
from tests.conftest import synthetic_bars

TABLES = Path(__file__).resolve().parent.parent / "maps" / "risk" / "tables"


def lp(side, entry, quantity, margin, brackets, formula="binance", fee=0.0) -> risk.Liquidation:
    return risk.liquidation_price(
        side=side,
        entry=entry,
        quantity=quantity,
        margin=margin,
        brackets=brackets,
        formula=formula,
        fee_rate=fee,
    )


def binance_btc() -> Brackets:
    payload = json.loads((TABLES / "binance.json").read_text())
    return brackets_from_rows(binance_rows(payload, "BTCUSDT"))


# MODEL.md's formula with one bracket.


def test_it_gives_model_md_liquidation_prices_with_one_bracket():
    one = Brackets.single(0.004, 125)
    # docs/model.md's worked example: EP 100, 10x, m 0.4 %.
    assert lp("long", 100, 1, 10, one).price == pytest.approx(90.36, abs=0.005)
    assert lp("short", 100, 1, 10, one).price == pytest.approx(109.56, abs=0.005)
    rng = np.random.default_rng(3)
    for entry, lev, m in zip(
        rng.uniform(1, 1e5, 50), rng.uniform(1, 100, 50), [0.004] * 50, strict=True
    ):
        quantity = rng.uniform(0.01, 5)
        margin = quantity * entry / lev
        for formula in ("binance", "okx"):  # OKX's rule without a fee is the same formula
            long = lp("long", entry, quantity, margin, Brackets.single(m, 125), formula).price
            short = lp("short", entry, quantity, margin, Brackets.single(m, 125), formula).price
            assert long == pytest.approx(entry * (1 - 1 / lev) / (1 - m), rel=1e-12)
            assert short == pytest.approx(entry * (1 + 1 / lev) / (1 + m), rel=1e-12)


# Binance: its FAQ's examples and its bracket rule.


def test_it_matches_binances_documented_bracket_examples():
    """Binance FAQ "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts": a 264,000
    USDT BTCUSDT position is in the 1 % bracket; a 500,000 USDT one has a maintenance amount of
    1,300 = 250,000 x (1 % - 0.5 %) + 50 (bracket 3)."""
    table = binance_btc()
    assert table.rate[table.index(264_000)] == 0.01
    assert table.amount[table.index(500_000)] == 1_300
    assert risk.maintenance_amounts(table.floor, table.rate)[2] == pytest.approx(1_300)
    assert risk.maintenance_amounts(table.floor, table.rate) == pytest.approx(table.amount)


def test_it_uses_binances_bracket_at_the_liquidation_price():
    """Binance: when the position at the liquidation price falls in another bracket than at
    entry, the liquidation price is recalculated with that bracket's rate and amount."""
    table = binance_btc()
    entry, quantity = 60_000.0, 4.2  # 252,000 USDT at entry: bracket 3 (1 %, cum 1,300)
    margin = quantity * entry / 20
    result = lp("long", entry, quantity, margin, table)
    assert table.index(quantity * entry) == 2
    assert result.bracket == 1  # at the liquidation price the notional is under 250,000
    assert quantity * result.price < 250_000
    assert (result.rate, result.amount) == (0.005, 50.0)
    # Binance's formula: LP = (WB + cum - Q EP) / (Q MMR - Q), i.e. the wallet at LP equals the
    # maintenance margin notional x MMR - cum.
    wallet = margin + quantity * (result.price - entry)
    assert wallet == pytest.approx(quantity * result.price * 0.005 - 50, rel=1e-9)
    short = lp("short", entry, quantity, margin, table)
    assert margin + quantity * (entry - short.price) == pytest.approx(
        quantity * short.price * short.rate - short.amount, rel=1e-9
    )


# Bybit: its help centre's example.


def test_it_matches_bybits_documented_example():
    """Bybit "Liquidation Price (USDT Contract)", isolated, Example 1: a long of 1 BTC at 20,000
    USDT with 50x and a 0.5 % MMR: IM = 400, MM = 100, LP = 20,000 - (400 - 100) = 19,700."""
    table = Brackets([0], [2_000_000], [0.005], [0.0], [100])
    assert lp("long", 20_000, 1, 400, table, "bybit").price == pytest.approx(19_700)
    # The short mirrors it: LP = EP + (IM - MM) / size.
    assert lp("short", 20_000, 1, 400, table, "bybit").price == pytest.approx(20_300)
    # With a deduction (tier 2 of BTCUSDT: 0.56 %, 1,200), MM = value x MMR - deduction.
    tier2 = Brackets([0, 2e6], [2e6, 2.6e6], [0.005, 0.0056], [0, 1_200], [100, 90])
    value = 40 * 55_000  # 2.2M: tier 2
    mm = value * 0.0056 - 1_200
    assert lp("long", 55_000, 40, value / 50, tier2, "bybit").price == pytest.approx(
        55_000 - (value / 50 - mm) / 40
    )


# OKX: its documented liquidation rule.


def test_it_matches_okxs_documented_liquidation_rule():
    """OKX isolated margin: margin ratio = (margin + unrealised PnL) / (face value x contracts x
    mark price x (maintenance margin ratio + fee rate)); the position is liquidated when it
    reaches 100 %. OKX's example: at 10x with a 1.50 % maintenance ratio and a 0.05 % fee, a
    position is liquidated when its margin falls to 1.55 % of its value."""
    table = Brackets([0], [math.inf], [0.015], [0.0], [66.66], basis="quantity")
    entry, contracts, face = 10_000.0, 100, 0.01  # 100 contracts of 0.01 BTC
    quantity = contracts * face
    margin = quantity * entry / 10
    long = lp("long", entry, quantity, margin, table, "okx", fee=0.0005).price
    short = lp("short", entry, quantity, margin, table, "okx", fee=0.0005).price
    for price, pnl in ((long, quantity * (long - entry)), (short, quantity * (entry - short))):
        assert (margin + pnl) / (quantity * price * (0.015 + 0.0005)) == pytest.approx(1.0)
        assert (margin + pnl) / (quantity * price) == pytest.approx(0.0155)
    assert long == pytest.approx(9_000 / 0.9845)
    # Tiers are by size: the same size at another price keeps its tier.
    tiers = Brackets([0, 300], [300, 600], [0.004, 0.005], [0, 0], [125, 100], basis="quantity")
    assert lp("long", 3_000, 350, 350 * 3_000 / 20, tiers, "okx").bracket == 1
    assert lp("long", 30, 350, 350 * 30 / 20, tiers, "okx").bracket == 1


def test_it_says_when_the_margin_covers_a_fall_to_zero():
    table = binance_btc()
    result = lp("long", 60_000, 0.1, 6_000, table)  # 1x
    assert result.price <= 0


def test_it_refuses_bad_inputs_naming_the_field():
    one = Brackets.single(0.004, 100)
    with pytest.raises(RiskError) as caught:
        lp("sideways", 100, 1, 10, one)
    assert caught.value.field == "side"
    for entry, field in ((0, "entry"), (-5, "entry"), (math.nan, "entry")):
        with pytest.raises(RiskError) as caught:
            lp("long", entry, 1, 10, one)
        assert caught.value.field == field
    with pytest.raises(RiskError) as caught:
        lp("long", 100, 0, 10, one)
    assert caught.value.field == "size"


def test_it_refuses_a_bracket_table_with_a_gap_or_a_bad_rate():
    with pytest.raises(RiskError, match="bracket 2: floor must equal the previous cap"):
        Brackets([0, 60], [50, 100], [0.004, 0.005], [0, 0], [125, 100])
    with pytest.raises(RiskError, match="bracket 1: maintenance rate"):
        Brackets([0], [50], [1.5], [0], [125])
    with pytest.raises(RiskError, match="bracket 1 must start at 0"):
        Brackets([10], [50], [0.004], [0], [125])


# Max safe leverage and stops.


@pytest.mark.parametrize("formula", ["binance", "bybit", "okx"])
@pytest.mark.parametrize("side, stop", [("long", 57_000.0), ("short", 63_500.0)])
def test_it_gives_the_highest_leverage_whose_liquidation_stays_beyond_the_stop(formula, side, stop):
    table = binance_btc()
    entry, quantity = 60_000.0, 2.0
    best = risk.max_safe_leverage(
        side=side, entry=entry, quantity=quantity, stop=stop, brackets=table, formula=formula
    )
    assert best is not None and 1 <= best <= 100

    def at(leverage):
        return lp(side, entry, quantity, quantity * entry / leverage, table, formula).price

    beyond = (lambda p: p < stop) if side == "long" else (lambda p: p > stop)
    assert beyond(at(best))
    assert not beyond(at(best + 1))


def test_it_puts_a_longs_stop_below_the_nearest_long_cluster_by_half_an_atr():
    clusters = [
        {"side": "long", "price_low": 95.0, "price_high": 97.0, "notional_usd": 5e6, "share": 0.3},
        {"side": "long", "price_low": 98.0, "price_high": 98.5, "notional_usd": 1e5, "share": 0.01},
        {"side": "long", "price_low": 90.0, "price_high": 92.0, "notional_usd": 8e6, "share": 0.4},
        {"side": "short", "price_low": 104, "price_high": 106, "notional_usd": 6e6, "share": 0.5},
    ]
    stop, cluster = risk.suggested_stop(
        side="long", entry=100, last_close=100, clusters=clusters, atr=1.2
    )
    assert cluster["price_low"] == 95.0  # the nearest significant one (the 1 % one is skipped)
    assert stop == pytest.approx(95.0 - 0.6)
    stop, cluster = risk.suggested_stop(
        side="short", entry=100, last_close=100, clusters=clusters, atr=1.2
    )
    assert (cluster["price_high"], stop) == (106, pytest.approx(106.6))
    # An entry below a cluster: the stop clears the next cluster that starts below the entry.
    low_entry = risk.suggested_stop(side="long", entry=91, last_close=100, clusters=clusters, atr=1)
    assert low_entry[0] == pytest.approx(89.5)
    none = risk.suggested_stop(side="long", entry=80, last_close=100, clusters=clusters, atr=1)
    assert none is None


def test_it_takes_the_atr_of_whole_hours():
    ts = np.arange(36, dtype=np.int64) * 300_000  # three hours of 5-minute steps
    high = np.r_[np.full(12, 101.0), np.full(12, 104.0), np.full(12, 103.0)]
    low = np.r_[np.full(12, 99.0), np.full(12, 100.0), np.full(12, 97.0)]
    close = np.r_[np.full(12, 100.0), np.full(12, 102.0), np.full(12, 98.0)]
    # hour 2: max(104, 100) - min(100, 100) = 4; hour 3: max(103, 102) - min(97, 102) = 6
    assert risk.hourly_atr(ts=ts, high=high, low=low, close=close) == pytest.approx(5.0)
    assert risk.hourly_atr(ts=ts[:12], high=high[:12], low=low[:12], close=close[:12]) is None


# The map's curves, impact and cascades.


@pytest.fixture(scope="module")
def result():
    bars = synthetic_bars(steps=900, seed=11, price=50_000.0, end_ms=1_800_000_000_000)
    return engine.run(bars, Params(window_ms=3 * 86_400_000))


def curves_of(result) -> Curves:
    totals = result.report["totals"]
    return Curves.from_map(
        edges=result.edges,
        cum_long=result.cum_long,
        cum_short=result.cum_short,
        map_long=result.map_long,
        map_short=result.map_short,
        last_close=result.last_close,
        beyond=(totals["long"]["beyond_close"], totals["short"]["beyond_close"]),
    )


def test_it_reads_the_cumulative_curves_at_any_price_within_a_bin(result):
    """A price inside bin k reads a value between the engine's curve at that bin and at the
    next one: the map's cumulative curve at that price, within a bin."""
    curves = curves_of(result)
    edges, last = result.edges, len(result.edges) - 2
    rng = np.random.default_rng(5)
    for price in rng.uniform(edges[0], edges[-1], 300):
        k = min(int(np.searchsorted(edges, price, side="right")) - 1, last)
        if price <= result.last_close:
            inner = result.cum_long[k + 1] if k < last else curves.long_at[-1]
            assert inner - 1e-6 <= curves.long_to(price) <= result.cum_long[k] + 1e-6
        else:
            outer = result.cum_short[k - 1] if k > 0 else curves.short_at[0]
            assert outer - 1e-6 <= curves.short_to(price) <= result.cum_short[k] + 1e-6
    # At the bin edges the curves are the engine's exactly.
    for k in range(0, len(edges) - 1, 37):
        if edges[k] <= result.last_close:
            assert curves.long_to(edges[k]) == pytest.approx(result.cum_long[k])
        if edges[k + 1] >= result.last_close:
            assert curves.short_to(edges[k + 1]) == pytest.approx(result.cum_short[k])


def test_it_splits_the_way_there_by_tier(result):
    curves = curves_of(result)
    price = result.last_close * 0.97
    long, short = curves.tiers_to(price)
    assert len(long) == len(result.params.tiers)
    assert sum(long) == pytest.approx(curves.long_to(price), rel=0.02, abs=1.0)
    assert short == pytest.approx([0.0] * len(short), abs=1e-6) or sum(short) >= 0


def test_it_fits_the_impact_of_liquidations():
    rng = np.random.default_rng(8)
    n = 3_000
    long = rng.exponential(2e6, n) * (rng.random(n) < 0.3)
    short = rng.exponential(2e6, n) * (rng.random(n) < 0.3)
    beta = 3e-10
    returns = beta * (short - long) + rng.normal(0, 2e-4, n)
    previous = 100 * np.exp(np.cumsum(np.r_[0, returns[:-1]]))
    close = previous * np.exp(returns)
    fit = risk.impact_fit(close=close, previous=previous, long_usd=long, short_usd=short)
    assert fit.per_usd == pytest.approx(beta, rel=0.05)
    assert 0.5 < fit.r2 < 1 and fit.steps == n and fit.identified
    none = risk.impact_fit(close=close, previous=previous, long_usd=long * 0, short_usd=short * 0)
    assert none.per_usd is None and not none.identified


def test_it_runs_a_cascade_to_its_fixed_point(result):
    curves = curves_of(result)
    impact = Impact(2e-10, 0.3, 1000)
    start = result.last_close * 0.985
    run = risk.cascade(price=start, curves=curves, impact=impact)
    assert run.price <= start
    if not run.beyond_map:
        assert run.price == pytest.approx(start * math.exp(-2e-10 * curves.long_to(run.price)))
    assert run.liquidated_usd == pytest.approx(curves.long_to(run.price))
    up = risk.cascade(price=result.last_close * 1.01, curves=curves, impact=impact)
    assert up.price >= result.last_close * 1.01
    flat = risk.cascade(price=start, curves=curves, impact=Impact(None, None, 0))
    assert (flat.price, flat.iterations) == (start, 0)
    assert flat.liquidated_usd == pytest.approx(curves.long_to(start))
    huge = risk.cascade(price=start, curves=curves, impact=Impact(1e-3, 0.9, 10))
    assert huge.beyond_map and huge.price == result.edges[0]
