"""Delivery guarantees: the visibility timeout just above what the tasks need, and /healthz
warning when Redis would lose queued tasks on a restart.

The probe: a whole-worker SIGKILL left its tasks unacknowledged for the visibility timeout, an
hour, before another worker took them; Redis ran without persistence and nothing said so.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from liqsite.checks import VISIBILITY_SLACK_SECONDS, longest_task_seconds, visibility_timeout_check
from maps import health

# Every queue the project's tasks go to, in the order /healthz lists them.
QUEUES = ["ingest", "ingest.binance", "ingest.bybit", "ingest.okx", "compute", "followup"]


def test_it_sets_the_visibility_timeout_just_above_the_longest_unacknowledged_task():
    name, needed = longest_task_seconds()
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]

    assert name == "maps.tasks.market_backfill"
    assert needed == 1800 + 305
    assert needed < timeout <= needed + 60
    assert visibility_timeout_check() == []


def test_it_refuses_a_visibility_timeout_shorter_than_a_task(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 1800}

    [error] = visibility_timeout_check()

    assert error.id == "liqsite.E001"
    assert "maps.tasks.market_backfill" in error.msg
    with pytest.raises(SystemCheckError, match=r"liqsite\.E001"):
        call_command("check")


def test_it_warns_of_a_visibility_timeout_far_above_what_the_tasks_need(settings):
    _, needed = longest_task_seconds()
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": needed + VISIBILITY_SLACK_SECONDS + 1
    }

    [warning] = visibility_timeout_check()

    assert warning.id == "liqsite.W001"


def test_it_explains_the_visibility_timeout_in_the_deploy_docs():
    deploy = (settings.BASE_DIR / "docs" / "deploy.md").read_text()

    assert "305 + 1800 = 2105 s" in deploy
    assert "appendonly yes" in deploy
    assert "maxmemory-policy noeviction" in deploy


# /healthz and Redis persistence, on Redis servers of the test's own


def broker_with(settings, url: str) -> dict:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = url
    return health.broker_check()


@pytest.mark.redis_server
def test_it_warns_in_healthz_when_redis_persistence_is_off(client, db, settings, redis_server):
    url, _ = redis_server(persistent=False)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = url

    response = client.get("/healthz")

    broker = response.json()["broker"]
    assert response.status_code == 200, "a warning does not fail the check"
    assert broker["ok"] is True
    assert broker["warnings"] == [
        "Redis persistence is off (appendonly no, no save points): queued tasks are lost when "
        "Redis restarts"
    ]


@pytest.mark.redis_server
def test_it_does_not_warn_when_redis_persists(settings, redis_server):
    url, _ = redis_server(persistent=True)

    assert broker_with(settings, url) == {"ok": True, "queued": dict.fromkeys(QUEUES, 0)}


@pytest.mark.redis_server
def test_it_counts_the_tasks_waiting_in_each_queue(settings, redis_server):
    import redis

    url, _ = redis_server(persistent=True)
    client = redis.Redis.from_url(url)
    client.rpush("followup", *[b"{}"] * 3)
    client.rpush("compute", b"{}")
    client.rpush("ingest.okx", b"{}")

    queued = broker_with(settings, url)["queued"]

    assert list(queued) == QUEUES
    assert queued == {**dict.fromkeys(QUEUES, 0), "compute": 1, "followup": 3, "ingest.okx": 1}


@pytest.mark.redis_server
def test_it_warns_when_redis_evicts_queued_tasks(settings, redis_server):
    import redis

    url, _ = redis_server(persistent=True)
    client = redis.Redis.from_url(url)
    client.config_set("maxmemory", "100mb")
    client.config_set("maxmemory-policy", "allkeys-lru")

    assert broker_with(settings, url)["warnings"] == [
        "Redis evicts keys when full (maxmemory-policy allkeys-lru): a queued task can be "
        "evicted; use noeviction"
    ]


@pytest.mark.redis_server
def test_it_reports_the_broker_failing_once_redis_is_killed(settings, redis_server):
    url, process = redis_server(persistent=True)
    assert broker_with(settings, url) == {"ok": True, "queued": dict.fromkeys(QUEUES, 0)}

    process.kill()
    process.wait()

    assert broker_with(settings, url) == {"ok": False, "error": "ConnectionError"}
