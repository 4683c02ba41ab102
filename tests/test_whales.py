"""Whale tracking: positioning series stored per step, whales against retail, robust z-score
anomalies, the positioning panel and the whales API (maps/whales/)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from django.urls import reverse

from maps.demo import REAL_SAMPLE_SYMBOL, demo_real_sample, demo_seed
from maps.models import MetricsRow, PositioningSnapshot, datetime_to_ms
from maps.services import market_snapshots_compute
from maps.whales import stats
from maps.whales.demo import demo_positioning
from maps.whales.services import market_positioning_refresh
from tests.shock_market import STEP_MS, shock_market

END_MS = 1_714_564_800_000  # 2024-05-01 12:00 UTC
WEEK_MS = 7 * 86_400_000


def simulated_inputs(seed: int, days: int = 21) -> stats.Inputs:
    """A calm simulated market (tests/shock_market.py, no shock) with the demo's whales."""
    sim = shock_market(seed=seed, days=days, end_ms=END_MS, shocks=[])
    bars, events = sim.bars, sim.events
    ratios = demo_positioning(bars, np.random.default_rng(seed))
    at = (events.time - bars.ts[0]) // STEP_MS
    notional = events.price * events.quantity
    long_, short = np.zeros(len(bars)), np.zeros(len(bars))
    np.add.at(long_, at[events.is_long], notional[events.is_long])
    np.add.at(short, at[~events.is_long], notional[~events.is_long])
    return stats.Inputs(
        ts=bars.ts,
        close=bars.close,
        volume=bars.volume,
        taker_buy_volume=bars.taker_buy_volume,
        open_interest=bars.open_interest.copy(),
        global_ratio=bars.long_short_ratio,
        top_position_ratio=ratios["top_position_ratio"],
        top_account_ratio=ratios["top_account_ratio"],
        taker_ratio=ratios["taker_ratio"],
        liquidations_long=long_,
        liquidations_short=short,
        funding_rate=sim.funding,
    )


def test_long_pct_is_100_r_over_1_plus_r_and_empty_without_a_ratio() -> None:
    out = stats.long_pct(np.array([1.0, 3.0, 0.25, np.nan, 0.0]))
    assert out[:3].tolist() == [50.0, 75.0, 20.0]
    assert np.isnan(out[3:]).all()


@pytest.mark.parametrize(
    ("oi", "price", "kind"),
    [
        (1.0, 1.0, "longs opening"),
        (-1.0, 1.0, "shorts covering"),
        (1.0, -1.0, "shorts opening"),
        (-1.0, -1.0, "longs closing"),
    ],
)
def test_it_classifies_open_interest_against_price(oi, price, kind) -> None:
    assert stats.oi_price_kind(oi, price) == kind


def test_robust_z_uses_only_the_trailing_week_before_the_hour() -> None:
    ts = np.arange(0, 8 * 86_400_000, STEP_MS, dtype=np.int64)
    values = np.random.default_rng(1).normal(size=len(ts))
    z = stats.robust_z(values, ts)
    assert np.isnan(z[:12]).all()  # no baseline before the first hour
    i = len(ts) - 5
    hour = ts[i] // 3_600_000 * 3_600_000
    window = values[(ts >= hour - stats.BASELINE_MS) & (ts < hour)]
    median = np.median(window)
    scale = 1.4826 * np.median(np.abs(window - median))
    assert z[i] == pytest.approx((values[i] - median) / scale)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_an_oi_surge_in_one_row_is_an_anomaly_at_that_step(seed) -> None:
    inputs = simulated_inputs(seed)
    step = len(inputs) - 300
    inputs.open_interest[step] *= 1.04  # one metrics row reads 4 % more open interest
    found = stats.anomalies(inputs, since_ms=int(inputs.ts[0]) + WEEK_MS)
    at_step = [a for a in found if a["metric"] == "oi_change" and a["time"] == inputs.ts[step]]
    assert at_step and at_step[0]["z"] >= 3
    assert at_step[0]["kind"] in stats.OI_PRICE_KINDS.values()


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_untouched_data_gives_no_more_than_a_few_events_a_week(seed) -> None:
    inputs = simulated_inputs(seed)
    since = int(inputs.ts[0]) + WEEK_MS
    weeks = (int(inputs.ts[-1]) - since) / WEEK_MS
    found = stats.anomalies(inputs, since_ms=since)
    per_week = {m: n / weeks for m, n in Counter(a["metric"] for a in found).items()}
    assert max(per_week.get(m, 0.0) for m in ("oi_change", "oi_change_1h")) <= 6, per_week


