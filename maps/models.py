from __future__ import annotations

import io
from datetime import UTC, datetime
from functools import cached_property

import numpy as np
from django.conf import settings
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
STAMPING_CHOICES = [
    ("auto", "auto: Binance's rule (snapshot time before 2024-03-04, period start after)"),
    ("start", "start: every row stamped with the start of its 5-minute period"),
    ("end", "end: every row stamped with its snapshot time"),
]
STEP_CHOICES = [
    (300_000, "5 minutes"),
    (900_000, "15 minutes"),
    (1_800_000, "30 minutes"),
    (3_600_000, "1 hour"),
]


GRADE_CHOICES = [
    ("A", "A: reliable"),
    ("B", "B: good"),
    ("C", "C: limited"),
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
        """Markets followed live (ingested, streamed and watched by /healthz where real)."""
        return self.filter(tracked=True)

    def listed(self) -> MarketQuerySet:
        """Markets the site lists: the tracked ones, and those whose maps were computed from data
        that is not followed live (an import, a market no longer tracked): shown as history."""
        has_maps = models.Exists(MapSnapshot.objects.filter(market=models.OuterRef("pk")))
        return self.filter(models.Q(tracked=True) | has_maps)


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
    metrics_stamp = models.CharField(
        "metrics stamping",
        max_length=5,
        choices=STAMPING_CHOICES,
        default="auto",
        help_text="How this market's 5-minute open-interest rows are stamped (MODEL.md v2.1)",
    )
    metrics_check = models.JSONField(
        default=dict,
        blank=True,
        help_text="The last check of the open-interest rows' stamping against their own prices",
    )
    oi_realign_pending = models.BooleanField(
        "open interest re-alignment pending",
        default=False,
        help_text="Open interest was stored under the old alignment and awaits re-alignment",
    )

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
    def is_historical(self) -> bool:
        """Real data that nothing keeps up to date: it shows the past and is never stale."""
        return not self.tracked and not self.is_demo

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


class BarQuerySet(models.QuerySet):
    def usable(self) -> BarQuerySet:
        """Bars the model can use: those with a positive open interest (a bar whose metrics row
        is missing, or reads 0, keeps its prices but is left out, like a skipped step)."""
        return self.filter(open_interest__gt=0)


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
    open_interest = models.FloatField(
        null=True, blank=True, help_text="Empty when no usable metrics row closes the step"
    )
    long_short_ratio = models.FloatField(null=True, blank=True)
    funding_rate = models.FloatField(
        null=True, blank=True, help_text="Last funding rate settled by the step's end"
    )

    objects = BarQuerySet.as_manager()

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


class MetricsRow(models.Model):
    """A 5-minute open-interest row exactly as its source stamped it: where a bar's open
    interest and ratios come from, kept so the alignment can be redone from it, and the
    positioning series (top traders, accounts, takers) for later use."""

    SOURCE_CHOICES = [
        ("binance-vision", "Binance bulk file"),
        ("rest", "exchange REST history"),
        ("bars-v2.0", "rebuilt from bars stored under the v2.0 alignment"),
        ("demo", "simulated"),
    ]

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="metrics_rows")
    stamped_at = models.DateTimeField(help_text="The row's own time stamp (create_time), UTC")
    snapshot_at = models.DateTimeField(help_text="When the snapshot was taken, by the stamping")
    source = models.CharField(max_length=16, choices=SOURCE_CHOICES)
    open_interest = models.FloatField(null=True, blank=True, help_text="Base units")
    open_interest_value = models.FloatField(null=True, blank=True, help_text="USD")
    long_short_ratio = models.FloatField(
        null=True, blank=True, help_text="Global long/short account ratio"
    )
    top_account_ratio = models.FloatField(
        null=True, blank=True, help_text="Top traders' long/short ratio by accounts"
    )
    top_position_ratio = models.FloatField(
        null=True, blank=True, help_text="Top traders' long/short ratio by positions"
    )
    taker_ratio = models.FloatField(null=True, blank=True, help_text="Taker buy/sell volume ratio")

    class Meta:
        ordering = ["market", "stamped_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["market", "stamped_at"], name="metrics_row_unique_stamp"
            )
        ]
        indexes = [models.Index(fields=["market", "snapshot_at"], name="metrics_row_snapshot")]

    def __str__(self) -> str:
        return f"{self.market_id} {self.stamped_at:%Y-%m-%d %H:%M}"


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


# The position planner (maps/risk/): maintenance brackets, saved positions, risk profiles.


