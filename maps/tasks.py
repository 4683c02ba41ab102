"""Celery tasks: thin adapters that take ids, hold a per-market lock and call a service.

Queues: `ingest` (exchange I/O: market_ingest, market_backfill, markets_ingest_tracked,
exchange_track_markets), `ingest.<exchange>` (the beat's ingestions, one queue per exchange, so a
slow exchange backs up only its own queue) and `compute` (the engine: market_snapshots_refresh,
calibration). Every task is idempotent (bars and snapshots are upserts) and acknowledged late, so
a task whose worker died is run again; a lock per market and stage makes a second copy wait its
turn or skip. The beat claims a market (`queued_at`) when it queues its chain and the chain's end
releases it, so a market is never in the queue twice. Failures are recorded on the market
(`last_error`, prefixed with the stage) and cleared by the stage's next success.
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from celery import chain, shared_task
from celery.exceptions import Retry
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from maps import engine, ingest
from maps.connectors import CONNECTORS, RETRYABLE_ERRORS, RateLimited
from maps.coverage.services import exchange_markets_track
from maps.metrics_rows import market_open_interest_realign
from maps.models import MapSnapshot, Market
from maps.selectors import markets_ingestible
from maps.services import market_calibrate, market_snapshots_compute
from maps.signals import snapshots_computed

log = logging.getLogger(__name__)

LOCK_SECONDS = 1800
BACKOFF_SECONDS = 10
BACKOFF_CAP_SECONDS = 300
RATE_LIMIT_JITTER_SECONDS = 5
# The longest countdown of any retry: the broker's visibility timeout must cover it plus the
# longest time limit (liqsite/checks.py).
RETRY_COUNTDOWN_MAX_SECONDS = BACKOFF_CAP_SECONDS + RATE_LIMIT_JITTER_SECONDS
INGEST_EXPIRES_SECONDS = 120
# A claim outlives a chain that was queued but expired, or whose worker died, by this much: the
# beat queues the market again after it.
CLAIM_SECONDS = INGEST_EXPIRES_SECONDS + 180
INGEST_QUEUES = ["ingest", *(f"ingest.{cls.slug}" for cls in CONNECTORS.values())]
REAL_EVENT_SOURCES = ["binance-vision", "stream", "rest"]


def market_lock_key(name: str, market_id: int) -> int:
    """The 64-bit PostgreSQL advisory lock key of one market and stage."""
    return (zlib.crc32(name.encode()) & 0x7FFFFFFF) << 32 | (market_id & 0xFFFFFFFF)


@contextmanager
def market_lock(name: str, market_id: int) -> Iterator[bool]:
    """Yield True when this process holds the market's lock for `name`, False when another does.

    On PostgreSQL it is a session advisory lock: the database drops it with the session, so a
    worker killed mid-task never leaves it behind. Elsewhere it is a cache key with a timeout.
    """
    if connection.vendor == "postgresql":
        key = market_lock_key(name, market_id)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            acquired = cursor.fetchone()[0]
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    cache_key = f"lock:{name}:{market_id}"
    acquired = cache.add(cache_key, "1", timeout=LOCK_SECONDS)
    try:
        yield acquired
    finally:
        if acquired:
            cache.delete(cache_key)


def backoff(retries: int) -> float:
    """Exponential backoff with jitter: about 10 s, 20 s, 40 s ... at most 5 minutes."""
    return min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2**retries) * random.uniform(0.5, 1.0)


def market_error_record(market_id: int, stage: str, exc: BaseException) -> None:
    message = f"{stage}: {type(exc).__name__}: {exc}"[:2000]
    Market.objects.filter(pk=market_id).update(last_error=message, last_error_at=timezone.now())


def market_error_clear(market_id: int, stage: str) -> None:
    Market.objects.filter(pk=market_id, last_error__startswith=f"{stage}:").update(
        last_error="", last_error_at=None
    )


def cooldown_key(ccxt_id: str) -> str:
    return f"ingest:cooldown:{ccxt_id}"


def cooldown_remaining(ccxt_id: str) -> float:
    """Seconds left before this exchange may be asked again, after it rate-limited us."""
    until = cache.get(cooldown_key(ccxt_id))
    return max(0.0, until - time.time()) if until else 0.0


def market_snapshots_stale(market: Market) -> bool:
    """Whether some window's snapshot is missing, older than the last bar or from another engine."""
    last = market.bars.usable().aggregate(last=Max("time"))["last"]
    if last is None:
        return False
    fresh = MapSnapshot.objects.filter(
        market=market,
        window__in=settings.LIQSITE_WINDOWS,
        as_of=last,
        engine_version=engine.ENGINE_VERSION,
    ).count()
    return fresh < len(settings.LIQSITE_WINDOWS)


