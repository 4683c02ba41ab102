"""The backtest: stored per market, served by the API and the page, and reproducible by hand from
the stored bars (the engine's map at each hourly moment, price's path after it)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from django.urls import reverse

from maps import engine
from maps.analytics.signals import DAY_MS, HORIZON_MS, HOUR_MS, bars_slice
from maps.market_signals import services
from maps.models import MarketBacktest, datetime_to_ms
from maps.selectors import market_bars_arrays

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


@pytest.fixture
def market(shocked_market):
    market, _ = shocked_market(days=9)
    return market


def engine_moments(market, backtest: MarketBacktest):
    """By hand: every stored bar, and the engine's 7d map after each step ending on the hour in
    the backtest's period whose next 24 hours are in the data."""
    bars = market_bars_arrays(market_id=market.pk)
    params = replace(market.engine_params("7d"), max_columns=1)
    start = datetime_to_ms(backtest.period_start)
    moments = []
    for t in range(len(bars.ts)):
        ts = int(bars.ts[t])
        on_hour = (ts + market.step_ms) % HOUR_MS == 0
        if ts < start or not on_hour or ts + HORIZON_MS > int(bars.ts[-1]):
            continue
        result = engine.run(bars_slice(bars, 0, t + 1), params)
        moments.append((t, result.proximity))
    return bars, moments


def first_step(bars, t: int, reached) -> int | None:
    """The first step after t, within 24 hours, at which reached(step) holds."""
    for k in range(t + 1, len(bars.ts)):
        if bars.ts[k] > bars.ts[t] + HORIZON_MS:
            return None
        if reached(k):
            return k
    return None


def test_it_recomputes_the_reach_below_rate_by_hand_from_the_stored_bars(market):
    backtest = services.market_backtest_refresh(market=market)
    stored = MarketBacktest.objects.get(market=market)
    assert stored.pk == backtest.pk
    bars, moments = engine_moments(market, stored)
    hits = cases = 0
    for t, proximity in moments:
        cluster = proximity["long"]
        if cluster is None or cluster["price_high"] >= bars.close[t]:
            continue
        cases += 1
        level = cluster["price_high"]
        hits += first_step(bars, t, lambda k, level=level: bars.low[k] <= level) is not None
    figure = stored.results["reach_below"]
    assert figure["cases"] == cases
    assert figure["enough"] and figure["hit_rate"] == pytest.approx(hits / cases)


def path_after(bars, t: int) -> tuple[np.ndarray, np.ndarray]:
    """The running highest rise and deepest fall (relative to the close at t) over the steps
    within 24 hours after t."""
    k = np.flatnonzero((bars.ts > bars.ts[t]) & (bars.ts <= bars.ts[t] + HORIZON_MS))
    rise = np.maximum.accumulate(bars.high[k]) / bars.close[t] - 1
    fall = 1 - np.minimum.accumulate(bars.low[k]) / bars.close[t]
    return rise, fall


def first_sides(rise, fall, up: float, down: float) -> tuple[int | None, int | None]:
    """The first step (counted from 0) at which the rise reaches `up` and the fall `down`."""

    def first(path, level):
        reached = np.flatnonzero(path >= level)
        return int(reached[0]) if len(reached) else None

    return first(rise, up), first(fall, down)


def test_it_recomputes_the_larger_cluster_first_rate_by_hand(market):
    """Each case: the hour's own path decides which cluster price reached first; its chance: the
    same two distances from the close at every hour whose 24 hours do not overlap the case's
    that decides them. A case no other hour decides has nothing to compare with: left out."""
    stored = services.market_backtest_refresh(market=market)
    bars, moments = engine_moments(market, stored)
    paths = {t: path_after(bars, t) for t, _ in moments}
    hits, chances, alone = [], [], 0
    for t, p in moments:
        if not p["long"] or not p["short"] or p["nearer"] == p["larger"]:
            continue
        low, high = p["long"]["price_high"], p["short"]["price_low"]
        down = first_step(bars, t, lambda k, low=low: bars.low[k] <= low)
        up = first_step(bars, t, lambda k, high=high: bars.high[k] >= high)
        if (down is None and up is None) or down == up:
            continue
        to_up = p["larger"] == "short"
        up_far, down_far = high / bars.close[t] - 1, 1 - low / bars.close[t]
        same = []
        for u, (rise, fall) in paths.items():
            if abs(int(bars.ts[u]) - int(bars.ts[t])) < HORIZON_MS:
                continue
            a, b = first_sides(rise, fall, up_far, down_far)
            if (a is None and b is None) or a == b:
                continue
            same.append(
                a is not None and (b is None or a < b)
                if to_up
                else b is not None and (a is None or b < a)
            )
        if not same:
            alone += 1
            continue
        larger_first = up if to_up else down
        other = down if to_up else up
        hits.append(larger_first is not None and (other is None or larger_first < other))
        chances.append(np.mean(same))
    magnet = stored.results["magnet"]
    assert magnet["cases"] == len(hits)
    assert magnet["enough"] and magnet["hit_rate"] == pytest.approx(np.mean(hits))
    assert magnet["chance_rate"] == pytest.approx(np.mean(chances))
    assert magnet["edge"] == pytest.approx(magnet["hit_rate"] - magnet["chance_rate"])
    assert magnet["edge_low"] <= magnet["edge"] <= magnet["edge_high"]


