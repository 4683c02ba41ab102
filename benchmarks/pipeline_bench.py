"""Pipeline benchmark: from a new step to fresh snapshots for 100 and 1,000 markets on real Celery
workers, the database size per market per 90 days, and one market's all-windows refresh against
six separate engine runs.

The largest count of markets, each with 90 days of 5-minute bars, lives in a throwaway PostgreSQL
database. The bars are written step by step across the markets, as the minute's ingestion writes
them, so one market's rows are spread over the table as they are in production. 2 Celery worker
processes (Redis broker, queue `compute`) compute. First every market is computed once (cold).
Then, for each count N, each round inserts one new bar for N markets (what ingestion writes when
a step closes), queues the refresh the beat's chain queues after it
(`market_snapshots_refresh(id, only_if_stale=True)`), and times until every window of each of
those markets has a snapshot as of the new step; a market's latency is its snapshots'
`computed_at` minus the round's start, and the worst market is the last one fresh. Target: all
six windows of 1,000 markets fresh within 60 s. A last round queues every market with no new
step: the cost of skipping them.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/liqsite REDIS_URL=redis://127.0.0.1:6379/3 \\
        .venv/bin/python benchmarks/pipeline_bench.py [--markets 100 1000] [--days 90] \\
        [--workers 2] [--rounds 2]

The database is <name>_bench (created, then dropped unless --keep); the Redis database in
REDIS_URL is flushed before and after, so give it one nothing else uses.
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
DAY_MS = 86_400_000
TEMPLATES = 8
TARGET_SECONDS = 60
TARGET_MARKETS = 1000
BAR_COLUMNS = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "taker_buy_volume",
    "open_interest",
    "long_short_ratio",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markets", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (1 each)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per count of markets")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    return parser.parse_args()


def dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def template_columns(steps: int, seed: int) -> dict[str, np.ndarray]:
    """A seeded market: a mean-reverting walk around slow trends, volume, taker share, OI with
    build-ups and flushes, and a long/short ratio."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    trend = 0.15 * np.sin(2 * np.pi * t / (steps + 1) + seed) + 0.04 * np.sin(t / 2600)
    shocks = rng.normal(0, 0.0016, steps)
    level, walk = 0.0, np.empty(steps)
    for i, shock in enumerate(shocks.tolist()):
        level += shock - 0.002 * level
        walk[i] = level
    close = 100.0 * np.exp(trend + walk)
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.abs(rng.normal(0, 0.0011, (2, steps)))
    volume = rng.gamma(2.0, 300.0, steps)
    build = rng.normal(0.0002, 0.0022, steps)
    flush = rng.random(steps) < 0.004
    build[flush] -= rng.uniform(0.03, 0.12, flush.sum())
    return {
        "open": open_,
        "high": np.maximum(open_, close) * (1 + wick[0]),
        "low": np.minimum(open_, close) * (1 - wick[1]),
        "close": close,
        "volume": volume,
        "taker_buy_volume": volume * np.clip(rng.normal(0.5, 0.12, steps), 0, 1),
        "open_interest": 60_000 * np.exp(np.cumsum(build) - 0.0002 * t),
        "long_short_ratio": np.exp(rng.normal(0.1, 0.2, steps)),
    }


