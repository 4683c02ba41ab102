from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from accounts.models import MAX_COOLDOWN_MINUTES, MAX_USD, MAX_WITHIN_PCT, Alert, User
from maps.formatting import usd


def _email_taken(email: str, *, exclude: User | None = None) -> bool:
    users = User.objects.filter(email__iexact=email)
    if exclude is not None:
        users = users.exclude(pk=exclude.pk)
    return users.exists()


class SignupForm(UserCreationForm):
    email = forms.EmailField(
        help_text="For alerts and password resets; never shown to anyone.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ["username", "email"]

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"])
        if _email_taken(email):
            raise forms.ValidationError(
                "An account with this email address already exists. "
                "Log in, or reset your password if you forgot it."
            )
        return email


class LoginForm(AuthenticationForm):
    """Log in with the username or the email address."""

    username = forms.CharField(
        label="Username or email",
        max_length=254,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That username or email and password do not match an account. "
        "Passwords are case-sensitive.",
    }

    def clean_username(self) -> str:
        return username_for_login(self.cleaned_data["username"])


def username_for_login(value: str) -> str:
    """The username of the account with this email address, or the value itself."""
    value = value.strip()
    if "@" in value:
        user = User.objects.filter(email__iexact=value).only("username").first()
        if user is not None:
            return user.username
    return value


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["email_alerts"]


class EmailChangeForm(forms.Form):
    email = forms.EmailField(
        label="New email address", widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="To confirm it is you.",
    )

    def __init__(self, *args: object, user: User, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"])
        if email.lower() == self.user.email.lower():
            raise forms.ValidationError("That is already your email address.")
        if _email_taken(email, exclude=self.user):
            raise forms.ValidationError("Another account uses this email address.")
        return email

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your current password.")
        return password


class AlertForm(forms.ModelForm):
    """An alert's condition; only the fields of the chosen kind are required and kept."""

    PROXIMITY_FIELDS = ("within_pct", "min_notional_usd")
    NEW_ALERT_INITIAL = {
        "within_pct": 1.0,
        "min_notional_usd": 1_000_000,
        "threshold_usd": 1_000_000,
    }
    LIQUIDATION_FIELDS = ("threshold_usd", "source")
    SIGNAL_FIELDS = ("signal_min_usd",)

    class Meta:
        model = Alert
        fields = [
            "kind",
            "side",
            "window",
            "within_pct",
            "min_notional_usd",
            "threshold_usd",
            "source",
            "signal_min_usd",
            "cooldown_minutes",
            "is_active",
        ]
        widgets = {
            "kind": forms.RadioSelect,
            "within_pct": forms.NumberInput(attrs={"step": "0.01", "min": "0.01"}),
            "min_notional_usd": forms.NumberInput(attrs={"step": "any", "min": "1"}),
            "threshold_usd": forms.NumberInput(attrs={"step": "any", "min": "1"}),
            "signal_min_usd": forms.NumberInput(attrs={"step": "any", "min": "1"}),
            "cooldown_minutes": forms.NumberInput(attrs={"min": "0"}),
        }
        labels = {"window": "Map window", "cooldown_minutes": "Cooldown (minutes)"}
        help_texts = {
            "side": "Long clusters sit below price, short clusters above.",
            "window": "The map whose clusters and liquidations are watched.",
        }
        error_messages = {
            "within_pct": {
                "min_value": "Give a distance of at least 0.01%%.",
                "max_value": f"Give a distance of at most {MAX_WITHIN_PCT:g}%%.",
            },
            "min_notional_usd": {
                "min_value": "Give a positive amount of at least $1.",
                "max_value": f"Give an amount under {usd(MAX_USD)}.",
            },
            "threshold_usd": {
                "min_value": "Give a positive amount of at least $1.",
                "max_value": f"Give an amount under {usd(MAX_USD)}.",
            },
            "signal_min_usd": {
                "min_value": "Give a positive amount of at least $1, or leave it empty.",
                "max_value": f"Give an amount under {usd(MAX_USD)}.",
            },
            "cooldown_minutes": {
                "min_value": "The cooldown cannot be negative.",
                "max_value": f"Keep the cooldown under a week ({MAX_COOLDOWN_MINUTES} minutes).",
            },
        }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            for name, value in self.NEW_ALERT_INITIAL.items():
                if self.initial.get(name) is None:
                    self.initial[name] = value

    def clean(self) -> dict:
        data = super().clean()
        kind = data.get("kind")
        required = {
            Alert.PROXIMITY: self.PROXIMITY_FIELDS,
            Alert.LIQUIDATIONS: ("threshold_usd",),
        }.get(kind, ())
        for name in required:
            if data.get(name) is None and name not in self.errors:
                self.add_error(name, "Required for this kind of alert.")
        unused = {
            Alert.PROXIMITY: self.LIQUIDATION_FIELDS + self.SIGNAL_FIELDS,
            Alert.LIQUIDATIONS: self.PROXIMITY_FIELDS + self.SIGNAL_FIELDS,
        }.get(kind, self.PROXIMITY_FIELDS + self.LIQUIDATION_FIELDS)
        for name in unused:
            if name in self.errors:
                del self.errors[name]
            if name != "source":
                data[name] = None
        return data
