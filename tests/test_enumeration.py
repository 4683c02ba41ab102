"""No account enumeration: the pages answer the same whether an address has an account.

The probe: the lockout page named the username behind a typed email ("To protect the account
frank"); sign-up said an email was already registered; password reset took longer for a known
address (it sent the mail before answering), and nothing limited how often either was asked.
"""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts.models import SignupRequest, ThrottleHit, User
from accounts.views import PasswordResetView

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

PASSWORD = "correct horse battery"
NEW_PASSWORD = "tangerine ocelot 41"


def sign_up(client: Client, username: str, email: str):
    data = {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD}
    return client.post(reverse("accounts:signup"), data)


def page_text(response) -> str:
    """The visible answer, without what changes on every request (tokens, the typed email)."""
    body = response.content.decode()
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", body)
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", body)


# The lockout page


def test_it_shows_only_the_typed_email_on_the_lockout_page(client, user_factory):
    user_factory("frank", email="frank@example.com")

    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post(
            reverse("accounts:login"), {"username": "Frank@Example.com", "password": "nope"}
        )

    assert response.status_code == 429
    body = response.content.decode()
    assert "Frank@Example.com" in body
    assert "frank<" not in body and "account <strong>frank" not in body


def test_it_answers_the_same_lockout_for_an_unknown_email(client, user_factory):
    user_factory("frank", email="frank@example.com")

    def lock(email: str, address: str):
        other = Client(REMOTE_ADDR=address)
        for _ in range(settings.AXES_FAILURE_LIMIT):
            response = other.post(
                reverse("accounts:login"), {"username": email, "password": "nope"}
            )
        return response

    known, unknown = lock("frank@example.com", "10.1.0.1"), lock("nobody@example.com", "10.1.0.2")

    assert known.status_code == unknown.status_code == 429
    assert page_text(known).replace("frank@example.com", "EMAIL") == page_text(unknown).replace(
        "nobody@example.com", "EMAIL"
    )


# Sign-up


def test_it_answers_a_sign_up_with_a_known_email_as_any_other(user_factory):
    user_factory("frank", email="frank@example.com")
    known, new = Client(), Client()

    known_response = sign_up(known, "gina", "FRANK@example.com")
    new_response = sign_up(new, "gina", "gina@example.com")

    assert known_response.status_code == new_response.status_code == 302
    assert known_response.url == new_response.url == reverse("accounts:signup_sent")
    known_page, new_page = known.get(known_response.url), new.get(new_response.url)
    assert page_text(known_page).replace("FRANK@example.com", "EMAIL") == page_text(
        new_page
    ).replace("gina@example.com", "EMAIL")
    assert not User.objects.filter(username="gina").exists()


def test_it_emails_a_known_address_that_it_already_has_an_account(user_factory):
    user_factory("frank", email="frank@example.com")

    sign_up(Client(), "gina", "FRANK@example.com")

    [message] = mail.outbox
    assert message.to == ["FRANK@example.com"]
    assert message.subject == f"You already have a {settings.SITE_NAME} account"
    assert "its username is frank" in message.body
    assert reverse("accounts:password_reset") in message.body
    assert "/accounts/signup/" not in message.body, "no link that could make a second account"


def test_it_stores_a_sign_up_either_way_so_both_take_the_same_work(user_factory):
    user_factory("frank", email="frank@example.com")

    sign_up(Client(), "gina", "frank@example.com")
    sign_up(Client(), "hugo", "hugo@example.com")

    assert SignupRequest.objects.count() == 2
    assert all(r.password.startswith("md5$") for r in SignupRequest.objects.all())


# Password reset: throttled, and its mail sent after the response


def reset(client: Client, email: str):
    return client.post(reverse("accounts:password_reset"), {"email": email})


def test_it_sends_the_reset_email_only_after_the_response(rf: RequestFactory, user_factory):
    user_factory("alice")
    request = rf.post(reverse("accounts:password_reset"), {"email": "alice@example.com"})
    request._dont_enforce_csrf_checks = True

    response = PasswordResetView.as_view()(request)

    assert response.status_code == 302
    assert mail.outbox == [], "nothing sent while the answer is still being made"
    response.close()
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]


