"""Log-in lockouts that cannot be turned against users, on top of django-axes.

Axes records each failure per (username, address, user agent) and locks a (username, address)
pair after AXES_FAILURE_LIMIT failures. Two wider limits count the same records: an address is
locked after AXES_ADDRESS_FAILURE_LIMIT failures across all usernames (one password sprayed over
many accounts), and a username after AXES_USERNAME_FAILURE_LIMIT failures across all addresses
(a distributed guess at one account), each for the cool-off. The address is the client's, behind
TRUSTED_PROXY_HOPS proxies (liqsite/client.py), so a proxy never makes every client one address.
The lockout page shows only what was typed, never the username behind a typed email.
"""

from __future__ import annotations

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

TYPED_MAX_LENGTH = 254


def wider_failures(*, request: HttpRequest, username: str | None) -> tuple[int, int]:
    """Failures within the cool-off from the request's address (any username) and for the
    username (any address)."""
    address = request.axes_ip_address
    by_address = Q(ip_address=address)
    by_username = Q(username=username) if username else Q(pk__in=[])
    totals = AccessAttempt.objects.filter(
        by_address | by_username, attempt_time__gte=get_cool_off_threshold(request)
    ).aggregate(
        address=Sum("failures_since_start", filter=by_address),
        username=Sum("failures_since_start", filter=by_username),
    )
    return totals["address"] or 0, totals["username"] or 0


def wider_limit_reached(*, request: HttpRequest, username: str | None) -> bool:
    by_address, by_username = wider_failures(request=request, username=username)
    return (
        by_address >= settings.AXES_ADDRESS_FAILURE_LIMIT
        or by_username >= settings.AXES_USERNAME_FAILURE_LIMIT
    )


class LoginLockoutHandler(AxesDatabaseHandler):
    """Axes' database handler, locking also by address and by username (see the module)."""

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        """The pair's failures, or the pair limit itself once a wider limit is reached: axes
        compares this number with AXES_FAILURE_LIMIT both before a log-in and after a failure."""
        failures = super().get_failures(request, credentials)
        limit = get_failure_limit(request, credentials)
        if failures >= limit:
            return failures
        username = get_client_username(request, credentials)
        if wider_limit_reached(request=request, username=username):
            return limit
        return failures


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict | None = None,
) -> HttpResponse:
    """The 429 lockout page, naming only what the visitor typed."""
    typed = request.POST.get("username", "")[:TYPED_MAX_LENGTH]
    context = {"typed": typed, "cooloff_timedelta": get_cool_off(request)}
    return render(request, settings.AXES_LOCKOUT_TEMPLATE, context, status=429)
