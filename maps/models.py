from __future__ import annotations

import io
from datetime import UTC, datetime
from functools import cached_property

import numpy as np
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from maps.engine.types import BAR_FLOAT_FIELDS, DEFAULT_TIERS, EngineError, Params, Tier

WINDOWS = {
    "12h": 12 * 3_600_000,
    "24h": 24 * 3_600_000,
    "3d": 3 * 86_400_000,
    "7d": 7 * 86_400_000,
    "30d": 30 * 86_400_000,
    "90d": 90 * 86_400_000,
}
WINDOW_CHOICES = [(key, key) for key in WINDOWS]
# A bar's values, in the engine's order (maps.engine.Bars); funding_rate is stored beside them.
BAR_VALUE_FIELDS = (*BAR_FLOAT_FIELDS, "long_short_ratio")
STEP_CHOICES = [
    (300_000, "5 minutes"),
    (900_000, "15 minutes"),
    (1_800_000, "30 minutes"),
    (3_600_000, "1 hour"),
]


GRADE_CHOICES = [
    ("A", "A: reliable"),
    ("B", "B: good"),
    ("C", "C: thin"),
    ("D", "D: unreliable"),
]


# Names of the site's own sections: an exchange slug may never take one, or its pages would be
# shadowed by (or shadow) admin/, api/, accounts/, watchlist/, healthz and the rest.
RESERVED_SLUGS = ("accounts", "admin", "api", "coin", "healthz", "model", "static", "watchlist")


def validate_lowercase_slug(value: str) -> None:
    if value != value.lower():
        raise ValidationError(f"Use lowercase: {value.lower()!r}, as it appears in URLs.")


def validate_exchange_slug(value: str) -> None:
    validate_lowercase_slug(value)
    if value in RESERVED_SLUGS:
        raise ValidationError(
            f"{value!r} is the name of a section of the site; choose another URL name."
        )


