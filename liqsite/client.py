"""The client's address behind TRUSTED_PROXY_HOPS proxies, for log-in lockouts and throttles.

Each trusted proxy appends the address it received the request from to X-Forwarded-For, so with
N of them the client is the N-th entry from the right. Entries further left were written by
whoever sent the request and are ignored: a client cannot choose the address it is counted by.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def valid_address(value: str) -> str | None:
    """The address in canonical form, or None if `value` is not an IPv4 or IPv6 address."""
    try:
        return str(ipaddress.ip_address(value.strip().strip("[]")))
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str:
    """The address the outermost trusted proxy saw (REMOTE_ADDR without proxies)."""
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_HOPS
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops == 0 or not forwarded:
        return valid_address(remote) or remote
    entries = [entry.strip() for entry in forwarded.split(",")]
    # Fewer entries than hops: the request passed fewer proxies than configured, and the leftmost
    # entry was still written by one of ours.
    chosen = entries[-hops] if len(entries) >= hops else entries[0]
    return valid_address(chosen) or valid_address(remote) or remote
