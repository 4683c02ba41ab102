"""Admin for the planner: each market's maintenance brackets (each row checked with the rest of
its table), saved positions to inspect."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from maps.analytics.risk import RiskError
from maps.models import MarginBracket, SavedPosition
from maps.risk.brackets import ROW_FIELDS, brackets_from_rows


class MarginBracketForm(forms.ModelForm):
    """One row, checked with the rest of its market's table: from 0, each floor the previous
    cap, one basis."""

    class Meta:
        model = MarginBracket
        fields = ["market", *ROW_FIELDS, "source"]

    def clean(self) -> dict:
        data = super().clean()
        market = data.get("market")
        if market is None or self.errors:
            return data
        others = MarginBracket.objects.filter(market=market).exclude(pk=self.instance.pk)
        others = others.exclude(tier=data.get("tier"))
        rows = [*others.values(*ROW_FIELDS), {k: data.get(k) for k in ROW_FIELDS}]
        rows.sort(key=lambda r: r["tier"])
        if len({r["basis"] for r in rows}) > 1:
            raise forms.ValidationError("Use one basis (notional or size) for the whole table.")
        try:
            brackets_from_rows(rows)
        except RiskError as exc:
            raise forms.ValidationError(
                f"With this row, {market}'s table would be broken: {exc}. Tiers count from 1 "
                "by floor; each floor is the previous tier's cap."
            ) from None
        return data


@admin.register(MarginBracket)
class MarginBracketAdmin(admin.ModelAdmin):
    """Each market's maintenance brackets, as the exchange publishes them (load_brackets fills
    them; a market without any uses one bracket at its model rate)."""

    form = MarginBracketForm
    list_display = [
        "market",
        "tier",
        "floor",
        "cap",
        "basis",
        "maintenance_rate",
        "maintenance_amount",
        "max_leverage",
        "source",
    ]
    list_filter = ["market__exchange", "basis"]
    list_select_related = ["market__exchange"]
    search_fields = ["market__symbol", "market__slug"]
    ordering = ["market__exchange__slug", "market__symbol", "tier"]
    raw_id_fields = ["market"]


@admin.register(SavedPosition)
class SavedPositionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "stop", "liquidation_price", "window", "created"]
    list_filter = ["market__exchange", "side"]
    list_select_related = ["market__exchange", "user"]
    search_fields = ["user__username", "market__symbol"]
    raw_id_fields = ["user", "market"]
