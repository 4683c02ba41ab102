"""Tasks through real Celery workers (subprocesses) on the real Redis broker and PostgreSQL.

The workers read the test database and answer exchanges from tests/fixtures/exchanges
(LIQSITE_EXCHANGE_REPLAY), so nothing touches the network. Each test starts its own workers and
stops them, killing them if they do not stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from liqsite.celery import app
from maps import ingest
from maps.models import Bar, Exchange, MapSnapshot, Market
from maps.tasks import (
    market_backfill,
    market_calibrate_task,
    market_lock_key,
    market_snapshots_refresh,
    markets_ingest_tracked,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT / "tests" / "fixtures" / "exchanges"
CELERY = str(Path(sys.executable).with_name("celery"))
END = 1736920800000  # 2025-01-15T06:00:00Z, the end of the last recorded step
STEP = 300_000
VISIBILITY_TIMEOUT = 4
WORKER_ARGS = [
    "-A",
    "liqsite",
    "worker",
    "-Q",
    "ingest,ingest.binance,ingest.bybit,ingest.okx,compute,followup",
    "-c",
    "1",
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
    "-l",
    "info",
]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Worker:
    def __init__(
        self, name: str, env: dict[str, str], log: Path, queues: str | None = None
    ) -> None:
        self.name = f"{name}@{socket.gethostname()}"
        self.log = log
        args = list(WORKER_ARGS)
        if queues:
            args[args.index("-Q") + 1] = queues
        self.process = subprocess.Popen(
            [CELERY, *args, "-n", self.name],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.log.read_text()}")
            return bool(app.control.ping(destination=[self.name], timeout=0.5))

        wait_for(answers, timeout, f"worker {self.name} to answer a ping")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crash or the OOM killer would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture
def workers(tmp_path):
    """start(name, queues=..., **env) -> a ready Worker on the test database (on every queue
    unless `queues` names some); all are stopped afterwards."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    started: list[Worker] = []

    def start(name: str, *, ready: bool = True, queues: str | None = None, **extra: str) -> Worker:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": settings.REDIS_URL,
            "LIQSITE_EXCHANGE_REPLAY": str(RECORDINGS),
            "LIQSITE_BACKFILL_DAYS": "1",
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "DB_CONN_MAX_AGE": "0",
            **extra,
        }
        worker = Worker(name, env, tmp_path / f"{name}.log", queues)
        started.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()
    client.flushdb()


@pytest.fixture
def binance_market(db):
    exchange = Exchange.objects.create(slug="binance", name="Binance", ccxt_id="binanceusdm")
    return Market.objects.create(
        exchange=exchange, symbol="BTCUSDT", slug="btcusdt", base="BTC", quote="USDT"
    )


def snapshots(market: Market) -> list[tuple[str, datetime]]:
    return sorted(MapSnapshot.objects.filter(market=market).values_list("window", "as_of"))


def test_it_ingests_then_computes_every_snapshot_through_a_worker(workers, binance_market):
    workers("alpha")

    markets_ingest_tracked.delay()

    wait_for(
        lambda: len(snapshots(binance_market)) == len(settings.LIQSITE_WINDOWS),
        90,
        "a snapshot for every window",
    )
    as_of = datetime.fromtimestamp((END - STEP) / 1000, tz=UTC)
    assert Bar.objects.filter(market=binance_market).count() == 144
    assert snapshots(binance_market) == sorted((w, as_of) for w in settings.LIQSITE_WINDOWS)
    binance_market.refresh_from_db()
    assert binance_market.last_bar_at == as_of
    assert binance_market.last_error == ""


def test_it_leaves_no_duplicates_when_a_killed_task_is_redelivered(workers, binance_market):
    first = workers("alpha", LIQSITE_EXCHANGE_REPLAY_DELAY_MS="500")
    bars = Bar.objects.filter(market=binance_market)

    result = market_backfill.delay(binance_market.pk)
    partial = wait_for(lambda: bars.count(), 60, "the first day's bars to be committed")
    first.kill()

    assert 0 < partial < 144
    key = market_lock_key("ingest", binance_market.pk)
    held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
    with connection.cursor() as cursor:
        wait_for(
            lambda: cursor.execute(held, [key & 0xFFFFFFFF]) or not cursor.fetchone()[0],
            10,
            "the killed worker's lock to go with its session",
        )
    time.sleep(VISIBILITY_TIMEOUT + 1)
    workers("bravo")

    assert result.get(timeout=90) == 144
    wait_for(
        lambda: len(snapshots(binance_market)) == len(settings.LIQSITE_WINDOWS),
        90,
        "the recompute the backfill queues",
    )
    times = list(bars.values_list("time", flat=True))
    assert len(times) == len(set(times)) == 144
    assert MapSnapshot.objects.filter(market=binance_market).count() == len(
        settings.LIQSITE_WINDOWS
    )


