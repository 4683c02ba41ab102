"""maps/analytics/levels.py: candles, Wilder's RSI against a plain reference, fractal pivots,
support/resistance, the volume profile, divergences and confluence (no database)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from maps.analytics import levels as lv
from maps.analytics.risk import hourly_atr
from tests.conftest import synthetic_bars

HOUR = 3_600_000
STEP = 300_000
REAL = Path(__file__).resolve().parent / "fixtures" / "real" / "source"


def reference_rsi(closes: list[float], period: int = 14) -> list[float | None]:
    """Wilder's RSI as written in his book, one close at a time, in plain Python."""
    out: list[float | None] = [None] * len(closes)
    gains, losses = [], []
    avg_gain = avg_loss = 0.0
    for i in range(1, len(closes)):
        change = closes[i] - closes[i - 1]
        gain, loss = max(change, 0.0), max(-change, 0.0)
        if i <= period:
            gains.append(gain)
            losses.append(loss)
            if i < period:
                continue
            avg_gain, avg_loss = sum(gains) / period, sum(losses) / period
        else:
            avg_gain = (avg_gain * (period - 1) + gain) / period
            avg_loss = (avg_loss * (period - 1) + loss) / period
        out[i] = 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out


def frames_of(bars) -> dict[str, lv.Candles]:
    return {
        tf: lv.candles(
            ts=bars.ts,
            open=bars.open,
            high=bars.high,
            low=bars.low,
            close=bars.close,
            volume=bars.volume * bars.close,
            period_ms=period,
        )
        for tf, period in lv.TIMEFRAMES.items()
    }


@pytest.fixture(scope="module")
def week():
    return synthetic_bars(steps=7 * 288, seed=21, price=60_000.0, end_ms=1_800_000_000_000)


@pytest.fixture(scope="module")
def real():
    """The real Binance HYPEUSDT sample: 5-minute klines, 2025-05-30 10:30 to 05-31 18:25."""
    with (REAL / "HYPEUSDT-5m-2025-05-30_31.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    columns = {
        name: np.array([float(r[name]) for r in rows])
        for name in ("open", "high", "low", "close", "volume")
    }
    return np.array([int(r["open_time"]) for r in rows], dtype=np.int64), columns


# Candles and RSI.


def test_it_groups_steps_into_utc_hours_and_four_hour_blocks(week):
    hours = lv.candles(
        ts=week.ts,
        open=week.open,
        high=week.high,
        low=week.low,
        close=week.close,
        volume=week.volume,
        period_ms=HOUR,
    )
    first = week.ts // HOUR == hours.ts[0] // HOUR
    assert hours.ts[0] % HOUR == 0
    assert hours.open[0] == week.open[first][0]
    assert hours.high[0] == week.high[first].max()
    assert hours.low[0] == week.low[first].min()
    assert hours.close[0] == week.close[first][-1]
    assert hours.volume.sum() == pytest.approx(week.volume.sum())
    blocks = lv.candles(
        ts=week.ts,
        open=week.open,
        high=week.high,
        low=week.low,
        close=week.close,
        volume=week.volume,
        period_ms=4 * HOUR,
    )
    assert np.all(blocks.ts % (4 * HOUR) == 0)
    assert len(blocks) * 4 >= len(hours) - 4


def test_it_refuses_unsorted_steps():
    with pytest.raises(lv.LevelsError, match="strictly increasing"):
        lv.candles(
            ts=np.array([2, 1]),
            open=np.ones(2),
            high=np.ones(2),
            low=np.ones(2),
            close=np.ones(2),
            volume=np.ones(2),
            period_ms=HOUR,
        )


def test_it_computes_wilders_rsi_like_the_plain_reference(week):
    closes = frames_of(week)["1h"].close
    mine = lv.wilder_rsi(closes)
    theirs = reference_rsi(closes.tolist())
    assert np.isnan(mine[:14]).all()
    assert all(v is None for v in theirs[:14])
    for a, b in zip(mine[14:], theirs[14:], strict=True):
        assert a == pytest.approx(b, abs=1e-9)


