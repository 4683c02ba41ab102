"""Log-in lockouts behind a proxy: per (username, address), per address, per username.

The probe: behind the documented proxy every client shared the proxy's address, so five bad
log-ins locked any account (admins included) for everyone for 15 minutes, and spraying one
password over many usernames from one address was unlimited.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.test import Client, RequestFactory
from django.urls import reverse

from liqsite.client import client_address

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

PASSWORD = "correct horse battery"
PROXY = "10.0.0.2"


def from_client(address: str) -> Client:
    """A browser behind the proxy: gunicorn sees the proxy, which appends `address`."""
    return Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=address)


def log_in(client: Client, username: str, password: str = "wrong password") -> int:
    url = reverse("accounts:login")
    return client.post(url, {"username": username, "password": password}).status_code


def logged_in(client: Client) -> bool:
    return SESSION_KEY in client.session


@pytest.fixture
def behind_proxy(settings):
    settings.TRUSTED_PROXY_HOPS = 1


# The client's address


def address(forwarded: str | None) -> str:
    meta = {"REMOTE_ADDR": PROXY}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_address(RequestFactory().get("/", **meta))


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "203.0.113.9", PROXY),
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),
        (2, "6.6.6.6, 203.0.113.9, 198.51.100.1", "203.0.113.9"),
        (2, "203.0.113.9", "203.0.113.9"),
        (1, "2001:DB8::1", "2001:db8::1"),
        (1, "not-an-address", PROXY),
        (1, None, PROXY),
    ],
    ids=["no-proxy", "one", "spoofed-left", "two", "fewer-than-hops", "ipv6", "garbage", "none"],
)
def test_it_takes_the_client_address_from_the_trusted_hop(settings, hops, forwarded, expected):
    settings.TRUSTED_PROXY_HOPS = hops

    assert address(forwarded) == expected


# Proxy lockout: one client's failures never lock the others


def test_it_does_not_lock_an_account_for_everyone_behind_the_proxy(behind_proxy, user_factory):
    user_factory("admin", is_staff=True, is_superuser=True)
    attacker, owner = from_client("203.0.113.66"), from_client("198.51.100.7")

    codes = [log_in(attacker, "admin") for _ in range(settings.AXES_FAILURE_LIMIT)]
    log_in(owner, "admin", PASSWORD)

    assert codes[-1] == 429
    assert log_in(attacker, "admin", PASSWORD) == 429
    assert logged_in(owner)


def test_it_locks_the_pair_after_the_failure_limit_as_before(behind_proxy, user_factory):
    user_factory("alice")
    client = from_client("203.0.113.66")

    codes = [log_in(client, "alice") for _ in range(settings.AXES_FAILURE_LIMIT)]

    assert codes == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]


def test_it_locks_an_address_spraying_one_password_over_many_usernames(behind_proxy, user_factory):
    user_factory("alice")
    sprayer, neighbour = from_client("203.0.113.66"), from_client("198.51.100.7")
    limit = settings.AXES_ADDRESS_FAILURE_LIMIT

    codes = [log_in(sprayer, f"user{n}", "Summer2024!") for n in range(limit)]

    assert codes == [200] * (limit - 1) + [429]
    assert log_in(sprayer, "alice", PASSWORD) == 429, "the address is locked for every username"
    assert log_in(neighbour, "alice", PASSWORD) == 302


def test_it_locks_a_username_guessed_from_many_addresses_at_a_higher_limit(
    behind_proxy, user_factory
):
    user_factory("alice")
    user_factory("bob")
    limit = settings.AXES_USERNAME_FAILURE_LIMIT
    per_address = settings.AXES_FAILURE_LIMIT - 1
    assert limit > settings.AXES_FAILURE_LIMIT

    codes = [log_in(from_client(f"203.0.113.{n // per_address}"), "alice") for n in range(limit)]

    assert codes == [200] * (limit - 1) + [429]
    assert log_in(from_client("198.51.100.7"), "alice", PASSWORD) == 429
    assert log_in(from_client("198.51.100.7"), "bob", PASSWORD) == 302


def test_it_lifts_the_wider_locks_after_the_cool_off(behind_proxy, user_factory):
    from datetime import timedelta

    from axes.models import AccessAttempt

    user_factory("alice")
    sprayer = from_client("203.0.113.66")
    for n in range(settings.AXES_ADDRESS_FAILURE_LIMIT):
        log_in(sprayer, f"user{n}")
    cool_off = timedelta(hours=settings.AXES_COOLOFF_TIME) + timedelta(seconds=1)
    for attempt in AccessAttempt.objects.all():
        attempt.attempt_time -= cool_off
        attempt.save()

    assert log_in(sprayer, "alice", PASSWORD) == 302


def test_it_refuses_limits_that_would_lock_sooner_than_the_pair_limit():
    from tests.test_settings import assert_refused

    assert_refused(
        {"AXES_FAILURE_LIMIT": "5", "AXES_USERNAME_FAILURE_LIMIT": "5"},
        "AXES_USERNAME_FAILURE_LIMIT=5 must be above AXES_FAILURE_LIMIT=5",
    )
    assert_refused({"TRUSTED_PROXY_HOPS": "-1"}, "TRUSTED_PROXY_HOPS=-1 must be at least 0")


def test_it_documents_how_to_set_the_hop_count():
    deploy = (settings.BASE_DIR / "docs" / "deploy.md").read_text()

    assert "TRUSTED_PROXY_HOPS=1" in deploy
    assert "### Client addresses behind the proxy" in deploy
