"""Reads: a user's watchlist with each market's latest snapshot, alerts, notifications."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.models import Alert, AlertEvent, Notification, User, WatchlistItem, WebhookChannel
from maps.models import LiquidationEvent, MapSnapshot, Market
from maps.selectors import snapshot_freshness

DEFAULT_WINDOW = "7d"


@dataclass(frozen=True)
class WatchRow:
    """One line of the watchlist: the market and what its latest snapshot says."""

    item: WatchlistItem
    market: Market
    snapshot: MapSnapshot | None
    below: dict | None
    above: dict | None
    data_at: datetime | None
    stale: bool
    alert_count: int

    @property
    def last_close(self) -> float | None:
        return self.snapshot.last_close if self.snapshot else None


@dataclass(frozen=True)
class StepLiquidations:
    """Liquidations of one step, in USD."""

    time: datetime
    long: float
    short: float

    @property
    def total(self) -> float:
        return self.long + self.short


def watchlist_items(*, user: User) -> QuerySet[WatchlistItem]:
    return WatchlistItem.objects.filter(user=user).select_related("market__exchange")


def watchlist_rows(*, user: User, window: str = DEFAULT_WINDOW) -> list[WatchRow]:
    """The user's watched markets, oldest first, with price and nearest clusters from `window`."""
    items = list(
        watchlist_items(user=user).annotate(
            alert_count=Count("alerts", filter=Q(alerts__is_active=True))
        )
    )
    snapshots = {
        s.market_id: s
        for s in MapSnapshot.objects.filter(
            market_id__in=[i.market_id for i in items], window=window
        ).defer("data")
    }
    now = timezone.now()
    return [_watch_row(item, snapshots.get(item.market_id), now) for item in items]


def _watch_row(item: WatchlistItem, snapshot: MapSnapshot | None, now: datetime) -> WatchRow:
    proximity = snapshot.proximity if snapshot else {}
    freshness = (
        snapshot_freshness(snapshot=snapshot, market=item.market, now=now) if snapshot else None
    )
    return WatchRow(
        item=item,
        market=item.market,
        snapshot=snapshot,
        below=proximity.get("long"),
        above=proximity.get("short"),
        data_at=freshness.data_until if freshness else None,
        stale=freshness is None or freshness.stale,
        alert_count=getattr(item, "alert_count", 0),
    )


def watch_row(*, item: WatchlistItem, window: str = DEFAULT_WINDOW) -> WatchRow:
    """One watchlist line on its own (e.g. as context on the alert form)."""
    snapshot = MapSnapshot.objects.filter(market_id=item.market_id, window=window).defer("data")
    snapshot = snapshot.first()
    return _watch_row(item, snapshot, timezone.now())


CLUSTER_SHARE = 0.25
STEP_SHARE = 0.1
TYPICAL_CLUSTERS = 5


def nice_floor(value: float) -> int:
    """The largest 1, 2 or 5 x 10^n not above `value` (at least 1)."""
    if value < 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return max(m * power for m in (1, 2, 5) if m * power <= value)


def market_alert_defaults(*, market: Market, window: str = DEFAULT_WINDOW) -> dict:
    """A new alert's amounts scaled to the market: a cluster of at least CLUSTER_SHARE, and one
    step's liquidations above STEP_SHARE, of its typical cluster (the median notional of its
    TYPICAL_CLUSTERS largest), rounded down to 1, 2 or 5 x 10^n. {} without a map."""
    snapshot = MapSnapshot.objects.filter(market=market, window=window).only("clusters").first()
    sizes = sorted(
        (c["notional_usd"] for c in (snapshot.clusters if snapshot else [])), reverse=True
    )
    if not sizes:
        return {}
    typical = statistics.median(sizes[:TYPICAL_CLUSTERS])
    return {
        "min_notional_usd": nice_floor(typical * CLUSTER_SHARE),
        "threshold_usd": nice_floor(typical * STEP_SHARE),
        "window": window,
        "typical_cluster_usd": typical,
    }


def watched_market_ids(*, user: User) -> set[int]:
    if not user.is_authenticated:
        return set()
    return set(WatchlistItem.objects.filter(user=user).values_list("market_id", flat=True))


def user_webhook(*, user: User) -> WebhookChannel | None:
    return WebhookChannel.objects.filter(user=user).first()


def user_alerts(*, user: User) -> QuerySet[Alert]:
    return Alert.objects.filter(watch__user=user).select_related(
        "watch__market__exchange", "position__market__exchange"
    )


def user_alert_events(*, user: User, limit: int = 50) -> list[AlertEvent]:
    return list(
        AlertEvent.objects.filter(alert__watch__user=user).select_related(
            "alert__watch__market__exchange"
        )[:limit]
    )


def user_notifications(*, user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user)


def unread_notification_count(*, user: User) -> int:
    if not user.is_authenticated:
        return 0
    return Notification.objects.filter(user=user).unread().count()


def market_active_alerts(*, market_id: int, windows: list[str] | None = None) -> QuerySet[Alert]:
    """Active alerts on the market; with windows, only those watching one of these windows."""
    alerts = Alert.objects.filter(watch__market_id=market_id, is_active=True)
    if windows is not None:
        alerts = alerts.filter(window__in=windows)
    return alerts.select_related(
        "watch__user", "watch__market__exchange", "position__market__exchange"
    )


def market_snapshots(*, market_id: int, windows: set[str]) -> dict[str, MapSnapshot]:
    snapshots = MapSnapshot.objects.filter(market_id=market_id, window__in=windows)
    return {s.window: s for s in snapshots.select_related("market")}


def snapshot_estimated_liquidations(
    *, snapshot: MapSnapshot, after: datetime | None, limit: int
) -> list[StepLiquidations]:
    """The snapshot's modelled liquidations per step (summed over tiers), for steps after `after`
    (only the last step when `after` is None), at most the last `limit` steps, oldest first."""
    arrays = snapshot.arrays
    times = np.asarray(arrays["liq_times"], dtype=np.int64)
    long = np.asarray(arrays["liq_long"], dtype=np.float64).reshape(len(times), -1).sum(1)
    short = np.asarray(arrays["liq_short"], dtype=np.float64).reshape(len(times), -1).sum(1)
    first = len(times) - 1 if after is None else int(np.searchsorted(times, _ms(after), "right"))
    first = max(first, len(times) - limit, 0)
    return [
        StepLiquidations(time=_datetime(int(t)), long=float(lo), short=float(sh))
        for t, lo, sh in zip(times[first:], long[first:], short[first:], strict=True)
    ]


def market_real_liquidations(
    *, market_id: int, steps: list[datetime], step_ms: int
) -> list[StepLiquidations]:
    """Real liquidations reported for each of these step open times, summed per side."""
    if not steps:
        return []
    step = timedelta(milliseconds=step_ms)
    rows = LiquidationEvent.objects.filter(
        market_id=market_id, time__gte=steps[0], time__lt=steps[-1] + step
    ).values_list("time", "side", "notional_usd")
    starts = np.array([_ms(s) for s in steps], dtype=np.int64)
    long = np.zeros(len(steps))
    short = np.zeros(len(steps))
    for time, side, usd in rows:
        at = int(np.searchsorted(starts, _ms(time), "right")) - 1
        if at < 0 or _ms(time) >= starts[at] + step_ms:
            continue
        (long if side == "long" else short)[at] += usd
    return [
        StepLiquidations(time=t, long=float(lo), short=float(sh))
        for t, lo, sh in zip(steps, long, short, strict=True)
    ]


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