def test_it_matches_a_reference_started_later_once_warmed_up(week):
    """RSIs started on different first closes agree within 0.01 after the warm-up."""
    closes = frames_of(week)["1h"].close
    full = lv.wilder_rsi(closes)
    later = reference_rsi(closes[24:].tolist())
    warm = 24 + 14 + 200
    for i in range(warm, len(closes)):
        assert full[i] == pytest.approx(later[i - 24], abs=0.01)


def test_it_computes_the_rsi_of_real_hourly_closes(real):
    ts, c = real
    hours = lv.candles(
        ts=ts,
        open=c["open"],
        high=c["high"],
        low=c["low"],
        close=c["close"],
        volume=c["volume"],
        period_ms=HOUR,
    )
    mine = lv.wilder_rsi(hours.close)
    theirs = reference_rsi(hours.close.tolist())
    assert len(hours) == 33  # 10:30 to 18:25 the next day, the first hour from 10:30
    np.testing.assert_allclose(mine[14:], np.array(theirs[14:], dtype=float), atol=0.01)
    assert np.nanmin(mine) >= 0 and np.nanmax(mine) <= 100


def test_it_gives_rsi_100_without_losses_and_50_without_moves():
    assert lv.wilder_rsi(np.arange(20.0))[-1] == 100.0
    assert lv.wilder_rsi(np.full(20, 5.0))[-1] == 50.0
    assert lv.wilder_rsi(np.arange(20.0)[::-1])[-1] == 0.0
    assert np.isnan(lv.wilder_rsi(np.arange(10.0))).all()


def test_it_reuses_the_planners_atr_on_each_timeframe(week):
    frames = frames_of(week)
    expected = hourly_atr(ts=week.ts, high=week.high, low=week.low, close=week.close)
    assert lv.atr(frames["1h"]) == pytest.approx(expected)
    h4 = frames["4h"]
    true_range = np.maximum(h4.high[1:], h4.close[:-1]) - np.minimum(h4.low[1:], h4.close[:-1])
    assert lv.atr(h4) == pytest.approx(true_range[-14:].mean())


# Pivots and support/resistance.


def test_it_finds_five_bar_fractals_and_counts_a_flat_top_once():
    high = np.array([1, 2, 5, 2, 1, 3, 4, 4, 3, 2, 6], dtype=float)
    low = high - 0.5
    highs, lows = lv.fractal_pivots(high, low)
    assert highs.tolist() == [2, 6]
    assert lows.tolist() == [4]
    assert lv.fractal_pivots(high[:4], low[:4])[0].size == 0


def test_it_lists_only_levels_touched_at_least_twice_with_their_touches(week):
    frames = frames_of(week)
    close = float(week.close[-1])
    tolerance = lv.level_tolerance(lv.atr(frames["1h"]), close)
    levels = lv.support_resistance(frames=frames, last_close=close, tolerance=tolerance)
    touches = lv.swing_touches(frames)
    assert levels
    assert [x["price"] for x in levels] == sorted(x["price"] for x in levels)
    for level in levels:
        inside = [t for t in touches if level["band_low"] <= t.price <= level["band_high"]]
        assert level["touches"] >= 2
        assert len(inside) >= level["touches"]
        assert level["band_high"] - level["band_low"] <= tolerance + 1e-9
        assert level["band_low"] <= level["price"] <= level["band_high"]
        assert level["last_touch"] == max(t.time for t in inside if t.time <= level["last_touch"])
        assert level["kind"] == ("support" if level["price"] < close else "resistance")


def test_it_finds_a_level_price_keeps_coming_back_to():
    """A range between 100 and 110: swing highs near 110 make resistance, lows near 100 support."""
    hours = np.arange(120) * HOUR
    wave = np.sin(np.arange(120) / 120 * 2 * np.pi * 8)
    close = 105 + 5 * wave
    bars = lv.candles(
        ts=hours,
        open=close,
        high=close + 0.2,
        low=close - 0.2,
        close=close,
        volume=np.ones(120),
        period_ms=HOUR,
    )
    levels = lv.support_resistance(frames={"1h": bars}, last_close=105.0, tolerance=0.5)
    kinds = {(round(x["price"]), x["kind"]) for x in levels}
    assert kinds == {(100, "support"), (110, "resistance")}
    assert all(x["touches"] == 8 for x in levels)