def test_it_recomputes_the_chance_rate_by_hand(market):
    """Chance for a case: the share of the other hours (those whose 24 hours do not overlap the
    case's) after which price fell at least as far as the case's cluster lay below."""
    stored = services.market_backtest_refresh(market=market)
    bars, moments = engine_moments(market, stored)
    deepest = {}
    for t, _ in moments:
        lows = [
            bars.low[k] for k in range(t + 1, len(bars.ts)) if bars.ts[k] <= bars.ts[t] + HORIZON_MS
        ]
        deepest[t] = 1 - min(lows) / bars.close[t]
    chances = []
    for t, p in moments:
        if p["long"] is None or p["long"]["price_high"] >= bars.close[t]:
            continue
        distance = 1 - p["long"]["price_high"] / bars.close[t]
        far = [u for u in deepest if abs(int(bars.ts[u]) - int(bars.ts[t])) >= HORIZON_MS]
        chances.append(np.mean([deepest[u] >= distance for u in far]))
    figure = stored.results["reach_below"]
    assert figure["chance_rate"] == pytest.approx(np.mean(chances))
    assert figure["edge"] == pytest.approx(figure["hit_rate"] - figure["chance_rate"])


def test_it_says_too_few_when_the_history_is_short(shocked_market):
    market, _ = shocked_market("ETHUSDT", days=3)
    stored = services.market_backtest_refresh(market=market)
    magnet = stored.results["magnet"]
    assert magnet["enough"] is False and magnet["hit_rate"] is None
    assert stored.results["after_cascades"]["enough"] is False


def test_it_stores_one_backtest_per_market_and_replaces_it(market):
    first = services.market_backtest_refresh(market=market)
    second = services.market_backtest_refresh(market=market)
    assert first.pk == second.pk and MarketBacktest.objects.count() == 1
    assert second.results["period_end"] == datetime_to_ms(market.bars.latest("time").time)
    assert second.period_end - second.period_start <= np.timedelta64(30, "D").item()
    assert (second.results["period_end"] - second.results["period_start"]) >= DAY_MS


def test_it_serves_the_backtest_computing_it_on_demand(client, market):
    url = reverse("api:backtest", args=[market.exchange.slug, market.slug])
    assert not MarketBacktest.objects.exists()
    response = client.get(url)
    assert response.status_code == 200
    body = response.json()
    assert MarketBacktest.objects.filter(market=market).exists()
    for name in ("magnet", "after_fake_breakouts"):
        assert {"cases", "hit_rate", "chance_rate", "edge", "edge_low", "edge_high"} <= set(
            body[name]
        )
    assert set(body["after_cascades"]["horizons"]) == {"1h", "4h", "24h"}
    assert body["computed_at"].endswith("Z") and body["map_window"] == "7d"
    assert body["market"]["symbol"] == "BTCUSDT"
    csv = client.get(url, {"format": "csv"}).content.decode().splitlines()
    assert csv[0].startswith("question,horizon,cases,enough,hit_rate")
    assert any(line.startswith("magnet,24h,") for line in csv)


def test_it_backtests_the_thirty_days_before_a_replayed_moment(client, market):
    url = reverse("api:backtest", args=[market.exchange.slug, market.slug])
    last = datetime_to_ms(market.bars.latest("time").time)
    at = last - 2 * DAY_MS
    body = client.get(url, {"at": str(at)}).json()
    assert body["period_end"] <= at and not MarketBacktest.objects.exists()
    assert client.get(url, {"at": "yesterday"}).status_code == 400
    assert client.get(url, {"at": str(last + DAY_MS)}).status_code == 400
