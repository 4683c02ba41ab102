from __future__ import annotations

from datetime import timedelta

from django import template
from django.http import HttpRequest

from accounts.selectors import unread_notification_count, watched_market_ids
from maps.formatting import minutes_in_words, pct, price, usd
from maps.models import Market

register = template.Library()


@register.simple_tag(takes_context=True)
def watch_state(context: template.Context, market: Market) -> bool:
    """Whether the current user watches the market; one query per request, however many buttons."""
    request: HttpRequest | None = context.get("request")
    user = context.get("user") or getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    if request is None:
        return market.pk in watched_market_ids(user=user)
    if not hasattr(request, "_watched_market_ids"):
        request._watched_market_ids = watched_market_ids(user=user)
    return market.pk in request._watched_market_ids


@register.simple_tag(takes_context=True)
def unread_count(context: template.Context) -> int:
    user = context.get("user")
    return unread_notification_count(user=user) if user is not None else 0


for _filter in (usd, price, pct):
    register.filter(_filter.__name__, _filter)


@register.filter
def timedelta_minutes(value: timedelta | None) -> str:
    """A cool-off or cooldown as '15 minutes', '1 hour', '1 hour 30 minutes'."""
    if value is None:
        return ""
    minutes = max(1, round(value.total_seconds() / 60))
    return minutes_in_words(minutes)