def test_it_counts_a_swing_seen_on_1h_and_4h_once(week):
    frames = frames_of(week)
    both = [t for t in lv.swing_touches(frames) if t.timeframes == ("1h", "4h")]
    alone = lv.swing_touches({"1h": frames["1h"]})
    assert both
    assert len(lv.swing_touches(frames)) < len(alone) + len(lv.swing_touches({"4h": frames["4h"]}))


def test_it_refuses_a_bad_tolerance_or_price(week):
    frames = frames_of(week)
    with pytest.raises(lv.LevelsError, match="tolerance"):
        lv.support_resistance(frames=frames, last_close=100.0, tolerance=0.0)
    with pytest.raises(lv.LevelsError, match="last_close"):
        lv.support_resistance(frames=frames, last_close=float("nan"), tolerance=1.0)


# Volume profile.


def test_it_puts_the_point_of_control_on_the_bin_with_the_most_volume(week):
    edges = lv.profile_edges(
        grid_start=60_000.0,
        grid_width=60.0,
        low=float(week.low.min()),
        high=float(week.high.max()),
        max_bins=240,
    )
    typical = (week.high + week.low + week.close) / 3
    profile = lv.volume_profile(
        high=week.high, low=week.low, volume_usd=week.volume * typical, edges=edges
    )
    top = int(np.argmax(profile.volume))
    assert profile.poc_index == top
    assert edges[top] <= profile.poc < edges[top + 1]
    assert profile.volume.sum() == pytest.approx((week.volume * typical).sum(), rel=1e-9)
    area = profile.value_area
    assert area["share"] >= 0.70
    assert area["low"] <= profile.poc <= area["high"]
    assert len(edges) - 1 <= 240
    assert np.allclose((edges - 60_000.0) / 60.0 % 1, 0) or len(edges) - 1 < 240


def test_it_spreads_each_bars_volume_evenly_over_its_range():
    edges = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    volume = lv.volume_by_price(
        high=np.array([3.0, 2.5, 1.5]),
        low=np.array([1.0, 2.5, 0.5]),
        volume_usd=np.array([100.0, 7.0, 10.0]),
        edges=edges,
    )
    np.testing.assert_allclose(volume, [5.0, 55.0, 57.0, 0.0])


def test_it_takes_the_value_area_around_the_point_of_control():
    volume = np.array([1.0, 2.0, 10.0, 30.0, 20.0, 5.0, 1.0, 31.0])
    low, high = lv.value_area(volume, poc=int(np.argmax(volume)))
    assert (low, high) == (2, 7) or volume[low : high + 1].sum() >= 0.7 * volume.sum()
    assert volume[low : high + 1].sum() >= 0.7 * volume.sum()


def test_it_finds_high_and_low_volume_nodes():
    centres = np.arange(60)
    volume = 100 * np.exp(-(((centres - 15) / 4) ** 2)) + 80 * np.exp(-(((centres - 45) / 4) ** 2))
    nodes = lv.volume_nodes(volume + 1.0, np.arange(61.0))
    kinds = [(n["kind"], round(n["price"])) for n in nodes]
    assert ("hvn", 16) in kinds or ("hvn", 15) in kinds
    assert any(k == "hvn" and 44 <= p <= 46 for k, p in kinds)
    assert any(k == "lvn" and 25 <= p <= 35 for k, p in kinds)


def test_it_refuses_impossible_bars_in_a_profile():
    with pytest.raises(lv.LevelsError, match="high >= low"):
        lv.volume_by_price(
            high=np.array([1.0]),
            low=np.array([2.0]),
            volume_usd=np.array([1.0]),
            edges=np.arange(4.0),
        )


def test_it_profiles_real_data_with_the_poc_at_the_fullest_bin(real):
    _ts, c = real
    edges = lv.profile_edges(
        grid_start=32.723,
        grid_width=0.032723,
        low=c["low"].min(),
        high=c["high"].max(),
        max_bins=240,
    )
    typical = (c["high"] + c["low"] + c["close"]) / 3
    profile = lv.volume_profile(
        high=c["high"], low=c["low"], volume_usd=c["volume"] * typical, edges=edges
    )
    assert profile.volume[profile.poc_index] == profile.volume.max()
    assert edges[profile.poc_index] <= profile.poc <= edges[profile.poc_index + 1]


