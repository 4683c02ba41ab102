"""Throttles kept in the database (they hold with Redis down, and across web processes).

A throttle counts actions under a scope and a key within a sliding window: forms that send an
email (sign-up, password reset) per client address and per typed email, wrong current passwords
per account. Keys are stored as digests: the typed emails of strangers are never kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import ThrottleHit


@dataclass(frozen=True)
class Throttle:
    """At most `limit` actions per key within `window`."""

    scope: str
    limit: int
    window: timedelta

    def digest(self, key: str) -> str:
        return hashlib.sha256(f"{self.scope}:{key.strip().lower()}".encode()).hexdigest()


def throttle_full(*, throttle: Throttle, key: str) -> bool:
    """Whether `key` has used up its actions in the window."""
    since = timezone.now() - throttle.window
    hits = ThrottleHit.objects.filter(
        scope=throttle.scope, key_digest=throttle.digest(key), created__gte=since
    )
    return hits.count() >= throttle.limit


def throttle_record(*, throttle: Throttle, key: str) -> None:
    """Count one action of `key`, and forget the scope's actions older than the window."""
    ThrottleHit.objects.filter(
        scope=throttle.scope, created__lt=timezone.now() - throttle.window
    ).delete()
    ThrottleHit.objects.create(scope=throttle.scope, key_digest=throttle.digest(key))


def throttles_take(*, checks: list[tuple[Throttle, str]]) -> Throttle | None:
    """Count one action against every (throttle, key), unless one of them is full: then count
    nothing and return that throttle."""
    for throttle, key in checks:
        if throttle_full(throttle=throttle, key=key):
            return throttle
    for throttle, key in checks:
        throttle_record(throttle=throttle, key=key)
    return None


def emails_per_address() -> Throttle:
    return Throttle(
        "emails-per-address", settings.ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR, timedelta(hours=1)
    )


def emails_per_email() -> Throttle:
    return Throttle(
        "emails-per-email", settings.ACCOUNT_EMAILS_PER_EMAIL_PER_HOUR, timedelta(hours=1)
    )


def current_password_failures() -> Throttle:
    return Throttle(
        "current-password",
        settings.CURRENT_PASSWORD_FAILURE_LIMIT,
        timedelta(hours=settings.AXES_COOLOFF_TIME),
    )
