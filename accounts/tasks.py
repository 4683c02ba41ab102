"""Celery tasks: thin adapters that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from accounts import services


@shared_task(
    acks_late=True,
    autoretry_for=(Exception,),
    max_retries=3,
    retry_backoff=10,
    retry_backoff_max=300,
    retry_jitter=True,
    soft_time_limit=60,
    time_limit=90,
)
def market_alerts_check(market_id: int, windows: list[str] | None = None) -> int:
    """Check the market's alerts after its snapshots changed; returns how many fired.

    Safe to run twice for the same snapshots: the service moves each alert forward with a
    compare-and-set, so a retry or a redelivered message fires nothing new.
    """
    return len(services.market_alerts_check(market_id=market_id, windows=windows))
