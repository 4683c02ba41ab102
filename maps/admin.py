"""Admin: exchanges and markets to manage, bars, events, snapshots and calibrations to inspect."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from maps import tasks
from maps.connectors import CONNECTORS
from maps.coverage.selectors import cooling_exchanges, market_staleness, markets_freshness
from maps.formatting import usd
from maps.metrics_rows import market_open_interest_realign
from maps.models import (
    BAR_VALUE_FIELDS,
    Bar,
    Calibration,
    Exchange,
    LevelsSnapshot,
    LiquidationEvent,
    MapSnapshot,
    Market,
    MarketBacktest,
    MarketSignals,
    MetricsRow,
    OrderBookSnapshot,
    PositioningSnapshot,
)
from maps.risk import admin as risk_admin  # noqa: F401  (registers the planner's models)
from maps.services import exchange_demo_refresh, market_demo_clear

DEMO_BADGE = (
    '<span style="background:#b45309;color:#fff;border-radius:3px;padding:1px 5px;'
    'font-size:10px;font-weight:bold" title="simulated demo data">{}</span>'
)


GRADE_COLOURS = {"A": "#15803d", "B": "#4d7c0f", "C": "#b45309", "D": "#b91c1c"}
GRADE_BADGE = (
    '<span style="background:{};color:#fff;border-radius:3px;padding:1px 6px;'
    'font-weight:bold" title="{}">{}</span>'
)


def demo_badge(is_demo: bool) -> str:
    return format_html(DEMO_BADGE, "DEMO") if is_demo else ""


def grade_badge(market: Market) -> str:
    if not market.grade:
        return "-"
    worst = [r["text"] for r in market.grade_reasons if r.get("grade") == market.grade]
    colour = GRADE_COLOURS.get(market.grade, "#555")
    return format_html(GRADE_BADGE, colour, "; ".join(worst), market.grade)


STALE_FIELDS = (
    "symbol",
    "step_ms",
    "last_bar_at",
    "last_ingest_at",
    "last_error",
    "queued_at",
    "maps_as_of",
)


def age(moment) -> str:
    """'3 minutes ago', or '-' when there is no moment."""
    if moment is None:
        return "-"
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, timezone.now()).split(',')[0]} ago"


def _count_subquery(model, **filters) -> Coalesce:
    rows = (
        model.objects.filter(market=OuterRef("pk"), **filters)
        .order_by()
        .values("market")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))


class DemoFilter(admin.SimpleListFilter):
    title = "data"
    parameter_name = "demo"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [("yes", "DEMO (simulated)"), ("no", "real")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in {"yes", "no"}:
            return queryset.filter(is_demo=self.value() == "yes")
        return queryset


class MarketFilter(admin.SimpleListFilter):
    """The market filter of the tables of market data: every market with its exchange's name,
    read in one query (the default filter reads the exchange of each market on its own)."""

    title = "market"
    parameter_name = "market"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[int, str]]:
        markets = Market.objects.select_related("exchange").order_by("exchange__name", "symbol")
        return [(market.pk, str(market)) for market in markets]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            raise IncorrectLookupParameters(f"market={value!r}: a market is chosen by its id")
        return queryset.filter(market_id=int(value))


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the importers and the engine: to look at, never to edit by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Exchange)
class ExchangeAdmin(admin.ModelAdmin):
    list_display = ["name", "demo", "slug", "ccxt_id", "market_count", "created"]
    list_filter = [DemoFilter]
    search_fields = ["name", "slug", "ccxt_id"]
    prepopulated_fields = {"slug": ["name"]}
    actions = ["track_markets"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(market_count=Count("markets"))

    @admin.display(description="demo", ordering="is_demo")
    def demo(self, obj: Exchange) -> str:
        return demo_badge(obj.is_demo)

    @admin.display(description="markets", ordering="market_count")
    def market_count(self, obj: Exchange) -> int:
        return obj.market_count

    @admin.action(
        description="Track every perpetual above an open-interest threshold",
        permissions=["change"],
    )
    def track_markets(self, request: HttpRequest, queryset: QuerySet):
        """Ask for the quote and threshold, then queue one listing per exchange (the command
        `manage.py track_markets` does the same in the foreground)."""
        feedable = [e for e in queryset if e.ccxt_id in CONNECTORS]
        for exchange in queryset:
            if exchange.ccxt_id not in CONNECTORS:
                self.message_user(
                    request,
                    f"{exchange}: no connector for ccxt id {exchange.ccxt_id!r}: left out.",
                    messages.WARNING,
                )
        if not feedable:
            return None
        form = TrackMarketsForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Track every perpetual above a threshold",
                "exchanges": feedable,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/maps/exchange/track_markets.html", context)
        quote, minimum = form.cleaned_data["quote"], form.cleaned_data["min_oi_usd"]
        for exchange in feedable:
            slug = CONNECTORS[exchange.ccxt_id].slug
            transaction.on_commit(
                lambda s=slug: tasks.exchange_track_markets.delay(s, quote, minimum)
            )
        names = ", ".join(e.name for e in feedable)
        self.message_user(
            request,
            f"Reading the {quote} perpetuals of {names}: those with at least {usd(minimum)} of "
            "open interest will be tracked (and backfilled within a minute), those below or "
            "delisted untracked with their data kept. See the markets list.",
            messages.SUCCESS,
        )
        return None


class TrackMarketsForm(forms.Form):
    quote = forms.RegexField(
        regex=r"^[A-Za-z0-9]{2,10}$",
        initial=settings.LIQSITE_COVERAGE_QUOTE,
        help_text="Settlement currency of the perpetuals, e.g. USDT",
    )
    min_oi_usd = forms.FloatField(
        label="Minimum open interest (USD)",
        min_value=0,
        initial=settings.LIQSITE_COVERAGE_MIN_OI_USD,
        help_text="Markets at or above it are tracked; those tracked this way are untracked "
        "when they fall below",
    )

    def clean_quote(self) -> str:
        return self.cleaned_data["quote"].upper()


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = [
        "symbol",
        "exchange",
        "base",
        "tracked",
        "demo",
        "grade_column",
        "step_ms",
        "last_bar_at",
        "lag",
        "freshness",
        "error",
        "oi_alignment",
        "events_24h",
        "snapshot_count",
    ]
    list_filter = [
        "exchange",
        "tracked",
        DemoFilter,
        "grade",
        "auto_tracked",
        "long_share",
        "oi_realign_pending",
    ]
    list_select_related = ["exchange"]
    search_fields = ["symbol", "base", "slug", "exchange__name", "exchange__slug"]
    readonly_fields = [
        "last_bar_at",
        "last_ingest_at",
        "last_error",
        "last_error_at",
        "created",
        "maps_as_of",
        "queued_at",
        "grade",
        "grade_details",
        "graded_at",
        "oi_usd",
        "listed_oi_usd",
        "listed_at",
        "delisted_at",
        "tracking_note",
        "oi_realign_pending",
        "alignment_check",
    ]
    actions = ["track", "untrack", "recompute_now", "backfill_now", "realign_now"]
    fieldsets = [
        (None, {"fields": ["exchange", "symbol", "slug", "base", "quote", "ccxt_symbol"]}),
        (
            "Tracking",
            {
                "fields": ["tracked", "is_demo", "step_ms", "contract_size"],
                "description": (
                    "A demo market is never fetched from its exchange. Unticking 'is demo' "
                    "deletes its simulated bars, events and maps, so that a backfill fills it "
                    "with real data."
                ),
            },
        ),
        (
            "Model parameters",
            {
                "fields": ["tiers", "mmr", "long_share", "holding_hours", "bin_bps"],
                "description": (
                    "The liquidation model's parameters (docs/model.md): tiers as "
                    "[[leverage, weight], ...] with weights summing to 1 and leverage x "
                    "maintenance margin rate below 1. Snapshots are recomputed with them on the "
                    "next refresh. Bybit publishes no taker volume: its bars hold half the volume "
                    "as a placeholder and its markets are switched to the 'ratio' long share on "
                    "ingestion (docs/deploy.md, 'What each exchange publishes')."
                ),
            },
        ),
        (
            "Open interest alignment",
            {
                "fields": ["metrics_stamp", "oi_realign_pending", "alignment_check"],
                "description": (
                    "How the market's 5-minute open-interest rows are stamped (MODEL.md v2.1, "
                    "docs/model.md 'Alignment'), and the last check of the rows against the "
                    "market's own prices. After changing the stamping, run 'Re-align open "
                    "interest' to rebuild the bars from the stored rows."
                ),
            },
        ),
        (
            "Status",
            {
                "fields": [
                    "last_bar_at",
                    "last_ingest_at",
                    "maps_as_of",
                    "queued_at",
                    "last_error",
                    "last_error_at",
                    "created",
                ]
            },
        ),
        (
            "Reliability grade",
            {
                "fields": ["grade", "grade_details", "graded_at", "oi_usd"],
                "description": "Recomputed with the maps; the rules are in docs/model.md.",
            },
        ),
        (
            "Whole-exchange coverage",
            {
                "fields": [
                    "auto_tracked",
                    "listed_oi_usd",
                    "listed_at",
                    "delisted_at",
                    "tracking_note",
                ],
                "description": (
                    "Set by 'manage.py track_markets' and the exchange action 'Track every "
                    "perpetual above an open-interest threshold'. A market tracked that way is "
                    "untracked again when its open interest falls below the threshold; untick "
                    "'auto tracked' to keep it tracked whatever its open interest."
                ),
            },
        ),
    ]
    change_list_template = "admin/maps/market/change_list.html"

    @admin.display(description="OI alignment")
    def oi_alignment(self, obj: Market) -> str:
        """'re-align pending', 'contradicted' (the data disagree with the stamping) or 'ok'."""
        if obj.oi_realign_pending:
            return "re-align pending"
        if obj.metrics_check.get("contradicted"):
            return format_html('<strong style="color:#b91c1c">{}</strong>', "contradicted")
        return "ok" if obj.metrics_check.get("files") else "-"

    @admin.display(description="last check of the stamping")
    def alignment_check(self, obj: Market) -> str:
        check = obj.metrics_check
        if not check.get("files"):
            return "No open-interest rows checked yet."
        header = format_html(
            "<p>Checked {} under stamping <code>{}</code>: {} of {} file(s) contradict it.</p>",
            check["checked_at"],
            check["stamping"],
            check["contradicted"],
            len(check["files"]),
        )
        rows = format_html_join(
            "",
            '<li style="{}">{}</li>',
            (
                ("color:#b91c1c;font-weight:bold" if c["contradicts"] else "", c["message"])
                for c in check["files"]
            ),
        )
        return format_html("{}<ul>{}</ul>", header, rows)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        since = timezone.now() - timedelta(hours=24)
        return (
            super()
            .get_queryset(request)
            .annotate(
                events_24h=_count_subquery(LiquidationEvent, time__gte=since),
                snapshot_count=_count_subquery(MapSnapshot),
            )
        )

    @admin.display(description="demo", ordering="is_demo")
    def demo(self, obj: Market) -> str:
        return demo_badge(obj.is_demo)

    @admin.display(description="grade", ordering="grade")
    def grade_column(self, obj: Market) -> str:
        return grade_badge(obj)

    @admin.display(description="reasons")
    def grade_details(self, obj: Market) -> str:
        if not obj.grade_reasons:
            return "-"
        return format_html_join(
            "\n",
            "<div><b>{}</b> {}</div>",
            ((r.get("grade") or "not judged:", r.get("text", "")) for r in obj.grade_reasons),
        )

    @admin.display(description="freshness")
    def freshness(self, obj: Market) -> str:
        """Why a tracked live market's data or maps are stale ('fresh' when they are not)."""
        if not obj.tracked or obj.is_demo or obj.exchange.ccxt_id not in CONNECTORS:
            return "-"
        row = {
            "pk": obj.pk,
            "exchange__slug": obj.exchange.slug,
            "exchange__ccxt_id": obj.exchange.ccxt_id,
            **{f: getattr(obj, f) for f in STALE_FIELDS},
        }
        stale = market_staleness(row, now=timezone.now(), cooling=cooling_exchanges())
        if stale is None:
            return "fresh"
        return format_html(
            '<span style="color:#b91c1c" title="{}">stale: {}</span>',
            stale.detail,
            stale.reason_text,
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        """The list, headed by how many tracked live markets are stale and why."""
        freshness = markets_freshness(now=timezone.now())
        extra_context = {**(extra_context or {}), "freshness": freshness}
        return super().changelist_view(request, extra_context)

    @admin.display(description="lag")
    def lag(self, obj: Market) -> str:
        """How far the last stored bar's end lies behind now."""
        if obj.last_bar_at is None:
            return "-"
        end = obj.last_bar_at + timedelta(milliseconds=obj.step_ms)
        return timesince(end, timezone.now()).split(",")[0]

    @admin.display(description="last error")
    def error(self, obj: Market) -> str:
        return obj.last_error[:80] if obj.last_error else "-"

    @admin.display(description="events 24 h", ordering="events_24h")
    def events_24h(self, obj: Market) -> int:
        return obj.events_24h

    @admin.display(description="snapshots", ordering="snapshot_count")
    def snapshot_count(self, obj: Market) -> int:
        return obj.snapshot_count

    @admin.action(description="Track the selected markets", permissions=["change"])
    def track(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.update(tracked=True)
        self.message_user(request, f"{count} market(s) tracked.", messages.SUCCESS)

    @admin.action(description="Stop tracking the selected markets", permissions=["change"])
    def untrack(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.update(tracked=False)
        self.message_user(request, f"{count} market(s) no longer tracked.", messages.SUCCESS)

    @admin.action(description="Recompute the maps now", permissions=["change"])
    def recompute_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        for market_id in ids:
            transaction.on_commit(lambda pk=market_id: tasks.market_snapshots_refresh.delay(pk))
        self.message_user(request, f"Recompute queued for {len(ids)} market(s).", messages.SUCCESS)

    @admin.action(description="Backfill the history now", permissions=["change"])
    def backfill_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.filter(is_demo=False).values_list("pk", flat=True))
        for market_id in ids:
            transaction.on_commit(lambda pk=market_id: tasks.market_backfill.delay(pk))
        demo = queryset.filter(is_demo=True).count()
        if demo:
            self.message_user(
                request,
                f"{demo} demo market(s) left out: simulated data is never fetched from an "
                "exchange.",
                messages.WARNING,
            )
        self.message_user(request, f"Backfill queued for {len(ids)} market(s).", messages.SUCCESS)

    @admin.action(description="Re-align open interest from the stored rows", permissions=["change"])
    def realign_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Rebuild the bars' open interest from the raw rows under each market's stamping, then
        queue a recompute of its maps."""
        for market in queryset.filter(is_demo=False):
            report = market_open_interest_realign(market=market)
            transaction.on_commit(lambda pk=market.pk: tasks.market_snapshots_refresh.delay(pk))
            self.message_user(request, f"{market}: {report.summary()}", messages.SUCCESS)

    def save_model(self, request: HttpRequest, obj: Market, form, change: bool) -> None:
        """A demo market made real loses its simulated rows (real ones must not mix with them);
        the exchange is demo only while all its markets are."""
        super().save_model(request, obj, form, change)
        if change and "is_demo" in form.changed_data and not obj.is_demo:
            market_demo_clear(market=obj)
            self.message_user(
                request,
                f"{obj}: its simulated data was deleted; backfill it to fetch real data.",
                messages.WARNING,
            )
        exchange_demo_refresh(exchange=obj.exchange)


@admin.register(Bar)
class BarAdmin(ReadOnlyAdmin):
    list_display = ["time", "market", *BAR_VALUE_FIELDS]
    list_filter = ["market__exchange", MarketFilter]
    list_select_related = ["market__exchange"]
    date_hierarchy = "time"
    show_full_result_count = False
    ordering = ["-time"]


@admin.register(MetricsRow)
class MetricsRowAdmin(ReadOnlyAdmin):
    list_display = [
        "stamped_at",
        "snapshot_at",
        "market",
        "source",
        "open_interest",
        "open_interest_value",
        "long_short_ratio",
        "top_position_ratio",
    ]
    list_filter = ["market__exchange", MarketFilter, "source"]
    list_select_related = ["market__exchange"]
    date_hierarchy = "stamped_at"
    show_full_result_count = False
    ordering = ["-stamped_at"]


@admin.register(LiquidationEvent)
class LiquidationEventAdmin(ReadOnlyAdmin):
    list_display = ["time", "market", "side", "price", "quantity", "notional_usd", "source"]
    list_filter = ["market__exchange", MarketFilter, "side", "source"]
    list_select_related = ["market__exchange"]
    date_hierarchy = "time"
    show_full_result_count = False
    ordering = ["-time"]


def count_column(field: str, description: str):
    """A list column: how many items the row's JSON list `field` holds."""

    @admin.display(description=description)
    def column(self, obj) -> int:
        return len(getattr(obj, field))

    return column


class ComputedAdmin(ReadOnlyAdmin):
    """What the engine and the services computed from a market's data (maps, signals, backtest,
    positioning, levels): one row per market (per window for maps and levels), to check when it
    was computed and what it says."""

    list_filter = ["market__exchange", MarketFilter]
    list_select_related = ["market__exchange"]
    search_fields = ["market__symbol", "market__exchange__name"]

    @admin.display(description="age of the data", ordering="as_of")
    def age(self, obj) -> str:
        return age(obj.as_of)

    @admin.display(description="computed", ordering="computed_at")
    def computed(self, obj) -> str:
        return age(obj.computed_at)


@admin.register(MapSnapshot)
class MapSnapshotAdmin(ComputedAdmin):
    list_display = ["market", "window", "as_of", "age", "computed", "engine_version", "bin_count"]
    list_filter = ["window", *ComputedAdmin.list_filter]
    exclude = ["data"]


@admin.register(Calibration)
class CalibrationAdmin(ReadOnlyAdmin):
    list_display = [
        "market",
        "computed_at",
        "period_start",
        "period_end",
        "scale",
        "corr_long",
        "corr_short",
        "hit_rate",
        "coverage",
        "events_used",
    ]
    list_filter = ["market__exchange", MarketFilter]
    list_select_related = ["market__exchange"]
    date_hierarchy = "computed_at"


@admin.register(MarketSignals)
class MarketSignalsAdmin(ComputedAdmin):
    list_display = [
        "market",
        "age",
        "computed",
        "source",
        "cascade_count",
        "sweep_count",
        "reversal",
    ]

    cascade_count = count_column("cascades", "cascades")
    sweep_count = count_column("sweeps", "sweeps")

    @admin.display(description="reversal watch")
    def reversal(self, obj: MarketSignals) -> str:
        watch = obj.reversal
        if not watch:
            return "-"
        state = "confirmed" if watch["confirmed"] else "not confirmed"
        return f"{state} ({watch['confirmations']} of 3 after the {watch['side']} cascade)"


@admin.register(MarketBacktest)
class MarketBacktestAdmin(ComputedAdmin):
    list_display = ["market", "period", "computed", "source", "magnet"]

    @admin.display(description="hours asked about (UTC)", ordering="period_end")
    def period(self, obj: MarketBacktest) -> str:
        return f"{obj.period_start:%Y-%m-%d %H:%M} to {obj.period_end:%Y-%m-%d %H:%M}"

    @admin.display(description="larger first: hit / chance (cases)")
    def magnet(self, obj: MarketBacktest) -> str:
        figure = obj.results.get("magnet") or {}
        if not figure.get("enough"):
            return f"too few cases ({figure.get('cases', 0)})"
        return f"{figure['hit_rate']:.0%} / {figure['chance_rate']:.0%} ({figure['cases']})"


@admin.register(PositioningSnapshot)
class PositioningSnapshotAdmin(ComputedAdmin):
    list_display = ["market", "age", "computed", "whale_long", "retail_long", "anomaly_count"]
    exclude = ["data"]

    @admin.display(description="top traders long")
    def whale_long(self, obj: PositioningSnapshot) -> str:
        return _percent(obj.positioning.get("whale_long_pct"))

    @admin.display(description="all accounts long")
    def retail_long(self, obj: PositioningSnapshot) -> str:
        return _percent(obj.positioning.get("retail_long_pct"))

    anomaly_count = count_column("anomalies", "anomalies")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


@admin.register(LevelsSnapshot)
class LevelsSnapshotAdmin(ComputedAdmin):
    list_display = ["market", "window", "age", "computed", "level_count", "wall_count"]
    list_filter = ["window", *ComputedAdmin.list_filter]

    level_count = count_column("support_resistance", "support and resistance")
    wall_count = count_column("walls", "walls")


@admin.register(OrderBookSnapshot)
class OrderBookSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["time", "market", "mid", "best_bid", "best_ask", "bin_count", "source"]
    list_filter = ["source", "market__exchange", MarketFilter]
    list_select_related = ["market__exchange"]
    search_fields = ["market__symbol", "market__exchange__name"]
    date_hierarchy = "time"
    show_full_result_count = False
    ordering = ["-time"]
    exclude = ["depth"]
