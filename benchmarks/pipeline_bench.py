"""Pipeline benchmark: from a new step's arrival to fresh snapshots, on real Celery workers.

10 tracked markets with 90 days of 5-minute bars live in a throwaway PostgreSQL database; 2 worker
processes (Celery, Redis broker) compute. Each round inserts one new bar per market (what an
ingestion writes when a step closes), queues the recompute the minute chain queues after it
(`market_snapshots_refresh(id, only_if_stale=True)`), and times until every window of every market
has a snapshot as of the new step. Target: under 10 s, so a one-minute schedule never falls behind.
It also times, in this process, loading one market's bars and the engine on each window.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/liqsite REDIS_URL=redis://127.0.0.1:6379/3 \\
        .venv/bin/python benchmarks/pipeline_bench.py [--markets 10] [--days 90] [--workers 2]

The database is <name>_bench (created, then dropped unless --keep); the Redis database in REDIS_URL
is flushed before and after, so give it one nothing else uses.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from support import bench_database_url, database_recreate

ROOT = Path(__file__).resolve().parent.parent
STEP_MS = 300_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markets", type=int, default=10)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (1 each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    return parser.parse_args()


def synthetic_rows(market_id: int, steps: int, end_ms: int, seed: int) -> list[tuple]:
    """A seeded random walk with drifting open interest: `steps` bars, the last opening at end."""
    rng = np.random.default_rng(seed)
    price = 100.0 * (1 + seed)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.0016, steps)))
    open_ = np.r_[price, close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0008, steps)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0008, steps)))
    volume = rng.uniform(100, 1000, steps)
    taker = volume * rng.uniform(0.3, 0.7, steps)
    oi = 40_000 * np.exp(np.cumsum(rng.normal(0.0001, 0.002, steps)))
    ratio = rng.uniform(0.8, 2.2, steps)
    times = end_ms - STEP_MS * np.arange(steps - 1, -1, -1)
    return [
        (market_id, datetime.fromtimestamp(t / 1000, tz=UTC), *values)
        for t, *values in zip(
            times.tolist(), open_, high, low, close, volume, taker, oi, ratio, strict=True
        )
    ]


def bars_copy(rows: list[tuple]) -> None:
    from django.db import connection

    columns = "market_id, time, open, high, low, close, volume, taker_buy_volume, "
    columns += "open_interest, long_short_ratio"
    connection.ensure_connection()
    cursor = connection.connection.cursor()
    with cursor, cursor.copy(f"COPY maps_bar ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    connection.connection.commit()


def markets_create(count: int, days: int) -> tuple[list[int], int]:
    from maps.models import Exchange, Market

    exchange = Exchange.objects.create(slug="bench", name="Bench", ccxt_id="binanceusdm")
    steps = days * 86_400_000 // STEP_MS
    now_ms = int(time.time() * 1000)
    end_ms = now_ms // STEP_MS * STEP_MS - 2 * STEP_MS
    ids = []
    for k in range(count):
        market = Market.objects.create(
            exchange=exchange,
            symbol=f"C{k:02d}USDT",
            slug=f"c{k:02d}usdt",
            base=f"C{k:02d}",
            quote="USDT",
            last_bar_at=datetime.fromtimestamp(end_ms / 1000, tz=UTC),
        )
        bars_copy(synthetic_rows(market.pk, steps, end_ms, seed=k))
        ids.append(market.pk)
    return ids, end_ms


def workers_start(count: int, env: dict[str, str], logs: Path) -> list[subprocess.Popen]:
    """`count` Celery workers of one process each, on both queues."""
    celery = str(Path(sys.executable).with_name("celery"))
    args = "-A liqsite worker -Q compute,ingest -c 1 -O fair --without-gossip --without-mingle"
    args += " --without-heartbeat -l warning"
    processes = []
    for k in range(count):
        log = (logs / f"worker{k}.log").open("w")
        name = f"bench{k}@{socket.gethostname()}"
        processes.append(
            subprocess.Popen(
                [celery, *args.split(), "-n", name],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return processes


def workers_ready(count: int, timeout: float = 90) -> None:
    from liqsite.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0)) >= count:
            return
    sys.exit(f"the {count} workers did not answer within {timeout} s")


def workers_stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def fresh_wait(ids: list[int], as_of: datetime, windows: int, timeout: float = 300) -> float:
    """Seconds until every market has `windows` snapshots as of `as_of`."""
    from django.db import connection

    from maps.models import MapSnapshot

    started = time.perf_counter()
    wanted = len(ids) * windows
    while time.perf_counter() - started < timeout:
        if MapSnapshot.objects.filter(market_id__in=ids, as_of=as_of).count() == wanted:
            return time.perf_counter() - started
        connection.close_if_unusable_or_obsolete()
        time.sleep(0.02)
    sys.exit(f"snapshots not fresh after {timeout} s")


def round_run(ids: list[int], new_ms: int, windows: int) -> float:
    """Insert one bar per market at new_ms, queue the refreshes, time until all are fresh."""
    from maps.models import Bar, Market
    from maps.tasks import market_snapshots_refresh

    rows = []
    for market_id in ids:
        last = Bar.objects.filter(market_id=market_id).order_by("-time").first()
        rows.append(
            (
                market_id,
                datetime.fromtimestamp(new_ms / 1000, tz=UTC),
                last.close,
                last.close * 1.001,
                last.close * 0.999,
                last.close * 1.0005,
                last.volume,
                last.taker_buy_volume,
                last.open_interest * 1.001,
                last.long_short_ratio,
            )
        )
    started = time.perf_counter()
    bars_copy(rows)
    Market.objects.filter(pk__in=ids).update(
        last_bar_at=datetime.fromtimestamp(new_ms / 1000, tz=UTC)
    )
    for market_id in ids:
        market_snapshots_refresh.delay(market_id, only_if_stale=True)
    fresh_wait(ids, datetime.fromtimestamp(new_ms / 1000, tz=UTC), windows)
    return time.perf_counter() - started


def window_timings(market_id: int, windows: list[str]) -> list[tuple[str, float, float, int]]:
    """(window, seconds to load its bars, seconds for the engine, steps) for one market."""
    from django.conf import settings

    from maps import engine
    from maps.models import Market
    from maps.services import market_bars_for_windows

    market = Market.objects.get(pk=market_id)
    out = []
    for window in windows:
        loads, runs = [], []
        for _ in range(3):
            started = time.perf_counter()
            bars = market_bars_for_windows(market=market, windows=[window])
            loaded = time.perf_counter()
            engine.run(bars, market.engine_params(window, max_columns=settings.LIQSITE_MAX_COLUMNS))
            runs.append(time.perf_counter() - loaded)
            loads.append(loaded - started)
        out.append((window, min(loads), min(runs), len(bars.ts)))
    return out


def main() -> int:
    args = parse_args()
    url, name = bench_database_url("bench")
    database_recreate(url, name)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liqsite.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.flushdb()
    processes: list[subprocess.Popen] = []
    try:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        ids, end_ms = markets_create(args.markets, args.days)
        windows = list(settings.LIQSITE_WINDOWS)
        print(
            f"{args.markets} markets x {args.days} days of 5-minute bars "
            f"({args.days * 288} each) stored in {time.perf_counter() - started:.1f} s"
        )
        logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"{name}-logs"
        logs.mkdir(exist_ok=True)
        env = {**os.environ, "DATABASE_URL": url, "DB_CONN_MAX_AGE": "600"}
        processes = workers_start(args.workers, env, logs)
        workers_ready(args.workers)
        from maps.tasks import market_snapshots_refresh

        started = time.perf_counter()
        for market_id in ids:
            market_snapshots_refresh.delay(market_id)
        fresh_wait(ids, datetime.fromtimestamp(end_ms / 1000, tz=UTC), len(windows))
        print(f"first computation (cold workers): {time.perf_counter() - started:.2f} s")
        figures = []
        for k in range(1, args.rounds + 1):
            figures.append(round_run(ids, end_ms + k * STEP_MS, len(windows)))
            print(
                f"round {k}: new step -> {len(ids) * len(windows)} fresh snapshots in "
                f"{figures[-1]:.2f} s on {args.workers} worker processes"
            )
        median, worst = float(np.median(figures)), max(figures)
        verdict = "within" if worst < 10 else "OVER"
        print(
            f"new step -> fresh snapshots: best {min(figures):.2f} s, median {median:.2f} s, "
            f"worst {worst:.2f} s ({verdict} the 10 s target)"
        )
        print("one market, in this process (best of 3):")
        print(f"  {'window':>6} {'steps':>7} {'load bars':>10} {'engine':>9}")
        for window, load, run, steps in window_timings(ids[0], windows):
            print(f"  {window:>6} {steps:>7} {load * 1000:>8.1f} ms {run * 1000:>6.1f} ms")
    finally:
        workers_stop(processes)
        broker.flushdb()
        connections.close_all()
        if not args.keep:
            database_recreate(url, name, drop_only=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