def ms_to_datetime(ms: int) -> datetime:
    """An engine time (epoch ms) as an aware UTC datetime, as stored in DateTimeFields."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def default_tiers() -> list[list[float]]:
    return [[tier.leverage, tier.weight] for tier in DEFAULT_TIERS]


class Exchange(models.Model):
    slug = models.SlugField(
        max_length=32,
        unique=True,
        validators=[validate_exchange_slug],
        help_text="URL name, e.g. binance",
    )
    name = models.CharField(max_length=64)
    ccxt_id = models.CharField(
        max_length=32, blank=True, help_text="ccxt exchange id, e.g. binanceusdm, bybit, okx"
    )
    is_demo = models.BooleanField(default=False, help_text="Holds simulated demo data")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("maps:exchange", args=[self.slug])


class MarketQuerySet(models.QuerySet):
    def tracked(self) -> MarketQuerySet:
        return self.filter(tracked=True)


class Market(models.Model):
    LONG_SHARE_CHOICES = [
        ("taker", "taker buy share of volume"),
        ("ratio", "global long/short account ratio"),
        ("candle", "candle direction"),
        ("even", "even split"),
    ]

    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="markets")
    symbol = models.CharField(max_length=40, help_text="The exchange's own symbol, e.g. BTCUSDT")
    slug = models.SlugField(
        max_length=40, validators=[validate_lowercase_slug], help_text="URL name, e.g. btcusdt"
    )
    base = models.CharField(max_length=20, help_text="Base coin, e.g. BTC")
    quote = models.CharField(max_length=20, help_text="Quote currency, e.g. USDT")
    ccxt_symbol = models.CharField(max_length=60, blank=True, help_text="e.g. BTC/USDT:USDT")
    contract_size = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.0)],
        help_text="Base units per contract (OKX swaps); 1 where sizes are in base units",
    )
    tracked = models.BooleanField(default=True, db_index=True)
    is_demo = models.BooleanField(default=False, help_text="Holds simulated demo data")
    step_ms = models.PositiveIntegerField("step", choices=STEP_CHOICES, default=300_000)

    tiers = models.JSONField(default=default_tiers, help_text="[[leverage, weight], ...]")
    mmr = models.FloatField("maintenance margin rate", default=0.004)
    long_share = models.CharField(max_length=8, choices=LONG_SHARE_CHOICES, default="taker")
    holding_hours = models.FloatField(
        null=True, blank=True, default=24.0, help_text="Mean holding time; empty means infinite"
    )
    bin_bps = models.FloatField("bin width (bps)", default=10.0)

    last_bar_at = models.DateTimeField(null=True, blank=True)
    last_ingest_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    # Whole-exchange coverage (maps/coverage/): what track_markets last read on the exchange.
    auto_tracked = models.BooleanField(
        default=False,
        help_text="Tracked by track_markets, which untracks it when its open interest falls "
        "below the threshold; markets tracked by hand are left tracked",
    )
    listed_oi_usd = models.FloatField(
        "listed open interest (USD)",
        null=True,
        blank=True,
        help_text="Open interest in USD when the exchange's list was last read",
    )
    listed_at = models.DateTimeField(null=True, blank=True, help_text="Last seen listed")
    delisted_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was found gone from the exchange's list"
    )
    tracking_note = models.CharField(
        max_length=200, blank=True, help_text="Why track_markets last tracked or untracked it"
    )

    # Reliability grade (maps/analytics/grades.py), recomputed with the maps.
    grade = models.CharField(max_length=1, blank=True, choices=GRADE_CHOICES)
    grade_reasons = models.JSONField(default=list, blank=True)
    graded_at = models.DateTimeField(null=True, blank=True)
    oi_usd = models.FloatField(
        "open interest (USD)", null=True, blank=True, help_text="At the last bar"
    )

    # The pipeline: what the maps reflect, and whether the beat has this market in the queue.
    maps_as_of = models.DateTimeField(
        null=True, blank=True, help_text="Last step the stored maps reflect"
    )
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the beat queued its ingestion; cleared when done"
    )

    objects = MarketQuerySet.as_manager()

    class Meta:
        ordering = ["exchange__name", "symbol"]
        constraints = [
            models.UniqueConstraint(fields=["exchange", "slug"], name="market_unique_slug"),
            models.UniqueConstraint(fields=["exchange", "symbol"], name="market_unique_symbol"),
        ]

    def __str__(self) -> str:
        return f"{self.exchange.name} {self.symbol}"

    def get_absolute_url(self) -> str:
        return reverse("maps:pair", args=[self.exchange.slug, self.slug])

    @property
    def grade_summary(self) -> str:
        """The reasons that set the reliability grade, in one line."""
        return "; ".join(
            r.get("text", "") for r in self.grade_reasons if r.get("grade") == self.grade
        )

    def engine_params(self, window: str = "7d", *, max_columns: int = 500) -> Params:
        """The engine's parameters for this market and one of WINDOWS."""
        holding = None if self.holding_hours is None else round(self.holding_hours * 3_600_000)
        return Params(
            tiers=tuple(Tier(float(lev), float(w)) for lev, w in self.tiers),
            mmr=self.mmr,
            long_share=self.long_share,
            holding_ms=holding,
            bin_bps=self.bin_bps,
            window_ms=WINDOWS[window],
            max_columns=max_columns,
            step_ms=self.step_ms,
        )

    def clean(self) -> None:
        if not isinstance(self.tiers, list) or not all(
            isinstance(t, list | tuple) and len(t) == 2 for t in self.tiers
        ):
            raise ValidationError({"tiers": "Give tiers as [[leverage, weight], ...]"})
        try:
            self.engine_params()
        except (EngineError, TypeError, ValueError) as exc:
            raise ValidationError(str(exc)) from None


