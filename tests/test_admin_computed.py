"""The admin's pages for what the services computed from a market's data: the signals, the
backtest, the positioning, the levels and the order books, to look at, never to edit."""

from __future__ import annotations

import re

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from maps.analytics.orderbook import Book
from maps.levels import services as levels
from maps.market_signals import services as market_signals
from maps.models import (
    LevelsSnapshot,
    MapSnapshot,
    MarketBacktest,
    MarketSignals,
    OrderBookSnapshot,
    PositioningSnapshot,
)
from maps.whales import services as whales
from tests.shock_market import Shock

DAY = 288

MODELS = [MarketSignals, MarketBacktest, PositioningSnapshot, LevelsSnapshot, OrderBookSnapshot]
pytestmark = pytest.mark.django_db


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def market(shocked_market):
    market, _ = shocked_market(
        days=9, shocks=[Shock(step=5 * DAY + 100, side="long", depth=0.05, flush=0.12)]
    )
    market_signals.market_signals_refresh(market=market)
    market_signals.market_backtest_refresh(market=market)
    whales.market_positioning_refresh(market=market)
    levels.levels_for(snapshot=market.snapshots.get(window="7d"))
    close = float(market.bars.latest("time").close)
    book = Book(
        bids=np.array([[close - 1, 2.0], [close - 5, 8.0]]),
        asks=np.array([[close + 1, 1.5], [close + 6, 9.0]]),
        time_ms=1_780_000_000_000,
    )
    levels.orderbook_store(market=market, book=book)
    return market


def test_it_lists_and_shows_each_computed_result_to_staff(staff_client, market) -> None:
    for model in MODELS:
        obj = model.objects.get(market=market)
        listing = staff_client.get(url(model, "changelist"))
        assert listing.status_code == 200, model
        assert str(market.symbol) in listing.content.decode(), model
        page = staff_client.get(url(model, "change", obj.pk))
        assert page.status_code == 200, model
        assert 'name="_save"' not in page.content.decode(), model
        assert staff_client.get(url(model, "add")).status_code == 403, model
        assert staff_client.get(url(model, "delete", obj.pk)).status_code == 403, model
    assert model.objects.filter(market=market).count() == 1  # nothing was deleted


def cell(page: str, column: str) -> list[str]:
    """The values shown in one column of a changelist page."""
    return re.findall(rf'<td class="field-{column}[^"]*">([^<]*)</td>', page)


def test_it_sums_up_each_result_in_its_list(staff_client, market) -> None:
    signals = MarketSignals.objects.get(market=market)
    backtest = MarketBacktest.objects.get(market=market).results["magnet"]
    positioning = PositioningSnapshot.objects.get(market=market)
    stored_levels = LevelsSnapshot.objects.get(market=market)

    rows = {model: staff_client.get(url(model, "changelist")).content.decode() for model in MODELS}

    assert cell(rows[MarketSignals], "cascade_count") == [str(len(signals.cascades))]
    assert cell(rows[MarketSignals], "sweep_count") == [str(len(signals.sweeps))]
    if backtest["enough"]:
        figure = f"{backtest['hit_rate']:.0%} / {backtest['chance_rate']:.0%} ({backtest['cases']})"
    else:
        figure = f"too few cases ({backtest['cases']})"
    assert cell(rows[MarketBacktest], "magnet") == [figure]
    assert cell(rows[PositioningSnapshot], "anomaly_count") == [str(len(positioning.anomalies))]
    whale = positioning.positioning["whale_long_pct"]  # None: this market has no ratios
    assert cell(rows[PositioningSnapshot], "whale_long") == [
        "-" if whale is None else f"{whale:.1f} %"
    ]
    assert cell(rows[LevelsSnapshot], "window") == ["7d"]
    assert cell(rows[LevelsSnapshot], "level_count") == [str(len(stored_levels.support_resistance))]
    book = OrderBookSnapshot.objects.get(market=market)
    assert cell(rows[OrderBookSnapshot], "source") == [book.get_source_display()]


def test_it_filters_each_list_by_market_and_refuses_a_bad_one(staff_client, market) -> None:
    for model in MODELS:
        mine = staff_client.get(url(model, "changelist") + f"?market={market.pk}")
        assert mine.context["cl"].result_count == model.objects.filter(market=market).count()
        other = staff_client.get(url(model, "changelist") + f"?market={market.pk + 1000}")
        assert other.context["cl"].result_count == 0
        bad = staff_client.get(url(model, "changelist") + "?market=btc")
        assert bad.status_code == 302 and bad.url.endswith("?e=1"), model


def test_it_lists_the_computed_results_in_a_constant_number_of_queries(
    staff_client, market, shocked_market
) -> None:
    """A second market's results add rows, not queries: its name in the market filter included."""

    def queries() -> dict:
        counts = {}
        for model in [*MODELS, MapSnapshot]:
            with CaptureQueriesContext(connection) as captured:
                assert staff_client.get(url(model, "changelist")).status_code == 200
            counts[model] = len(captured)
        return counts

    staff_client.get(url(MODELS[0], "changelist"))  # the session and permissions, once
    one = queries()
    other, _ = shocked_market("ETHUSDT", days=6)
    market_signals.market_signals_refresh(market=other)
    market_signals.market_backtest_refresh(market=other)
    whales.market_positioning_refresh(market=other)
    levels.levels_for(snapshot=other.snapshots.get(window="7d"))
    assert LevelsSnapshot.objects.count() == 2
    assert queries() == one
