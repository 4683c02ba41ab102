"""The signals' tasks through a real Celery worker on the real broker: the worker knows them
(CELERY_IMPORTS), computes and stores, and the daily beat task fans out."""

from __future__ import annotations

import pytest

from maps.market_signals.tasks import (
    market_backtest_refresh,
    market_signals_refresh,
    markets_backtest_tracked,
)
from maps.models import MarketBacktest, MarketSignals
from tests.test_tasks_worker import wait_for, workers  # noqa: F401  (the worker fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_it_computes_signals_and_backtests_through_a_worker(workers, shocked_market):  # noqa: F811
    market, _ = shocked_market(days=6)
    workers("alpha")

    assert market_signals_refresh.delay(market.pk).get(timeout=120) >= 0
    backtest_id = market_backtest_refresh.delay(market.pk).get(timeout=120)

    assert MarketSignals.objects.filter(market=market).exists()
    assert MarketBacktest.objects.get(pk=backtest_id).market_id == market.pk
    MarketBacktest.objects.all().delete()
    markets_backtest_tracked.delay()  # the beat's daily task: it keeps no result
    wait_for(lambda: MarketBacktest.objects.filter(market=market).exists(), 120, "the backtest")
