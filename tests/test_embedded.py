"""The embedded default kept alive: the demo rolled forward, the in-process scheduler's round, and
`make run`'s `manage.py serve` firing a fresh alert on its own within three minutes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Alert, AlertEvent, WatchlistItem
from accounts.services import alert_save
from liqsite.celery import app
from maps.demo import STEP_MS, demo_end_ms
from maps.embedded import scheduler
from maps.embedded.demo_roll import KEEP_MS, demo_roll_forward
from maps.models import Bar, LiquidationEvent, MapSnapshot, Market, ms_to_datetime
from maps.selectors import market_bars_arrays

BASE_DIR = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("empty_cache")


@pytest.fixture
def eager():
    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


def seed(end_ms: int, days: int = 1, *extra: str) -> None:
    end = ms_to_datetime(end_ms).strftime("%Y-%m-%dT%H:%M:%SZ")
    call_command("seed_demo", "--days", str(days), "--end", end, *extra, stdout=io.StringIO())


def now_ms() -> int:
    return int(timezone.now().timestamp() * 1000)


@pytest.mark.django_db
def test_it_rolls_each_demo_market_forward_from_its_last_bar():
    end = demo_end_ms(now_ms()) - 3 * STEP_MS
    seed(end, 1, "--no-compute")
    before = {m.pk: market_bars_arrays(market_id=m.pk) for m in Market.objects.all()}
    report = demo_roll_forward(now_ms=end + 4 * STEP_MS + 1000)
    assert sorted(report.market_ids) == sorted(before)
    assert report.steps == 11 * 3  # 9 majors and 2 thin markets
    for market in Market.objects.all():
        bars = market_bars_arrays(market_id=market.pk)  # validates the rows
        old = before[market.pk]
        assert len(bars.ts) == len(old.ts) + 3
        assert np.all(np.diff(bars.ts) == STEP_MS)
        assert bars.open[len(old.ts)] == old.close[-1]
        assert abs(bars.close[-1] / old.close[-1] - 1) < 0.05
        assert abs(bars.open_interest[-1] / old.open_interest[-1] - 1) < 0.05
        assert market.last_bar_at == ms_to_datetime(int(bars.ts[-1]))
    assert demo_roll_forward(now_ms=end + 4 * STEP_MS + 1000).steps == 0


@pytest.mark.django_db
def test_it_rolls_the_same_gap_to_the_same_rows():
    end = demo_end_ms(now_ms()) - 2 * STEP_MS
    seed(end, 1, "--no-compute")
    market = Market.objects.get(exchange__slug="okx", slug="ethusdt")

    def rolled():
        demo_roll_forward(now_ms=end + 3 * STEP_MS)
        new = market.bars.filter(time__gt=ms_to_datetime(end)).order_by("time")
        rows = list(new.values_list("time", "open", "high", "low", "close", "open_interest"))
        events = market.events.filter(time__gte=ms_to_datetime(end + STEP_MS))
        return rows, sorted(events.values_list("time", "side", "price", "quantity"))

    first = rolled()
    Bar.objects.filter(time__gt=ms_to_datetime(end)).delete()
    LiquidationEvent.objects.filter(time__gte=ms_to_datetime(end + STEP_MS)).delete()
    assert rolled() == first
    assert len(first[0]) == 2


@pytest.mark.django_db
def test_it_leaves_a_demo_too_far_behind_for_a_new_seed_and_never_touches_real_markets(
    market_factory, bar_factory
):
    end = demo_end_ms(now_ms()) - 10 * STEP_MS
    seed(end, 1, "--no-compute")
    real = market_factory("XRPUSDT", "binance")
    bar_factory(real, ms_to_datetime(end))
    report = demo_roll_forward(now_ms=end + 11 * STEP_MS, max_steps=5)
    assert report.too_far_behind and report.steps == 0
    assert real.bars.count() == 1
    assert demo_roll_forward(now_ms=end + 11 * STEP_MS).steps == 11 * 10
    assert real.bars.count() == 1


@pytest.mark.django_db
def test_it_drops_bars_older_than_the_longest_window():
    end = demo_end_ms(now_ms()) - STEP_MS
    seed(end, 1, "--no-compute")
    market = Market.objects.get(exchange__slug="binance", slug="btcusdt")
    old = ms_to_datetime(end - KEEP_MS - STEP_MS)
    Bar.objects.create(
        market=market,
        time=old,
        open=1,
        high=1,
        low=1,
        close=1,
        volume=1,
        taker_buy_volume=1,
        open_interest=1,
    )
    demo_roll_forward(now_ms=end + 2 * STEP_MS)
    assert not market.bars.filter(time=old).exists()


@pytest.mark.django_db
def test_it_runs_only_on_the_embedded_default(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert not scheduler.scheduler_wanted()
    settings.REDIS_URL = ""
    assert scheduler.scheduler_wanted()
    settings.LIQSITE_SCHEDULER_SECONDS = 0
    assert not scheduler.scheduler_wanted()


@pytest.mark.django_db(transaction=True)
def test_it_moves_the_demo_recomputes_and_fires_pending_alerts_in_one_round(eager, alice):
    end = demo_end_ms(now_ms()) - 2 * STEP_MS
    seed(end, 1)
    market = Market.objects.get(exchange__slug="binance", slug="btcusdt")
    snapshot = MapSnapshot.objects.get(market=market, window="24h")
    near = min(abs(c["distance_pct"]) for c in snapshot.clusters)
    watch = WatchlistItem.objects.create(user=alice, market=market)
    alert = alert_save(
        alert=Alert(
            watch=watch,
            kind="proximity",
            window="24h",
            within_pct=near + 0.5,
            min_notional_usd=1,
        )
    )
    done = scheduler.tick()
    assert done["demo"].steps == 11 * 2
    assert all(done[f"compute:{m.pk}"] is not None for m in Market.objects.all())
    assert MapSnapshot.objects.get(market=market, window="24h").as_of == ms_to_datetime(
        end + 2 * STEP_MS
    )
    assert AlertEvent.objects.filter(alert=alert).count() == 1
    alert.refresh_from_db()
    assert alert.checked_through is not None
    again = scheduler.tick()
    assert again["demo"].steps == 0 and again["alerts"] == []
    assert len(again["calibrate"]) == 0
    assert AlertEvent.objects.count() == 1


@pytest.mark.django_db
def test_it_keeps_going_when_a_job_fails(monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(scheduler, "demo_roll_forward", broken)
    done = scheduler.tick()
    assert done["demo"] == "failed"
    assert "alerts" in done and done["alerts"] == []


def run(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


CREATE_ALERT = """
from accounts.models import Alert, User, WatchlistItem
from accounts.services import alert_save
from maps.models import MapSnapshot, Market
market = Market.objects.get(exchange__slug="binance", slug="btcusdt")
snapshot = MapSnapshot.objects.get(market=market, window="7d")
near = min(abs(c["distance_pct"]) for c in snapshot.clusters)
user = User.objects.create_user("trader", "trader@example.com", "correct horse battery")
watch = WatchlistItem.objects.create(user=user, market=market)
alert_save(alert=Alert(watch=watch, kind="proximity", within_pct=round(near + 0.3, 2),
                       min_notional_usd=1))