def test_the_sentence_says_who_leans_which_way() -> None:
    text = stats._sentence(62.0, -2.0, 55.0, 1.5)
    assert text.startswith("Top traders are reducing longs while accounts keep buying")
    assert "delta +7.0 points" in text
    assert "no top-trader" in stats._sentence(None, None, 55.0, 0.0)


# Stored: imports, the demo, the API, the pair page.


@pytest.fixture
def demo_markets(db):
    return demo_seed(seed=5, days=10, end_ms=END_MS).markets


def test_the_demo_fills_every_positioning_series(demo_markets) -> None:
    for market in demo_markets:
        rows = MetricsRow.objects.filter(market=market)
        assert rows.count() == market.bars.count()
        for name in ("top_position_ratio", "top_account_ratio", "long_short_ratio"):
            assert not rows.filter(**{f"{name}__isnull": True}).exists(), (market, name)


def test_a_surge_injected_in_a_stored_row_is_reported_at_its_step(demo_markets) -> None:
    market = demo_markets[0]
    row = MetricsRow.objects.filter(market=market).order_by("-stamped_at")[200]
    row.open_interest *= 1.05
    row.save()
    stored = market_positioning_refresh(market=market)
    step = datetime_to_ms(row.snapshot_at) - market.step_ms
    hits = [a for a in stored.anomalies if a["metric"] == "oi_change" and a["time"] == step]
    assert hits and hits[0]["z"] >= 3


@pytest.fixture
def hype(db):
    market, _ = demo_real_sample()
    market_snapshots_compute(market=market, windows=["7d"])
    market_positioning_refresh(market=market)
    return market


def test_whale_and_retail_long_pct_equal_those_of_the_imported_rows_exactly(hype) -> None:
    stored = PositioningSnapshot.objects.get(market=hype)
    arrays = stored.arrays
    at = {int(t): i for i, t in enumerate(arrays["times"].tolist())}
    rows = MetricsRow.objects.filter(market=hype).values_list(
        "snapshot_at", "top_position_ratio", "long_short_ratio"
    )
    checked = 0
    for snapshot, top, crowd in rows:
        i = at.get(datetime_to_ms(snapshot) - hype.step_ms)
        if i is None:
            continue
        assert arrays["whale_long_pct"][i] == 100 * top / (1 + top)
        assert arrays["retail_long_pct"][i] == 100 * crowd / (1 + crowd)
        checked += 1
    assert checked >= 380


def test_the_whales_api_serves_the_stored_series_and_anomalies(client, hype) -> None:
    url = reverse("api:whales", args=["binance", "hypeusdt"])
    response = client.get(url, {"window": "7d"})
    assert response.status_code == 200
    body = response.json()
    series = body["series"]
    assert {"times", "whale_long_pct", "retail_long_pct", "delta", "oi"} <= set(series)
    assert len(series["times"]) == len(series["whale_long_pct"]) >= 380
    top = MetricsRow.objects.filter(market=hype).order_by("stamped_at")[10].top_position_ratio
    assert 100 * top / (1 + top) in series["whale_long_pct"]
    for anomaly in body["anomalies"]:
        assert set(anomaly) >= {"time", "metric", "value", "z", "price_change_pct", "kind"}
        assert abs(anomaly["z"]) >= 3
    assert response.headers["ETag"]
    again = client.get(url, {"window": "7d"}, HTTP_IF_NONE_MATCH=response.headers["ETag"])
    assert again.status_code == 304


