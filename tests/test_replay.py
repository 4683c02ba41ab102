"""Replay (`?at=`): every pair page, fragment, chart and API document as the map stood at a past
moment, equal to the engine run on the data up to that moment."""

from __future__ import annotations

import gzip
import json
from unittest import mock

import numpy as np
import pytest
from django.urls import reverse

from maps import engine
from maps.analytics.signals import DAY_MS, HOUR_MS
from maps.market_signals.replay import at_parse, at_text
from maps.models import datetime_to_ms, ms_to_datetime
from maps.selectors import market_bars_arrays

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


@pytest.fixture
def market(shocked_market):
    market, _ = shocked_market(days=9, windows=("24h", "7d"))
    return market


def moment(market, days_back: float = 3.0) -> int:
    """An hour well inside the data, `days_back` before its end."""
    last = datetime_to_ms(market.bars.latest("time").time)
    return (last - int(days_back * DAY_MS)) // HOUR_MS * HOUR_MS


def engine_then(market, window: str, at_ms: int):
    """The engine run, from scratch, on the stored bars whose step ended by `at_ms`."""
    bars = market_bars_arrays(market_id=market.pk, end=ms_to_datetime(at_ms - market.step_ms + 1))
    return engine.run(bars, market.engine_params(window))


def api(client, market, kind: str, **query) -> dict:
    url = reverse(f"api:{kind}", args=[market.exchange.slug, market.slug])
    response = client.get(url, query)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize("window", ["24h", "7d"])
def test_it_replays_the_map_as_the_engine_run_on_the_data_up_to_that_moment(client, market, window):
    at = moment(market)
    result = engine_then(market, window, at)
    doc = api(client, market, "map", window=window, at=at_text(at))
    assert doc["at"] == at_text(at)
    assert doc["as_of"] == ms_to_datetime(result.as_of).isoformat().replace("+00:00", "Z")
    assert doc["last_close"] == pytest.approx(result.last_close)
    assert doc["bins"]["count"] == len(result.edges) - 1
    assert doc["bins"]["start"] == pytest.approx(result.edges[0])
    np.testing.assert_allclose(doc["long"], result.map_long, rtol=1e-6, atol=0.01)
    np.testing.assert_allclose(doc["short"], result.map_short, rtol=1e-6, atol=0.01)
    clusters = api(client, market, "clusters", window=window, at=str(at))["clusters"]
    assert [(c["side"], c["price_low"], c["price_high"]) for c in clusters] == [
        (c["side"], float(f"{c['price_low']:.10g}"), float(f"{c['price_high']:.10g}"))
        for c in result.clusters
    ]
    proximity = api(client, market, "proximity", window=window, at=str(at))["proximity"]
    for key in ("nearer", "larger", "magnet", "direction"):
        assert proximity[key] == result.proximity[key]
    heatmap = api(client, market, "heatmap", window=window, at=str(at))
    assert heatmap["times"] == result.heat_times.tolist()


def test_it_takes_iso_times_and_epoch_milliseconds_alike(client, market):
    at = moment(market)
    iso = api(client, market, "proximity", at=at_text(at))
    ms = api(client, market, "proximity", at=str(at))
    spaced = api(client, market, "proximity", at=at_text(at).replace("T", " ").rstrip("Z"))
    assert iso["as_of"] == ms["as_of"] == spaced["as_of"]
    assert at_parse("2025-05-30T14:00Z") == at_parse("2025-05-30T16:00+02:00") == 1748613600000
    assert at_text(1748613600000) == "2025-05-30T14:00Z"


def test_it_opens_the_pair_page_as_of_a_past_moment(client, market):
    at = moment(market)
    result = engine_then(market, "7d", at)
    response = client.get(market.get_absolute_url(), {"window": "7d", "at": at_text(at)})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Replay" in body and "the map as it stood at" in body
    assert f'value="{at}"' in body  # the slider
    assert f"at={at_text(at).replace(':', '%3A')}" in body  # window and side links keep it
    assert 'hx-trigger="every' not in body.split('id="proximity"')[1].split(">")[0]
    context = response.context
    assert context["snapshot"].pk is None and context["snapshot"].as_of == ms_to_datetime(
        result.as_of
    )
    assert context["snapshot"].proximity == result.proximity
    shown = context["proximity"]  # the engine's figures, and what the widget adds beside them
    for side in ("long", "short"):
        if result.proximity[side] is not None:
            assert result.proximity[side].items() <= shown[side].items()
    assert "Back to the live map" in body


def test_it_draws_the_replayed_levels_without_storing_them_over_todays(client, market):
    live = client.get(market.get_absolute_url(), {"window": "7d"})
    assert live.status_code == 200
    today = market.levels.get(window="7d")
    at = moment(market)
    replayed = client.get(market.get_absolute_url(), {"window": "7d", "at": at_text(at)})
    assert replayed.status_code == 200
    stored = market.levels.get(window="7d")
    assert (stored.snapshot_version, stored.as_of) == (today.snapshot_version, today.as_of)
    assert market.levels.count() == 1


def test_it_draws_the_price_that_followed_over_the_replayed_heatmap(client, market):
    at = moment(market)
    page = client.get(market.get_absolute_url(), {"at": at_text(at)})
    charts_url = page.context["charts_url"]
    assert f"at={at_text(at).replace(':', '%3A')}" in charts_url
    response = client.get(charts_url, HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    item = json.loads(gzip.decompress(response.content))
    text = json.dumps(item)
    assert text.count('"layer:replay"') >= 2  # the moment and the path after it
    live = client.get(reverse("maps:pair_charts", args=[market.exchange.slug, market.slug]))
    assert '"layer:replay"' not in live.content.decode(errors="ignore")


def test_it_loads_the_signals_of_the_replayed_moment_in_a_fragment(client, market):
    at = moment(market)
    page = client.get(market.get_absolute_url(), {"at": at_text(at)})
    url = page.context["signals_url"]
    assert url and 'hx-trigger="load"' in page.content.decode()
    fragment = client.get(url, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    panel = fragment.context["signals"]
    assert panel.as_of <= at - market.step_ms
    assert all(c["start"] <= at for c in panel.cascades)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("yesterday", "is not a time"),
        ("2099-01-01T00:00Z", "is not in the past"),
        ("2001-01-01T00:00Z", "before"),
    ],
)
def test_it_rejects_a_moment_it_cannot_replay_with_a_clear_400(client, market, value, words):
    page = client.get(market.get_absolute_url(), {"at": value})
    assert page.status_code == 400 and words in page.content.decode()
    url = reverse("api:map", args=[market.exchange.slug, market.slug])
    response = client.get(url, {"at": value})
    assert response.status_code == 400 and words in response.json()["error"]
    charts = client.get(
        reverse("maps:pair_charts", args=[market.exchange.slug, market.slug]), {"at": value}
    )
    assert charts.status_code == 400


def test_it_runs_the_engine_once_per_moment(client, market):
    at = moment(market)
    with mock.patch("maps.market_signals.replay.engine.run", wraps=engine.run) as run:
        for _ in range(2):
            api(client, market, "clusters", at=str(at))
            api(client, market, "proximity", at=str(at))
    assert run.call_count == 1


def test_it_keeps_the_live_page_as_it_was(client, market):
    response = client.get(market.get_absolute_url())
    body = response.content.decode()
    assert response.context["snapshot"].pk is not None
    assert "the map as it stood at" not in body
    assert 'hx-trigger="every 15s"' in body
    assert response.context["replay"]["replay"] is False