def markets_create(count: int, days: int) -> tuple[list[int], int]:
    """`count` tracked markets whose bars end at the last whole step; every market follows one of
    TEMPLATES seeded series, scaled by its own price level."""
    from django.db import connection

    from maps.models import Exchange, Market

    exchange = Exchange.objects.create(slug="bench", name="Bench", ccxt_id="binanceusdm")
    steps = days * DAY_MS // STEP_MS
    end_ms = int(time.time() * 1000) // STEP_MS * STEP_MS - 2 * STEP_MS
    markets = Market.objects.bulk_create(
        Market(
            exchange=exchange,
            symbol=f"C{k:04d}USDT",
            slug=f"c{k:04d}usdt",
            base=f"C{k:04d}",
            quote="USDT",
            last_bar_at=dt(end_ms),
        )
        for k in range(count)
    )
    ids = [m.pk for m in markets]
    times = end_ms - STEP_MS * np.arange(steps - 1, -1, -1)
    rng = np.random.default_rng(2026)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE bench_template (k int, time timestamptz, "
            + ", ".join(f"{c} float8" for c in BAR_COLUMNS)
            + ")"
        )
        cursor.execute("CREATE TEMPORARY TABLE bench_market (id bigint, k int, scale float8)")
    connection.ensure_connection()
    raw = connection.connection.cursor()
    with raw.copy("COPY bench_template FROM STDIN") as copy:
        for k in range(TEMPLATES):
            columns = template_columns(steps, seed=k)
            for i, ms in enumerate(times.tolist()):
                copy.write_row((k, dt(ms), *(float(columns[c][i]) for c in BAR_COLUMNS)))
    with raw.copy("COPY bench_market FROM STDIN") as copy:
        for n, market_id in enumerate(ids):
            copy.write_row((market_id, n % TEMPLATES, float(np.exp(rng.uniform(-4, 6)))))
    prices = ", ".join(f"t.{c} * m.scale" for c in ("open", "high", "low", "close"))
    insert = (
        "INSERT INTO maps_bar (market_id, time, "
        + ", ".join(BAR_COLUMNS)
        + f") SELECT m.id, t.time, {prices}, t.volume / m.scale, "
        "t.taker_buy_volume / m.scale, t.open_interest / m.scale, t.long_short_ratio "
        "FROM bench_template t JOIN bench_market m ON m.k = t.k "
        "WHERE t.time >= %s AND t.time < %s ORDER BY t.time, m.id"
    )
    with connection.cursor() as cursor:
        # Loading is faster without the indexes: they are dropped, then built again once.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'maps_bar' "
            "AND indexname <> 'maps_bar_pkey'"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        for day in range(days):  # a day at a time: the sort stays in memory
            start = int(times[0]) + day * DAY_MS
            cursor.execute(insert, [dt(start), dt(start + DAY_MS)])
        for _, definition in indexes:
            cursor.execute(definition)
        # As autovacuum leaves a table whose rows are older than a few minutes: every page
        # all-visible, so reads of one market's bars are index-only scans.
        cursor.execute("VACUUM ANALYZE maps_bar")
    return ids, end_ms


def workers_start(count: int, env: dict[str, str], logs: Path) -> list[subprocess.Popen]:
    """`count` Celery workers of one process each, on the compute queue."""
    celery = str(Path(sys.executable).with_name("celery"))
    args = "-A liqsite worker -Q compute,followup -c 1 -O fair --without-gossip --without-mingle"
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
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def fresh_wait(ids: list[int], as_of: datetime, windows: int, timeout: float) -> float:
    """Seconds (from now) until every market of `ids` has `windows` snapshots as of `as_of`."""
    from django.db import connection

    from maps.models import MapSnapshot

    started = time.perf_counter()
    wanted = len(ids) * windows
    while time.perf_counter() - started < timeout:
        if MapSnapshot.objects.filter(market_id__in=ids, as_of=as_of).count() == wanted:
            return time.perf_counter() - started
        connection.close_if_unusable_or_obsolete()
        time.sleep(0.05)
    sys.exit(f"snapshots not fresh after {timeout} s")


def latencies(ids: list[int], since: datetime) -> np.ndarray:
    """Per market, seconds from `since` to its last snapshot's computation."""
    from django.db.models import Max

    from maps.models import MapSnapshot

    rows = (
        MapSnapshot.objects.filter(market_id__in=ids)
        .values("market_id")
        .annotate(done=Max("computed_at"))
        .values_list("done", flat=True)
    )
    return np.array([(done - since).total_seconds() for done in rows])


def bars_add(ids: list[int], new_ms: int) -> None:
    """One new bar per market at new_ms (the step that just closed), as ingestion writes it."""
    from django.db import connection

    from maps.models import Market

    columns = ", ".join(BAR_COLUMNS)
    with connection.cursor() as cursor:
        # Each market's last bar by its (market, time) index: milliseconds, where a DISTINCT ON
        # over the markets' rows sorts millions of them and holds a core for many seconds.
        cursor.execute(
            f"INSERT INTO maps_bar (market_id, time, {columns}) "
            "SELECT m.id, %s, b.close, b.close * 1.001, b.close * 0.999, b.close * 1.0004, "
            "b.volume, b.taker_buy_volume, b.open_interest * 1.001, b.long_short_ratio "
            "FROM unnest(%s::bigint[]) AS m(id) CROSS JOIN LATERAL (SELECT * FROM maps_bar "
            "WHERE market_id = m.id ORDER BY time DESC LIMIT 1) b",
            [dt(new_ms), ids],
        )
    Market.objects.filter(pk__in=ids).update(last_bar_at=dt(new_ms))


