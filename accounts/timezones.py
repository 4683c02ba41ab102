"""Which time zone a page's times are written in.

In order: UTC when the visitor asked for it (the footer's switch, a cookie); else the zone of the
signed-in user's profile; else the browser's zone, which the page script stores in a cookie on the
first visit; else (a first visit) UTC, and the page script rewrites the times it shows into the
browser's zone. Charts do the same on the client (static/js/charts.js reads `data-time-zone`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote
from zoneinfo import ZoneInfo, available_timezones

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

UTC_COOKIE = "liqsite_utc"
BROWSER_COOKIE = "liqsite_tz"
COOKIE_MAX_AGE = 365 * 86_400


@dataclass(frozen=True)
class TimeZoneChoice:
    """`name` is empty when the zone is not known yet (the browser's, on a first visit)."""

    name: str
    source: str  # "utc", "profile", "browser" or "unknown"

    @property
    def utc_requested(self) -> bool:
        return self.source == "utc"


@lru_cache(maxsize=1)
def zone_names() -> frozenset[str]:
    return frozenset(available_timezones() | {"UTC"})


def is_zone(name: str | None) -> bool:
    return bool(name) and name in zone_names()


def time_zone_for(request: HttpRequest) -> TimeZoneChoice:
    if request.COOKIES.get(UTC_COOKIE) == "1":
        return TimeZoneChoice("UTC", "utc")
    user = getattr(request, "user", None)
    profile_zone = getattr(user, "time_zone", "") if user is not None else ""
    if user is not None and user.is_authenticated and is_zone(profile_zone):
        return TimeZoneChoice(profile_zone, "profile")
    browser = unquote(request.COOKIES.get(BROWSER_COOKIE, ""))  # the script URL-encodes it
    if is_zone(browser):
        return TimeZoneChoice(browser, "browser")
    return TimeZoneChoice("", "unknown")


class TimeZoneMiddleware:
    """Activates the request's time zone (after AuthenticationMiddleware) for its templates."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        choice = time_zone_for(request)
        request.time_zone = choice
        if choice.name:
            timezone.activate(ZoneInfo(choice.name))
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def time_zone_context(request: HttpRequest) -> dict:
    return {"time_zone": getattr(request, "time_zone", TimeZoneChoice("", "unknown"))}