def market_refresh_after_commit(market_id: int) -> None:
    """Queue a recompute of the market's snapshots once the current transaction commits."""
    transaction.on_commit(lambda: market_snapshots_refresh.delay(market_id))


def ingest_queue(ccxt_id: str) -> str:
    """The queue of the beat's ingestions for one exchange: ingest.binance, ingest.okx, ..."""
    cls = CONNECTORS.get(ccxt_id)
    return f"ingest.{cls.slug}" if cls else "ingest"


def markets_claim(*, now) -> list[tuple[int, str]]:
    """Claim the tracked live markets that are not in the queue already, leaving out exchanges
    cooling down after a rate-limit answer: (id, ccxt id) of each claimed market."""
    cutoff = now - timedelta(seconds=CLAIM_SECONDS)
    cooling = [c for c in CONNECTORS if cooldown_remaining(c)]
    with transaction.atomic():
        rows = list(
            markets_ingestible()
            .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=cutoff))
            .exclude(exchange__ccxt_id__in=cooling)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", "exchange__ccxt_id")
        )
        Market.objects.filter(pk__in=[pk for pk, _ in rows]).update(queued_at=now)
    return rows


def market_release(market_id: int) -> None:
    """The market's chain is over: the beat may queue it again."""
    Market.objects.filter(pk=market_id).update(queued_at=None)


def market_or_none(market_id: int) -> Market | None:
    """The market with its exchange, or None once it is deleted (a queued task outlives it)."""
    return Market.objects.select_related("exchange").filter(pk=market_id).first()


def _ingest(task, market: Market, *, backfill: bool) -> ingest.IngestReport:
    """Run one ingestion, retrying network and rate-limit failures with backoff. A countdown
    never exceeds BACKOFF_CAP_SECONDS, so a waiting retry stays well within the broker's
    visibility timeout; a longer ban is waited out over several retries or minutes."""
    ccxt_id = market.exchange.ccxt_id
    try:
        report = ingest.market_ingest(market=market, backfill=backfill)
    except RETRYABLE_ERRORS as exc:
        market_error_record(market.pk, "ingest", exc)
        if isinstance(exc, RateLimited):
            cache.set(cooldown_key(ccxt_id), time.time() + exc.retry_after, exc.retry_after + 1)
            countdown = min(exc.retry_after, BACKOFF_CAP_SECONDS) + random.uniform(
                0, RATE_LIMIT_JITTER_SECONDS
            )
        else:
            countdown = backoff(task.request.retries)
        raise task.retry(exc=exc, countdown=countdown) from exc
    except Exception as exc:
        market_error_record(market.pk, "ingest", exc)
        raise
    market_error_clear(market.pk, "ingest")
    return report


