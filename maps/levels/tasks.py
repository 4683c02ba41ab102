"""Celery tasks of the levels: thin adapters that take ids and call a service.

- `orderbooks_snapshot_tracked` (the beat's minute, queue `ingest`) fans out one
  `market_orderbook_snapshot` per tracked real market: fetch, check, bin and store its book. A
  book is stored under the minute it was taken in (an upsert), so a retry or a redelivery is
  harmless; a snapshot no worker starts within the minute is dropped (the next one comes), and
  one market's book is never fetched twice at once. A refused book (empty side, crossed) is
  recorded on the market (`last_error`, stage `orderbook`), not retried.
- `orderbooks_prune` (hourly) keeps the rolling window of LIQSITE_ORDERBOOK_DAYS.
- `market_levels_compute` (after each recompute of a market's maps, by the `snapshots_computed`
  signal) stores the new snapshots' levels and confluence, so pages never wait for them.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from kombu.exceptions import OperationalError

from maps.analytics.levels import LevelsError
from maps.analytics.orderbook import BookError
from maps.connectors import RETRYABLE_ERRORS, ConnectorError, RateLimited
from maps.levels import services
from maps.models import WINDOWS
from maps.selectors import market_snapshot_light, markets_ingestible
from maps.tasks import (
    cooldown_key,
    cooldown_remaining,
    market_error_clear,
    market_error_record,
    market_lock,
    market_or_none,
)

log = logging.getLogger(__name__)

SNAPSHOT_EXPIRES_SECONDS = 55
STAGE = "orderbook"


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=40, time_limit=50)
def market_orderbook_snapshot(market_id: int) -> int | None:
    """Store the market's order book of this minute; returns the stored row's id (None when
    skipped: no such market, its exchange cooling down, another snapshot of it running, or the
    book refused or unreachable, which the next minute retries)."""
    market = market_or_none(market_id)
    if market is None or cooldown_remaining(market.exchange.ccxt_id):
        return None
    with market_lock(STAGE, market_id) as acquired:
        if not acquired:
            return None
        try:
            stored = services.market_orderbook_snapshot(market=market)
        except (BookError, ConnectorError, *RETRYABLE_ERRORS) as exc:
            log.warning("order book of %s not stored: %s", market, exc)
            if isinstance(exc, RateLimited):  # the ingest waits too: one clock per exchange
                until = time.time() + exc.retry_after
                cache.set(cooldown_key(market.exchange.ccxt_id), until, exc.retry_after + 1)
            market_error_record(market_id, STAGE, exc)
            return None
    market_error_clear(market_id, STAGE)
    return stored.pk


@shared_task(acks_late=True, ignore_result=True)
def orderbooks_snapshot_tracked() -> int:
    """The beat's minute: one order-book snapshot per tracked real market."""
    ids = list(markets_ingestible().values_list("pk", flat=True))
    for market_id in ids:
        market_orderbook_snapshot.apply_async((market_id,), expires=SNAPSHOT_EXPIRES_SECONDS)
    return len(ids)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=240, time_limit=300)
def orderbooks_prune() -> int:
    """Drop the books older than the rolling window; returns how many."""
    return services.orderbooks_prune(days=settings.LIQSITE_ORDERBOOK_DAYS)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=100, time_limit=120)
def market_levels_compute(market_id: int, windows: list[str]) -> int:
    """Store the levels of the market's snapshots for `windows`; returns how many. The bars and
    walls are read once, for the longest window. A window whose levels cannot be computed is
    logged and left to be computed when first asked for."""
    market = market_or_none(market_id)
    if market is None:
        return 0
    done, inputs = 0, None
    longest_first = sorted(windows, key=lambda w: WINDOWS.get(w, 0), reverse=True)
    for window in longest_first:
        snapshot = market_snapshot_light(market=market, window=window)
        if snapshot is None:
            continue
        try:
            if inputs is None:
                inputs = services.levels_inputs(snapshot)
            services.levels_for(snapshot=snapshot, inputs=inputs)
        except LevelsError as exc:
            log.warning("levels of %s %s not computed: %s", market, window, exc)
            continue
        done += 1
    return done


def snapshots_computed_levels(
    sender: object, *, market_id: int, windows: list[str] | None = None, **kwargs: object
) -> None:
    """Receiver of maps.signals.snapshots_computed: queue the new snapshots' levels. Without a
    broker they are computed when first asked for."""
    windows = list(windows) if windows is not None else list(settings.LIQSITE_WINDOWS)
    try:
        market_levels_compute.delay(market_id, windows)
    except OperationalError as exc:
        log.warning("levels of market %s not queued: %s", market_id, exc)
