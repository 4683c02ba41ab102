"""Celery task of the whale statistics: a thin adapter taking a market id, under the per-market
lock of `maps.tasks` (idempotent: the result is stored with an upsert), queued after each
recompute of a market's maps (`snapshots_computed_positioning`)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import DatabaseError, transaction
from kombu.exceptions import OperationalError

from maps.tasks import (
    backoff,
    market_error_clear,
    market_error_record,
    market_lock,
    market_or_none,
)
from maps.whales import services

log = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, max_retries=2, soft_time_limit=120, time_limit=180)
def market_positioning_refresh(self, market_id: int) -> int:
    """Recompute and store the market's positioning; returns how many anomalies it lists (0 when
    skipped: the market is gone, has no bars, or another worker is computing it)."""
    market = market_or_none(market_id)
    if market is None:
        return 0
    with market_lock("positioning", market_id) as acquired:
        if not acquired:
            return 0
        try:
            stored = services.market_positioning_refresh(market=market)
        except DatabaseError as exc:
            raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
        except Exception as exc:
            market_error_record(market_id, "positioning", exc)
            raise
    market_error_clear(market_id, "positioning")
    return len(stored.anomalies) if stored else 0


def snapshots_computed_positioning(sender: object, *, market_id: int, **kwargs: object) -> None:
    """Receiver of maps.signals.snapshots_computed: queue the market's positioning refresh."""

    def queue() -> None:
        try:
            market_positioning_refresh.delay(market_id)
        except OperationalError as exc:
            log.warning("positioning of market %s not queued: %s", market_id, exc)

    transaction.on_commit(queue)
