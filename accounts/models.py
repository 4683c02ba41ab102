from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse

from maps.formatting import usd
from maps.models import WINDOW_CHOICES, Market

MAX_WITHIN_PCT = 50.0
MAX_USD = 1e12
MAX_COOLDOWN_MINUTES = 7 * 24 * 60


class User(AbstractUser):
    email = models.EmailField("email address", blank=False)
    email_alerts = models.BooleanField(
        "email me when an alert fires",
        default=True,
        help_text="In-app notifications are always kept; this only turns the emails on or off.",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_unique_email_ci"),
        ]


class WatchlistItem(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watchlist"
    )
    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="watchers")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["user", "market"], name="watch_unique_user_market")
        ]

    def __str__(self) -> str:
        return f"{self.user} watches {self.market}"


class Alert(models.Model):
    """A condition on one watched market, checked after each of its snapshots.

    `armed` is True while the condition is false (or was never seen true); the alert fires when
    it finds the condition true while armed, then stays disarmed until the condition is seen false
    again. `checked_through` is the last step (snapshot `as_of`, or liquidation step) already
    evaluated, so the same step is never evaluated twice.
    """

    PROXIMITY = "proximity"
    LIQUIDATIONS = "liquidations"
    CASCADE = "cascade"
    SWEEP = "sweep"
    REVERSAL = "reversal"
    SIGNAL_KINDS = (CASCADE, SWEEP, REVERSAL)  # maps.market_signals.alerts
    KIND_CHOICES = [
        (PROXIMITY, "Price near a cluster"),
        (LIQUIDATIONS, "Liquidations in one step"),
        (CASCADE, "Cascade started"),
        (SWEEP, "Cluster swept"),
        (REVERSAL, "Reversal confirmed"),
    ]
    SIDE_CHOICES = [
        ("any", "Either side"),
        ("long", "Longs (clusters below price)"),
        ("short", "Shorts (clusters above price)"),
    ]
    SOURCE_CHOICES = [
        ("estimated", "Estimated by the model"),
        ("real", "Real, reported by the exchange"),
        ("either", "Estimated or real"),
    ]

    watch = models.ForeignKey(WatchlistItem, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=12, choices=KIND_CHOICES, default=PROXIMITY)
    side = models.CharField(max_length=5, choices=SIDE_CHOICES, default="any")
    window = models.CharField(max_length=4, choices=WINDOW_CHOICES, default="7d")
    within_pct = models.FloatField(
        "within (%)",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.01), MaxValueValidator(MAX_WITHIN_PCT)],
        help_text="Proximity: fire when price is this close to the cluster's nearer edge.",
    )
    min_notional_usd = models.FloatField(
        "cluster of at least (USD)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1.0), MaxValueValidator(MAX_USD)],
    )
    threshold_usd = models.FloatField(
        "more than (USD)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1.0), MaxValueValidator(MAX_USD)],
        help_text="Liquidations: fire when one step's liquidations exceed this amount.",
    )
    source = models.CharField(max_length=9, choices=SOURCE_CHOICES, default="estimated")
    signal_min_usd = models.FloatField(
        "of at least (USD)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1.0), MaxValueValidator(MAX_USD)],
        help_text="Cascades: the notional liquidated; sweeps: the swept cluster's. Empty: any.",
    )
    cooldown_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MaxValueValidator(MAX_COOLDOWN_MINUTES)],
        help_text="After firing, stay quiet for at least this long.",
    )
    is_active = models.BooleanField("active", default=True)
    armed = models.BooleanField(default=True)
    checked_through = models.DateTimeField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["watch", "created", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(kind="proximity")
                | models.Q(within_pct__isnull=False, min_notional_usd__isnull=False),
                name="alert_proximity_complete",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="liquidations") | models.Q(threshold_usd__isnull=False),
                name="alert_liquidations_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.describe()} on {self.watch.market}"

    def get_absolute_url(self) -> str:
        return reverse("accounts:alert_edit", args=[self.pk])

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)

    def describe(self) -> str:
        """The condition in words, e.g. 'price within 1% of a long cluster of at least $5M'."""
        if self.kind in self.SIGNAL_KINDS:
            return self._describe_signal()
        if self.kind == self.PROXIMITY:
            which = {"any": "a", "long": "a long", "short": "a short"}[self.side]
            return (
                f"price within {self.within_pct:g}% of {which} cluster of at least "
                f"{usd(self.min_notional_usd)} ({self.window} map)"
            )
        who = {"any": "", "long": "long ", "short": "short "}[self.side]
        what = {"estimated": "estimated", "real": "real", "either": "estimated or real"}
        return f"{what[self.source]} {who}liquidations above {usd(self.threshold_usd)} in one step"

    def _describe_signal(self) -> str:
        who = {"any": "", "long": "long ", "short": "short "}[self.side]
        size = f" of at least {usd(self.signal_min_usd)}" if self.signal_min_usd else ""
        return {
            self.CASCADE: f"a {who}liquidation cascade{size} starts",
            self.SWEEP: f"a {who}cluster{size} is swept",
            self.REVERSAL: f"a reversal is confirmed after a {who}cascade{size}",
        }[self.kind]


class AlertEvent(models.Model):
    """One firing of an alert: what was seen, and whether its email went out."""

    EMAIL_CHOICES = [
        ("skipped", "not wanted"),
        ("pending", "pending"),
        ("sent", "sent"),
    ]

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    step_time = models.DateTimeField(help_text="The step whose data fired the alert")
    fired_at = models.DateTimeField(auto_now_add=True)
    message = models.CharField(max_length=300)
    detail = models.JSONField(default=dict)
    email = models.CharField(max_length=7, choices=EMAIL_CHOICES, default="pending")
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-fired_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "step_time"], name="alertevent_unique_step")
        ]

    def __str__(self) -> str:
        return self.message


class NotificationQuerySet(models.QuerySet):
    def unread(self) -> NotificationQuerySet:
        return self.filter(read_at__isnull=True)


class Notification(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.ForeignKey(
        AlertEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    title = models.CharField(max_length=200)
    body = models.CharField(max_length=500, blank=True)
    url = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_user_unread")]

    def __str__(self) -> str:
        return self.title