@pytest.mark.parametrize(
    "query", [{"window": "5d"}, {"window": "7d", "format": "xml"}, {"window": "<b>"}]
)
def test_the_whales_api_refuses_bad_options_with_a_clear_message(client, hype, query) -> None:
    before = PositioningSnapshot.objects.get(market=hype).computed_at
    response = client.get(reverse("api:whales", args=["binance", "hypeusdt"]), query)
    assert response.status_code == 400
    assert "is not allowed: use one of" in response.json()["error"]
    assert PositioningSnapshot.objects.get(market=hype).computed_at == before


def test_the_whales_api_is_404_for_an_unknown_market(client, db) -> None:
    response = client.get(reverse("api:whales", args=["binance", "nopeusdt"]))
    assert response.status_code == 404
    assert "no market" in response.json()["error"]


def test_the_pair_page_shows_the_positioning_panel(client, hype) -> None:
    page = client.get(hype.get_absolute_url(), {"window": "7d"}).content.decode()
    stored = PositioningSnapshot.objects.get(market=hype)
    assert 'id="positioning"' in page
    assert f"{stored.positioning['whale_long_pct']:.1f} %" in page
    assert stored.positioning["sentence"].split(":")[0] in page
    assert REAL_SAMPLE_SYMBOL in page


# The charts: z-score colours and anomaly markers (named layers).


def chart_layers_drawn(client, market, **query) -> tuple[set[str], str]:
    """The named layers the chart JSON draws (renderers named layer:<name>), and the JSON."""
    url = reverse("maps:pair_charts", args=[market.exchange.slug, market.slug])
    response = client.get(url, {"window": "7d", **query})
    assert response.status_code == 200
    text = response.content.decode()
    return set(re.findall(r'"layer:([a-z_-]+)"', text)), text


def test_the_heatmap_offers_z_score_colours_and_anomaly_markers_as_layers(client, hype) -> None:
    notional, _ = chart_layers_drawn(client, hype)
    assert "zscore" not in notional
    zscore, text = chart_layers_drawn(client, hype, colour="zscore")
    assert "zscore" in zscore and "heat-z-mapper" in text
    stored = PositioningSnapshot.objects.get(market=hype)
    if stored.anomalies:
        assert "anomalies" in zscore and "anomaly-marks" in text


def test_the_pair_page_links_both_colour_modes_and_passes_the_mode_to_the_charts(
    client, hype
) -> None:
    page = client.get(hype.get_absolute_url(), {"window": "7d", "colour": "zscore"})
    body = page.content.decode()
    assert "colour=zscore" in body.split("data-charts-url=")[1].split('"')[1]
    assert "Z-score</a>" in body and "Notional</a>" in body


@pytest.mark.parametrize("colour", ["heat", "ZSCORE!", "1"])
def test_a_bad_colour_mode_is_a_400_naming_the_allowed_ones(client, hype, colour) -> None:
    for url in (
        hype.get_absolute_url(),
        reverse("maps:pair_charts", args=[hype.exchange.slug, hype.slug]),
    ):
        response = client.get(url, {"window": "7d", "colour": colour})
        assert response.status_code == 400
        assert "notional, zscore" in response.content.decode()


def test_cell_zscores_are_robust_z_of_the_log_notional() -> None:
    values = np.array([[1e6, 2e6, np.nan], [4e6, 0.0, 1e9]])
    z = stats.cell_zscores(values)
    logs = np.log([1e6, 2e6, 4e6, 1e9])
    median = np.median(logs)
    scale = 1.4826 * np.median(np.abs(logs - median))
    assert z[1, 2] == pytest.approx((np.log(1e9) - median) / scale)
    assert np.isnan(z[0, 2]) and np.isnan(z[1, 1])


def test_the_screeners_own_past_z_is_the_robust_z_of_the_last_step() -> None:
    inputs = simulated_inputs(14, days=10)
    figures = stats.screener_figures(inputs)
    whale = stats.long_pct(inputs.top_position_ratio)
    assert figures["whale_long_z"] == round(float(stats.robust_z(whale, inputs.ts)[-1]), 2)
    assert figures["price"] == pytest.approx(inputs.close[-1])
