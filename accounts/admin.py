from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Alert, AlertEvent, Notification, User, WatchlistItem


class WatchlistItemInline(admin.TabularInline):
    model = WatchlistItem
    extra = 0
    fields = ["market", "created"]
    readonly_fields = ["created"]
    raw_id_fields = ["market"]
    show_change_link = True


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = [
        "username",
        "email",
        "email_alerts",
        "watched",
        "is_staff",
        "is_active",
        "date_joined",
        "last_login",
    ]
    list_filter = ["is_staff", "is_superuser", "is_active", "email_alerts"]
    fieldsets = [
        *DjangoUserAdmin.fieldsets,
        ("Notifications", {"fields": ["email_alerts"]}),
    ]
    add_fieldsets = [
        (
            None,
            {
                "classes": ["wide"],
                "fields": ["username", "email", "usable_password", "password1", "password2"],
            },
        ),
    ]

    def get_inlines(self, request: HttpRequest, obj: User | None) -> list:
        return [WatchlistItemInline] if obj is not None else []

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).annotate(watch_count=Count("watchlist"))

    @admin.display(description="watching", ordering="watch_count")
    def watched(self, user: User) -> int:
        return user.watch_count


class AlertInline(admin.TabularInline):
    model = Alert
    extra = 0
    fields = ["kind", "side", "window", "within_pct", "min_notional_usd", "threshold_usd"]
    fields += ["source", "cooldown_minutes", "is_active", "armed", "last_fired_at"]
    readonly_fields = ["armed", "last_fired_at"]
    show_change_link = True


@admin.register(WatchlistItem)
class WatchlistItemAdmin(admin.ModelAdmin):
    list_display = ["user", "market", "alert_total", "created"]
    list_filter = ["market__exchange"]
    list_select_related = ["user", "market__exchange"]
    search_fields = ["user__username", "user__email", "market__symbol"]
    raw_id_fields = ["user", "market"]
    date_hierarchy = "created"
    inlines = [AlertInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WatchlistItem]:
        return super().get_queryset(request).annotate(alert_count=Count("alerts"))

    @admin.display(description="alerts", ordering="alert_count")
    def alert_total(self, item: WatchlistItem) -> int:
        return item.alert_count


class AlertEventInline(admin.TabularInline):
    """The alert's history: read-only, newest first."""

    model = AlertEvent
    extra = 0
    fields = ["fired_at", "step_time", "message", "email", "emailed_at"]
    readonly_fields = fields
    can_delete = False
    ordering = ["-fired_at"]

    def has_add_permission(self, request: HttpRequest, obj: Alert | None = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "kind", "is_active", "armed", "last_fired_at", "fired"]
    list_filter = ["kind", "is_active", "armed", "source", "window"]
    list_select_related = ["watch__user", "watch__market__exchange"]
    search_fields = ["watch__user__username", "watch__user__email", "watch__market__symbol"]
    raw_id_fields = ["watch"]
    readonly_fields = ["checked_through", "last_fired_at", "created", "updated"]
    fieldsets = [
        (None, {"fields": ["watch", "kind", "side", "window", "is_active"]}),
        ("Proximity", {"fields": ["within_pct", "min_notional_usd"]}),
        ("Liquidations", {"fields": ["threshold_usd", "source"]}),
        ("State", {"fields": ["cooldown_minutes", "armed", *readonly_fields]}),
    ]
    inlines = [AlertEventInline]
    actions = ["rearm"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        return super().get_queryset(request).annotate(event_count=Count("events"))

    @admin.display(ordering="watch__user__username")
    def user(self, alert: Alert) -> User:
        return alert.watch.user

    @admin.display(description="times fired", ordering="event_count")
    def fired(self, alert: Alert) -> int:
        return alert.event_count

    @admin.action(description="Re-arm the selected alerts")
    def rearm(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        count = queryset.update(armed=True)
        self.message_user(request, f"Re-armed {count} alert{'s' if count != 1 else ''}.")


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = ["fired_at", "alert", "message", "email"]
    list_filter = ["email", "alert__kind"]
    list_select_related = ["alert__watch__market__exchange"]
    search_fields = ["message", "alert__watch__user__username", "alert__watch__market__symbol"]
    date_hierarchy = "fired_at"
    readonly_fields = ["alert", "step_time", "fired_at", "message", "detail", "email", "emailed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created", "user", "title", "is_read"]
    list_filter = [("read_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["user__username", "title", "body"]
    date_hierarchy = "created"
    raw_id_fields = ["user", "event"]
    actions = ["mark_read"]

    @admin.display(boolean=True, description="read", ordering="read_at")
    def is_read(self, notification: Notification) -> bool:
        return notification.read_at is not None

    @admin.action(description="Mark the selected notifications read")
    def mark_read(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        count = queryset.filter(read_at__isnull=True).update(read_at=timezone.now())
        self.message_user(request, f"Marked {count} read.")