class MarginBracket(models.Model):
    """One row of a market's maintenance-margin table, as the exchange publishes it.

    Row i covers [floor, cap) of position notional in USD (basis "notional": Binance, Bybit) or of
    position size in base units (basis "quantity": OKX's tiers count contracts). Maintenance
    margin = notional x maintenance_rate - maintenance_amount.
    """

    BASIS_CHOICES = [
        ("notional", "position notional (USD)"),
        ("quantity", "position size (base units)"),
    ]

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="margin_brackets")
    tier = models.PositiveSmallIntegerField(help_text="1 for the smallest positions")
    floor = models.FloatField(validators=[MinValueValidator(0.0)])
    cap = models.FloatField(help_text="Upper bound (exclusive); the next tier's floor")
    basis = models.CharField(max_length=8, choices=BASIS_CHOICES, default="notional")
    maintenance_rate = models.FloatField(
        validators=[MinValueValidator(0.0)], help_text="e.g. 0.004 for 0.4 %"
    )
    maintenance_amount = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0)],
        help_text="USD subtracted from notional x rate (Binance cum, Bybit MM deduction)",
    )
    max_leverage = models.FloatField(validators=[MinValueValidator(1.0)])
    source = models.CharField(max_length=200, blank=True, help_text="Where the row comes from")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["market", "tier"]
        constraints = [
            models.UniqueConstraint(fields=["market", "tier"], name="bracket_unique_tier")
        ]

    def __str__(self) -> str:
        return f"{self.market} tier {self.tier}"


POSITIVE = MinValueValidator(0.0)


class SavedPosition(models.Model):
    """A user's position (real or planned) on one market, watched by its alerts."""

    SIDE_CHOICES = [("long", "long"), ("short", "short")]

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="positions"
    )
    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="positions")
    side = models.CharField(max_length=5, choices=SIDE_CHOICES)
    entry = models.FloatField(validators=[MinValueValidator(0.0)])
    leverage = models.FloatField(validators=[MinValueValidator(1.0)])
    quantity = models.FloatField("size", help_text="Base units", validators=[POSITIVE])
    margin = models.FloatField(help_text="Isolated margin, USD", validators=[POSITIVE])
    stop = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0)])
    liquidation_price = models.FloatField(help_text="With the brackets in force when saved")
    window = models.CharField(max_length=4, choices=WINDOW_CHOICES, default="7d")
    note = models.CharField(max_length=120, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity:g} {self.market.base} @ {self.entry:g} on {self.market}"


class RiskProfile(models.Model):
    """What the planner reads beside a snapshot: the market's hourly ATR and the impact of
    liquidations on price fitted over the snapshot's window (see docs/model.md)."""

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="risk_profiles")
    window = models.CharField(max_length=4, choices=WINDOW_CHOICES)
    snapshot_version = models.CharField(max_length=40, help_text="The snapshot it was fitted on")
    atr = models.FloatField(null=True, help_text="Mean true range of the last 14 hours")
    impact_per_usd = models.FloatField(
        null=True, help_text="ln price move per USD liquidated (null: not identified)"
    )
    impact_r2 = models.FloatField(null=True)
    impact_steps = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["market", "window"]
        constraints = [
            models.UniqueConstraint(fields=["market", "window"], name="riskprofile_unique_window")
        ]

    def __str__(self) -> str:
        return f"{self.market} {self.window} risk profile"


class MarketSignals(models.Model):
    """Cascades, sweeps and the reversal checklist of one market up to its last bar
    (maps.analytics.signals, stored by maps.market_signals.services)."""

    SOURCE_CHOICES = [("real", "real liquidations"), ("estimated", "the model's estimates")]

    market = models.OneToOneField(Market, on_delete=models.CASCADE, related_name="market_signals")
    as_of = models.DateTimeField(help_text="Open time of the last step read")
    start = models.DateTimeField(help_text="Cascades ending and sweeps happening from here on")
    computed_at = models.DateTimeField(default=timezone.now)
    version = models.CharField(max_length=40, help_text="Engine and signals versions")
    source = models.CharField(max_length=9, choices=SOURCE_CHOICES)
    cascades = models.JSONField(default=list)
    sweeps = models.JSONField(default=list)
    reversal = models.JSONField(null=True, blank=True, help_text="The checklist at as_of")
    thresholds = models.JSONField(default=dict)

    class Meta:
        verbose_name_plural = "market signals"

    def __str__(self) -> str:
        return f"{self.market} signals @ {self.as_of:%Y-%m-%d %H:%M}"


