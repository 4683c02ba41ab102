"""The planner's inputs, from a query string (panel, API) or a posted form (saving a position).

Numbers must be finite and positive; each error names its field, which the API returns with its
400 and the panel shows beside the input.
"""

from __future__ import annotations

import math

from django import forms

from accounts.models import MAX_USD, MAX_WITHIN_PCT
from maps.risk.services import AlertChoice, PlanInput

SIDE_CHOICES = [("long", "Long"), ("short", "Short")]


class PositiveField(forms.FloatField):
    """A finite number above zero."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.NumberInput(attrs={"step": "any", "min": "0"}))
        super().__init__(*args, **kwargs)

    def validate(self, value: float | None) -> None:
        super().validate(value)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise forms.ValidationError("must be a positive number", code="positive")


class PlannerForm(forms.Form):
    """side, entry and a leverage (or size and margin); stop and a what-if price optional.
    Without an entry the last price is used."""

    side = forms.ChoiceField(choices=SIDE_CHOICES, required=False)
    entry = PositiveField(label="Entry")
    leverage = PositiveField(label="Leverage", help_text="x")
    size = PositiveField(label="Size", help_text="base units")
    margin = PositiveField(label="Margin", help_text="USD")
    stop = PositiveField(label="Stop")
    price = PositiveField(label="What if price reaches")

    def plan_input(self, *, last_close: float) -> PlanInput:
        data = self.cleaned_data
        return PlanInput(
            side=data.get("side") or "long",
            entry=data.get("entry") or last_close,
            leverage=data.get("leverage"),
            size=data.get("size"),
            margin=data.get("margin"),
            stop=data.get("stop"),
        )

    def first_error(self) -> tuple[str, str]:
        """(field, message) of the first invalid field."""
        name, errors = next(iter(self.errors.items()))
        return name, f"{name}: {errors[0]}"


def planner_form(query, *, side_key: str = "side") -> PlannerForm:
    """The form bound to a query string; the panel names the side `plan` (the pair page's own
    `side` is its map filter)."""
    data = {name: query.get(name, "") for name in PlannerForm.base_fields}
    data["side"] = query.get(side_key, "")
    return PlannerForm(data)


class AlertsForm(forms.Form):
    """The alerts to set on a position being saved."""

    note = forms.CharField(max_length=120, required=False)
    near_stop = forms.BooleanField(required=False, initial=True)
    near_stop_pct = forms.FloatField(
        required=False, min_value=0.01, max_value=MAX_WITHIN_PCT, initial=0.5
    )
    near_liquidation = forms.BooleanField(required=False, initial=True)
    near_liquidation_pct = forms.FloatField(
        required=False, min_value=0.01, max_value=MAX_WITHIN_PCT, initial=1.0
    )
    stop_cluster = forms.BooleanField(required=False, initial=False)
    cluster_min_usd = forms.FloatField(
        required=False, min_value=1.0, max_value=MAX_USD, initial=1_000_000
    )

    def clean(self) -> dict:
        data = super().clean()
        pairs = (
            ("near_stop", "near_stop_pct"),
            ("near_liquidation", "near_liquidation_pct"),
            ("stop_cluster", "cluster_min_usd"),
        )
        for flag, value in pairs:
            if data.get(flag) and data.get(value) is None and value not in self.errors:
                self.add_error(value, "Required for this alert.")
        return data

    def choice(self) -> AlertChoice:
        data = self.cleaned_data
        return AlertChoice(
            near_stop_pct=data["near_stop_pct"] if data.get("near_stop") else None,
            near_liquidation_pct=data["near_liquidation_pct"]
            if data.get("near_liquidation")
            else None,
            cluster_min_usd=data["cluster_min_usd"] if data.get("stop_cluster") else None,
        )
