from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from axes.utils import reset as axes_reset
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.cache import patch_cache_control
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from accounts import registration, selectors, services
from accounts.forms import (
    EMAIL_TAKEN,
    USERNAME_TAKEN,
    AlertForm,
    EmailChangeForm,
    PasswordChangeForm,
    PasswordResetForm,
    ProfileForm,
    SignupCompleteForm,
    SignupForm,
    WebhookForm,
)
from accounts.mail import send_after_response
from accounts.models import Alert, User, WebhookChannel
from accounts.throttle import emails_per_address, emails_per_email, throttles_take
from accounts.timezones import COOKIE_MAX_AGE, UTC_COOKIE
from liqsite.client import client_address
from maps.models import Market
from maps.pages import doc_text

NOTIFICATIONS_PER_PAGE = 25
SIGNUP_SENT_TO = "signup_sent_to"
HTMX_STOP_POLLING = 286


def login_required_htmx(view: Callable) -> Callable:
    """login_required that sends htmx requests to the login page as a full-page redirect."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.htmx:
            current = request.htmx.current_url_abs_path or "/"
            return HttpResponseClientRedirect(f"{reverse('accounts:login')}?next={current}")
        if request.method == "POST":
            return redirect_to_login(_safe_next(request, "/"))
        return redirect_to_login(request.get_full_path())

    return wrapper


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    return target if _allowed_url(request, target) else fallback


def _allowed_url(request: HttpRequest, target: str) -> bool:
    return url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )


def _posted(request: HttpRequest) -> QueryDict | None:
    """The form data of a POST (even an empty one, as an unticked checkbox sends), else None."""
    return request.POST if request.method == "POST" else None


# Accounts


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("accounts:watchlist")
    form = SignupForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        if full := _emails_throttled(request, email):
            form.add_error(None, full)
        else:
            send = registration.signup_request_create(
                username=form.cleaned_data["username"],
                email=email,
                password=form.cleaned_data["password1"],
                next_url=_safe_next(request, ""),
                site_url=request.build_absolute_uri("/").rstrip("/"),
            )
            request.session[SIGNUP_SENT_TO] = email
            return send_after_response(redirect("accounts:signup_sent"), [send])
    context = {"form": form, "next": request.GET.get("next")}
    status = 429 if form.errors.get(NON_FIELD_ERRORS) else 200
    return render(request, "accounts/signup.html", context, status=status)


@require_GET
def signup_sent(request: HttpRequest) -> HttpResponse:
    context = {"email": request.session.get(SIGNUP_SENT_TO, "")}
    return render(request, "accounts/signup_sent.html", context)


@require_http_methods(["GET", "POST"])
def signup_complete(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: choose the username (the one given is proposed) and make the account."""
    pending = registration.signup_request_for_token(token=token)
    if pending is None or registration.email_has_account(pending.email):
        status = 404 if pending is None else 200
        context = {"used": pending is not None}
        return render(request, "accounts/signup_link_invalid.html", context, status=status)
    form = SignupCompleteForm(_posted(request), initial={"username": pending.username})
    if request.method == "POST" and form.is_valid():
        try:
            user = registration.signup_complete(
                signup=pending, username=form.cleaned_data["username"]
            )
        except IntegrityError:  # taken between the form's check and the insert
            if registration.email_has_account(pending.email):
                context = {"used": True}
                return render(request, "accounts/signup_link_invalid.html", context)
            form.add_error("username", USERNAME_TAKEN)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome, {user.username}! Your account is ready.")
            fallback = reverse("accounts:watchlist")
            target = pending.next_url if _allowed_url(request, pending.next_url) else fallback
            return redirect(target or fallback)
    context = {"form": form, "email": pending.email}
    return render(request, "accounts/signup_complete.html", context)