@shared_task(bind=True, acks_late=True, max_retries=3, soft_time_limit=150, time_limit=180)
def market_ingest(self, market_id: int, release: bool = False) -> int:
    """Fetch the market's new bars and refill a few gaps; returns how many bars were written.

    Skips (returns 0) while another ingestion of the market runs or while its exchange is
    cooling down after a rate-limit answer: the next minute's run comes soon enough. When old
    gaps were refilled, the snapshots are recomputed even if the last bar did not move. With
    `release` (the first link of the beat's chain), a failure that ends the chain releases the
    market's claim.
    """
    try:
        return _market_ingest(self, market_id)
    except Retry:
        raise
    except BaseException:
        if release:
            market_release(market_id)
        raise


def _market_ingest(task, market_id: int) -> int:
    market = market_or_none(market_id)
    if market is None:
        return 0
    if cooldown_remaining(market.exchange.ccxt_id):
        log.info(
            "%s asked us to slow down: ingest of market %s skipped", market.exchange, market_id
        )
        return 0
    with market_lock("ingest", market_id) as acquired:
        if not acquired:
            log.info("ingest of market %s already running, skipped", market_id)
            return 0
        report = _ingest(task, market, backfill=False)
    if report.refilled_gap:
        market_refresh_after_commit(market_id)
    return report.written


@shared_task(bind=True, acks_late=True, max_retries=5, soft_time_limit=1500, time_limit=1800)
def market_backfill(self, market_id: int) -> int:
    """Fetch everything the exchange keeps for the market, then recompute its snapshots and its
    backtest.

    Waits (retries) while another ingestion of the market runs or its exchange cools down;
    returns the bars written.
    """
    market = market_or_none(market_id)
    if market is None:
        return 0
    wait = cooldown_remaining(market.exchange.ccxt_id)
    if wait:
        jitter = random.uniform(0, RATE_LIMIT_JITTER_SECONDS)
        raise self.retry(countdown=min(wait, BACKOFF_CAP_SECONDS) + jitter)
    with market_lock("ingest", market_id) as acquired:
        if not acquired:
            raise self.retry(countdown=30)
        report = _ingest(self, market, backfill=True)
    market_refresh_after_commit(market_id)
    # imported here: the signals' tasks import this module
    from maps.market_signals.tasks import market_backtest_refresh

    transaction.on_commit(lambda: market_backtest_refresh.delay(market_id))
    return report.written


@shared_task(bind=True, acks_late=True, max_retries=2, soft_time_limit=240, time_limit=300)
def market_snapshots_refresh(
    self, market_id: int, only_if_stale: bool = False, release: bool = False
) -> int:
    """Recompute every window's snapshot of one market; returns how many were stored.

    Returns 0 without computing while another computation of the market runs, or, with
    `only_if_stale`, when every window's snapshot already reflects the last bar (no new step).
    With `release` (the last link of the beat's chain), releases the market's claim whatever
    happens, unless a retry is coming.
    """
    try:
        stored = _market_snapshots_refresh(self, market_id, only_if_stale)
    except Retry:
        raise
    except BaseException:
        if release:
            market_release(market_id)
        raise
    if release:
        market_release(market_id)
    return stored


def _market_snapshots_refresh(task, market_id: int, only_if_stale: bool) -> int:
    market = market_or_none(market_id)
    if market is None:
        return 0
    with market_lock("compute", market_id) as acquired:
        if not acquired:
            log.info("compute of market %s already running, skipped", market_id)
            return 0
        pending = market.oi_realign_pending
        if only_if_stale and not pending and not market_snapshots_stale(market):
            return 0
        try:
            if pending:
                report = market_open_interest_realign(market=market)
                log.info("market %s open interest re-aligned: %s", market_id, report.summary())
            snapshots = market_snapshots_compute(market=market)
        except DatabaseError as exc:
            market_error_record(market_id, "compute", exc)
            raise task.retry(exc=exc, countdown=backoff(task.request.retries)) from exc
        except Exception as exc:
            market_error_record(market_id, "compute", exc)
            raise
    market_error_clear(market_id, "compute")
    windows = [s.window for s in snapshots]
    transaction.on_commit(
        lambda: snapshots_computed.send(sender=Market, market_id=market_id, windows=windows)
    )
    return len(snapshots)


