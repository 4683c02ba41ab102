from __future__ import annotations

import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

PASSWORD = "correct horse battery"
NEW_PASSWORD = "tangerine ocelot 41"


def logged_in_as(client: Client) -> str | None:
    pk = client.session.get(SESSION_KEY)
    return User.objects.get(pk=pk).username if pk else None


def log_in(client: Client, username: str, password: str = PASSWORD):
    return client.post(reverse("accounts:login"), {"username": username, "password": password})


# Sign up, log in, log out


def signup_link(email: str) -> str:
    """The path of the link in the last sign-up email sent to `email`."""
    message = [m for m in mail.outbox if m.to == [email]][-1]
    return re.search(r"https?://[^/\s]+(/accounts/signup/\S+/)", message.body).group(1)


def test_it_signs_up_through_the_emailed_link_and_logs_the_new_user_in(client, db):
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "carol",
            "email": "Carol@Example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    assert response.status_code == 302
    assert response.url == reverse("accounts:signup_sent")
    assert logged_in_as(client) is None
    assert not User.objects.filter(username="carol").exists()
    assert "Carol@example.com" in client.get(response.url).content.decode()

    link = signup_link("Carol@example.com")
    assert 'value="carol"' in client.get(link).content.decode()
    response = client.post(link, {"username": "carol"})

    assert response.status_code == 302
    assert response.url == reverse("accounts:watchlist")
    assert logged_in_as(client) == "carol"
    assert User.objects.get(username="carol").email == "Carol@example.com"
    assert client.get(link).status_code == 404
    client.post(reverse("accounts:logout"))
    log_in(client, "carol")
    assert logged_in_as(client) == "carol"


def test_it_follows_next_after_sign_up_but_not_off_site(client, db):
    data = {"username": "dan", "email": "dan@example.com", "password1": PASSWORD}
    client.post(
        reverse("accounts:signup"), data | {"password2": PASSWORD, "next": "/watchlist/?x=1"}
    )
    response = client.post(signup_link("dan@example.com"), {"username": "dan"})
    assert response.url == "/watchlist/?x=1"
    client.post(reverse("accounts:logout"))

    data = {"username": "eve", "email": "eve@example.com", "password1": PASSWORD}
    client.post(
        reverse("accounts:signup"), data | {"password2": PASSWORD, "next": "https://evil.test/"}
    )
    response = client.post(signup_link("eve@example.com"), {"username": "eve"})
    assert response.url == reverse("accounts:watchlist")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"username": "alice"}, "username", "already exists"),
        ({"password2": "something else 12"}, "password2", "match"),
        ({"password1": "12345678", "password2": "12345678"}, "password2", "too common"),
        ({"email": "not-an-email"}, "email", "valid email"),
    ],
    ids=["username-taken", "mismatch", "weak", "bad-email"],
)
def test_it_rejects_a_bad_sign_up_with_a_clear_message(client, user_factory, data, field, message):
    user_factory("alice")
    valid = {
        "username": "frank",
        "email": "frank@example.com",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }

    response = client.post(reverse("accounts:signup"), valid | data)

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert logged_in_as(client) is None


def test_it_logs_in_by_username(client, user_factory):
    user_factory("alice")

    response = log_in(client, "alice")

    assert response.status_code == 302
    assert logged_in_as(client) == "alice"


def test_it_logs_in_by_email_in_any_case(client, user_factory):
    user_factory("alice", email="Alice@Example.com")

    log_in(client, "  alice@EXAMPLE.com ")

    assert logged_in_as(client) == "alice"


def test_it_keeps_the_site_name_on_the_login_page(client, db, settings):
    response = client.get(reverse("accounts:login"))

    assert response.context["site_name"] == settings.SITE_NAME


def test_it_refuses_a_wrong_password_with_a_clear_message(client, user_factory):
    user_factory("alice")

    response = log_in(client, "alice@example.com", "wrong password")

    assert response.status_code == 200
    assert "do not match an account" in response.content.decode()
    assert logged_in_as(client) is None


def test_it_logs_out_by_post_only(client, user_factory):
    client.force_login(user_factory())

    assert client.get(reverse("accounts:logout")).status_code == 405
    assert logged_in_as(client) == "alice"
    client.post(reverse("accounts:logout"))
    assert logged_in_as(client) is None


def test_it_sends_logged_in_users_away_from_login_and_signup(client, user_factory):
    client.force_login(user_factory())

    assert client.get(reverse("accounts:login")).status_code == 302
    assert client.get(reverse("accounts:signup")).url == reverse("accounts:watchlist")


def test_it_requires_login_for_private_pages(client, db):
    for name in ["profile", "watchlist", "alerts", "notifications", "password_change"]:
        response = client.get(reverse(f"accounts:{name}"))
        assert response.status_code == 302
        assert response.url.startswith(reverse("accounts:login") + "?next=")


# Passwords


