"""Concurrent sign-ups and email changes: the form error, never an IntegrityError 500.

The probe: two sign-ups (or email changes) with the same username or email at once both passed
the form's uniqueness check, and the second insert failed with a 500. Here the other request
commits in between the check and the insert, exactly where the race falls.
"""

from __future__ import annotations

import re
import threading

import pytest
from django.core import mail
from django.db import connections
from django.db.models.signals import pre_save
from django.test import Client
from django.urls import reverse

from accounts.models import User

pytestmark = [
    pytest.mark.usefixtures("fast_password_hashing"),
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "correct horse battery"


def signup_link(client: Client, username: str, email: str) -> str:
    data = {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD}
    client.post(reverse("accounts:signup"), data)
    message = [m for m in mail.outbox if m.to == [email]][-1]
    return re.search(r"https?://[^/\s]+(/accounts/signup/\S+/)", message.body).group(1)


def racing(**other: str):
    """A pre_save hook: just before the sign-up's insert, another request (a thread with its own
    database connection) commits a user with the same username or email."""

    def commit_other() -> None:
        try:
            User.objects.create_user(password=PASSWORD, **other)
        finally:
            connections.close_all()

    def hook(sender, instance, **kwargs):
        if instance.pk is None:
            pre_save.disconnect(hook, sender=User)
            thread = threading.Thread(target=commit_other)
            thread.start()
            thread.join()

    return hook


def test_it_answers_a_concurrent_sign_up_with_the_same_username_with_the_form_error(db):
    client = Client(raise_request_exception=False)
    link = signup_link(client, "gina", "gina@example.com")
    hook = racing(username="gina", email="other@example.com")
    pre_save.connect(hook, sender=User)
    try:
        response = client.post(link, {"username": "gina"})
    finally:
        pre_save.disconnect(hook, sender=User)

    assert response.status_code == 200
    assert "A user with that username already exists." in response.content.decode()
    assert not User.objects.filter(email="gina@example.com").exists()
    assert client.post(link, {"username": "gina2"}).status_code == 302
    assert User.objects.get(email="gina@example.com").username == "gina2"


def test_it_answers_a_concurrent_sign_up_with_the_same_email_without_a_500(db):
    client = Client(raise_request_exception=False)
    link = signup_link(client, "gina", "gina@example.com")
    hook = racing(username="other", email="GINA@example.com")
    pre_save.connect(hook, sender=User)
    try:
        response = client.post(link, {"username": "gina"})
    finally:
        pre_save.disconnect(hook, sender=User)

    assert response.status_code == 200
    assert "This address already has an account" in response.content.decode()
    assert list(User.objects.values_list("username", flat=True)) == ["other"]


def test_it_answers_a_concurrent_email_change_with_the_form_error(
    client, user_factory, monkeypatch
):
    alice = user_factory("alice")
    client.force_login(alice)
    user_factory("bob", email="bob@example.com")
    # The check ran before bob's change committed: it saw the address free.
    monkeypatch.setattr("accounts.forms._email_taken", lambda email, exclude=None: False)
    client.raise_request_exception = False

    response = client.post(
        reverse("accounts:email_change"), {"email": "BOB@example.com", "password": PASSWORD}
    )

    assert response.status_code == 200
    assert "Another account uses this email address." in response.content.decode()
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"
    assert "alice@example.com" in response.content.decode()


def test_it_makes_one_account_from_two_sign_ups_of_one_address(db):
    first, second = Client(), Client()
    link_one = signup_link(first, "gina", "gina@example.com")
    link_two = signup_link(second, "gina_b", "gina@example.com")

    assert first.post(link_one, {"username": "gina"}).status_code == 302
    answer = second.get(link_two)

    assert answer.status_code == 404, "finishing one sign-up retires the others of the address"
    assert User.objects.filter(email__iexact="gina@example.com").count() == 1