class Bar(models.Model):
    """One step of one market: prices, volumes, open interest (base units at the step's end)."""

    # No index of its own: the unique (market, time) index below serves every lookup by market.
    market = models.ForeignKey(
        Market, on_delete=models.CASCADE, related_name="bars", db_index=False
    )
    time = models.DateTimeField(help_text="Step open time, UTC")
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField()
    taker_buy_volume = models.FloatField()
    open_interest = models.FloatField()
    long_short_ratio = models.FloatField(null=True, blank=True)
    funding_rate = models.FloatField(
        null=True, blank=True, help_text="Last funding rate settled by the step's end"
    )

    class Meta:
        ordering = ["market", "time"]
        constraints = [
            # The index carries the values the engine reads, so one market's 90 days come from
            # a few hundred index pages (an index-only scan) instead of one table page per step:
            # bars are written step by step across markets, so a market's rows are spread over
            # the whole table (PostgreSQL; SQLite keeps the plain unique index).
            models.UniqueConstraint(
                fields=["market", "time"],
                include=list(BAR_VALUE_FIELDS),
                name="bar_unique_market_time",
            )
        ]

    def __str__(self) -> str:
        return f"{self.market_id} {self.time:%Y-%m-%d %H:%M}"


class LiquidationEvent(models.Model):
    """A real liquidation order reported by an exchange."""

    SIDE_CHOICES = [("long", "long"), ("short", "short")]

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="events")
    time = models.DateTimeField(help_text="Trade time, UTC")
    side = models.CharField(
        max_length=5, choices=SIDE_CHOICES, help_text="Side of the position liquidated"
    )
    price = models.FloatField(help_text="Average fill price")
    quantity = models.FloatField(help_text="Base units")
    notional_usd = models.FloatField()
    source = models.CharField(max_length=20, help_text="binance-vision, stream, rest or demo")

    class Meta:
        ordering = ["market", "time"]
        constraints = [
            models.UniqueConstraint(
                fields=["market", "time", "side", "price", "quantity"],
                name="event_unique_order",
            )
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} @ {self.price}"


class MapSnapshot(models.Model):
    """The engine's result for one market and window, arrays stored compressed in `data`."""

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="snapshots")
    window = models.CharField(max_length=4, choices=WINDOW_CHOICES)
    as_of = models.DateTimeField(help_text="Open time of the last modelled step")
    computed_at = models.DateTimeField(default=timezone.now)
    engine_version = models.CharField(max_length=20)
    params = models.JSONField()
    last_close = models.FloatField()
    bin_start = models.FloatField(help_text="Lowest bin edge")
    bin_width = models.FloatField()
    bin_count = models.PositiveIntegerField()
    data = models.BinaryField(help_text="npz: heatmap, map per tier, cumulative, liquidations")
    clusters = models.JSONField(default=list)
    proximity = models.JSONField(default=dict)
    report = models.JSONField(default=dict)

    class Meta:
        ordering = ["market", "window"]
        constraints = [
            models.UniqueConstraint(fields=["market", "window"], name="snapshot_unique_window")
        ]

    def __str__(self) -> str:
        return f"{self.market} {self.window} @ {self.as_of:%Y-%m-%d %H:%M}"

    @property
    def edges(self) -> np.ndarray:
        return self.bin_start + self.bin_width * np.arange(self.bin_count + 1)

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(bytes(self.data))) as npz:
            return {key: npz[key] for key in npz.files}


class Calibration(models.Model):
    """Weights fitted to a market's real liquidations, and the model's accuracy on them."""

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="calibrations")
    computed_at = models.DateTimeField(default=timezone.now)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    engine_version = models.CharField(max_length=20)
    prior = models.JSONField(help_text="[[leverage, weight], ...] the fit started from")
    weights = models.JSONField(help_text="Fitted weights, one per tier")
    scale = models.FloatField()
    corr_long = models.FloatField(null=True)
    corr_short = models.FloatField(null=True)
    hit_rate = models.FloatField(null=True)
    coverage = models.FloatField(null=True)
    events_used = models.PositiveIntegerField()

    class Meta:
        ordering = ["market", "-computed_at"]
        get_latest_by = "computed_at"

    def __str__(self) -> str:
        return f"{self.market} {self.computed_at:%Y-%m-%d}"
