"""Admin for the planner: each market's maintenance brackets (inline on the market, checked as one
table), saved positions to inspect."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from maps.analytics.risk import RiskError
from maps.models import MarginBracket, SavedPosition
from maps.risk.brackets import brackets_from_rows


class BracketTableFormSet(forms.BaseInlineFormSet):
    """The rows kept must make one table: from 0, each floor the previous cap, one basis."""

    def clean(self) -> None:
        super().clean()
        rows = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or form.errors:
                continue
            rows.append(data)
        if not rows:
            return
        rows.sort(key=lambda r: r["tier"])
        if len({r["basis"] for r in rows}) > 1:
            raise forms.ValidationError("Use one basis (notional or size) for the whole table.")
        try:
            brackets_from_rows(rows)
        except RiskError as exc:
            raise forms.ValidationError(f"Tiers in order of their number: {exc}") from None


class MarginBracketInline(admin.TabularInline):
    model = MarginBracket
    formset = BracketTableFormSet
    extra = 0
    fields = [
        "tier",
        "floor",
        "cap",
        "basis",
        "maintenance_rate",
        "maintenance_amount",
        "max_leverage",
        "source",
    ]
    verbose_name_plural = (
        "Maintenance brackets (the exchange's table; empty: one bracket at the model's rate)"
    )


@admin.register(SavedPosition)
class SavedPositionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "stop", "liquidation_price", "window", "created"]
    list_filter = ["market__exchange", "side"]
    list_select_related = ["market__exchange", "user"]
    search_fields = ["user__username", "market__symbol"]
    raw_id_fields = ["user", "market"]
