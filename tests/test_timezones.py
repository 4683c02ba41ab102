"""Times in the visitor's zone: the profile's, else the browser's (remembered in a cookie), else
UTC until the browser says; UTC whenever asked for."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import RequestFactory
from django.urls import reverse

from accounts.forms import ProfileForm
from accounts.timezones import BROWSER_COOKIE, UTC_COOKIE, time_zone_for


@pytest.fixture
def pair(tracked_market):
    return tracked_market("BTCUSDT", "binance", is_demo=True, steps=300, windows=("7d",))


def data_until(market, zone: str) -> str:
    """The pair page's "as of" time in `zone`, as the page writes it."""
    moment = market.snapshots.get(window="7d").as_of + timedelta(milliseconds=market.step_ms)
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%b} {local.day}, {local:%H:%M} {local.tzname()}"


def request_with(cookies: dict, user=None):
    request = RequestFactory().get("/")
    request.COOKIES.update(cookies)
    if user is not None:
        request.user = user
    return request


def test_it_prefers_utc_on_request_then_the_profile_then_the_browser(alice):
    alice.time_zone = "Asia/Tokyo"
    assert time_zone_for(request_with({}, alice)).name == "Asia/Tokyo"
    assert time_zone_for(request_with({BROWSER_COOKIE: "Europe/Paris"}, alice)).source == (
        "profile"
    )
    choice = time_zone_for(request_with({UTC_COOKIE: "1"}, alice))
    assert (choice.name, choice.utc_requested) == ("UTC", True)
    alice.time_zone = ""
    assert time_zone_for(request_with({BROWSER_COOKIE: "Europe/Paris"}, alice)).name == (
        "Europe/Paris"
    )
    assert time_zone_for(request_with({BROWSER_COOKIE: "Asia%2FTokyo"})).name == "Asia/Tokyo"
    assert time_zone_for(request_with({BROWSER_COOKIE: "Mars/Olympus"})).name == ""
    assert time_zone_for(request_with({})).source == "unknown"


def test_it_writes_the_pages_times_in_the_browsers_zone(client, pair):
    client.cookies[BROWSER_COOKIE] = "Europe/Paris"
    body = client.get(reverse("maps:pair", args=["binance", "btcusdt"])).content.decode()
    assert 'data-time-zone="Europe/Paris"' in body
    assert data_until(pair, "Europe/Paris") in body
    assert "Times in <strong data-time-zone-label>Europe/Paris</strong>" in body


def test_it_writes_utc_until_the_browser_says_and_marks_the_times_for_the_script(client, pair):
    body = client.get(reverse("maps:pair", args=["binance", "btcusdt"])).content.decode()
    assert 'data-time-zone=""' in body
    assert f'data-local="long">{data_until(pair, "UTC")}</time>' in body
    assert "your browser's time zone" in body


def test_it_switches_to_utc_and_back_from_the_footer(client, pair):
    client.cookies[BROWSER_COOKIE] = "America/New_York"
    url = reverse("maps:pair", args=["binance", "btcusdt"])
    body = client.get(url).content.decode()
    assert f'href="/accounts/time-zone/?utc=1&amp;next={url}"' in body
    response = client.get(reverse("accounts:time_zone"), {"utc": "1", "next": url})
    assert response.status_code == 302 and response["Location"] == url
    assert response.cookies[UTC_COOKIE].value == "1"
    body = client.get(url).content.decode()
    assert data_until(pair, "UTC") in body and "Use my time zone" in body
    response = client.post(
        reverse("accounts:time_zone"), {"utc": "0", "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("maps:home")
    assert response.cookies[UTC_COOKIE].value == ""
    assert data_until(pair, "America/New_York") in client.get(url).content.decode()


def test_it_keeps_a_separate_page_version_per_zone(client, pair):
    url = reverse("maps:pair", args=["binance", "btcusdt"])
    utc = client.get(url)["ETag"]
    client.cookies[BROWSER_COOKIE] = "Asia/Tokyo"
    assert client.get(url)["ETag"] != utc


def test_it_saves_a_time_zone_in_the_profile(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("accounts:profile"), {"email_alerts": "on", "time_zone": "Asia/Kolkata"}
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.time_zone == "Asia/Kolkata"
    page = client.get(reverse("accounts:profile")).content.decode()
    assert "(your profile)" in page


def test_it_refuses_a_time_zone_it_does_not_know(alice):
    form = ProfileForm({"email_alerts": "on", "time_zone": "Europe/Atlantis"}, instance=alice)
    assert not form.is_valid()
    assert "Select a valid choice" in form.errors["time_zone"][0]
    alice.time_zone = "Europe/Atlantis"
    with pytest.raises(Exception, match="not a time zone name"):
        alice.full_clean()