def test_it_changes_the_password(client, user_factory):
    client.force_login(user_factory())

    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.url == reverse("accounts:password_change_done")
    assert logged_in_as(client) == "alice"
    client.post(reverse("accounts:logout"))
    assert log_in(Client(), "alice", PASSWORD).status_code == 200
    log_in(client, "alice", NEW_PASSWORD)
    assert logged_in_as(client) == "alice"


def test_it_resets_the_password_through_the_emailed_link(client, user_factory):
    user_factory("alice")

    response = client.post(reverse("accounts:password_reset"), {"email": "ALICE@example.com"})
    assert response.url == reverse("accounts:password_reset_done")
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert message.subject == f"Reset your {settings.SITE_NAME} password"
    link = re.search(r"https?://[^/\s]+(/accounts/password/reset/\S+/)", message.body).group(1)

    form_page = client.get(link, follow=True)
    assert form_page.context["validlink"] is True
    response = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.url == reverse("accounts:password_reset_complete")

    log_in(client, "alice", NEW_PASSWORD)
    assert logged_in_as(client) == "alice"
    assert client.get(link, follow=True).context["validlink"] is False


def test_it_says_the_same_for_an_unknown_reset_address(client, db):
    response = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.com"})

    assert response.url == reverse("accounts:password_reset_done")
    assert mail.outbox == []


# Profile


def test_it_shows_the_profile(client, user_factory):
    client.force_login(user_factory())

    response = client.get(reverse("accounts:profile"))

    body = response.content.decode()
    assert "alice@example.com" in body
    assert "Member since" in body


def test_it_turns_alert_emails_off_and_on(client, user_factory):
    user = user_factory()
    client.force_login(user)

    client.post(reverse("accounts:profile"), {})
    user.refresh_from_db()
    assert user.email_alerts is False
    client.post(reverse("accounts:profile"), {"email_alerts": "on"})
    user.refresh_from_db()
    assert user.email_alerts is True


def test_it_changes_the_email_with_the_password(client, user_factory):
    user = user_factory()
    user_factory("bob")
    client.force_login(user)
    url = reverse("accounts:email_change")

    wrong = client.post(url, {"email": "new@example.com", "password": "nope"})
    taken = client.post(url, {"email": "BOB@example.com", "password": PASSWORD})
    done = client.post(url, {"email": "new@example.com", "password": PASSWORD})

    assert "not your current password" in wrong.content.decode()
    assert "Another account uses" in taken.content.decode()
    assert done.url == reverse("accounts:profile")
    user.refresh_from_db()
    assert user.email == "new@example.com"


# Throttled log-ins (django-axes)


def fail(client: Client, username: str, times: int) -> list[int]:
    return [log_in(client, username, "wrong password").status_code for _ in range(times)]


def test_it_locks_out_after_repeated_failures(client, user_factory):
    user_factory("alice")
    limit = settings.AXES_FAILURE_LIMIT

    codes = fail(client, "alice", limit)

    assert codes == [200] * (limit - 1) + [429]
    response = log_in(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert logged_in_as(client) is None
    body = response.content.decode()
    assert "Too many failed log-ins" in body
    assert "Please wait 15 minutes" in body
    assert reverse("accounts:password_reset") in body


def test_it_counts_failures_by_username_and_by_email_together(client, user_factory):
    user_factory("alice")
    limit = settings.AXES_FAILURE_LIMIT

    fail(client, "alice", limit - 1)
    codes = fail(client, "Alice@Example.com", 1)

    assert codes == [429]


def test_it_unlocks_after_the_cool_off(client, user_factory):
    user_factory("alice")
    fail(client, "alice", settings.AXES_FAILURE_LIMIT)
    cool_off = timedelta(hours=settings.AXES_COOLOFF_TIME)
    for attempt in AccessAttempt.objects.all():
        attempt.attempt_time -= cool_off + timedelta(seconds=1)
        attempt.save()

    log_in(client, "alice", PASSWORD)

    assert logged_in_as(client) == "alice"


def test_it_clears_the_failure_count_on_a_successful_log_in(client, user_factory):
    user_factory("alice")
    limit = settings.AXES_FAILURE_LIMIT

    fail(client, "alice", limit - 1)
    log_in(client, "alice", PASSWORD)
    client.post(reverse("accounts:logout"))

    assert fail(client, "alice", limit - 1) == [200] * (limit - 1)


def test_it_lifts_a_lockout_when_the_password_is_reset_by_email(client, user_factory):
    user_factory("alice")
    fail(client, "alice", settings.AXES_FAILURE_LIMIT)

    client.post(reverse("accounts:password_reset"), {"email": "alice@example.com"})
    link = re.search(r"(/accounts/password/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    log_in(client, "alice", NEW_PASSWORD)

    assert logged_in_as(client) == "alice"


def test_it_does_not_lock_out_other_users(client, user_factory):
    user_factory("alice")
    user_factory("bob")
    fail(client, "alice", settings.AXES_FAILURE_LIMIT)

    log_in(client, "bob", PASSWORD)

    assert logged_in_as(client) == "bob"
