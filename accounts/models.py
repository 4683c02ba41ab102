from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse

from maps.formatting import usd
from maps.models import WINDOW_CHOICES, Market
from maps.risk.alerts import position_alert_describe

MAX_WITHIN_PCT = 50.0
MAX_USD = 1e12
MAX_COOLDOWN_MINUTES = 7 * 24 * 60
MIN_Z, MAX_Z = 3.0, 50.0  # anomalies are |z| >= 3 (maps.whales.stats.Z_THRESHOLD)


def validate_time_zone(value: str) -> None:
    from accounts.timezones import is_zone

    if value and not is_zone(value):
        raise ValidationError(f"{value!r} is not a time zone name such as Europe/Paris or UTC.")


class User(AbstractUser):
    email = models.EmailField("email address", blank=False)
    email_alerts = models.BooleanField(
        "email me when an alert fires",
        default=True,
        help_text="In-app notifications are always kept; this only turns the emails on or off.",
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text="Times on the site are shown in this zone; empty means your browser's.",
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
    # Alerts on a saved position (maps/risk/): `position` names it.
    NEAR_STOP = "near_stop"
    NEAR_LIQUIDATION = "near_liq"
    STOP_CLUSTER = "stop_cluster"
    POSITION_KINDS = (NEAR_STOP, NEAR_LIQUIDATION, STOP_CLUSTER)
    # Whale alerts (maps/whales/alerts.py): anomalies and whales against retail.
    ANOMALY = "anomaly"
    DIVERGENCE = "divergence"
    WHALE_KINDS = (ANOMALY, DIVERGENCE)
    ANOMALY_METRIC_CHOICES = [
        ("any", "Any metric"),
        ("oi_change", "Open interest change per step"),
        ("oi_change_1h", "Open interest change per hour"),
        ("taker_imbalance", "Taker imbalance"),
        ("volume", "Volume"),
        ("delta", "Whales vs retail delta"),
        ("liquidations", "Liquidations (hour)"),
    ]
    KIND_CHOICES = [
        (PROXIMITY, "Price near a cluster"),
        (LIQUIDATIONS, "Liquidations in one step"),
        (NEAR_STOP, "Price near my stop"),
        (NEAR_LIQUIDATION, "Price near my liquidation"),
        (STOP_CLUSTER, "Cluster between price and my stop"),
        (CASCADE, "Cascade started"),
        (SWEEP, "Cluster swept"),
        (REVERSAL, "Reversal confirmed"),
        (ANOMALY, "Anomaly (|z| at least X)"),
        (DIVERGENCE, "Whales and retail diverge"),
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
    anomaly_metric = models.CharField(
        "on metric",
        max_length=16,
        choices=ANOMALY_METRIC_CHOICES,
        default="any",
        help_text="Anomalies: the metric watched (robust z against the market's own week).",
    )
    min_z = models.FloatField(
        "|z| of at least",
        null=True,
        blank=True,
        validators=[MinValueValidator(MIN_Z), MaxValueValidator(MAX_Z)],
        help_text="Anomalies: fire on a reading at least this unusual (3 or more).",
    )
    divergence_pts = models.FloatField(
        "beyond (points)",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1), MaxValueValidator(100.0)],
        help_text="Divergence: fire when whales' and retail's long % differ by more than this.",
    )
    cooldown_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MaxValueValidator(MAX_COOLDOWN_MINUTES)],
        help_text="After firing, stay quiet for at least this long.",
    )
    position = models.ForeignKey(
        "maps.SavedPosition",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alerts",
        help_text="The saved position a position alert watches",
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
            models.CheckConstraint(
                condition=~models.Q(kind__in=["near_stop", "near_liq", "stop_cluster"])
                | models.Q(position__isnull=False),
                name="alert_position_complete",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="anomaly") | models.Q(min_z__isnull=False),
                name="alert_anomaly_complete",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="divergence") | models.Q(divergence_pts__isnull=False),
                name="alert_divergence_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.describe()} on {self.watch.market}"

    def get_absolute_url(self) -> str:
        if self.kind in self.POSITION_KINDS:
            return reverse("maps:position", args=[self.position_id])
        return reverse("accounts:alert_edit", args=[self.pk])

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)

    def describe(self) -> str:
        """The condition in words, e.g. 'price within 1% of a long cluster of at least $5M'."""
        if self.kind in self.POSITION_KINDS:
            return position_alert_describe(self)
        if self.kind in self.SIGNAL_KINDS:
            return self._describe_signal()
        if self.kind == self.ANOMALY:
            metric = dict(self.ANOMALY_METRIC_CHOICES)[self.anomaly_metric].lower()
            return f"an anomaly with |z| of at least {self.min_z:g} on {metric}"
        if self.kind == self.DIVERGENCE:
            return f"whales and retail diverge by more than {self.divergence_pts:g} points"
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
    WEBHOOK_CHOICES = [*EMAIL_CHOICES, ("failed", "failed")]

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    step_time = models.DateTimeField(help_text="The step whose data fired the alert")
    fired_at = models.DateTimeField(auto_now_add=True)
    message = models.CharField(max_length=300)
    detail = models.JSONField(default=dict)
    email = models.CharField(max_length=7, choices=EMAIL_CHOICES, default="pending")
    emailed_at = models.DateTimeField(null=True, blank=True)
    webhook = models.CharField(max_length=7, choices=WEBHOOK_CHOICES, default="skipped")
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    webhooked_at = models.DateTimeField(null=True, blank=True)

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