def test_it_computes_a_market_once_when_two_workers_race(workers, binance_market, replay_connector):
    ingest.market_ingest(market=binance_market, connector=replay_connector("binanceusdm"))
    workers("alpha", ready=False)
    workers("bravo", ready=False).wait_ready()
    wait_for(lambda: len(app.control.ping(timeout=0.5)) == 2, 60, "both workers")

    racing = [market_snapshots_refresh.delay(binance_market.pk, True) for _ in range(2)]
    results = sorted(r.get(timeout=90) for r in racing)

    assert results == [0, len(settings.LIQSITE_WINDOWS)]
    assert MapSnapshot.objects.filter(market=binance_market).count() == len(
        settings.LIQSITE_WINDOWS
    )


def test_a_compute_worker_refreshes_the_maps_before_what_follows_them(workers, binance_market):
    """Queued first, the follow-ups still wait: a worker on `-Q compute,followup` takes from its
    queues in that order (queue_order_strategy "priority"), not in turn."""
    followups = [market_calibrate_task.delay(binance_market.pk) for _ in range(3)]
    refreshes = [market_snapshots_refresh.delay(binance_market.pk) for _ in range(3)]
    workers("alpha", queues="compute,followup")

    assert [r.get(timeout=60) for r in refreshes] == [0] * 3  # no bars yet: nothing to store
    assert [r.get(timeout=60) for r in followups] == [None] * 3  # no events to fit
    # in turn, they would alternate: refresh, follow-up, refresh, ...
    assert max(r.date_done for r in refreshes) < min(r.date_done for r in followups)


def test_a_slow_exchange_delays_only_its_own_markets(workers, binance_market):
    okx = Exchange.objects.create(slug="okx", name="OKX", ccxt_id="okx")
    slow = Market.objects.create(
        exchange=okx, symbol="BTC-USDT-SWAP", slug="btcusdt", base="BTC", quote="USDT"
    )
    workers("alpha", queues="ingest,ingest.binance,ingest.bybit,compute,followup")
    workers("slow", queues="ingest.okx", LIQSITE_EXCHANGE_REPLAY_DELAY_MS="1000")

    assert markets_ingest_tracked() == 2
    wait_for(
        lambda: len(snapshots(binance_market)) == len(settings.LIQSITE_WINDOWS),
        90,
        "Binance's maps while OKX answers slowly",
    )

    wait_for(  # Binance's chain releases its claim just after storing the maps
        lambda: Market.objects.get(pk=binance_market.pk).queued_at is None,
        10,
        "Binance's claim to be released",
    )
    slow.refresh_from_db()
    assert snapshots(slow) == [] and slow.queued_at is not None  # OKX's chain still runs
    assert markets_ingest_tracked() == 1  # the next minute queues Binance again, not OKX
    wait_for(
        lambda: len(snapshots(slow)) == len(settings.LIQSITE_WINDOWS),
        180,
        "OKX's maps, late",
    )
    wait_for(  # the chain's last link releases the claim just after storing the maps
        lambda: Market.objects.get(pk=slow.pk).queued_at is None,
        10,
        "OKX's claim to be released",
    )


def test_it_takes_order_books_and_stores_levels_through_a_worker(workers, binance_market):
    """The minute's order book and, after a recompute, every window's levels (maps/levels/)."""
    from maps.levels.tasks import orderbooks_snapshot_tracked
    from maps.models import LevelsSnapshot, OrderBookSnapshot

    workers("alpha")

    orderbooks_snapshot_tracked.delay()
    markets_ingest_tracked.delay()

    book = wait_for(
        lambda: OrderBookSnapshot.objects.filter(market=binance_market).first(),
        90,
        "the recorded order book stored",
    )
    assert (book.best_bid, book.best_ask) == (89977.8, 89977.9)
    wait_for(
        lambda: (
            LevelsSnapshot.objects.filter(market=binance_market).count()
            == len(settings.LIQSITE_WINDOWS)
        ),
        120,
        "the levels of every window",
    )
    levels = LevelsSnapshot.objects.get(market=binance_market, window="12h")
    snapshot = MapSnapshot.objects.get(market=binance_market, window="12h")
    assert len(levels.confluence) == len(snapshot.clusters)
    assert levels.atr_1h > 0
    assert levels.rsi["1h"] == {
        "times": [],
        "values": [],
        "last": None,
    }  # 12 recorded hours: warm-up