def _emails_throttled(request: HttpRequest, email: str) -> str:
    """Count a form that sends an email; the reason to refuse it when its address or the typed
    email asked too often in the last hour, else an empty string."""
    full = throttles_take(
        checks=[(emails_per_address(), client_address(request)), (emails_per_email(), email)]
    )
    if full is None:
        return ""
    if full.scope == emails_per_address().scope:
        return "Too many emails were asked for from your network in the last hour. Try later."
    return (
        "Emails to this address were asked for several times in the last hour: check its inbox "
        "(and spam folder), or try again later."
    )


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(_posted(request), instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your preferences are saved.")
        return redirect("accounts:profile")
    context = {
        "form": form,
        "watch_count": selectors.watchlist_items(user=request.user).count(),
        "alert_count": selectors.user_alerts(user=request.user).filter(is_active=True).count(),
        "webhook": selectors.user_webhook(user=request.user),
    }
    return render(request, "accounts/profile.html", context)


@require_http_methods(["GET", "POST"])
def time_zone(request: HttpRequest) -> HttpResponse:
    """The footer's switch: show times in UTC, or back in the visitor's own zone. A display
    preference only (a cookie), so a plain link may set it."""
    data = request.POST if request.method == "POST" else request.GET
    response = HttpResponseRedirect(_safe_next(request, reverse("maps:home")))
    patch_cache_control(response, no_store=True)
    if data.get("utc") == "1":
        response.set_cookie(UTC_COOKIE, "1", max_age=COOKIE_MAX_AGE, samesite="Lax")
    else:
        response.delete_cookie(UTC_COOKIE, samesite="Lax")
    return response


# Alert delivery by webhook


@login_required
@require_http_methods(["GET", "POST"])
def webhook(request: HttpRequest) -> HttpResponse:
    channel = selectors.user_webhook(user=request.user) or WebhookChannel(user=request.user)
    form = WebhookForm(_posted(request), instance=channel)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(
            request, f"Alerts will also go to {saved.target}. Send a test message to check it."
        )
        return redirect("accounts:webhook")
    context = {"form": form, "channel": channel if channel.pk else None}
    return render(request, "accounts/webhook.html", context)


@require_GET
def webhook_docs(request: HttpRequest) -> HttpResponse:
    context = {
        "doc": doc_text("webhooks.md"),
        "crumb": "Webhooks",
        "page_title": f"Alert webhooks: JSON payload and Telegram — {settings.SITE_NAME}",
        "meta_description": "The JSON a liqsite alert webhook receives, its signature, and "
        "Telegram delivery.",
    }
    return render(request, "maps/doc.html", context)


@login_required
@require_POST
def webhook_test(request: HttpRequest) -> HttpResponse:
    channel = get_object_or_404(WebhookChannel, user=request.user)
    result = services.webhook_test_send(channel=channel)
    if result.ok:
        messages.success(request, f"Test message delivered ({result.status}).")
    else:
        messages.error(request, f"The test message did not go through: {result.status}")
    return redirect("accounts:webhook")


@login_required
@require_POST
def webhook_delete(request: HttpRequest) -> HttpResponse:
    channel = get_object_or_404(WebhookChannel, user=request.user)
    services.webhook_delete(channel=channel)
    messages.info(request, "Webhook removed: alerts go by email and to the bell only.")
    return redirect("accounts:webhook")


@login_required
@require_http_methods(["GET", "POST"])
def email_change(request: HttpRequest) -> HttpResponse:
    form = EmailChangeForm(_posted(request), user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                User.objects.filter(pk=request.user.pk).update(email=form.cleaned_data["email"])
        except IntegrityError:  # another account took it between the form's check and now
            form.add_error("email", EMAIL_TAKEN)
        else:
            messages.success(request, f"Your email address is now {form.cleaned_data['email']}.")
            return redirect("accounts:profile")
    status = 429 if _throttled(form) else 200
    return render(request, "accounts/email_change.html", {"form": form}, status=status)


def _throttled(form: forms.Form) -> bool:
    return any(
        error.code == "throttled" for errors in form.errors.as_data().values() for error in errors
    )


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's view, with wrong current passwords throttled per account."""

    form_class = PasswordChangeForm
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")

    def form_invalid(self, form: PasswordChangeForm) -> HttpResponse:
        status = 429 if _throttled(form) else 200
        return self.render_to_response(self.get_context_data(form=form), status=status)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's view, throttled per address and per email, its email sent after the response."""

    form_class = PasswordResetForm
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset_body.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        if full := _emails_throttled(self.request, form.cleaned_data["email"]):
            form.add_error(None, full)
            return self.render_to_response(self.get_context_data(form=form), status=429)
        response = super().form_valid(form)
        return send_after_response(response, form.sends)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's reset confirmation; a completed reset also lifts a log-in lockout."""

    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        response = super().form_valid(form)
        axes_reset(username=form.user.get_username())
        return response


# Watchlist


@login_required
@require_GET
def watchlist(request: HttpRequest) -> HttpResponse:
    rows = selectors.watchlist_rows(user=request.user)
    return render(request, "accounts/watchlist.html", {"rows": rows})


@login_required_htmx
@require_GET
def watchlist_rows(request: HttpRequest) -> HttpResponse:
    rows = selectors.watchlist_rows(user=request.user)
    return render(request, "accounts/watchlist.html#rows", {"rows": rows})


@login_required_htmx
@require_POST
def watch_toggle(request: HttpRequest, market_id: int) -> HttpResponse:
    market = get_object_or_404(Market.objects.select_related("exchange"), pk=market_id)
    watched = services.watch_toggle(user=request.user, market=market)
    next_url = _safe_next(request, market.get_absolute_url())
    if request.htmx:
        context = {"market": market, "watch_next": next_url}
        return render(request, "accounts/_watch_button.html", context)
    name = f"{market.symbol} on {market.exchange.name}"
    if watched:
        messages.success(request, f"{name} is on your watchlist.")
    else:
        messages.info(request, f"{name} left your watchlist.")
    return HttpResponseRedirect(next_url)


@login_required_htmx
@require_POST
def watch_remove(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(
        selectors.watchlist_items(user=request.user).select_related(None), pk=pk
    )
    services.watch_remove(item=item)
    if request.htmx:
        return trigger_client_event(HttpResponse(""), "watchlist-changed", after="settle")
    messages.info(request, "Removed from your watchlist.")
    return redirect("accounts:watchlist")


# Alerts


@login_required
@require_GET
def alerts(request: HttpRequest) -> HttpResponse:
    context = {
        "alerts": selectors.user_alerts(user=request.user),
        "events": selectors.user_alert_events(user=request.user),
        "watch_items": selectors.watchlist_items(user=request.user),
    }
    return render(request, "accounts/alerts.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def alert_create(request: HttpRequest, watch_pk: int) -> HttpResponse:
    watch = get_object_or_404(selectors.watchlist_items(user=request.user), pk=watch_pk)
    defaults = selectors.market_alert_defaults(market=watch.market)
    form = AlertForm(_posted(request), instance=Alert(watch=watch), defaults=defaults)
    if request.method == "POST" and form.is_valid():
        alert = services.alert_save(alert=form.instance)
        messages.success(request, f"Alert saved: {alert.describe()}.")
        return redirect("accounts:alerts")
    context = {"form": form, "watch": watch, "row": selectors.watch_row(item=watch)}
    return render(request, "accounts/alert_form.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def alert_edit(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_object_or_404(selectors.user_alerts(user=request.user), pk=pk)
    if alert.kind in Alert.POSITION_KINDS:
        return redirect(alert.get_absolute_url())  # edited with its position
    form = AlertForm(_posted(request), instance=alert)
    if request.method == "POST" and form.is_valid():
        services.alert_save(alert=form.instance)
        messages.success(request, f"Alert updated: {alert.describe()}.")
        return redirect("accounts:alerts")
    row = selectors.watch_row(item=alert.watch, window=alert.window)
    context = {"form": form, "watch": alert.watch, "alert": alert, "row": row}
    return render(request, "accounts/alert_form.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def alert_delete(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_object_or_404(selectors.user_alerts(user=request.user), pk=pk)
    if request.method == "POST":
        services.alert_delete(alert=alert)
        messages.info(request, "Alert deleted.")
        return redirect("accounts:alerts")
    return render(request, "accounts/alert_confirm_delete.html", {"alert": alert})


# Notifications


@login_required
@require_GET
def notifications(request: HttpRequest) -> HttpResponse:
    paginator = Paginator(selectors.user_notifications(user=request.user), NOTIFICATIONS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    unread = selectors.unread_notification_count(user=request.user)
    return render(request, "accounts/notifications.html", {"page": page, "unread": unread})


@require_GET
def notification_badge(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return HttpResponse("", status=HTMX_STOP_POLLING)
    unread = selectors.unread_notification_count(user=request.user)
    return render(request, "accounts/_notification_badge.html", {"unread": unread})


@login_required_htmx
@require_POST
def notification_read(request: HttpRequest, pk: int) -> HttpResponse:
    notification = get_object_or_404(selectors.user_notifications(user=request.user), pk=pk)
    services.notification_mark_read(notification=notification)
    if request.htmx:
        notification.refresh_from_db()
        response = render(
            request, "accounts/notifications.html#notification", {"notification": notification}
        )
        return trigger_client_event(response, "notifications-changed")
    return redirect(_safe_next(request, reverse("accounts:notifications")))


@login_required_htmx
@require_POST
def notifications_read_all(request: HttpRequest) -> HttpResponse:
    count = services.notifications_mark_all_read(user=request.user)
    if count:
        messages.success(request, f"Marked {count} notification{'s' if count != 1 else ''} read.")
    return redirect("accounts:notifications")