# Divergences and confluence.


def test_it_finds_a_bullish_divergence_when_price_makes_a_lower_low_on_weaker_selling():
    """A fast fall to 90, a rebound, then a slow grind to 89: a lower low with a higher RSI."""
    path = np.r_[
        np.linspace(100, 100, 20),
        np.linspace(100, 90, 5),
        np.linspace(90, 97, 8),
        np.linspace(97, 89, 16),
        np.linspace(89, 95, 8),
    ]
    ts = np.arange(len(path)) * HOUR
    bars = lv.candles(
        ts=ts,
        open=path,
        high=path + 0.1,
        low=path - 0.1,
        close=path,
        volume=np.ones(len(path)),
        period_ms=HOUR,
    )
    found = lv.divergences(bars, lv.wilder_rsi(bars.close), timeframe="1h")
    bullish = [d for d in found if d["kind"] == "bullish"]
    assert bullish
    d = bullish[-1]
    assert d["price_end"] < d["price_start"] and d["rsi_end"] >= d["rsi_start"] + 3
    assert d["timeframe"] == "1h" and d["end"] > d["start"]


def context(**overrides) -> lv.Context:
    values = {
        "levels": [
            {"price": 99.5, "kind": "support", "touches": 4, "last_touch": 5},
            {"price": 120.0, "kind": "resistance", "touches": 2, "last_touch": 5},
        ],
        "poc": 110.0,
        "value_low": 99.0,
        "value_high": 115.0,
        "nodes": [{"kind": "hvn", "price": 99.6, "volume": 1.0}],
        "walls": [
            {
                "side": "bid",
                "price": 99.8,
                "price_low": 99.7,
                "price_high": 99.9,
                "usd": 12e6,
                "multiple": 6.0,
                "stood_ms": 600_000,
                "standing": True,
            },
            {
                "side": "ask",
                "price": 99.8,
                "price_low": 99.7,
                "price_high": 99.9,
                "usd": 50e6,
                "multiple": 20.0,
                "stood_ms": 0,
                "standing": True,
            },
        ],
        "rsi": {"1h": 74.0, "4h": 55.0},
        "divergences": [],
        "tolerance": 0.2,
    }
    return lv.Context(**{**values, **overrides})


LONG_CLUSTER = {"side": "long", "price_low": 99.0, "price_high": 100.0, "notional_usd": 4.35e8}


def test_it_scores_a_cluster_on_support_a_node_an_opposing_wall_and_rsi():
    result = lv.confluence(LONG_CLUSTER, context())
    kinds = [r["kind"] for r in result["reasons"]]
    assert kinds == ["support", "hvn", "bid_wall", "rsi"]
    weights = {r["kind"]: r["weight"] for r in result["reasons"]}
    assert weights == {"support": 2, "hvn": 1, "bid_wall": 1, "rsi": 1}
    assert result["score"] == 5
    assert result["reasons"][0]["text"] == "support 4 touches"
    assert result["reasons"][2]["usd"] == 12e6  # the bid wall, not the larger ask wall
    assert "RSI 1h 74 overbought" in result["reasons"][3]["text"]


def test_it_scores_nothing_when_nothing_lines_up():
    far = {"side": "short", "price_low": 140.0, "price_high": 141.0, "notional_usd": 1e6}
    assert lv.confluence(far, context()) == {"score": 0, "reasons": []}


def test_it_counts_a_recent_divergence_toward_the_cluster():
    divergence = {"timeframe": "4h", "kind": "bullish", "bars_ago": 2}
    short = {"side": "short", "price_low": 119.0, "price_high": 121.0, "notional_usd": 1e6}
    result = lv.confluence(short, context(rsi={"1h": 25.0, "4h": 45.0}, divergences=[divergence]))
    rsi = next(r for r in result["reasons"] if r["kind"] == "rsi")
    assert rsi["weight"] == 2
    assert "oversold" in rsi["text"] and "bullish divergence" in rsi["text"]


def test_it_counts_a_strong_or_old_wall_double():
    old = context()
    old.walls[0]["stood_ms"] = 2 * HOUR
    result = lv.confluence(LONG_CLUSTER, old)
    assert [r["weight"] for r in result["reasons"] if r["kind"] == "bid_wall"] == [2]