print("alert within", round(near + 0.3, 2))
"""
COUNT_FIRED = "from accounts.models import AlertEvent; print(AlertEvent.objects.count())"


@pytest.mark.slow
def test_it_fires_a_fresh_alert_on_its_own_under_make_run(tmp_path):
    """`make run` without Redis: the in-process scheduler checks the new alert and fires it,
    within three minutes of setting it, with no worker, beat or page visit."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "liqsite.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "LOG_LEVEL": "INFO",
    }
    run(env, "migrate", "--noinput")
    run(env, "seed_demo", "--days", "2")
    log = tmp_path / "serve.log"  # a file, not a pipe: nothing reads it while the server runs
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "127.0.0.1:8203", "--noreload"],
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(scheduler.FIRST_RUN_SECONDS + 6)  # the first round has run: wait for a later one
        started = time.monotonic()
        print(run(env, "shell", "-c", CREATE_ALERT).stdout.strip().splitlines()[-1])
        fired = 0
        while time.monotonic() - started < 180 and not fired:
            time.sleep(5)
            fired = int(run(env, "shell", "-c", COUNT_FIRED).stdout.split()[-1])
        elapsed = time.monotonic() - started
        print(f"\nembedded default: the fresh alert fired after {elapsed:.0f} s")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    output = log.read_text()
    # The server's log says what each round did and when, should the alert be late.
    assert fired == 1, f"the alert did not fire within three minutes:\n{output[-4000:]}"
    assert elapsed <= 180, output[-4000:]
    assert "Embedded scheduler: every 60 s" in output


@pytest.mark.django_db
def test_it_serves_without_the_scheduler_beside_redis(settings, monkeypatch):
    from maps.management.commands import serve

    started, served = [], []
    monkeypatch.setattr(serve.Scheduler, "start", lambda self: started.append(self.period))
    monkeypatch.setattr(serve, "call_command", lambda *a, **k: served.append((a, k)))
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    call_command("serve", "127.0.0.1:8204", "--noreload", stdout=io.StringIO())
    assert started == [] and served[0][0] == ("runserver", "127.0.0.1:8204")
    settings.REDIS_URL = ""
    out = io.StringIO()
    call_command("serve", "127.0.0.1:8204", "--noreload", stdout=out)
    assert started == [60] and "Embedded scheduler" in out.getvalue()
    monkeypatch.delenv("RUN_MAIN", raising=False)
    call_command("serve", "127.0.0.1:8204", stdout=io.StringIO())
    assert started == [60]
