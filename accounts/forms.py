from __future__ import annotations

from collections.abc import Callable
from functools import partial

from django import forms
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.validators import UnicodeUsernameValidator

from accounts.models import (
    MAX_COOLDOWN_MINUTES,
    MAX_USD,
    MAX_WITHIN_PCT,
    Alert,
    User,
    WebhookChannel,
)
from accounts.throttle import current_password_failures, throttle_full, throttle_record
from accounts.timezones import zone_names
from accounts.webhooks import TELEGRAM_CHAT, TELEGRAM_TOKEN, WebhookRefused, url_check
from maps.formatting import usd

EMAIL_TAKEN = "Another account uses this email address."
USERNAME_TAKEN = "A user with that username already exists."
TOO_MANY_WRONG_PASSWORDS = (
    "Too many wrong passwords: try again later, or log out and reset your password by email."
)


def _email_taken(email: str, *, exclude: User | None = None) -> bool:
    users = User.objects.filter(email__iexact=email)
    if exclude is not None:
        users = users.exclude(pk=exclude.pk)
    return users.exists()


def current_password_check(*, user: User, password: str) -> None:
    """Refuse a wrong current password, and every try once too many were wrong (per account, for
    the log-in cool-off), so a borrowed session cannot guess its way to the account."""
    throttle = current_password_failures()
    if throttle_full(throttle=throttle, key=str(user.pk)):
        raise forms.ValidationError(TOO_MANY_WRONG_PASSWORDS, code="throttled")
    if not user.check_password(password):
        throttle_record(throttle=throttle, key=str(user.pk))
        raise forms.ValidationError("That is not your current password.", code="password_incorrect")


class SignupForm(UserCreationForm):
    """Username, email and password. Whether the email has an account is never said here: the
    link to finish (or the reminder that an account exists) goes to the address."""

    email = forms.EmailField(
        help_text="We send a link there to finish; for alerts and password resets, never shown.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ["username"]  # the email is no model field here: no unique check tells on it

    field_order = ["username", "email", "password1", "password2"]

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"])
        self.instance.email = email  # for the password validator's similarity check
        return email


class SignupCompleteForm(forms.Form):
    """The last step of a sign-up: the username, which someone may have taken meanwhile."""

    username = forms.CharField(
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="Letters, digits and @/./+/-/_ only.",
        widget=forms.TextInput(attrs={"autocomplete": "username"}),
    )

    def clean_username(self) -> str:
        username = User.normalize_username(self.cleaned_data["username"])
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(USERNAME_TAKEN, code="unique")
        return username


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
        return email

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        current_password_check(user=self.user, password=password)
        return password

    def clean(self) -> dict:
        """Whether another account has the address is said only to whoever knows the password."""
        data = super().clean()
        email = data.get("email")
        if email and "password" in data and _email_taken(email, exclude=self.user):
            self.add_error("email", EMAIL_TAKEN)
        return data


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    """Django's form, with wrong current passwords throttled per account."""

    def clean_old_password(self) -> str:
        password = self.cleaned_data["old_password"]
        current_password_check(user=self.user, password=password)
        return password


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's form, whose email (only for a known address) is sent after the response, so the
    answer takes the same time whether the address has an account."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.sends: list[Callable[[], object]] = []

    def send_mail(self, *args: object, **kwargs: object) -> None:
        self.sends.append(partial(super().send_mail, *args, **kwargs))


class AlertForm(forms.ModelForm):
    """An alert's condition; only the fields of the chosen kind are required and kept."""

    PROXIMITY_FIELDS = ("within_pct", "min_notional_usd")
    NEW_ALERT_INITIAL = {
        "within_pct": 1.0,
        "min_notional_usd": 1_000_000,
        "threshold_usd": 1_000_000,
        "min_z": 4.0,
        "divergence_pts": 15.0,
    }
    LIQUIDATION_FIELDS = ("threshold_usd", "source")
    SIGNAL_FIELDS = ("signal_min_usd",)
    ANOMALY_FIELDS = ("anomaly_metric", "min_z")
    DIVERGENCE_FIELDS = ("divergence_pts",)

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
            "anomaly_metric",
            "min_z",
            "divergence_pts",
            "cooldown_minutes",
            "is_active",
        ]
        widgets = {
            "kind": forms.RadioSelect,
            "within_pct": forms.NumberInput(attrs={"step": "0.01", "min": "0.01"}),
            "min_notional_usd": forms.NumberInput(attrs={"step": "any", "min": "1"}),
            "threshold_usd": forms.NumberInput(attrs={"step": "any", "min": "1"}),
            "signal_min_usd": forms.NumberInput(attrs={"step": "any", "min": "1"}),
            "min_z": forms.NumberInput(attrs={"step": "0.1", "min": "3", "max": "50"}),
            "divergence_pts": forms.NumberInput(attrs={"step": "0.1", "min": "0.1", "max": "100"}),
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
            "min_z": {
                "min_value": "Give a |z| of at least 3: weaker readings are not anomalies.",
                "max_value": "Give a |z| of at most 50.",
            },
            "divergence_pts": {
                "min_value": "Give a gap of at least 0.1 points.",
                "max_value": "Give a gap of at most 100 points (long % runs from 0 to 100).",
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
        self.fields["kind"].choices = [
            (k, label) for k, label in Alert.KIND_CHOICES if k not in Alert.POSITION_KINDS
        ]
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
            Alert.ANOMALY: self.ANOMALY_FIELDS,
            Alert.DIVERGENCE: self.DIVERGENCE_FIELDS,
        }.get(kind, ())
        for name in required:
            if data.get(name) in (None, "") and name not in self.errors:
                self.add_error(name, "Required for this kind of alert.")
        groups = {
            Alert.PROXIMITY: self.PROXIMITY_FIELDS,
            Alert.LIQUIDATIONS: self.LIQUIDATION_FIELDS,
            Alert.ANOMALY: self.ANOMALY_FIELDS,
            Alert.DIVERGENCE: self.DIVERGENCE_FIELDS,
        }
        own = groups.get(kind, self.SIGNAL_FIELDS)
        unused = [
            name
            for fields in (*groups.values(), self.SIGNAL_FIELDS)
            for name in fields
            if name not in own
        ]
        for name in unused:
            if name in self.errors:
                del self.errors[name]
            if name == "anomaly_metric":
                data[name] = "any"
            elif name != "source":
                data[name] = None
        return data
