from __future__ import annotations

import re

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import Alert, Notification, WatchlistItem

FORM = re.compile(r"<form\b[^>]*method=\"post\"[^>]*>(.*?)</form>", re.S | re.I)
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def setup(user_factory, market_factory):
    user = user_factory("alice")
    market = market_factory()
    watch = WatchlistItem.objects.create(user=user, market=market)
    alert = Alert.objects.create(watch=watch, kind="liquidations", threshold_usd=1e6)
    notification = Notification.objects.create(user=user, title="fired", url="/x/")
    return {"user": user, "market": market, "watch": watch, "alert": alert, "n": notification}


def strict_client(user=None) -> Client:
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


def reset_confirm_url(user) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("accounts:password_reset_confirm", args=[uid, token])


POSTS = {
    "login": (False, lambda s: reverse("accounts:login")),
    "signup": (False, lambda s: reverse("accounts:signup")),
    "password_reset": (False, lambda s: reverse("accounts:password_reset")),
    "logout": (True, lambda s: reverse("accounts:logout")),
    "profile": (True, lambda s: reverse("accounts:profile")),
    "email_change": (True, lambda s: reverse("accounts:email_change")),
    "password_change": (True, lambda s: reverse("accounts:password_change")),
    "watch_toggle": (True, lambda s: reverse("accounts:watch_toggle", args=[s["market"].pk])),
    "watch_remove": (True, lambda s: reverse("accounts:watch_remove", args=[s["watch"].pk])),
    "alert_create": (True, lambda s: reverse("accounts:alert_create", args=[s["watch"].pk])),
    "alert_edit": (True, lambda s: reverse("accounts:alert_edit", args=[s["alert"].pk])),
    "alert_delete": (True, lambda s: reverse("accounts:alert_delete", args=[s["alert"].pk])),
    "notification_read": (True, lambda s: reverse("accounts:notification_read", args=[s["n"].pk])),
    "notifications_read_all": (True, lambda s: reverse("accounts:notifications_read_all")),
}


@pytest.mark.parametrize("name", sorted(POSTS))
def test_it_rejects_every_post_without_a_csrf_token(setup, name):
    logged_in, url = POSTS[name]
    client = strict_client(setup["user"] if logged_in else None)

    response = client.post(url(setup), {"username": "alice", "email": "alice@example.com"})

    assert response.status_code == 403
    assert WatchlistItem.objects.filter(pk=setup["watch"].pk).exists()
    assert Alert.objects.filter(pk=setup["alert"].pk).exists()
    assert Notification.objects.get(pk=setup["n"].pk).read_at is None


def test_it_rejects_the_reset_confirmation_without_a_csrf_token(setup):
    client = strict_client()
    form_url = client.get(reset_confirm_url(setup["user"])).url

    response = client.post(form_url, {"new_password1": "x y z 123", "new_password2": "x y z 123"})

    assert response.status_code == 403


PAGES = {
    "login": (False, lambda s: reverse("accounts:login")),
    "signup": (False, lambda s: reverse("accounts:signup")),
    "password_reset": (False, lambda s: reverse("accounts:password_reset")),
    "profile": (True, lambda s: reverse("accounts:profile")),
    "email_change": (True, lambda s: reverse("accounts:email_change")),
    "password_change": (True, lambda s: reverse("accounts:password_change")),
    "watchlist": (True, lambda s: reverse("accounts:watchlist")),
    "alert_create": (True, lambda s: reverse("accounts:alert_create", args=[s["watch"].pk])),
    "alert_edit": (True, lambda s: reverse("accounts:alert_edit", args=[s["alert"].pk])),
    "alert_delete": (True, lambda s: reverse("accounts:alert_delete", args=[s["alert"].pk])),
    "notifications": (True, lambda s: reverse("accounts:notifications")),
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_it_puts_a_csrf_token_in_every_post_form(setup, name):
    logged_in, url = PAGES[name]
    client = strict_client(setup["user"] if logged_in else None)

    html = client.get(url(setup)).content.decode()

    forms = FORM.findall(html)
    assert forms, f"no POST form on {name}"
    for form in forms:
        assert TOKEN.search(form), form[:200]


def test_it_puts_a_csrf_token_in_the_reset_confirmation_form(setup):
    client = strict_client()

    page = client.get(reset_confirm_url(setup["user"]), follow=True)

    [form] = FORM.findall(page.content.decode())
    assert TOKEN.search(form)


def test_it_accepts_a_post_carrying_the_pages_token(setup):
    client = strict_client(setup["user"])
    html = client.get(reverse("accounts:watchlist")).content.decode()
    token = TOKEN.search(html).group(1)

    response = client.post(
        reverse("accounts:watch_remove", args=[setup["watch"].pk]), {"csrfmiddlewaretoken": token}
    )

    assert response.status_code == 302
    assert not WatchlistItem.objects.exists()


def test_it_accepts_an_htmx_post_with_the_token_in_its_header(setup):
    client = strict_client(setup["user"])
    html = client.get(reverse("accounts:notifications")).content.decode()
    token = TOKEN.search(html).group(1)

    response = client.post(
        reverse("accounts:watch_toggle", args=[setup["market"].pk]),
        HTTP_HX_REQUEST="true",
        HTTP_X_CSRFTOKEN=token,
    )

    assert response.status_code == 200
    assert not WatchlistItem.objects.filter(pk=setup["watch"].pk).exists()
