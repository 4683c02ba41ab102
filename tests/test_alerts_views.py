from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from accounts.forms import AlertForm
from accounts.models import Alert, AlertEvent, Notification, WatchlistItem

HTMX = {"HTTP_HX_REQUEST": "true"}
PROXIMITY = {
    "kind": "proximity",
    "side": "any",
    "window": "7d",
    "within_pct": "1.5",
    "min_notional_usd": "5000000",
    "source": "estimated",
    "cooldown_minutes": "60",
    "is_active": "on",
}
LIQUIDATIONS = PROXIMITY | {
    "kind": "liquidations",
    "within_pct": "",
    "min_notional_usd": "",
    "threshold_usd": "2000000",
    "source": "either",
}


@pytest.fixture
def watch(alice, market_factory):
    return WatchlistItem.objects.create(user=alice, market=market_factory())


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def notify(user, title: str = "BTCUSDT on Binance: price near a cluster") -> Notification:
    return Notification.objects.create(user=user, title=title, body="...", url="/binance/btcusdt/")


# The alert form


def test_it_accepts_a_proximity_alert_and_drops_the_other_kinds_fields(db):
    form = AlertForm(PROXIMITY | {"threshold_usd": "-5"})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["within_pct"] == 1.5
    assert form.cleaned_data["threshold_usd"] is None


def test_it_accepts_a_liquidation_alert(db):
    form = AlertForm(LIQUIDATIONS)

    assert form.is_valid(), form.errors
    assert form.cleaned_data["min_notional_usd"] is None


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (PROXIMITY | {"within_pct": ""}, "within_pct", "Required for this kind of alert."),
        (PROXIMITY | {"within_pct": "0"}, "within_pct", "at least 0.01%"),
        (PROXIMITY | {"within_pct": "-1"}, "within_pct", "at least 0.01%"),
        (PROXIMITY | {"within_pct": "75"}, "within_pct", "at most 50%"),
        (PROXIMITY | {"within_pct": "abc"}, "within_pct", "Enter a number."),
        (PROXIMITY | {"within_pct": "nan"}, "within_pct", "Enter a number."),
        (PROXIMITY | {"min_notional_usd": "0"}, "min_notional_usd", "positive amount"),
        (PROXIMITY | {"min_notional_usd": "1e15"}, "min_notional_usd", "under $1T"),
        (LIQUIDATIONS | {"threshold_usd": ""}, "threshold_usd", "Required"),
        (LIQUIDATIONS | {"threshold_usd": "-100"}, "threshold_usd", "positive amount"),
        (PROXIMITY | {"cooldown_minutes": "-1"}, "cooldown_minutes", "cannot be negative"),
        (PROXIMITY | {"cooldown_minutes": "20000"}, "cooldown_minutes", "under a week"),
        (PROXIMITY | {"kind": "sometimes"}, "kind", "Select a valid choice"),
    ],
)
def test_it_rejects_bad_alert_values_with_clear_messages(db, data, field, message):
    form = AlertForm(data)

    assert not form.is_valid()
    assert message in " ".join(form.errors[field])


# Alert pages


def test_it_creates_an_alert_on_a_watched_market(alice, watch):
    client = client_for(alice)
    url = reverse("accounts:alert_create", args=[watch.pk])

    page = client.get(url)
    response = client.post(url, PROXIMITY)

    assert "BTCUSDT" in page.content.decode()
    assert response.url == reverse("accounts:alerts")
    alert = Alert.objects.get()
    assert (alert.watch, alert.kind, alert.within_pct, alert.armed) == (
        watch,
        "proximity",
        1.5,
        True,
    )


def test_it_shows_form_errors_in_place(alice, watch):
    response = client_for(alice).post(
        reverse("accounts:alert_create", args=[watch.pk]), PROXIMITY | {"within_pct": "-2"}
    )

    assert response.status_code == 200
    assert "Give a distance of at least 0.01%." in response.content.decode()
    assert not Alert.objects.exists()


def test_it_edits_an_alert_and_rearms_it(alice, watch):
    alert = Alert.objects.create(watch=watch, kind="liquidations", threshold_usd=1e6, armed=False)

    response = client_for(alice).post(reverse("accounts:alert_edit", args=[alert.pk]), LIQUIDATIONS)

    assert response.url == reverse("accounts:alerts")
    alert.refresh_from_db()
    assert alert.threshold_usd == 2e6
    assert alert.source == "either"
    assert alert.armed is True


def test_it_deletes_an_alert_after_confirmation(alice, watch):
    alert = Alert.objects.create(watch=watch, kind="liquidations", threshold_usd=1e6)
    client = client_for(alice)
    url = reverse("accounts:alert_delete", args=[alert.pk])

    assert "Delete this alert?" in client.get(url).content.decode()
    assert Alert.objects.exists()
    assert client.post(url).url == reverse("accounts:alerts")
    assert not Alert.objects.exists()


def test_it_lists_alerts_with_their_state_and_history(alice, watch):
    alert = Alert.objects.create(
        watch=watch, kind="proximity", within_pct=1, min_notional_usd=5e6, armed=False
    )
    AlertEvent.objects.create(
        alert=alert, step_time=alert.created, message="BTCUSDT is 0.50% from a $5M cluster"
    )

    body = client_for(alice).get(reverse("accounts:alerts")).content.decode()

    assert "Price within 1% of a cluster of at least $5M (7d map)" in body
    assert "waiting to re-arm" in body
    assert "BTCUSDT is 0.50% from a $5M cluster" in body


