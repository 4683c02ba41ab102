"""Alert delivery by webhook: the JSON payload and its signature, Telegram's bot API, retries,
refused addresses, the settings page and its test button; against a local fake HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from accounts import services, webhooks
from accounts.forms import WebhookForm
from accounts.models import Alert, AlertEvent, WatchlistItem, WebhookChannel

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NEAR_LONG = [("long", 99.0, 99.5, 5e6)]
TOKEN = "123456789:AAHfakeFakeFAKEfake_token-0123456789"


@pytest.fixture
def local_webhooks(settings, fake_http_server):
    settings.LIQSITE_WEBHOOK_ALLOW_PRIVATE = True
    settings.LIQSITE_TELEGRAM_API_URL = fake_http_server.url + "/telegram"
    return fake_http_server


@pytest.fixture
def watch(alice, market_factory):
    return WatchlistItem.objects.create(user=alice, market=market_factory(is_demo=True))


def fire(watch, snapshot_factory) -> list[AlertEvent]:
    Alert.objects.create(
        watch=watch, kind="proximity", within_pct=1.0, min_notional_usd=1e6, cooldown_minutes=0
    )
    snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0)
    return services.market_alerts_check(market_id=watch.market.pk, now=T0 + timedelta(minutes=5))


def test_it_posts_a_signed_json_payload_when_an_alert_fires(
    watch, snapshot_factory, local_webhooks
):
    channel = WebhookChannel.objects.create(user=watch.user, url=local_webhooks.url + "/hook")
    [event] = fire(watch, snapshot_factory)
    [request] = local_webhooks.requests
    assert request["path"] == "/hook"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["X-Liqsite-Event"] == "alert.fired"
    expected = hmac.new(channel.secret.encode(), request["raw"], hashlib.sha256).hexdigest()
    assert request["headers"]["X-Liqsite-Signature"] == f"sha256={expected}"
    body = request["json"]
    assert body["type"] == "alert.fired" and body["version"] == 1
    assert body["event"]["id"] == event.pk
    assert body["event"]["step_time"] == "2026-11-26T12:00:00Z"
    assert body["event"]["message"] == event.message
    assert body["event"]["detail"]["cluster"]["side"] == "long"
    assert body["alert"]["kind"] == "proximity"
    assert body["alert"]["condition"].startswith("price within 1% of a cluster")
    assert body["market"] == {
        "exchange": "binance",
        "symbol": "BTCUSDT",
        "base": "BTC",
        "quote": "USDT",
        "is_demo": True,
        "url": "http://127.0.0.1:8000/binance/btcusdt/",
    }
    event.refresh_from_db()
    assert (event.webhook, event.webhook_attempts) == ("sent", 1)
    channel.refresh_from_db()
    assert channel.last_ok and channel.last_status == "HTTP 200"


def test_it_sends_nothing_without_an_active_channel(watch, snapshot_factory, local_webhooks):
    WebhookChannel.objects.create(user=watch.user, url=local_webhooks.url, is_active=False)
    [event] = fire(watch, snapshot_factory)
    assert local_webhooks.requests == []
    assert event.webhook == "skipped"


def test_it_retries_a_failed_delivery_then_gives_up(watch, snapshot_factory, local_webhooks):
    channel = WebhookChannel.objects.create(user=watch.user, url=local_webhooks.url + "/hook")
    local_webhooks.answers[:] = [(500, "down"), (503, "still down"), (500, "down again")]
    with pytest.raises(services.WebhookFailed, match="HTTP 500: down"):
        fire(watch, snapshot_factory)
    event = AlertEvent.objects.get()
    assert (event.webhook, event.webhook_attempts, event.email) == ("pending", 1, "sent")
    with pytest.raises(services.WebhookFailed, match="HTTP 503"):
        services.alert_webhooks_send(market_id=watch.market.pk)
    assert services.alert_webhooks_send(market_id=watch.market.pk) == 0
    event.refresh_from_db()
    assert (event.webhook, event.webhook_attempts) == ("failed", 3)
    assert len(local_webhooks.requests) == 3
    assert services.alert_webhooks_send(market_id=watch.market.pk) == 0
    assert len(local_webhooks.requests) == 3
    channel.refresh_from_db()
    assert channel.last_ok is False and "HTTP 500" in channel.last_status


def test_it_never_follows_a_redirect(watch, local_webhooks):
    channel = WebhookChannel.objects.create(user=watch.user, url=local_webhooks.url + "/moved")
    local_webhooks.answers[:] = [(302, "")]
    result = services.webhook_test_send(channel=channel)
    assert not result.ok
    assert "HTTP 302" in result.status and "refused" in result.status
    assert len(local_webhooks.requests) == 1


def test_it_says_when_nothing_answers(watch, settings):
    settings.LIQSITE_WEBHOOK_ALLOW_PRIVATE = True
    channel = WebhookChannel.objects.create(user=watch.user, url="http://127.0.0.1:9/hook")
    result = services.webhook_test_send(channel=channel)
    assert not result.ok and result.status.startswith("no answer")


def test_it_delivers_to_telegram_through_the_bot_api(watch, snapshot_factory, local_webhooks):
    WebhookChannel.objects.create(
        user=watch.user, kind="telegram", telegram_token=TOKEN, telegram_chat_id="-1001234"
    )
    [event] = fire(watch, snapshot_factory)
    [request] = local_webhooks.requests
    assert request["path"] == f"/telegram/bot{TOKEN}/sendMessage"
    body = request["json"]
    assert body["chat_id"] == "-1001234"
    assert body["disable_web_page_preview"] is True
    assert "BTCUSDT on binance (demo data)" in body["text"]
    assert event.message in body["text"]
    assert "http://127.0.0.1:8000/binance/btcusdt/" in body["text"]
    event.refresh_from_db()
    assert event.webhook == "sent"


def test_it_shows_telegrams_reason_for_a_refusal(watch, local_webhooks):
    channel = WebhookChannel.objects.create(
        user=watch.user, kind="telegram", telegram_token=TOKEN, telegram_chat_id="42"
    )
    local_webhooks.answers[:] = [
        (400, json.dumps({"ok": False, "description": "Bad Request: chat not found"}))
    ]
    result = services.webhook_test_send(channel=channel)
    assert not result.ok
    assert result.status == "Telegram refused the message: Bad Request: chat not found"
    channel.refresh_from_db()
    assert channel.last_status == result.status and channel.last_ok is False


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
    ],
)
def test_it_refuses_addresses_inside_the_servers_network(url, settings):
    settings.LIQSITE_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(webhooks.WebhookRefused, match="inside the server's own network"):
        webhooks.url_check(url)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "javascript:alert(1)", "http:///x"])
def test_it_refuses_what_is_not_an_http_address(url, settings):
    settings.LIQSITE_WEBHOOK_ALLOW_PRIVATE = True
    with pytest.raises(webhooks.WebhookRefused, match="http"):
        webhooks.url_check(url)


def test_it_validates_the_webhook_form(alice, settings):
    settings.LIQSITE_WEBHOOK_ALLOW_PRIVATE = False
    form = WebhookForm({"kind": "json", "url": "", "is_active": "on"})
    assert not form.is_valid()
    assert form.errors["url"] == ["Give the address that receives the alerts."]
    form = WebhookForm({"kind": "json", "url": "http://127.0.0.1/x"})
    assert not form.is_valid()
    assert "inside the server's own network" in form.errors["url"][0]
    form = WebhookForm({"kind": "telegram", "telegram_token": "nope", "telegram_chat_id": "x y"})
    assert not form.is_valid()
    assert "bot token looks like" in form.errors["telegram_token"][0]
    assert "chat id is a number" in form.errors["telegram_chat_id"][0]
    form = WebhookForm(
        {"kind": "telegram", "telegram_token": f" {TOKEN} ", "telegram_chat_id": "@liqsite_alerts"},
        instance=WebhookChannel(user=alice),
    )
    assert form.is_valid(), form.errors
    channel = form.save()
    assert (channel.telegram_token, channel.url) == (TOKEN, "")


def test_it_sets_up_tests_and_removes_a_webhook_from_its_page(client, alice, local_webhooks):
    client.force_login(alice)
    page = client.get(reverse("accounts:webhook"))
    assert page.status_code == 200
    assert "No webhook yet." in page.content.decode()
    response = client.post(
        reverse("accounts:webhook"),
        {"kind": "json", "url": local_webhooks.url + "/in", "is_active": "on"},
        follow=True,
    )
    assert "Alerts will also go to" in response.content.decode()
    channel = WebhookChannel.objects.get(user=alice)
    response = client.post(reverse("accounts:webhook_test"), follow=True)
    assert "Test message delivered (HTTP 200)." in response.content.decode()
    [request] = local_webhooks.requests
    assert request["json"]["type"] == "test"
    assert request["headers"]["X-Liqsite-Event"] == "test"
    assert channel.secret in response.content.decode()
    local_webhooks.answers[:] = [(404, "no such hook")]
    response = client.post(reverse("accounts:webhook_test"), follow=True)
    assert "did not go through: HTTP 404: no such hook" in response.content.decode()
    client.post(reverse("accounts:webhook_delete"))
    assert not WebhookChannel.objects.filter(user=alice).exists()


def test_it_keeps_webhooks_to_their_owner(client, alice, bob, local_webhooks):
    WebhookChannel.objects.create(user=alice, url=local_webhooks.url)
    client.force_login(bob)
    assert client.post(reverse("accounts:webhook_test")).status_code == 404
    assert client.post(reverse("accounts:webhook_delete")).status_code == 404
    assert WebhookChannel.objects.filter(user=alice).exists()
    client.logout()
    response = client.get(reverse("accounts:webhook"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_it_documents_the_payload(client):
    body = client.get(reverse("accounts:webhook_docs")).content.decode()
    assert "X-Liqsite-Signature" in body
    assert "alert.fired" in body and "sendMessage" in body