def round_run(ids: list[int], new_ms: int, windows: int) -> tuple[float, np.ndarray]:
    """Insert the new step's bars, queue the refreshes; seconds until all are fresh, and each
    market's latency."""
    from maps.tasks import market_snapshots_refresh

    started_at = datetime.now(tz=UTC)
    started = time.perf_counter()
    bars_add(ids, new_ms)
    for market_id in ids:
        market_snapshots_refresh.delay(market_id, only_if_stale=True)
    fresh_wait(ids, dt(new_ms), windows, timeout=max(600.0, 2.0 * len(ids)))
    return time.perf_counter() - started, latencies(ids, started_at)


def skip_round(ids: list[int]) -> float:
    """Queue every market with no new step; seconds until the workers have skipped them all."""
    from maps.tasks import market_snapshots_refresh

    started = time.perf_counter()
    results = [market_snapshots_refresh.delay(market_id, only_if_stale=True) for market_id in ids]
    stored = sum(result.get(timeout=600) for result in results)
    assert stored == 0, f"{stored} snapshots stored though no market had a new step"
    return time.perf_counter() - started


def database_sizes(markets: int, days: int) -> dict[str, float]:
    """Bytes per market: bars (table and index) scaled to 90 days, the six snapshots as stored
    (live rows with their compressed arrays) and as the table holds them on disk (with the dead
    versions that autovacuum has not reclaimed yet), and bytes per liquidation event row."""
    from django.db import connection

    def one(sql: str, params: list | None = None) -> float:
        with connection.cursor() as cursor:
            cursor.execute(sql, params or [])
            return float(cursor.fetchone()[0] or 0)

    bars = one("SELECT pg_total_relation_size('maps_bar')") / markets * 90 / days
    snapshots_live = one("SELECT sum(pg_column_size(s.*)) FROM maps_mapsnapshot s") / markets
    snapshots_disk = one("SELECT pg_total_relation_size('maps_mapsnapshot')") / markets
    events = events_bytes_per_row()
    return {
        "bars": bars,
        "snapshots_live": snapshots_live,
        "snapshots_disk": snapshots_disk,
        "event_row": events,
    }


def events_bytes_per_row(count: int = 200_000) -> float:
    """Insert `count` liquidation events on one market and measure the table's bytes per row."""
    from django.db import connection

    from maps.models import Market

    market_id = Market.objects.order_by("pk").values_list("pk", flat=True).first()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO maps_liquidationevent (market_id, time, side, price, quantity, "
            "notional_usd, source) SELECT %s, now() - make_interval(secs => g * 7.0), "
            "CASE WHEN g %% 2 = 0 THEN 'long' ELSE 'short' END, 100 + g %% 997, 1 + g %% 13, "
            "(100 + g %% 997) * (1 + g %% 13), 'stream' FROM generate_series(1, %s) g",
            [market_id, count],
        )
        cursor.execute("SELECT pg_total_relation_size('maps_liquidationevent')")
        size = cursor.fetchone()[0]
        cursor.execute("DELETE FROM maps_liquidationevent")
    return size / count


def one_market_comparison(market_id: int, repeat: int = 3) -> dict[str, float]:
    """Best of `repeat`, in this process: the six windows from one pass (run_windows) against six
    engine.run, and the whole refresh (load, one pass, serialise, store in one transaction)
    against the previous way (six runs, six stores of one transaction each)."""
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from maps import engine
    from maps.models import MapSnapshot, Market
    from maps.services import (
        _npz_bytes,
        database_compresses_snapshots,
        market_bars_for_windows,
        market_snapshots_compute,
        snapshot_fields,
        snapshots_store,
    )

    market = Market.objects.get(pk=market_id)
    windows = list(settings.LIQSITE_WINDOWS)
    params = {w: market.engine_params(w, max_columns=settings.LIQSITE_MAX_COLUMNS) for w in windows}
    timings: dict[str, list[float]] = {}

    def timed(name: str, function, *args):
        started = time.perf_counter()
        value = function(*args)
        timings.setdefault(name, []).append(time.perf_counter() - started)
        return value

    def six_runs(bars) -> list:
        return [engine.run(bars, p) for p in params.values()]

    compress = not database_compresses_snapshots()  # as snapshots_store writes them

    def serialise(computed) -> list:
        return [_npz_bytes(r, compress) for r in computed.results.values()]

    def store(computed) -> None:
        with transaction.atomic():
            snapshots_store(market=market, results=computed.results, now=timezone.now())

    def previous() -> None:
        loaded = market_bars_for_windows(market=market, windows=windows)
        for window, p in params.items():
            result = engine.run(loaded, p)
            with transaction.atomic():
                MapSnapshot.objects.update_or_create(
                    market=market, window=window, defaults=snapshot_fields(result)
                )

    for _ in range(repeat):
        bars = timed("load", lambda: market_bars_for_windows(market=market, windows=windows))
        timed("six runs", six_runs, bars)
        computed = timed("one pass", engine.run_windows, bars, params)
        timed("serialise", serialise, computed)
        timed("store", store, computed)
        timed("refresh, one pass", lambda: market_snapshots_compute(market=market))
        timed("refresh, six runs", previous)
    return {name: min(values) for name, values in timings.items()}


