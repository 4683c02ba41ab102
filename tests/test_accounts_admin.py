from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Alert, AlertEvent, Notification, User, WatchlistItem


@pytest.fixture
def admin_client(client, user_factory):
    client.force_login(user_factory("root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def history(user_factory, market_factory):
    watch = WatchlistItem.objects.create(user=user_factory("alice"), market=market_factory())
    alert = Alert.objects.create(watch=watch, kind="liquidations", threshold_usd=1e6, armed=False)
    event = AlertEvent.objects.create(
        alert=alert, step_time=alert.created, message="BTCUSDT: $3M of estimated liquidations"
    )
    Notification.objects.create(user=watch.user, event=event, title="BTCUSDT fired")
    return alert


@pytest.mark.parametrize("model", ["user", "watchlistitem", "alert", "alertevent", "notification"])
def test_it_lists_every_accounts_model_in_the_admin(admin_client, history, model):
    response = admin_client.get(reverse(f"admin:accounts_{model}_changelist"))

    assert response.status_code == 200


def test_it_shows_an_alerts_history_inline(admin_client, history):
    response = admin_client.get(reverse("admin:accounts_alert_change", args=[history.pk]))

    assert response.status_code == 200
    assert "BTCUSDT: $3M of estimated liquidations" in response.content.decode()


def test_it_shows_a_users_watchlist_inline(admin_client, history):
    user = history.watch.user

    response = admin_client.get(reverse("admin:accounts_user_change", args=[user.pk]))

    assert response.status_code == 200
    assert "Email me when an alert fires" in response.content.decode()
    assert "Watchlist items" in response.content.decode()


def test_it_rearms_alerts_from_the_admin(admin_client, history):
    admin_client.post(
        reverse("admin:accounts_alert_changelist"),
        {"action": "rearm", "_selected_action": [history.pk]},
    )

    history.refresh_from_db()
    assert history.armed is True


def test_it_adds_a_user_with_an_email_from_the_admin(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {
            "username": "gina",
            "email": "gina@example.com",
            "usable_password": "true",
            "password1": "correct horse battery",
            "password2": "correct horse battery",
        },
    )

    assert response.status_code == 302
    assert User.objects.get(username="gina").email == "gina@example.com"
