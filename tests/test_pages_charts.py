"""The charts' array shaping (maps.charts): crop, merge, thin, bucket, candles, real liquidations;
and the figures' data (maps.figures)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from maps import charts, engine
from maps.engine.types import Events, Params
from tests.conftest import synthetic_bars

STEP = 300_000


@pytest.fixture(scope="module")
def result_and_price():
    bars = synthetic_bars(
        steps=3000, seed=11, price=60_000.0, end_ms=1_800_000_000_000 // STEP * STEP
    )
    result = engine.run(bars, Params(window_ms=7 * 86_400_000))
    candles = charts.Candles.from_bars(bars, STEP)
    keep = candles.times >= charts.window_start_ms(result)
    return result, charts.Candles(
        *(getattr(candles, name)[keep] for name in ("times", "open", "high", "low", "close")),
        candles.volume_usd[keep],
        STEP,
    )


def candles_of(lows, highs, step=STEP):
    n = len(lows)
    mid = (np.array(lows) + np.array(highs)) / 2
    return charts.Candles(
        np.arange(n, dtype=np.int64) * step,
        mid,
        np.array(highs),
        np.array(lows),
        mid,
        np.ones(n),
        step,
    )


def events_of(rows):
    """Events from (time ms, is_long, price, notional) rows."""
    time, is_long, price, notional = zip(*rows, strict=True) if rows else ((), (), (), ())
    return Events(
        np.array(time, dtype=np.int64),
        np.array(is_long, dtype=bool),
        np.array(price, dtype=float),
        np.array(notional, dtype=float),
    )


def test_it_crops_to_the_windows_range_widened_by_the_margin():
    edges = 100.0 + np.arange(201) * 1.0
    candles = candles_of([190.0, 195.0, 205.0], [198.0, 204.0, 210.0])
    first, stop = charts.crop_range(edges, candles, last_close=200.0)
    assert edges[first] <= 190.0 * (1 - charts.CROP_PCT) < edges[first + 1]
    assert edges[stop - 1] < 210.0 * (1 + charts.CROP_PCT) <= edges[stop] or stop == 200


def test_it_crops_around_the_last_close_without_candles():
    edges = 50.0 + np.arange(1001) * 0.1
    first, stop = charts.crop_range(edges, charts.Candles.empty(), last_close=100.0)
    assert edges[first] == pytest.approx(88.0, abs=0.1)
    assert edges[stop] == pytest.approx(112.0, abs=0.1)


def test_it_widens_the_crop_to_reachable_clusters_only():
    edges = 50.0 + np.arange(1001) * 0.1
    near = {"price_low": 80.0, "price_high": 81.0}
    far = {"price_low": 140.0, "price_high": 145.0}
    first, stop = charts.crop_range(edges, charts.Candles.empty(), 100.0, [near, far])
    assert edges[first] == pytest.approx(80.0, abs=0.1)
    assert edges[stop] == pytest.approx(112.0, abs=0.1)


def test_it_frames_the_window_range_with_a_margin():
    low, high = charts.fit_range(candles_of([95.0, 97.0], [101.0, 105.0]), last_close=100.0)
    assert low == pytest.approx(95.0 - 10.0 * charts.FIT_MARGIN)
    assert high == pytest.approx(105.0 + 10.0 * charts.FIT_MARGIN)
    low, high = charts.fit_range(charts.Candles.empty(), last_close=100.0)
    assert (low, high) == pytest.approx((100.0 - 0.6, 100.0 + 0.6))


@pytest.mark.parametrize(
    ("days", "interval_minutes"),
    [(0.5, 5), (1, 15), (3, 30), (7, 60), (30, 240), (90, 720)],
)
def test_it_picks_a_candle_interval_that_fits_the_window(days, interval_minutes):
    interval = charts.candle_interval(STEP, int(days * 86_400_000))
    assert interval == interval_minutes * 60_000
    assert days * 86_400_000 / interval <= charts.MAX_CANDLES


def test_it_resamples_candles_keeping_open_high_low_close_and_volume():
    times = np.arange(24, dtype=np.int64) * STEP + 3_600_000 * 10
    closes = 100.0 + np.arange(24)
    candles = charts.Candles(times, closes - 0.5, closes + 2, closes - 3, closes, np.ones(24), STEP)
    hourly = charts.resample_candles(candles, 3_600_000)
    assert len(hourly) == 2
    np.testing.assert_array_equal(hourly.times, [36_000_000, 39_600_000])
    assert hourly.open[0] == candles.open[0] and hourly.close[0] == candles.close[11]
    assert hourly.high[1] == candles.high[12:].max() and hourly.low[1] == candles.low[12:].min()
    np.testing.assert_array_equal(hourly.volume_usd, [12.0, 12.0])


def test_it_sums_real_liquidations_per_bucket_and_side():
    starts = np.array([0, 1000, 2000], dtype=np.int64)
    events = events_of(
        [
            (10, True, 1.0, 5.0),
            (999, False, 1.0, 7.0),
            (1500, True, 1.0, 2.0),
            (2500, False, 1.0, 1.0),
            (3000, True, 1.0, 100.0),
            (-5, True, 1.0, 9.0),
        ]
    )
    long, short = charts.real_buckets(events, starts, 1000.0)
    np.testing.assert_array_equal(long, [5.0, 2.0, 0.0])
    np.testing.assert_array_equal(short, [7.0, 0.0, 1.0])


def test_it_marks_the_largest_real_liquidations_by_candle_and_price_row():
    edges = np.array([100.0, 101.0, 102.0, 103.0])
    events = events_of(
        [
            (10, True, 100.2, 1_000.0),
            (20, True, 100.8, 3_000.0),
            (30, False, 102.5, 2_000.0),
            (4_000, True, 100.5, 10.0),
            (5_000, True, 150.0, 9_999.0),
        ]
    )
    markers = charts.real_markers(events, 1_000, edges, limit=10)
    assert len(markers) == 2
    np.testing.assert_array_equal(markers.times, [500, 500])
    first = int(np.flatnonzero(markers.is_long)[0])
    assert markers.notional[first] == 4_000.0
    assert markers.counts[first] == 2
    assert markers.prices[first] == pytest.approx((100.2 * 1_000 + 100.8 * 3_000) / 4_000)
    assert charts.real_markers(events, 1_000, edges, limit=1).notional.tolist() == [4_000.0]
    assert len(charts.real_markers(events_of([]), 1_000, edges)) == 0


def test_it_labels_the_colour_scale_across_its_whole_range():
    for low, high in ((3e6, 3e7), (7.8e6, 1.9e8), (1.0, 10.0), (4e4, 9e9)):
        ticks = charts.colour_ticks(low, high)
        assert 5 <= len(ticks) <= charts.MAX_COLOUR_TICKS
        assert all(low <= t <= high for t in ticks)
        assert ticks == sorted(ticks)
        assert ticks[0] <= low * 2.5 and ticks[-1] >= high / 2.5


def test_it_draws_empty_cells_as_nothing_and_keeps_the_long_share(result_and_price):
    result, candles = result_and_price
    data = charts.plot_data(result, candles)
    both = charts.heat_values(data, "both")
    empty = (data.heat_long + data.heat_short) <= 0
    assert np.isnan(both[empty]).all() and not np.isnan(both[~empty]).any()
    share = charts.long_share(data)
    assert share.dtype == np.uint8
    cell = np.unravel_index(np.argmax(data.heat_long + data.heat_short), both.shape)
    expected = data.heat_long[cell] / (data.heat_long[cell] + data.heat_short[cell]) * 255
    assert abs(int(share[cell]) - expected) <= 0.5


def test_it_keeps_the_notional_when_merging_rows():
    values = np.arange(2 * 7, dtype=float).reshape(2, 7)
    merged = charts.merge_rows(values, 3)
    assert merged.shape == (2, 3)
    np.testing.assert_allclose(merged.sum(1), values.sum(1))
    np.testing.assert_allclose(merged[0], [0 + 1 + 2, 3 + 4 + 5, 6])


def test_it_extends_the_grid_over_the_padded_top_row():
    edges = 10.0 + np.arange(8) * 0.5
    merged = charts.merged_edges(edges, 3)
    np.testing.assert_allclose(merged, [10.0, 11.5, 13.0, 14.5])


def test_it_thins_columns_from_the_last_one():
    kept = charts.thin_indices(1000, 300)
    assert kept[-1] == 999
    assert len(kept) <= 300
    assert np.all(np.diff(kept) == 4)
    np.testing.assert_array_equal(charts.thin_indices(5, 300), np.arange(5))


def test_it_keeps_the_total_when_bucketing_liquidations():
    values = np.arange(1, 1001, dtype=float)
    sums, k = charts.bucket_sums(values, 240)
    assert k == 5
    assert len(sums) == 200
    assert sums.sum() == values.sum()
    assert sums[-1] == values[-5:].sum()


def test_it_scales_colours_on_percentiles_of_the_nonzero_cells():
    values = np.zeros((10, 10), dtype=np.float32)
    values[0, :] = np.logspace(3, 8, 10)
    low, high = charts.colour_limits(values)
    assert 1e3 < low < high <= 1e8
    assert charts.colour_limits(np.zeros((3, 3))) == (1.0, 10.0)


def test_it_shapes_a_result_for_drawing(result_and_price):
    result, candles = result_and_price
    data = charts.plot_data(result, candles)
    rows = len(data.edges) - 1
    assert rows <= charts.MAX_ROWS
    assert data.heat_long.shape == (rows, len(data.col_times))
    assert data.heat_long.dtype == np.float32
    assert len(data.col_times) <= charts.MAX_COLUMNS
    assert data.col_times[-1] == result.heat_times[-1] + result.step_ms
    assert data.map_long.shape == (len(result.params.tiers), rows)
    assert len(data.cum_long) == len(data.cum_short) == rows
    assert len(data.liq_long) <= charts.MAX_LIQ_BARS
    assert data.liq_long.sum() == pytest.approx(result.liq_long.sum())
    assert data.edges[0] <= result.last_close <= data.edges[-1]
    assert data.candles.interval_ms == 3_600_000
    assert len(data.candles) <= charts.MAX_CANDLES
    assert data.candles.volume_usd.sum() == pytest.approx(candles.volume_usd.sum())
    assert data.edges[0] <= data.fit[0] < result.last_close < data.fit[1] <= data.edges[-1]
    assert data.data_since == result.report["window_start"]
    assert not data.has_real and len(data.markers) == 0


def test_it_draws_the_exact_column_values_it_keeps(result_and_price):
    result, candles = result_and_price
    data = charts.plot_data(result, candles)
    first = int(np.searchsorted(result.edges, data.edges[0] + 1e-9)) - 1
    width = float(result.edges[1] - result.edges[0])
    k = round(float(data.edges[1] - data.edges[0]) / width)
    last = result.heat_long[-1, first : first + k].sum()
    assert data.heat_long[0, -1] == pytest.approx(last, rel=1e-5)


@pytest.mark.parametrize("side", charts.SIDES)
def test_it_builds_compact_bokeh_json(result_and_price, side):
    result, candles = result_and_price
    payload = charts.chart_json(result, candles, side, "BTCUSDT test")
    assert len(payload) < 600_000
    item = json.loads(gzip.decompress(payload))
    assert item["doc"]["roots"]
    text = json.dumps(item)
    assert '"dtype": "float32"' in text
    assert "BTCUSDT test" in text
    assert "CustomJS" not in text


def real_events_near(result, count=200, seed=3):
    rng = np.random.default_rng(seed)
    start = charts.window_start_ms(result)
    times = rng.integers(start, int(result.as_of) + STEP, count)
    prices = result.last_close * (1 + rng.normal(0, 0.01, count))
    return Events(times, rng.random(count) < 0.5, prices, rng.pareto(1.5, count) * 1e4 + 1e3)


def test_it_names_its_layers_and_describes_itself(result_and_price):
    from bokeh.embed import json_item

    from maps.figures import chart_document

    result, candles = result_and_price
    events = real_events_near(result)
    layout = chart_document(charts.plot_data(result, candles, events), "both", "t")
    meta = layout.tags[0]
    assert [layer["name"] for layer in meta["layers"]] == ["candles", "real", "cumulative"]
    from bokeh.models import GlyphRenderer

    named = {r.name for r in layout.select({"type": GlyphRenderer}) if r.name}
    assert {"layer:candles", "layer:real", "layer:cumulative"} <= named
    for name in ("heatmap", "volume", "liquidations", "map", "tiers"):
        assert layout.select_one({"name": name}) is not None
    plot_map = layout.select_one({"name": "map"})
    assert plot_map.yaxis[0].visible and plot_map.yaxis[0].formatter is not None
    ticks = layout.select_one({"name": "heat-ticks"}).ticks
    assert len(ticks) >= 5
    mapper = layout.select_one({"name": "heat-mapper"})
    assert mapper.low_color != mapper.nan_color
    assert meta["fit"][0] < result.last_close < meta["fit"][1]
    assert meta["all"][0] <= meta["fit"][0] and meta["fit"][1] <= meta["all"][1]
    markers = layout.select_one({"name": "markers"})
    assert 0 < len(markers.data["t"]) <= charts.MAX_MARKERS
    liq = layout.select_one({"name": "liq-source"})
    assert -liq.data["real_long"].sum() + liq.data["real_short"].sum() == pytest.approx(
        events.notional[events.time >= liq.data["start"][0]].sum()
    )
    json_item(layout)


def test_it_leaves_out_the_real_layer_without_events(result_and_price):
    from maps.figures import chart_document

    result, candles = result_and_price
    layout = chart_document(charts.plot_data(result, candles), "long", "t")
    assert "real" not in [layer["name"] for layer in layout.tags[0]["layers"]]
    assert layout.select_one({"name": "markers"}) is None


def test_it_summarises_the_real_liquidations_of_the_window(result_and_price):
    result, _ = result_and_price
    events = real_events_near(result)
    early = Events(
        np.array([1], dtype=np.int64), np.array([True]), np.array([1.0]), np.array([9e9])
    )
    summary = charts.result_summary(result, events=events)
    assert summary.has_real and summary.real_count == len(events)
    assert summary.real_long == pytest.approx(events.notional[events.is_long].sum())
    assert summary.real_short == pytest.approx(events.notional[~events.is_long].sum())
    assert len(summary.largest_real) == 10
    times = [e.time_ms for e in summary.largest_real]
    assert times == sorted(times, reverse=True)
    assert min(e.notional for e in summary.largest_real) == pytest.approx(
        np.sort(events.notional)[-10]
    )
    assert not charts.result_summary(result, events=early).has_real


def test_it_summarises_the_largest_steps_newest_first(result_and_price):
    result, _ = result_and_price
    summary = charts.result_summary(result, top=4)
    assert 1 <= len(summary.largest_steps) <= 4
    times = [s.time_ms for s in summary.largest_steps]
    assert times == sorted(times, reverse=True)
    totals = result.liq_long.sum(1) + result.liq_short.sum(1)
    smallest_kept = min(s.long + s.short for s in summary.largest_steps)
    assert smallest_kept == pytest.approx(np.sort(totals)[-len(times)], rel=1e-9)
    assert summary.active_long == pytest.approx(result.map_long.sum())
