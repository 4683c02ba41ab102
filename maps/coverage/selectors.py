"""Reads: which tracked live markets are stale, and why (for /healthz and the admin).

A market is stale when what its pages show is older than LIQSITE_STALE_AFTER_SECONDS: its data
(the last bar's end) or, with fresh data, its maps (the last step they reflect). The reason is the
first that applies, in this order: the exchange asked us to slow down; ingestion is failing; the
market sits in its exchange's queue with no worker taking it; no bar yet; the exchange answered
lately but had no newer step; nobody ingested it lately (beat or workers down); the maps lag
the data (compute failing or behind).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.core.cache import cache

from maps.connectors import CONNECTORS
from maps.formatting import age
from maps.selectors import markets_ingestible

WAITING_SECONDS = 120  # queued longer than this and not started: no worker takes the queue
ANSWERED_SECONDS = 180  # ingested this recently: the exchange answered

REASONS = {
    "cooling_down": "exchange asked us to slow down",
    "ingest_error": "ingestion failing",
    "waiting": "waiting for an ingest worker",
    "no_data": "no data yet",
    "exchange_behind": "exchange has no newer step",
    "not_ingested": "not ingested lately",
    "maps_behind": "maps behind the data",
}
FIELDS = (
    "pk",
    "exchange__slug",
    "exchange__ccxt_id",
    "symbol",
    "step_ms",
    "last_bar_at",
    "last_ingest_at",
    "last_error",
    "queued_at",
    "maps_as_of",
)


@dataclass(frozen=True)
class Stale:
    market_id: int
    market: str  # exchange/symbol
    data_until: datetime | None
    age_seconds: int | None
    reason: str  # a key of REASONS
    detail: str

    @property
    def reason_text(self) -> str:
        return REASONS[self.reason]


def cooling_exchanges() -> dict[str, float]:
    """Seconds left of each exchange's rate-limit cooldown, for those cooling down (none known
    when the cache cannot be read: the broker check reports that)."""
    from maps.tasks import cooldown_key

    keys = {cooldown_key(ccxt_id): ccxt_id for ccxt_id in CONNECTORS}
    try:
        until = cache.get_many(list(keys))
    except (redis.RedisError, OSError):
        return {}
    now = time.time()
    return {keys[key]: value - now for key, value in until.items() if value and value > now}


def market_staleness(row: dict, *, now: datetime, cooling: dict[str, float]) -> Stale | None:
    """Why this market (a dict of FIELDS) is stale, or None when it is fresh."""
    limit = settings.LIQSITE_STALE_AFTER_SECONDS
    step = timedelta(milliseconds=row["step_ms"])
    until = row["last_bar_at"] + step if row["last_bar_at"] else None
    data_age = int((now - until).total_seconds()) if until else None
    name = f"{row['exchange__slug']}/{row['symbol']}"
    if data_age is None or data_age > limit:
        reason, detail = _data_reason(row, now=now, cooling=cooling)
        return Stale(row["pk"], name, until, data_age, reason, detail)
    maps_until = row["maps_as_of"] + step if row["maps_as_of"] else None
    compute_error = row["last_error"].startswith("compute:")
    if compute_error or (maps_until and (now - maps_until).total_seconds() > limit):
        maps_age = int((now - maps_until).total_seconds()) if maps_until else None
        detail = row["last_error"][:200] if compute_error else f"maps to {maps_until:%H:%M} UTC"
        return Stale(row["pk"], name, maps_until, maps_age, "maps_behind", detail)
    return None


def _data_reason(row: dict, *, now: datetime, cooling: dict[str, float]) -> tuple[str, str]:
    wait = cooling.get(row["exchange__ccxt_id"])
    if wait:
        return "cooling_down", f"for {wait:.0f} s more"
    if row["last_error"].startswith("ingest:"):
        return "ingest_error", row["last_error"][:200]
    queued = row["queued_at"]
    if queued and (now - queued).total_seconds() > WAITING_SECONDS:
        from maps.tasks import ingest_queue

        queue = ingest_queue(row["exchange__ccxt_id"])
        return "waiting", f"queued on {queue} {age(int((now - queued).total_seconds()))}"
    ingested = row["last_ingest_at"]
    since = int((now - ingested).total_seconds()) if ingested else None
    if row["last_bar_at"] is None:
        return "no_data", "never ingested" if since is None else f"last ingest {age(since)}"
    if since is not None and since <= ANSWERED_SECONDS:
        return "exchange_behind", f"last ingest {age(since)} found no newer complete step"
    return "not_ingested", "never" if since is None else f"last ingest {age(since)}"


@dataclass(frozen=True)
class Freshness:
    tracked: int
    stale: list[Stale]
    by_exchange: dict[str, dict[str, int]]

    @property
    def reasons(self) -> dict[str, int]:
        counts = Counter(s.reason for s in self.stale)
        return {REASONS[key]: counts[key] for key in REASONS if counts[key]}


def markets_freshness(*, now: datetime) -> Freshness:
    """Every tracked live market checked: the stale ones (by exchange, then symbol) with their
    reasons, and per exchange how many are tracked and stale."""
    rows = list(markets_ingestible().order_by("exchange__slug", "symbol").values(*FIELDS))
    cooling = cooling_exchanges()
    stale = [s for row in rows if (s := market_staleness(row, now=now, cooling=cooling))]
    by_exchange: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = by_exchange.setdefault(row["exchange__slug"], {"tracked": 0, "stale": 0})
        counts["tracked"] += 1
    for item in stale:
        by_exchange[item.market.split("/")[0]]["stale"] += 1
    return Freshness(len(rows), stale, by_exchange)