def test_it_answers_404_for_another_users_alert(alice, bob, watch):
    alert = Alert.objects.create(watch=watch, kind="liquidations", threshold_usd=1e6)
    client = client_for(bob)

    for pk in [alert.pk, alert.pk + 1, 0]:
        assert client.get(reverse("accounts:alert_edit", args=[pk])).status_code == 404
        edit = client.post(reverse("accounts:alert_edit", args=[pk]), LIQUIDATIONS)
        assert edit.status_code == 404
        assert client.post(reverse("accounts:alert_delete", args=[pk])).status_code == 404

    alert.refresh_from_db()
    assert alert.threshold_usd == 1e6
    assert "BTCUSDT" not in client.get(reverse("accounts:alerts")).content.decode()


# Notifications


def test_it_shows_the_unread_count_in_the_badge_fragment(alice, bob):
    notify(alice)
    notify(alice)
    notify(bob)

    response = client_for(alice).get(reverse("accounts:notification_badge"), **HTMX)

    body = response.content.decode()
    assert body.lstrip().startswith('<a id="notification-badge"')
    assert 'data-count="2"' in body
    assert 'hx-trigger="every 30s' in body
    assert reverse("accounts:notifications") in body


def test_it_shows_no_count_when_all_is_read(alice):
    body = client_for(alice).get(reverse("accounts:notification_badge"), **HTMX).content.decode()

    assert "data-count" not in body
    assert "No unread notifications" in body


def test_it_stops_the_badge_polling_for_anonymous_visitors(db):
    response = Client().get(reverse("accounts:notification_badge"), **HTMX)

    assert response.status_code == 286


def test_it_lists_notifications_newest_first(alice, bob):
    notify(alice, "first")
    notify(alice, "second")
    notify(bob, "not yours")

    response = client_for(alice).get(reverse("accounts:notifications"))

    titles = [n.title for n in response.context["page"].object_list]
    assert titles == ["second", "first"]
    assert "not yours" not in response.content.decode()
    assert response.context["unread"] == 2


def test_it_marks_one_read_in_place_and_refreshes_the_badge(alice):
    notification = notify(alice)

    response = client_for(alice).post(
        reverse("accounts:notification_read", args=[notification.pk]), **HTMX
    )

    body = response.content.decode()
    assert body.lstrip().startswith(f'<li id="notification-{notification.pk}"')
    assert "notification--unread" not in body
    assert "notifications-changed" in json.loads(response["HX-Trigger"])
    notification.refresh_from_db()
    assert notification.read_at is not None


def test_it_opens_a_notification_and_marks_it_read(alice):
    notification = notify(alice)

    response = client_for(alice).post(
        reverse("accounts:notification_read", args=[notification.pk]),
        {"next": notification.url},
    )

    assert response.url == "/binance/btcusdt/"
    notification.refresh_from_db()
    assert notification.read_at is not None


def test_it_marks_all_read(alice, bob):
    notify(alice)
    notify(alice)
    theirs = notify(bob)

    response = client_for(alice).post(reverse("accounts:notifications_read_all"))

    assert response.url == reverse("accounts:notifications")
    assert not Notification.objects.filter(user=alice).unread().exists()
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_it_answers_404_when_reading_another_users_notification(alice, bob):
    theirs = notify(bob)
    client = client_for(alice)

    for pk in [theirs.pk, theirs.pk + 1, 0]:
        response = client.post(reverse("accounts:notification_read", args=[pk]), **HTMX)
        assert response.status_code == 404

    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_it_shows_the_badge_and_menu_in_the_nav(alice, rf):
    from django.template.loader import render_to_string

    notify(alice)
    request = rf.get("/")
    request.user = alice

    html = render_to_string("accounts/_nav.html", {}, request)

    assert 'data-count="1"' in html
    assert reverse("accounts:watchlist") in html
    assert reverse("accounts:profile") in html
    assert f'action="{reverse("accounts:logout")}"' in html
    assert "csrfmiddlewaretoken" in html


def test_it_refreshes_the_unread_count_on_the_notifications_page(alice):
    notify(alice)
    notify(alice)

    body = client_for(alice).get(reverse("accounts:notifications")).content.decode()

    assert '<p id="notifications-unread"' in body
    assert 'hx-trigger="notifications-changed from:body"' in body
    assert 'hx-select="#notifications-unread"' in body
    assert "2 unread." in body


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("accounts:login", "Log in — liqsite"),
        ("accounts:signup", "Sign up — liqsite"),
        ("accounts:password_reset", "Reset password — liqsite"),
    ],
)
def test_it_names_the_site_in_account_page_titles(client, db, name, title):
    assert f"<title>{title}</title>" in client.get(reverse(name)).content.decode()


def test_it_names_the_site_in_signed_in_page_titles(alice):
    client = client_for(alice)
    for name, title in [
        ("accounts:watchlist", "Your watchlist — liqsite"),
        ("accounts:alerts", "Your alerts — liqsite"),
        ("accounts:notifications", "Notifications — liqsite"),
        ("accounts:profile", "Your profile — liqsite"),
    ]:
        assert f"<title>{title}</title>" in client.get(reverse(name)).content.decode()


def test_it_labels_a_demo_market_on_the_alert_form(alice, market_factory):
    demo = WatchlistItem.objects.create(user=alice, market=market_factory("ETHUSDT", is_demo=True))

    body = client_for(alice).get(reverse("accounts:alert_create", args=[demo.pk])).content.decode()

    assert "badge--demo" in body
