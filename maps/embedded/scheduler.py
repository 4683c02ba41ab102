"""The in-process scheduler of the embedded default (no REDIS_URL): a daemon thread.

Every LIQSITE_SCHEDULER_SECONDS (first run a few seconds after start) it:
1. rolls the demo markets forward to now and recomputes the maps of those that moved;
2. ingests the tracked real markets and recomputes theirs (the beat's minute, run in-process);
3. checks every active alert not yet evaluated on its market's current map (a new or edited
   alert fires within one period, without waiting for the next step);
4. once a day, fits each demo market's calibration again.
A failing job is logged and the others still run; the thread never dies of one.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Max
from django.utils import timezone

from maps.embedded.demo_roll import demo_roll_forward
from maps.models import Calibration, MapSnapshot, Market

log = logging.getLogger(__name__)

FIRST_RUN_SECONDS = 3.0
CALIBRATE_EVERY = timedelta(days=1)


def scheduler_wanted() -> bool:
    """Only the embedded default runs it: with Redis, Celery beat and workers do the work."""
    return not settings.REDIS_URL and settings.LIQSITE_SCHEDULER_SECONDS > 0


def tick(now=None) -> dict:
    """One round of the scheduler's jobs; returns what each did (for logs and tests)."""
    from maps.tasks import market_snapshots_refresh, markets_ingest_tracked

    now = now or timezone.now()
    done: dict = {}
    roll = _job(done, "demo", lambda: demo_roll_forward(now_ms=int(now.timestamp() * 1000)))
    for market_id in getattr(roll, "market_ids", []):
        _job(done, f"compute:{market_id}", lambda m=market_id: market_snapshots_refresh.delay(m))
    _job(done, "ingest", markets_ingest_tracked.delay)
    _job(done, "alerts", alerts_check_pending)
    _job(done, "calibrate", lambda: demo_calibrate_due(now=now))
    return done


def _job(done: dict, name: str, run):
    try:
        result = run()
    except Exception:
        log.exception("embedded scheduler: %s failed", name)
        done[name] = "failed"
        return None
    done[name] = result
    return result


def alerts_check_pending() -> list[int]:
    """Check the alerts of every market that has an active alert not yet evaluated on its
    window's current map; returns those markets' ids."""
    from accounts.models import Alert
    from accounts.tasks import market_alerts_check

    latest = {
        (s["market_id"], s["window"]): s["as_of"]
        for s in MapSnapshot.objects.values("market_id", "window", "as_of")
    }
    due = set()
    for alert in Alert.objects.filter(is_active=True).values(
        "watch__market_id", "window", "checked_through"
    ):
        as_of = latest.get((alert["watch__market_id"], alert["window"]))
        if as_of is not None and (
            alert["checked_through"] is None or alert["checked_through"] < as_of
        ):
            due.add(alert["watch__market_id"])
    for market_id in sorted(due):
        market_alerts_check.delay(market_id)
    return sorted(due)


def demo_calibrate_due(*, now) -> list[int]:
    """Calibrate the demo markets whose latest calibration is over a day old (or missing)."""
    from maps.services import market_calibrate

    newest = dict(
        Calibration.objects.values("market_id")
        .annotate(last=Max("computed_at"))
        .values_list("market_id", "last")
    )
    done = []
    for market in Market.objects.filter(is_demo=True, tracked=True):
        last = newest.get(market.pk)
        due = last is None or now - last >= CALIBRATE_EVERY
        if due and market_calibrate(market=market) is not None:
            done.append(market.pk)
    return done


class Scheduler(threading.Thread):
    """Runs `tick` every `period` seconds until stopped."""

    def __init__(self, period: float, first: float = FIRST_RUN_SECONDS) -> None:
        super().__init__(name="liqsite-scheduler", daemon=True)
        self.period = period
        self.first = first
        self.stopped = threading.Event()

    def run(self) -> None:
        wait = self.first
        while not self.stopped.wait(wait):
            started = time.monotonic()
            close_old_connections()
            try:
                done = tick()
                log.info("embedded scheduler: %s", _summary(done))
            finally:
                close_old_connections()
            wait = max(1.0, self.period - (time.monotonic() - started))

    def stop(self) -> None:
        self.stopped.set()


def _summary(done: dict) -> str:
    roll = done.get("demo")
    parts = []
    if roll is not None and roll != "failed":
        parts.append(f"demo +{roll.steps} steps, {roll.events} events on {len(roll.market_ids)}")
    for name, value in done.items():
        if name != "demo" and not name.startswith("compute"):
            parts.append(f"{name}: {getattr(value, 'result', value)}")
    return "; ".join(parts)