def test_it_throttles_password_resets_per_address(user_factory):
    user_factory("alice")
    client = Client(REMOTE_ADDR="203.0.113.5")
    limit = settings.ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR

    codes = [reset(client, f"someone{n}@example.com").status_code for n in range(limit)]
    refused = reset(client, "alice@example.com")

    assert codes == [302] * limit
    assert refused.status_code == 429
    assert "from your network" in refused.content.decode()
    assert mail.outbox == []
    assert reset(Client(REMOTE_ADDR="198.51.100.1"), "alice@example.com").status_code == 302


def test_it_throttles_password_resets_per_email_from_any_address(user_factory):
    user_factory("alice")
    limit = settings.ACCOUNT_EMAILS_PER_EMAIL_PER_HOUR

    codes = [
        reset(Client(REMOTE_ADDR=f"203.0.113.{n}"), "ALICE@example.com").status_code
        for n in range(limit + 1)
    ]

    assert codes == [302] * limit + [429]
    assert len(mail.outbox) == limit


def test_it_throttles_an_unknown_email_exactly_like_a_known_one(user_factory):
    user_factory("alice")
    limit = settings.ACCOUNT_EMAILS_PER_EMAIL_PER_HOUR

    def codes(email: str) -> list[int]:
        return [
            reset(Client(REMOTE_ADDR=f"203.0.113.{n}"), email).status_code for n in range(limit + 1)
        ]

    assert codes("alice@example.com") == codes("nobody@example.com")


def test_it_throttles_sign_ups_per_email(db):
    limit = settings.ACCOUNT_EMAILS_PER_EMAIL_PER_HOUR

    codes = [
        sign_up(Client(REMOTE_ADDR=f"203.0.113.{n}"), f"user{n}", "victim@example.com").status_code
        for n in range(limit + 1)
    ]

    assert codes == [302] * limit + [429]
    assert len(mail.outbox) == limit


def test_it_keeps_no_typed_email_in_the_throttle(db):
    reset(Client(), "stranger@example.com")

    stored = " ".join(ThrottleHit.objects.values_list("key_digest", flat=True))
    assert "stranger" not in stored
    assert ThrottleHit.objects.count() == 2


# Wrong current passwords


def test_it_throttles_wrong_current_passwords_on_password_change(client, user_factory):
    client.force_login(user_factory("alice"))
    url = reverse("accounts:password_change")
    wrong = {"old_password": "nope", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}

    codes = [
        client.post(url, wrong).status_code for _ in range(settings.CURRENT_PASSWORD_FAILURE_LIMIT)
    ]
    right = client.post(url, wrong | {"old_password": PASSWORD})

    assert codes == [200] * settings.CURRENT_PASSWORD_FAILURE_LIMIT
    assert right.status_code == 429
    assert "Too many wrong passwords" in right.content.decode()
    assert User.objects.get(username="alice").check_password(PASSWORD)


def test_it_throttles_wrong_current_passwords_on_email_change(client, user_factory):
    client.force_login(user_factory("alice"))
    url = reverse("accounts:email_change")

    for _ in range(settings.CURRENT_PASSWORD_FAILURE_LIMIT):
        client.post(url, {"email": "new@example.com", "password": "nope"})
    right = client.post(url, {"email": "new@example.com", "password": PASSWORD})

    assert right.status_code == 429
    assert "Too many wrong passwords" in right.content.decode()
    assert User.objects.get(username="alice").email == "alice@example.com"


def test_it_says_an_email_is_taken_only_to_whoever_knows_the_password(client, user_factory):
    client.force_login(user_factory("alice"))
    user_factory("bob")
    url = reverse("accounts:email_change")

    guess = client.post(url, {"email": "bob@example.com", "password": "nope"})
    owner = client.post(url, {"email": "bob@example.com", "password": PASSWORD})

    assert "Another account uses" not in guess.content.decode()
    assert "Another account uses" in owner.content.decode()
