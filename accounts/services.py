"""Writes: watchlists, alerts (checking, firing, emailing) and notifications."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts import webhooks
from accounts.models import Alert, AlertEvent, Notification, User, WatchlistItem, WebhookChannel
from accounts.selectors import (
    StepLiquidations,
    market_active_alerts,
    market_real_liquidations,
    market_snapshots,
    snapshot_estimated_liquidations,
)
from maps.formatting import price, usd
from maps.market_signals.alerts import market_signal_events
from maps.models import MapSnapshot, Market
from maps.risk.alerts import position_alert_check
from maps.whales.alerts import market_whale_readings

log = logging.getLogger(__name__)

MAX_STEPS_PER_CHECK = 24


# Watchlist


def watch_add(*, user: User, market: Market) -> WatchlistItem:
    try:
        with transaction.atomic():
            item, _ = WatchlistItem.objects.get_or_create(user=user, market=market)
    except IntegrityError:
        item = WatchlistItem.objects.get(user=user, market=market)
    return item


def watch_toggle(*, user: User, market: Market) -> bool:
    """Add the market to the watchlist or remove it (with its alerts); True if now watched."""
    deleted, _ = WatchlistItem.objects.filter(user=user, market=market).delete()
    if deleted:
        return False
    watch_add(user=user, market=market)
    return True


def watch_remove(*, item: WatchlistItem) -> None:
    item.delete()


# Alerts: editing


def alert_save(*, alert: Alert) -> Alert:
    """Save a new or edited alert: armed, and evaluated afresh from the market's latest step."""
    alert.armed = True
    alert.checked_through = None
    alert.save()
    return alert


def alert_delete(*, alert: Alert) -> None:
    alert.delete()


# Alerts: checking


@dataclass(frozen=True)
class Observation:
    """The alert's condition at one step, and what to say if it fires there."""

    time: datetime
    hit: bool
    message: str = ""
    detail: dict = field(default_factory=dict)


def crossing(observations: Iterable[Observation], armed: bool) -> tuple[Observation | None, bool]:
    """The observation that fires (the first hit while armed, at most one) and the armed state
    after all of them: a hit disarms, a miss re-arms."""
    fired = None
    for obs in observations:
        if obs.hit:
            if armed and fired is None:
                fired = obs
            armed = False
        else:
            armed = True
    return fired, armed


def alert_observations(*, alert: Alert, snapshot: MapSnapshot) -> list[Observation]:
    """The alert's condition at each step of the snapshot it has not evaluated yet."""
    if alert.kind in Alert.POSITION_KINDS:
        if alert.checked_through is not None and snapshot.as_of <= alert.checked_through:
            return []
        check = position_alert_check(alert, snapshot)
        return [Observation(snapshot.as_of, check.hit, check.message, check.detail)]
    if alert.kind in Alert.SIGNAL_KINDS:
        return signal_observations(alert=alert, snapshot=snapshot)
    if alert.kind in Alert.WHALE_KINDS:
        return whale_observations(alert=alert, snapshot=snapshot)
    if alert.kind == Alert.PROXIMITY:
        if alert.checked_through is not None and snapshot.as_of <= alert.checked_through:
            return []
        return [proximity_observation(alert=alert, snapshot=snapshot)]
    return liquidation_observations(alert=alert, snapshot=snapshot)


def proximity_observation(*, alert: Alert, snapshot: MapSnapshot) -> Observation:
    """Hit when a cluster of the wanted side and size lies within `within_pct` of the close."""
    near = [
        c
        for c in snapshot.clusters
        if c["notional_usd"] >= alert.min_notional_usd
        and alert.side in ("any", c["side"])
        and abs(c["distance_pct"]) <= alert.within_pct
    ]
    if not near:
        return Observation(time=snapshot.as_of, hit=False)
    cluster = min(near, key=lambda c: (abs(c["distance_pct"]), -c["notional_usd"]))
    market = alert.watch.market
    where = "below" if cluster["side"] == "long" else "above"
    message = (
        f"{market.symbol} ({market.exchange.name}) at {price(snapshot.last_close)} is "
        f"{abs(cluster['distance_pct']):.2f}% from a {usd(cluster['notional_usd'])} "
        f"{cluster['side']} cluster {where} ({price(cluster['price_low'])} to "
        f"{price(cluster['price_high'])})"
    )
    detail = {"last_close": snapshot.last_close, "window": snapshot.window, "cluster": cluster}
    return Observation(time=snapshot.as_of, hit=True, message=message, detail=detail)


