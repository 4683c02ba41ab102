from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from accounts.models import (
    MAX_COOLDOWN_MINUTES,
    MAX_USD,
    MAX_WITHIN_PCT,
    Alert,
    User,
    WebhookChannel,
)
from accounts.timezones import zone_names
from accounts.webhooks import TELEGRAM_CHAT, TELEGRAM_TOKEN, WebhookRefused, url_check
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


def time_zone_choices() -> list[tuple[str, str]]:
    names = sorted(zone_names() - {"UTC"})
    return [("", "Your browser's time zone"), ("UTC", "UTC"), *((n, n) for n in names)]


class ProfileForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        label="Time zone",
        required=False,
        choices=time_zone_choices,
        help_text="Times on the pages and charts are shown in this zone.",
    )

    class Meta:
        model = User
        fields = ["email_alerts", "time_zone"]


class WebhookForm(forms.ModelForm):
    """A JSON webhook URL, or a Telegram bot token and chat id; only the chosen kind's fields
    are required and kept."""

    url = forms.URLField(
        label="Webhook URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/hooks/liqsite"}),
        help_text="Receives a POST with a JSON body for each fired alert (format below).",
    )

    class Meta:
        model = WebhookChannel
        fields = ["kind", "url", "telegram_token", "telegram_chat_id", "is_active"]
        widgets = {
            "kind": forms.RadioSelect,
            "telegram_token": forms.PasswordInput(
                render_value=True, attrs={"autocomplete": "off", "spellcheck": "false"}
            ),
            "telegram_chat_id": forms.TextInput(attrs={"placeholder": "123456789 or @channel"}),
        }
        help_texts = {
            "telegram_token": "From @BotFather, e.g. 123456789:AAH...; the bot must be able to "
            "write to the chat.",
            "telegram_chat_id": "Your chat with the bot (its id), a group id (starts with -) or "
            "@channelname.",
        }

    def clean(self) -> dict:
        data = super().clean()
        kind = data.get("kind")
        if kind == WebhookChannel.JSON:
            self._clean_url(data)
            data["telegram_token"] = data["telegram_chat_id"] = ""
        elif kind == WebhookChannel.TELEGRAM:
            self._clean_telegram(data)
            data["url"] = ""
        return data

    def _clean_url(self, data: dict) -> None:
        url = data.get("url")
        if not url:
            if "url" not in self.errors:
                self.add_error("url", "Give the address that receives the alerts.")
            return
        try:
            url_check(url)
        except WebhookRefused as exc:
            self.add_error("url", str(exc))

    def _clean_telegram(self, data: dict) -> None:
        token = (data.get("telegram_token") or "").strip()
        chat = (data.get("telegram_chat_id") or "").strip()
        if not TELEGRAM_TOKEN.match(token):
            self.add_error(
                "telegram_token",
                "A bot token looks like 123456789:AAH… (digits, a colon, then "
                "letters, digits, - and _).",
            )
        if not TELEGRAM_CHAT.match(chat):
            self.add_error(
                "telegram_chat_id", "A chat id is a number (negative for groups) or @channelname."
            )
        data["telegram_token"], data["telegram_chat_id"] = token, chat


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
            "cooldown_minutes",
            "is_active",
        ]
        widgets = {
            "kind": forms.RadioSelect,
            "within_pct": forms.NumberInput(attrs={"step": "0.01", "min": "0.01"}),
            "min_notional_usd": forms.NumberInput(attrs={"step": "any", "min": "1"}),
            "threshold_usd": forms.NumberInput(attrs={"step": "any", "min": "1"}),
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
            "cooldown_minutes": {
                "min_value": "The cooldown cannot be negative.",
                "max_value": f"Keep the cooldown under a week ({MAX_COOLDOWN_MINUTES} minutes).",
            },
        }

    def __init__(self, *args: object, defaults: dict | None = None, **kwargs: object) -> None:
        """`defaults`: a new alert's starting values scaled to its market (see
        `selectors.market_alert_defaults`); NEW_ALERT_INITIAL where the market has no map yet."""
        super().__init__(*args, **kwargs)
        defaults = dict(defaults or {})
        typical = defaults.pop("typical_cluster_usd", None)
        if self.instance.pk is None:
            for name, value in (self.NEW_ALERT_INITIAL | defaults).items():
                if self.initial.get(name) is None:
                    self.initial[name] = value
        if typical:
            self.fields[
                "min_notional_usd"
            ].help_text = f"Starts at a quarter of this market's typical cluster ({usd(typical)})."
            self.fields["threshold_usd"].help_text = (
                f"Starts at a tenth of this market's typical cluster ({usd(typical)}): one "
                "step's liquidations above it."
            )

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
        unused = self.LIQUIDATION_FIELDS if kind == Alert.PROXIMITY else self.PROXIMITY_FIELDS
        for name in unused:
            if name in self.errors:
                del self.errors[name]
            if name != "source":
                data[name] = None
        return data