class SignupRequest(models.Model):
    """A sign-up waiting for its emailed link: the account is made when the link is followed, so an
    address nobody confirmed never holds an account (or a username) and sign-up never tells
    whether an address has one. Only the digest of the link's token is kept."""

    username = models.CharField(max_length=150)
    email = models.EmailField()
    password = models.CharField(max_length=128, help_text="Hashed, as the account's will be.")
    next_url = models.CharField(max_length=500, blank=True)
    token_digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"sign-up of {self.username}"


class ThrottleHit(models.Model):
    """One counted action (a form that sends an email, a wrong current password) under a scope and
    the digest of its key (an address, an email, an account), for accounts/throttle.py."""

    scope = models.CharField(max_length=40)
    key_digest = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["scope", "key_digest", "created"], name="throttle_scope_key_time")
        ]

    def __str__(self) -> str:
        return f"{self.scope} at {self.created:%Y-%m-%d %H:%M:%S}"


def new_webhook_secret() -> str:
    return secrets.token_hex(24)


class WebhookChannel(models.Model):
    """Where a user's fired alerts go besides email and the bell: a URL that receives a JSON
    POST (docs/webhooks.md), or a Telegram chat through a bot of the user's."""

    JSON = "json"
    TELEGRAM = "telegram"
    KIND_CHOICES = [
        (JSON, "JSON webhook: POST to a URL of yours"),
        (TELEGRAM, "Telegram: a message from your bot"),
    ]

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook"
    )
    kind = models.CharField(max_length=8, choices=KIND_CHOICES, default=JSON)
    url = models.URLField("webhook URL", max_length=500, blank=True)
    telegram_token = models.CharField("bot token", max_length=100, blank=True)
    telegram_chat_id = models.CharField("chat id", max_length=40, blank=True)
    secret = models.CharField(
        max_length=64,
        default=new_webhook_secret,
        help_text="Signs each JSON delivery (X-Liqsite-Signature: sha256=HMAC of the body).",
    )
    is_active = models.BooleanField("send my alerts here", default=True)
    last_status = models.CharField(max_length=300, blank=True)
    last_ok = models.BooleanField(null=True, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.user}"

    @property
    def target(self) -> str:
        """Where it delivers, for display (the bot token is never shown in full)."""
        if self.kind == self.TELEGRAM:
            return f"Telegram chat {self.telegram_chat_id}"
        return self.url
