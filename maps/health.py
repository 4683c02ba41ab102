"""GET /healthz: the database, the broker and the data's freshness, for load balancers.

200 with `"status": "ok"` when all three are fine, 503 otherwise; JSON either way. No login, no
HTTPS redirect (SECURE_REDIRECT_EXEMPT), two cheap queries, and a Redis PING plus INFO and CONFIG
GET, whose findings that can lose queued tasks (persistence off) are listed as broker `warnings`
without failing the check, and the length of each queue. A market is stale when its data (the
last bar's end), or with fresh data its maps, are older than LIQSITE_STALE_AFTER_SECONDS, the rule
the pages use; each stale market carries the reason (maps/coverage/selectors.py), and `reasons`
and `by_exchange` count them. Only tracked live markets count (not demo data, not exchanges we do
not ingest).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from maps.coverage.selectors import markets_freshness
from maps.tasks import INGEST_QUEUES

STALE_LISTED = 20


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def database_check() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def broker_check() -> dict:
    """Redis answers PING; its warnings (persistence off, evicting keys) do not fail the check.
    `queued` counts the tasks waiting in each queue: a `compute` that keeps growing means too few
    compute processes for the markets; a long `followup` only that signals and levels lag."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"ok": True, "mode": "in-process"}
    client = _redis(settings.CELERY_BROKER_URL)
    try:
        client.ping()
        warnings = broker_warnings(client)
        queued = queue_lengths(client)
    except (redis.RedisError, OSError) as exc:
        return {"ok": False, "error": type(exc).__name__}
    out = {"ok": True, "queued": queued}
    if warnings:
        out["warnings"] = warnings
    return out


def queue_lengths(client: redis.Redis) -> dict[str, int]:
    """Tasks waiting in each queue the tasks are routed to (started ones are not counted), in one
    round trip."""
    routed = [route["queue"] for route in settings.CELERY_TASK_ROUTES.values()]
    names = list(dict.fromkeys([*INGEST_QUEUES, settings.CELERY_TASK_DEFAULT_QUEUE, *routed]))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
    return dict(zip(names, pipe.execute(), strict=True))


def broker_warnings(client: redis.Redis) -> list[str]:
    """What in Redis's configuration can lose queued tasks (docs/deploy.md shows a safe one)."""
    warnings = []
    if not int(client.info("persistence").get("aof_enabled", 0)):
        try:
            save = client.config_get("save").get("save", "")
        except redis.ResponseError:  # CONFIG disabled, as on some managed Redis
            save = None
        if save == "":
            warnings.append(
                "Redis persistence is off (appendonly no, no save points): queued tasks are lost "
                "when Redis restarts"
            )
        elif save is None:
            warnings.append("Redis appendonly is off and its save points cannot be read")
    memory = client.info("memory")
    policy = memory.get("maxmemory_policy", "noeviction")
    if int(memory.get("maxmemory", 0)) and policy != "noeviction":
        warnings.append(
            f"Redis evicts keys when full (maxmemory-policy {policy}): a queued task can be "
            "evicted; use noeviction"
        )
    return warnings


def freshness_check(now: datetime) -> dict:
    limit = settings.LIQSITE_STALE_AFTER_SECONDS
    try:
        freshness = markets_freshness(now=now)
    except DatabaseError as exc:
        return {"ok": False, "error": type(exc).__name__}
    stale = [
        {
            "market": s.market,
            "data_until": s.data_until,
            "age_seconds": s.age_seconds,
            "reason": s.reason_text,
            "detail": s.detail,
        }
        for s in freshness.stale
    ]
    return {
        "ok": not stale,
        "tracked": freshness.tracked,
        "stale_after_seconds": limit,
        "stale_count": len(stale),
        "reasons": freshness.reasons,
        "by_exchange": freshness.by_exchange,
        "stale": stale[:STALE_LISTED],
    }


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": database_check(),
        "broker": broker_check(),
        "freshness": freshness_check(timezone.now()),
    }
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "failing", **checks}, status=200 if healthy else 503
    )
