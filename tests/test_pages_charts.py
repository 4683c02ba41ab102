"""The charts' array shaping (maps.charts): crop, merge, thin, bucket; and the figures' data."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from maps import charts, engine
from maps.engine.types import Params
from tests.conftest import synthetic_bars

STEP = 300_000


@pytest.fixture(scope="module")
def result_and_price():
    bars = synthetic_bars(
        steps=3000, seed=11, price=60_000.0, end_ms=1_800_000_000_000 // STEP * STEP
    )
    result = engine.run(bars, Params(window_ms=7 * 86_400_000))
    keep = bars.ts >= result.heat_times[0]
    return result, charts.PriceLine(bars.ts[keep] + STEP, bars.close[keep])


def test_it_crops_to_the_closes_range_widened_by_the_margin():
    edges = 100.0 + np.arange(201) * 1.0
    price = charts.PriceLine(np.arange(3), np.array([190.0, 200.0, 210.0]))
    first, stop = charts.crop_range(edges, price, last_close=200.0)
    assert edges[first] <= 190.0 * (1 - charts.CROP_PCT) < edges[first + 1]
    assert edges[stop - 1] < 210.0 * (1 + charts.CROP_PCT) <= edges[stop] or stop == 200


def test_it_crops_around_the_last_close_without_a_price_line():
    edges = 50.0 + np.arange(1001) * 0.1
    first, stop = charts.crop_range(edges, charts.PriceLine.empty(), last_close=100.0)
    assert edges[first] == pytest.approx(88.0, abs=0.1)
    assert edges[stop] == pytest.approx(112.0, abs=0.1)


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
    result, price = result_and_price
    data = charts.plot_data(result, price)
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


def test_it_draws_the_exact_column_values_it_keeps(result_and_price):
    result, price = result_and_price
    data = charts.plot_data(result, price)
    first = int(np.searchsorted(result.edges, data.edges[0] + 1e-9)) - 1
    width = float(result.edges[1] - result.edges[0])
    k = round(float(data.edges[1] - data.edges[0]) / width)
    last = result.heat_long[-1, first : first + k].sum()
    assert data.heat_long[0, -1] == pytest.approx(last, rel=1e-5)


@pytest.mark.parametrize("side", charts.SIDES)
def test_it_builds_compact_bokeh_json(result_and_price, side):
    result, price = result_and_price
    payload = charts.chart_json(result, price, side, "BTCUSDT test")
    assert len(payload) < 600_000
    item = json.loads(gzip.decompress(payload))
    assert item["doc"]["roots"]
    text = json.dumps(item)
    assert '"dtype": "float32"' in text
    assert "BTCUSDT test" in text


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