@shared_task(bind=True, acks_late=True, max_retries=2, soft_time_limit=900, time_limit=960)
def market_calibrate_task(self, market_id: int) -> int | None:
    """Fit the market's tier weights to its real liquidations; returns the Calibration id."""
    market = market_or_none(market_id)
    if market is None:
        return None
    with market_lock("calibrate", market_id) as acquired:
        if not acquired:
            return None
        try:
            calibration = market_calibrate(market=market)
        except DatabaseError as exc:
            raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
        except Exception as exc:
            market_error_record(market_id, "calibrate", exc)
            raise
    market_error_clear(market_id, "calibrate")
    return calibration.pk if calibration else None


@shared_task(acks_late=True, ignore_result=True)
def markets_ingest_tracked() -> int:
    """The beat's minute: per tracked market not already in the queue, ingest (on its
    exchange's queue) then recompute stale snapshots, as a chain; returns how many were queued.

    A market stays claimed until its chain ends, so a slow exchange's markets are not queued
    again behind themselves, and an exchange cooling down after a rate-limit answer is left out.
    An ingestion no worker starts within INGEST_EXPIRES_SECONDS is dropped and its claim lapses
    after CLAIM_SECONDS, so a backlog never builds up.
    """
    claimed = markets_claim(now=timezone.now())
    for market_id, ccxt_id in claimed:
        chain(
            market_ingest.si(market_id, release=True).set(
                queue=ingest_queue(ccxt_id), expires=INGEST_EXPIRES_SECONDS
            ),
            market_snapshots_refresh.si(market_id, only_if_stale=True, release=True),
        ).apply_async()
    return len(claimed)


@shared_task(acks_late=True, ignore_result=True)
def markets_calibrate_tracked() -> int:
    """The beat's day: calibrate every tracked market that has real (not demo) liquidations;
    the fit itself uses the 30 days up to the market's last bar."""
    ids = list(
        Market.objects.tracked()
        .filter(events__source__in=REAL_EVENT_SOURCES)
        .values_list("pk", flat=True)
        .distinct()
    )
    for market_id in ids:
        market_calibrate_task.delay(market_id)
    return len(ids)


@shared_task(bind=True, acks_late=True, max_retries=3, soft_time_limit=600, time_limit=660)
def exchange_track_markets(
    self, exchange: str, quote: str = "USDT", min_oi_usd: float = 5e6
) -> dict[str, int]:
    """Track the exchange's perpetuals at or above `min_oi_usd` and untrack those below or
    delisted (maps.coverage.services); returns how many markets each outcome counts. Network
    and rate-limit failures are retried with backoff; a new market is backfilled by the beat."""
    try:
        report = exchange_markets_track(exchange=exchange, quote=quote, min_oi_usd=min_oi_usd)
    except RETRYABLE_ERRORS as exc:
        wait = exc.retry_after if isinstance(exc, RateLimited) else backoff(self.request.retries)
        raise self.retry(exc=exc, countdown=min(wait, BACKOFF_CAP_SECONDS)) from exc
    return {
        "listed": report.listed,
        "tracked": len(report.tracked),
        "kept": len(report.kept),
        "untracked": len(report.untracked),
        "delisted": len(report.delisted),
    }


@shared_task(acks_late=True, ignore_result=True)
def exchanges_track_markets() -> int:
    """The beat's day: read the list of every exchange in LIQSITE_COVERAGE_EXCHANGES again, so
    new listings are tracked and delisted or shrunken markets untracked; returns how many."""
    for exchange in settings.LIQSITE_COVERAGE_EXCHANGES:
        exchange_track_markets.delay(
            exchange, settings.LIQSITE_COVERAGE_QUOTE, settings.LIQSITE_COVERAGE_MIN_OI_USD
        )
    return len(settings.LIQSITE_COVERAGE_EXCHANGES)
