"""Clusters, proximity, aggregation across markets, result.json, and the text parsers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maps.engine import (
    ENGINE_VERSION,
    Bars,
    EngineError,
    Params,
    Tier,
    aggregate,
    clusters_from_bins,
    parse_duration,
    parse_tiers,
    proximity_from_clusters,
    result_to_json,
    run,
)

EDGES = 100.0 + np.arange(15.0)
# total 39 over 12 non-empty bins: average 3.25, hot from 6.5: bins 2 (10), 5 (12) and 12 (8).
# Bins 2 and 5 are two bins apart, so they merge into one cluster 2..5 holding 10 + 1 + 0 + 12.
X = np.array([1, 1, 10, 1, 0, 12, 1, 1, 1, 1, 1, 0, 8, 1], dtype=float)


def test_it_finds_clusters_by_the_hot_bin_rule():
    clusters = clusters_from_bins(X, EDGES, 104.0, "long")
    assert clusters == [
        {
            "side": "long",
            "price_low": 102.0,
            "price_high": 106.0,
            "peak_price": 105.5,
            "notional_usd": 23.0,
            "share": pytest.approx(23 / 39),
            "distance_pct": 0.0,
        },
        {
            "side": "long",
            "price_low": 112.0,
            "price_high": 113.0,
            "peak_price": 112.5,
            "notional_usd": 8.0,
            "share": pytest.approx(8 / 39),
            "distance_pct": pytest.approx(100 * 8 / 104),
        },
    ]


def test_it_does_not_merge_hot_runs_three_bins_apart():
    x = np.array([1, 1, 10, 0, 0, 0, 12, 1, 1, 1], dtype=float)
    clusters = clusters_from_bins(x, 100.0 + np.arange(11.0), 200.0, "short")
    assert [(c["price_low"], c["price_high"]) for c in clusters] == [(106, 107), (102, 103)]
    assert clusters[0]["distance_pct"] == pytest.approx(-100 * 93 / 200)


def test_it_drops_clusters_under_one_percent_and_ranks_ties_low_first():
    x = np.ones(1100)
    x[100] = 10_000.0
    x[600] = 100.0  # hot (average ~11) but under 1% of the 11,198 total
    edges = np.arange(1101.0)
    clusters = clusters_from_bins(x, edges, 50.0, "long")
    assert [c["price_low"] for c in clusters] == [100.0]
    tie = np.zeros(20)
    tie[[3, 15]] = 5.0
    tie[[0, 7, 9, 11, 18, 19]] = 0.1  # average 10.6 / 8: 5 is hot
    ranked = clusters_from_bins(tie, np.arange(21.0), 10.0, "short")
    assert [c["price_low"] for c in ranked] == [3.0, 15.0]


def test_it_takes_the_first_peak_on_ties_and_finds_nothing_in_flat_or_empty_sides():
    x = np.array([0.1, 0, 5, 5, 0, 0, 0, 0.1, 0.1, 0.1])
    (cluster,) = clusters_from_bins(x, np.arange(11.0), 1.0, "long")
    assert cluster["peak_price"] == 2.5
    assert clusters_from_bins(np.ones(5), np.arange(6.0), 1.0, "long") == []
    assert clusters_from_bins(np.zeros(5), np.arange(6.0), 1.0, "long") == []
    with pytest.raises(EngineError, match="5 bins need 6 edges"):
        clusters_from_bins(np.ones(5), np.arange(5.0), 1.0, "long")
    with pytest.raises(EngineError, match="last_close"):
        clusters_from_bins(np.ones(5), np.arange(6.0), 0.0, "long")


def cluster(side, low, high, usd, share, close=100.0):
    distance = (
        0.0 if low <= close <= high else 100 * ((high if high < close else low) - close) / close
    )
    return {
        "side": side,
        "price_low": low,
        "price_high": high,
        "peak_price": (low + high) / 2,
        "notional_usd": usd,
        "share": share,
        "distance_pct": distance,
    }


def test_it_finds_the_nearest_significant_clusters_and_the_magnet():
    clusters = [
        cluster("long", 95, 96, 300.0, 0.30),
        cluster("long", 98, 99, 40.0, 0.04),  # under 5%: not significant
        cluster("short", 103, 104, 200.0, 0.20),
        cluster("short", 110, 111, 400.0, 0.40),
    ]
    prox = proximity_from_clusters(clusters, 100.0)
    assert prox["long"]["price_high"] == 96 and prox["long"]["distance_pct"] == pytest.approx(-4)
    assert prox["short"]["price_low"] == 103 and prox["short"]["notional_usd"] == 200.0
    assert prox["nearer"] == "short"
    assert prox["larger"] == "long"
    assert prox["magnet"] == "long"  # 300 / 4 = 75 beats 200 / 3 = 66.7
    assert prox["direction"] == "down"
    assert prox["last_close"] == 100.0


def test_it_handles_one_or_no_side_and_clusters_touching_the_close():
    only_short = proximity_from_clusters([cluster("short", 100, 101, 50.0, 0.5)], 100.0)
    assert only_short["long"] is None
    assert (only_short["nearer"], only_short["larger"], only_short["magnet"]) == ("short",) * 3
    assert only_short["direction"] == "up"
    assert only_short["short"]["distance_pct"] == 0.0
    none = proximity_from_clusters([cluster("long", 101, 102, 50.0, 0.5)], 100.0)
    assert none["long"] is None and none["short"] is None
    assert none["nearer"] is None and none["magnet"] is None and none["direction"] is None


def test_it_floors_the_magnet_distance():
    clusters = [cluster("long", 99, 100, 10.0, 0.5), cluster("short", 100.01, 101, 100.0, 0.5)]
    prox = proximity_from_clusters(clusters, 100.0)
    assert prox["long"]["distance_pct"] == 0.0  # the close is its upper edge
    assert prox["nearer"] == "long"
    # scores: long 10 / max(0, 0.05) = 200, short 100 / max(0.01, 0.05) = 2000
    assert prox["magnet"] == "short" and prox["direction"] == "up"


def synthetic_bars(n=400, seed=1, scale=1.0) -> Bars:
    rng = np.random.default_rng(seed)
    close = 30_000 * scale * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.001, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.001, n)))
    volume = rng.uniform(10, 100, n)
    return Bars(
        ts=1_704_067_200_000 + np.arange(n) * 300_000,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        taker_buy_volume=volume * rng.uniform(0, 1, n),
        open_interest=1e4 * np.exp(np.cumsum(rng.normal(0, 0.003, n))),
    )


def test_it_aggregates_markets_on_one_grid_conserving_notional():
    a = run(synthetic_bars(seed=1), Params(window_ms=400 * 300_000, max_columns=50))
    b = run(
        synthetic_bars(n=380, seed=2, scale=1.003),
        Params(window_ms=400 * 300_000, max_columns=40, bin_bps=15),
    )
    total = aggregate([a, b])
    assert total.last_close == a.last_close  # same as_of: the first market anchors the grid
    assert total.last_close in total.edges.tolist()
    assert np.diff(total.edges) == pytest.approx(a.last_close * 10 / 1e4, rel=1e-9)
    for side in ("map_long", "map_short"):
        expect = getattr(a, side).sum(1) + getattr(b, side).sum(1)
        assert getattr(total, side).sum(1) == pytest.approx(expect, rel=1e-9)
    assert total.cum_long[0] == pytest.approx(a.cum_long[0] + b.cum_long[0], rel=1e-9)
    assert total.cum_short[-1] == pytest.approx(a.cum_short[-1] + b.cum_short[-1], rel=1e-9)
    assert np.all(np.diff(total.cum_long) <= 1e-9 * total.cum_long[0])
    assert np.all(np.diff(total.cum_short) >= -1e-9 * total.cum_short[-1])
    assert total.heat_times.tolist() == a.heat_times.tolist()
    assert total.heat_long[-1].sum() == pytest.approx(a.map_long.sum() + b.map_long.sum())
    assert total.liq_times.tolist() == a.liq_times.tolist()
    assert total.liq_long.sum() == pytest.approx(a.liq_long.sum() + b.liq_long.sum())
    assert total.report["totals"]["long"]["opened"] == pytest.approx(
        a.report["totals"]["long"]["opened"] + b.report["totals"]["long"]["opened"]
    )
    assert total.clusters and total.proximity["last_close"] == total.last_close


def test_it_refuses_to_aggregate_nothing_or_different_tiers():
    with pytest.raises(EngineError):
        aggregate([])
    a = run(synthetic_bars(n=50), Params(window_ms=50 * 300_000))
    b = run(synthetic_bars(n=50), Params(window_ms=50 * 300_000, tiers=(Tier(10, 1.0),)))
    with pytest.raises(EngineError, match="leverage tiers"):
        aggregate([a, b])


def test_it_writes_the_result_json_shape():
    result = run(synthetic_bars(n=200), Params(window_ms=200 * 300_000, max_columns=30))
    doc = json.loads(json.dumps(result_to_json(result), allow_nan=False))
    bins = len(doc["bins"]["edges"]) - 1
    assert doc["engine_version"] == ENGINE_VERSION
    assert doc["as_of"] == result.as_of and doc["last_close"] == result.last_close
    assert doc["step_ms"] == 300_000
    assert doc["params"]["tiers"][0] == {"leverage": 5, "weight": 0.15}
    assert doc["params"]["holding_ms"] == 86_400_000
    assert len(doc["map"]["long"]) == 5 and len(doc["map"]["long"][0]) == bins
    assert len(doc["cumulative"]["short"]) == bins
    assert len(doc["heatmap"]["times"]) == len(doc["heatmap"]["long"]) == 29  # k = 7
    assert len(doc["heatmap"]["short"][0]) == bins
    liquidated = doc["liquidated"]
    assert len(liquidated["times"]) == len(liquidated["long"]) == 199
    assert len(liquidated["long_by_tier"]) == 5 and len(liquidated["long_by_tier"][0]) == 199
    assert set(doc["clusters"][0]) >= {
        "side",
        "price_low",
        "price_high",
        "peak_price",
        "notional_usd",
        "distance_pct",
    }
    assert {"long", "short", "nearer", "larger", "magnet"} <= set(doc["proximity"])
    assert doc["calibration"] is None
    assert {"gaps", "steps", "window_start", "totals", "skipped"} <= set(doc["report"])


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("5m", 300_000),
        ("24h", 86_400_000),
        ("7d", 604_800_000),
        ("1.5h", 5_400_000),
        ("250ms", 250),
        ("2w", 1_209_600_000),
        ("inf", None),
    ],
)
def test_it_parses_durations(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "5", "5x", "-5m", "0m", "0.5ms"])
def test_it_rejects_bad_durations(text):
    with pytest.raises(EngineError, match="bad duration"):
        parse_duration(text)


def test_it_parses_tier_lists():
    assert parse_tiers("5:0.15, 10:0.85") == (Tier(5.0, 0.15), Tier(10.0, 0.85))
    for bad in ("5-0.15", "5:x", "5:0.1:3"):
        with pytest.raises(EngineError, match="bad tier"):
            parse_tiers(bad)


def test_it_reads_back_the_parameters_it_writes():
    from maps.engine.serialize import params_from_json, params_to_json

    params = Params(
        tiers=(Tier(3, 0.5), Tier(12.5, 0.5)),
        mmr=0.005,
        long_share="ratio",
        holding_ms=None,
        bin_bps=7.5,
        window_ms=86_400_000,
        max_columns=90,
        step_ms=900_000,
    )
    assert params_from_json(params_to_json(params)) == params