def scale_report(count: int, figures: list[float], late: list[np.ndarray]) -> None:
    worst = max(figures)
    per_market = np.concatenate(late)
    verdict = ""
    if count == TARGET_MARKETS:
        within = "within" if worst <= TARGET_SECONDS else "OVER"
        verdict = f" ({within} the {TARGET_SECONDS} s target)"
    print(
        f"{count} markets: new step -> all {count} x 6 snapshots fresh in "
        f"best {min(figures):.1f} s, worst {worst:.1f} s{verdict}"
    )
    print(
        f"  per market (new step -> its 6 snapshots): median {np.median(per_market):.1f} s, "
        f"95% {np.percentile(per_market, 95):.1f} s, worst market {per_market.max():.1f} s; "
        f"throughput {count / np.median(figures):.1f} markets/s"
    )


def main() -> int:
    args = parse_args()
    counts = sorted(set(args.markets))
    total = counts[-1]
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
        ids, end_ms = markets_create(total, args.days)
        windows = len(settings.LIQSITE_WINDOWS)
        steps = args.days * DAY_MS // STEP_MS
        print(
            f"{total} markets x {args.days} days of 5-minute bars ({steps} each, written step by "
            f"step across markets) stored in {time.perf_counter() - started:.0f} s"
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
        fresh_wait(ids, dt(end_ms), windows, timeout=max(600.0, 3.0 * total))
        cold = time.perf_counter() - started
        print(
            f"first computation of all {total} markets (cold): {cold:.1f} s on "
            f"{args.workers} worker processes ({total / cold:.1f} markets/s)"
        )
        step = 0
        for count in counts:
            figures, late = [], []
            for _ in range(args.rounds):
                step += 1
                elapsed, latency = round_run(ids[:count], end_ms + step * STEP_MS, windows)
                figures.append(elapsed)
                late.append(latency)
            scale_report(count, figures, late)
        skipped = skip_round(ids)
        print(f"a minute with no new step: {total} refreshes queued and skipped in {skipped:.1f} s")
        workers_stop(processes)
        processes = []
        sizes = database_sizes(total, args.days)
        mb = 1024 * 1024
        print(
            f"database per market per 90 days: bars {sizes['bars'] / mb:.2f} MB (table and "
            f"index), snapshots {sizes['snapshots_live'] / mb:.2f} MB live "
            f"({sizes['snapshots_disk'] / mb:.2f} MB on disk with versions not yet vacuumed); "
            f"liquidation events {sizes['event_row']:.0f} bytes each "
            f"({sizes['event_row'] * 1000 * 90 / mb:.1f} MB per 1,000 events a day)"
        )
        figures = one_market_comparison(ids[0])
        print(f"one market, {args.days} days, all six windows, in this process (best of 3):")
        print(
            f"  engine: one pass (run_windows) {figures['one pass'] * 1000:.0f} ms, "
            f"six separate runs {figures['six runs'] * 1000:.0f} ms"
        )
        print(
            f"  refresh: one pass, one transaction {figures['refresh, one pass'] * 1000:.0f} ms "
            f"(load {figures['load'] * 1000:.0f}, engine {figures['one pass'] * 1000:.0f}, "
            f"serialise {figures['serialise'] * 1000:.0f}, serialise and store "
            f"{figures['store'] * 1000:.0f}); "
            f"six runs, six transactions {figures['refresh, six runs'] * 1000:.0f} ms "
            "(deflated here, each an update_or_create through Django's client-side binding)"
        )
    finally:
        workers_stop(processes)
        broker.flushdb()
        connections.close_all()
        if not args.keep:
            database_recreate(url, name, drop_only=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
