"""Alert delivery by webhook: the JSON payload (docs/webhooks.md), its signature, and the POST to
the user's URL or to Telegram's bot API.

Only the standard library speaks HTTP here. A delivery never follows a redirect, times out after
LIQSITE_WEBHOOK_TIMEOUT seconds, and refuses user URLs whose host resolves to a loopback, private,
link-local or reserved address (the server's own network) unless LIQSITE_WEBHOOK_ALLOW_PRIVATE is
on. Telegram's address comes from the settings (LIQSITE_TELEGRAM_API_URL), never from a user.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import reverse

from accounts.models import AlertEvent, WebhookChannel

PAYLOAD_VERSION = 1
TELEGRAM_TOKEN = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{20,80}$")
TELEGRAM_CHAT = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")
MAX_ERROR = 300


class WebhookRefused(ValueError):
    """A webhook address the server will not call; the message says why."""


@dataclass(frozen=True)
class Delivery:
    ok: bool
    status: str


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(
            req.full_url, code, f"redirect to {newurl} refused", headers, fp
        )


_OPENER = urllib.request.build_opener(_NoRedirects)


def url_check(url: str) -> None:
    """Raise WebhookRefused unless `url` is http(s) to a public host (or private ones are
    allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("Give an http:// or https:// address.")
    if settings.LIQSITE_WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise WebhookRefused(f"The host {parts.hostname!r} does not resolve.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            raise WebhookRefused(
                f"{parts.hostname} resolves to {address}, an address inside the server's own "
                "network; webhooks go to public addresses only."
            )


def event_payload(event: AlertEvent) -> dict:
    """What a fired alert sends (documented in docs/webhooks.md)."""
    alert = event.alert
    market = alert.watch.market
    return {
        "type": "alert.fired",
        "version": PAYLOAD_VERSION,
        "site": settings.SITE_NAME,
        "event": {
            "id": event.pk,
            "fired_at": _iso(event.fired_at),
            "step_time": _iso(event.step_time),
            "message": event.message,
            "detail": event.detail,
        },
        "alert": {
            "id": alert.pk,
            "kind": alert.kind,
            "side": alert.side,
            "window": alert.window,
            "condition": alert.describe(),
        },
        "market": {
            "exchange": market.exchange.slug,
            "symbol": market.symbol,
            "base": market.base,
            "quote": market.quote,
            "is_demo": market.is_demo,
            "url": settings.SITE_URL + market.get_absolute_url(),
        },
    }


def test_payload(channel: WebhookChannel, now: datetime) -> dict:
    return {
        "type": "test",
        "version": PAYLOAD_VERSION,
        "site": settings.SITE_NAME,
        "sent_at": _iso(now),
        "message": f"Test message from {settings.SITE_NAME}: alert delivery to this "
        f"{'chat' if channel.kind == WebhookChannel.TELEGRAM else 'webhook'} works.",
        "settings_url": settings.SITE_URL + reverse("accounts:webhook"),
    }


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(channel: WebhookChannel, payload: dict) -> Delivery:
    """Send one payload through the channel; never raises for a failed delivery."""
    try:
        if channel.kind == WebhookChannel.TELEGRAM:
            return _telegram(channel, payload)
        return _json_post(channel, payload)
    except WebhookRefused as exc:
        return Delivery(False, str(exc))


def _json_post(channel: WebhookChannel, payload: dict) -> Delivery:
    url_check(channel.url)
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"{settings.SITE_NAME}-webhook/{PAYLOAD_VERSION}",
        "X-Liqsite-Event": payload["type"],
        "X-Liqsite-Signature": signature(channel.secret, body),
    }
    status, text = _post(channel.url, body, headers)
    if status == 0:
        return Delivery(False, text[:MAX_ERROR])
    if 200 <= status < 300:
        return Delivery(True, f"HTTP {status}")
    return Delivery(False, f"HTTP {status}: {text}"[:MAX_ERROR])


def telegram_text(payload: dict) -> str:
    """The message a Telegram chat receives for a payload (plain text)."""
    if payload["type"] == "test":
        return payload["message"]
    market = payload["market"]
    demo = " (demo data)" if market["is_demo"] else ""
    return (
        f"🔔 {market['symbol']} on {market['exchange']}{demo}\n"
        f"{payload['event']['message']}\n"
        f"Alert: {payload['alert']['condition']}\n{market['url']}"
    )


def _telegram(channel: WebhookChannel, payload: dict) -> Delivery:
    base = settings.LIQSITE_TELEGRAM_API_URL.rstrip("/")
    url = f"{base}/bot{channel.telegram_token}/sendMessage"
    message = {
        "chat_id": channel.telegram_chat_id,
        "text": telegram_text(payload),
        "disable_web_page_preview": True,
    }
    body = json.dumps(message).encode()
    status, text = _post(url, body, {"Content-Type": "application/json"})
    try:
        answer = json.loads(text)
    except ValueError:
        answer = {}
    if 200 <= status < 300 and answer.get("ok"):
        return Delivery(True, "Telegram accepted the message")
    reason = answer.get("description") or text or f"HTTP {status}"
    return Delivery(False, f"Telegram refused the message: {reason}"[:MAX_ERROR])


def _post(url: str, body: bytes, headers: dict) -> tuple[int, str]:
    """POST and return (status, start of the answer); (0, reason) when nothing answered."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    timeout = settings.LIQSITE_WEBHOOK_TIMEOUT
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read(4096).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        text = exc.read(4096).decode("utf-8", "replace") if exc.fp else ""
        return exc.code, text or str(exc.reason)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return 0, f"no answer: {reason}"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