def liquidation_observations(*, alert: Alert, snapshot: MapSnapshot) -> list[Observation]:
    """One observation per new step: hit when its liquidations (per source and side) exceed
    the threshold."""
    estimated = snapshot_estimated_liquidations(
        snapshot=snapshot, after=alert.checked_through, limit=MAX_STEPS_PER_CHECK
    )
    steps = [s.time for s in estimated]
    real = (
        market_real_liquidations(
            market_id=snapshot.market_id, steps=steps, step_ms=snapshot.market.step_ms
        )
        if alert.source != "estimated"
        else [None] * len(steps)
    )
    pairs = zip(estimated, real, strict=True)
    return [_liquidation_observation(alert, est, rl) for est, rl in pairs]


def _liquidation_observation(
    alert: Alert, estimated: StepLiquidations, real: StepLiquidations | None
) -> Observation:
    candidates = {
        "estimated": [("estimated", estimated)],
        "real": [("real", real)],
        "either": [("estimated", estimated), ("real", real)],
    }[alert.source]
    amounts = [(_side_amount(alert.side, step), name) for name, step in candidates]
    amount, source = max(amounts)
    if amount <= alert.threshold_usd:
        return Observation(time=estimated.time, hit=False)
    market = alert.watch.market
    who = {"any": "", "long": "long ", "short": "short "}[alert.side]
    message = (
        f"{market.symbol} ({market.exchange.name}): {usd(amount)} of {source} {who}liquidations "
        f"in the {estimated.time:%H:%M} UTC step (threshold {usd(alert.threshold_usd)})"
    )
    detail = {"source": source, "amount_usd": amount, "window": alert.window}
    for name, step in candidates:
        detail[name] = {"long": step.long, "short": step.short}
    return Observation(time=estimated.time, hit=True, message=message, detail=detail)


