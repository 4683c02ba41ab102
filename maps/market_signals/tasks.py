"""Celery tasks of the signals: thin adapters taking market ids, under the per-market locks of
`maps.tasks` (idempotent: each stores its result with an upsert).

- market_signals_refresh: after each recompute of a market's snapshots (`receivers`);
- market_backtest_refresh: after an import or a backfill, and daily for every tracked market
  (`markets_backtest_tracked`, on the beat).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import DatabaseError

from maps.market_signals import services
from maps.models import Market
from maps.tasks import (
    backoff,
    market_error_clear,
    market_error_record,
    market_lock,
    market_or_none,
)

log = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, max_retries=2, soft_time_limit=240, time_limit=300)
def market_signals_refresh(self, market_id: int) -> int:
    """Recompute and store the market's signals; returns how many cascades they hold (0 when
    skipped: the market is gone, has no bars, or another worker is computing them)."""
    market = market_or_none(market_id)
    if market is None:
        return 0
    with market_lock("signals", market_id) as acquired:
        if not acquired:
            log.info("signals of market %s already being computed, skipped", market_id)
            return 0
        try:
            stored = services.market_signals_refresh(market=market)
        except DatabaseError as exc:
            raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
        except Exception as exc:
            market_error_record(market_id, "signals", exc)
            raise
    market_error_clear(market_id, "signals")
    return len(stored.cascades) if stored else 0


@shared_task(bind=True, acks_late=True, max_retries=2, soft_time_limit=600, time_limit=660)
def market_backtest_refresh(self, market_id: int) -> int | None:
    """Recompute and store the market's backtest; returns its id (None when skipped)."""
    market = market_or_none(market_id)
    if market is None:
        return None
    with market_lock("backtest", market_id) as acquired:
        if not acquired:
            return None
        try:
            stored = services.market_backtest_refresh(market=market)
        except DatabaseError as exc:
            raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
        except Exception as exc:
            market_error_record(market_id, "backtest", exc)
            raise
    market_error_clear(market_id, "backtest")
    return stored.pk if stored else None


@shared_task(acks_late=True, ignore_result=True)
def markets_backtest_tracked() -> int:
    """The beat's day: queue the backtest of every tracked market that has bars."""
    ids = list(
        Market.objects.tracked().filter(bars__isnull=False).values_list("pk", flat=True).distinct()
    )
    for market_id in ids:
        market_backtest_refresh.delay(market_id)
    return len(ids)