class MarketBacktest(models.Model):
    """The backtest of one market's hourly maps against chance (maps.analytics.signals)."""

    market = models.OneToOneField(Market, on_delete=models.CASCADE, related_name="market_backtest")
    computed_at = models.DateTimeField(default=timezone.now)
    period_start = models.DateTimeField(help_text="First hourly moment asked about")
    period_end = models.DateTimeField(help_text="Open time of the last step read")
    version = models.CharField(max_length=40, help_text="Engine and signals versions")
    source = models.CharField(max_length=9, choices=MarketSignals.SOURCE_CHOICES)
    results = models.JSONField(help_text="magnet, reach_above/below, after_cascades, ...")

    def __str__(self) -> str:
        return f"{self.market} backtest to {self.period_end:%Y-%m-%d %H:%M}"


# Levels and order books (maps/levels/).


class OrderBookSnapshot(models.Model):
    """One minute's order book of a market, binned on the market's price grid from 5 % below the
    mid to 5 % above it, bin k covering [bin_start + k x bin_width, ... + bin_width). `depth`
    holds USD per bin as float32: the bids of the bins up to the mid's, then the asks from it."""

    SOURCE_CHOICES = [("rest", "exchange REST snapshot"), ("demo", "simulated")]

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="order_books")
    time = models.DateTimeField(help_text="The minute the book was taken in, UTC")
    mid = models.FloatField()
    best_bid = models.FloatField()
    best_ask = models.FloatField()
    bin_start = models.FloatField(help_text="Lowest bin edge")
    bin_width = models.FloatField()
    bin_count = models.PositiveIntegerField()
    depth = models.BinaryField(help_text="float32 USD: bids up to the mid's bin, asks from it")
    reach_bid = models.FloatField(help_text="How far below the mid the bids reached (fraction)")
    reach_ask = models.FloatField(help_text="How far above the mid the asks reached (fraction)")
    source = models.CharField(max_length=4, choices=SOURCE_CHOICES, default="rest")

    class Meta:
        ordering = ["market", "time"]
        constraints = [
            models.UniqueConstraint(fields=["market", "time"], name="orderbook_unique_minute")
        ]

    def __str__(self) -> str:
        return f"{self.market_id} book {self.time:%Y-%m-%d %H:%M}"


class LevelsSnapshot(models.Model):
    """Support/resistance, volume profile, RSI, divergences, walls and each cluster's confluence
    for one map snapshot (maps/levels/services.py computes it once per snapshot version)."""

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="levels")
    window = models.CharField(max_length=4, choices=WINDOW_CHOICES)
    snapshot_version = models.CharField(max_length=40, help_text="The map snapshot it was made for")
    as_of = models.DateTimeField(help_text="The map snapshot's last step")
    computed_at = models.DateTimeField(default=timezone.now)
    atr_1h = models.FloatField(null=True)
    atr_4h = models.FloatField(null=True)
    support_resistance = models.JSONField(default=list)
    volume_profile = models.JSONField(default=dict)
    rsi = models.JSONField(default=dict)
    divergences = models.JSONField(default=list)
    walls = models.JSONField(default=list, help_text="Walls standing at the map's end")
    confluence = models.JSONField(default=list, help_text="One per cluster, in the map's order")

    class Meta:
        ordering = ["market", "window"]
        constraints = [
            models.UniqueConstraint(fields=["market", "window"], name="levels_unique_window")
        ]

    def __str__(self) -> str:
        return f"{self.market} {self.window} levels"


# Whale tracking (maps/whales/).


class PositioningSnapshot(models.Model):
    """Whales against the crowd and the anomaly feed of one market up to its last bar
    (maps.whales.stats, stored by maps.whales.services): what the positioning panel, the screener,
    the whales API and the whale alerts all read."""

    market = models.OneToOneField(Market, on_delete=models.CASCADE, related_name="positioning")
    as_of = models.DateTimeField(help_text="Open time of the last step read")
    start = models.DateTimeField(help_text="First step of the stored series")
    computed_at = models.DateTimeField(default=timezone.now)
    version = models.CharField(max_length=40)
    positioning = models.JSONField(default=dict, help_text="Whale/retail long %, delta, trends")
    latest_z = models.JSONField(default=dict, help_text="Each metric's z at the last step")
    anomalies = models.JSONField(default=list, help_text="|z| >= 3 events, oldest first")
    figures = models.JSONField(default=dict, help_text="Price, changes, funding: the screener's")
    data = models.BinaryField(help_text="npz: the series per step (times, long %, delta, oi, z)")

    def __str__(self) -> str:
        return f"{self.market} positioning @ {self.as_of:%Y-%m-%d %H:%M}"

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(bytes(self.data))) as npz:
            return {key: npz[key] for key in npz.files}