def unchecked_steps(*, alert: Alert, snapshot: MapSnapshot) -> list[datetime]:
    """The snapshot's steps the alert has not evaluated yet, oldest first: only the last one on
    a first check, at most MAX_STEPS_PER_CHECK."""
    if alert.checked_through is not None and snapshot.as_of <= alert.checked_through:
        return []
    step = timedelta(milliseconds=snapshot.market.step_ms)
    count = 1
    if alert.checked_through is not None:
        count = min(MAX_STEPS_PER_CHECK, (snapshot.as_of - alert.checked_through) // step)
    return [snapshot.as_of - step * k for k in range(count - 1, -1, -1)]


def signal_observations(*, alert: Alert, snapshot: MapSnapshot) -> list[Observation]:
    """One observation per new step of the snapshot (only its last step on a first check): hit
    when a signal of the alert's kind became known at that step (maps.market_signals.alerts)."""
    steps = unchecked_steps(alert=alert, snapshot=snapshot)
    if not steps:
        return []
    events = market_signal_events(
        market=alert.watch.market,
        kind=alert.kind,
        side=alert.side,
        min_usd=alert.signal_min_usd,
        as_of=snapshot.as_of,
    )
    return [
        Observation(time=t, hit=True, message=events[t].message, detail=events[t].detail)
        if t in events
        else Observation(time=t, hit=False)
        for t in steps
    ]


def whale_observations(*, alert: Alert, snapshot: MapSnapshot) -> list[Observation]:
    """One observation per new step of the snapshot (only its last step on a first check), read
    from the market's stored positioning (maps.whales.alerts)."""
    steps = unchecked_steps(alert=alert, snapshot=snapshot)
    if not steps:
        return []
    readings = market_whale_readings(
        market=alert.watch.market,
        kind=alert.kind,
        steps=steps,
        metric=alert.anomaly_metric,
        min_z=alert.min_z,
        divergence_pts=alert.divergence_pts,
    )
    return [Observation(r.time, r.hit, r.message, r.detail or {}) for r in readings]


def _side_amount(side: str, step: StepLiquidations) -> float:
    return {"any": step.total, "long": step.long, "short": step.short}[side]


def alert_check(*, alert: Alert, snapshot: MapSnapshot, now: datetime) -> AlertEvent | None:
    """Evaluate the alert on the snapshot's new steps and fire it at most once.

    The state moves forward by a compare-and-set `UPDATE ... WHERE armed = <seen> AND
    checked_through = <seen>`: a concurrent or repeated check of the same steps matches no row and
    does nothing, so each crossing fires once whatever the retries. A crossing inside the cooldown
    disarms the alert without firing.
    """
    observations = alert_observations(alert=alert, snapshot=snapshot)
    if not observations:
        return None
    fired, armed = crossing(observations, alert.armed)
    cooled = alert.last_fired_at is None or now - alert.last_fired_at >= alert.cooldown
    fires = fired is not None and cooled
    changes = {"armed": armed, "checked_through": observations[-1].time}
    if fires:
        changes["last_fired_at"] = now
    with transaction.atomic():
        claimed = Alert.objects.filter(
            pk=alert.pk, is_active=True, armed=alert.armed, checked_through=alert.checked_through
        ).update(**changes)
        if not claimed or not fires:
            return None
        return _alert_fire(alert, fired)


def _alert_fire(alert: Alert, fired: Observation) -> AlertEvent | None:
    """Record the firing and notify; None if this alert already fired at this step (possible
    only when an edited alert is evaluated again on the step it fired at)."""
    user = alert.watch.user
    try:
        with transaction.atomic():
            event = AlertEvent.objects.create(
                alert=alert,
                step_time=fired.time,
                message=fired.message[:300],
                detail=fired.detail,
                email="pending" if user.email_alerts and user.email else "skipped",
                webhook="pending" if _webhook_wanted(user) else "skipped",
            )
    except IntegrityError:
        return None
    market = alert.watch.market
    Notification.objects.create(
        user=user,
        event=event,
        title=f"{market.symbol} on {market.exchange.name}: {alert.get_kind_display().lower()}"
        f"{' (demo data)' if market.is_demo else ''}",
        body=fired.message[:500],
        url=market.get_absolute_url(),
    )
    return event


def market_alerts_check(
    *, market_id: int, windows: list[str] | None = None, now: datetime | None = None
) -> list[AlertEvent]:
    """Check every active alert of the market against its fresh snapshots, then send the emails
    this batch owes: at most one per user."""
    now = now or timezone.now()
    alerts = list(market_active_alerts(market_id=market_id, windows=windows))
    snapshots = market_snapshots(market_id=market_id, windows={a.window for a in alerts})
    events = []
    for alert in alerts:
        snapshot = snapshots.get(alert.window)
        if snapshot is None:
            continue
        event = alert_check(alert=alert, snapshot=snapshot, now=now)
        if event is not None:
            events.append(event)
    alert_emails_send(market_id=market_id)
    alert_webhooks_send(market_id=market_id)
    return events


# Alerts: email


def alert_emails_send(*, market_id: int) -> int:
    """Send each user one email for the market's events still pending; returns emails sent.

    Each user's events are locked (`SELECT ... FOR UPDATE OF <events> SKIP LOCKED`: the event rows
    only, so a worker emailing one event never hides another) while their email goes out, and are
    marked sent in the same transaction: two workers never send the same event, and a failed send
    leaves them pending for the task's retry.
    """
    user_ids = set(
        AlertEvent.objects.filter(alert__watch__market_id=market_id, email="pending").values_list(
            "alert__watch__user_id", flat=True
        )
    )
    sent, failed = 0, None
    for user_id in sorted(user_ids):
        try:
            sent += _user_email_send(user_id=user_id, market_id=market_id)
        except Exception as exc:
            log.exception("alert email to user %s failed", user_id)
            failed = exc
    if failed is not None:
        raise failed
    return sent


def _user_email_send(*, user_id: int, market_id: int) -> int:
    with transaction.atomic():
        locked = list(
            AlertEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(alert__watch__user_id=user_id, alert__watch__market_id=market_id)
            .filter(email="pending")
            .values_list("pk", flat=True)
        )
        if not locked:
            return 0
        events = list(
            AlertEvent.objects.filter(pk__in=locked)
            .select_related("alert__watch__user", "alert__watch__market__exchange")
            .order_by("fired_at", "pk")
        )
        _alert_email(events)
        AlertEvent.objects.filter(pk__in=locked).update(email="sent", emailed_at=timezone.now())
    return 1


def _alert_email(events: list[AlertEvent]) -> None:
    user = events[0].alert.watch.user
    market = events[0].alert.watch.market
    context = {
        "user": user,
        "market": market,
        "events": events,
        "site_name": settings.SITE_NAME,
        "market_url": settings.SITE_URL + market.get_absolute_url(),
        "notifications_url": settings.SITE_URL + reverse("accounts:notifications"),
        "profile_url": settings.SITE_URL + reverse("accounts:profile"),
    }
    subject = render_to_string("accounts/email/alert_subject.txt", context).strip()
    body = render_to_string("accounts/email/alert_body.txt", context)
    html = render_to_string("accounts/email/alert_body.html", context)
    send_mail(subject, body, None, [user.email], html_message=html)


# Alerts: webhooks (JSON or Telegram)

MAX_WEBHOOK_ATTEMPTS = 3


def _webhook_wanted(user: User) -> bool:
    return WebhookChannel.objects.filter(user=user, is_active=True).exists()


def alert_webhooks_send(*, market_id: int, now: datetime | None = None) -> int:
    """Deliver the market's pending webhook events, one POST per event; returns how many went.

    Each event is claimed with `SELECT ... FOR UPDATE SKIP LOCKED` while it is sent, so two
    workers never deliver it twice. A failed delivery stays pending for the task's retry, up to
    MAX_WEBHOOK_ATTEMPTS attempts, then is marked failed; the channel keeps the last answer.
    """
    now = now or timezone.now()
    pending = list(
        AlertEvent.objects.filter(alert__watch__market_id=market_id, webhook="pending")
        .order_by("fired_at", "pk")
        .values_list("pk", flat=True)
    )
    sent, failed = 0, None
    for pk in pending:
        ok, status = _webhook_send_one(pk, now)
        sent += ok
        if not ok and status:
            failed = status
    if failed is not None:
        raise WebhookFailed(failed)
    return sent


class WebhookFailed(RuntimeError):
    """Some delivery failed and will be tried again by the task's retry."""


def _webhook_send_one(pk: int, now: datetime) -> tuple[bool, str]:
    with transaction.atomic():
        event = (
            AlertEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("alert__watch__user__webhook", "alert__watch__market__exchange")
            .filter(pk=pk, webhook="pending")
            .first()
        )
        if event is None:
            return False, ""
        channel = getattr(event.alert.watch.user, "webhook", None)
        if channel is None or not channel.is_active:
            AlertEvent.objects.filter(pk=pk).update(webhook="skipped")
            return False, ""
        result = webhooks.deliver(channel, webhooks.event_payload(event))
        attempts = event.webhook_attempts + 1
        state = "sent" if result.ok else "pending" if attempts < MAX_WEBHOOK_ATTEMPTS else "failed"
        AlertEvent.objects.filter(pk=pk).update(
            webhook=state, webhook_attempts=attempts, webhooked_at=now if result.ok else None
        )
        _channel_record(channel, result, now)
    return result.ok, "" if result.ok or state == "failed" else result.status


def _channel_record(channel: WebhookChannel, result: webhooks.Delivery, now: datetime) -> None:
    WebhookChannel.objects.filter(pk=channel.pk).update(
        last_status=result.status[:300], last_ok=result.ok, last_sent_at=now
    )


def webhook_test_send(*, channel: WebhookChannel, now: datetime | None = None) -> webhooks.Delivery:
    """Send the channel a test message now and keep its answer on the channel."""
    now = now or timezone.now()
    result = webhooks.deliver(channel, webhooks.test_payload(channel, now))
    _channel_record(channel, result, now)
    return result


def webhook_delete(*, channel: WebhookChannel) -> None:
    """Disconnect: pending deliveries are dropped, the channel and its secret deleted."""
    AlertEvent.objects.filter(alert__watch__user_id=channel.user_id, webhook="pending").update(
        webhook="skipped"
    )
    channel.delete()


# Notifications


def notification_mark_read(*, notification: Notification) -> None:
    if notification.read_at is None:
        Notification.objects.filter(pk=notification.pk, read_at=None).update(read_at=timezone.now())


def notifications_mark_all_read(*, user: User) -> int:
    return Notification.objects.filter(user=user).unread().update(read_at=timezone.now())
