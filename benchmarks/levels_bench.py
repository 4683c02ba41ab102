"""Levels and order books benchmark: what a window's levels cost, what a minute's book costs to take
and keep, and how much a market's books take a day.

1. maps/analytics on synthetic 5-minute bars (140 days: the 90-day window, its 7-day floor and the
   RSI's 50-day warm-up): per window, the 1h and 4h bars, ATRs, support/resistance, RSI and
   divergences, the volume profile and the confluence of 20 clusters; then a day of one-minute
   books: redrawn on one grid and their walls followed.
2. In a throwaway PostgreSQL database (<name>_levels) holding one demo market (30 days of bars, its
   maps, 7 days of simulated books): `levels_for` per window end to end (bars and books read,
   computed, stored) and the task that does all six after a recompute, the `levels` and
   `orderbook` API documents (uncached), and the snapshot task on each exchange's recorded book
   (fetch through ccxt, check, bin, upsert); then one day of books written one a minute as the
   task writes them, into an emptied table, and its size on disk (heap, TOAST and indexes, after
   VACUUM FULL: the steady size of a pruned rolling window) per market per day.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/liqsite_i13 \\
        .venv/bin/python benchmarks/levels_bench.py [--repeat 20] [--skip-db]

Targets: a window's levels in well under a second; a book taken and stored in a few ms (plus the
exchange's answer time); under 2 MB of books per market per day.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from engine_bench import synthetic_bars  # noqa: E402
from support import bench_database_url, database_recreate  # noqa: E402

from maps.analytics import levels as lv  # noqa: E402
from maps.analytics import orderbook as ob  # noqa: E402

DAY = 86_400_000
WINDOWS = {
    "12h": DAY // 2,
    "24h": DAY,
    "3d": 3 * DAY,
    "7d": 7 * DAY,
    "30d": 30 * DAY,
    "90d": 90 * DAY,
}
RECORDINGS = ROOT / "tests" / "fixtures" / "exchanges"


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) wall time in ms over `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return min(times), statistics.median(times)


def line(name: str, best: float, median: float) -> None:
    print(f"  {name:<52} best {best:9.2f} ms   median {median:9.2f} ms")


def window_levels(bars, window_ms: int) -> list[dict]:
    """Everything maps.levels.services computes for one window, on arrays."""
    end = int(bars.ts[-1]) + 300_000
    window_start = end - window_ms
    lookback = min(window_start, end - 7 * DAY)
    keep = bars.ts >= lookback - 300 * 4 * 3_600_000
    typical = (bars.high + bars.low + bars.close) / 3
    frames = {
        tf: lv.candles(
            ts=bars.ts[keep],
            open=bars.open[keep],
            high=bars.high[keep],
            low=bars.low[keep],
            close=bars.close[keep],
            volume=(bars.volume * typical)[keep],
            period_ms=period,
        )
        for tf, period in lv.TIMEFRAMES.items()
    }
    recent = {}
    for tf, f in frames.items():
        r = f.ts >= lookback
        recent[tf] = lv.Candles(
            f.ts[r], f.open[r], f.high[r], f.low[r], f.close[r], f.volume[r], f.period_ms
        )
    close = float(bars.close[-1])
    atr = lv.atr(recent["1h"])
    levels = lv.support_resistance(
        frames=recent, last_close=close, tolerance=lv.level_tolerance(atr, close)
    )
    rsi = {tf: lv.wilder_rsi(f.close) for tf, f in frames.items()}
    divergences = [d for tf, f in frames.items() for d in lv.divergences(f, rsi[tf], timeframe=tf)]
    inside = bars.ts >= window_start
    edges = lv.profile_edges(
        grid_start=close,
        grid_width=close * 1e-3,
        low=float(bars.low[inside].min()),
        high=float(bars.high[inside].max()),
        max_bins=240,
    )
    profile = lv.volume_profile(
        high=bars.high[inside],
        low=bars.low[inside],
        volume_usd=(bars.volume * typical)[inside],
        edges=edges,
    )
    context = lv.Context(
        levels=levels,
        poc=profile.poc,
        value_low=profile.value_area["low"],
        value_high=profile.value_area["high"],
        nodes=profile.nodes,
        walls=[],
        rsi={tf: float(v[-1]) for tf, v in rsi.items()},
        divergences=divergences,
        tolerance=lv.confluence_tolerance(atr, close),
    )
    clusters = [
        {
            "side": "long" if k % 2 else "short",
            "price_low": close * (1 + s),
            "price_high": close * (1 + s + 0.002),
        }
        for k, s in enumerate(np.linspace(-0.08, 0.08, 20))
    ]
    return [lv.confluence(c, context) for c in clusters]


def numbers(repeat: int) -> None:
    bars = synthetic_bars(140 * 288)
    print(f"numbers ({len(bars.ts)} synthetic 5-minute steps)")
    for window, span in WINDOWS.items():
        line(
            f"levels of one window: {window}", *timed(lambda s=span: window_levels(bars, s), repeat)
        )
    rng = np.random.default_rng(3)
    minutes, count = 1440, 101
    depth = rng.lognormal(13, 0.4, (minutes, count))
    depth[rng.random((minutes, count)) < 0.002] *= 12
    starts = 60_000.0 + rng.integers(-40, 40, minutes) * 60.0
    widths = np.full(minutes, 60.0)
    half = count // 2
    bids, asks = depth.copy(), depth.copy()
    bids[:, half:] = 0
    asks[:, :half] = 0
    edges = 60_000.0 + 60.0 * np.arange(-100, 101 + 100)

    def walls():
        history = ob.BookHistory(
            np.arange(minutes) * 60_000,
            edges,
            ob.rebin(bids, starts - 50 * 60.0, widths, edges),
            ob.rebin(asks, starts - 50 * 60.0, widths, edges),
            np.full(minutes, 60_000.0),
        )
        return ob.book_walls(history)

    line(
        f"a day of books ({minutes} x {count} bins): redraw + walls",
        *timed(walls, max(repeat // 4, 3)),
    )


def end_to_end(repeat: int) -> None:
    url, name = bench_database_url("levels", needs_redis=False)
    database_recreate(url, name)
    os.environ["DATABASE_URL"] = url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liqsite.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection, connections
    from django.test import Client

    from maps import connectors
    from maps.demo import demo_end_ms, demo_seed
    from maps.levels import services, tasks
    from maps.levels.demo import demo_books_refill
    from maps.models import Exchange, LevelsSnapshot, Market, OrderBookSnapshot
    from maps.selectors import market_bars_arrays, market_snapshot_light
    from maps.services import market_snapshots_compute

    try:
        call_command("migrate", verbosity=0)
        end = demo_end_ms(int(time.time() * 1000))
        started = time.perf_counter()
        demo_seed(seed=20240501, days=30, end_ms=end)
        Market.objects.exclude(exchange__slug="binance", slug="btcusdt").delete()
        market = Market.objects.select_related("exchange").get(
            exchange__slug="binance", slug="btcusdt"
        )
        market_snapshots_compute(market=market)
        seeded = time.perf_counter() - started
        print(f"end to end (Binance BTCUSDT demo: 30 days of bars, 7 of books, in {seeded:.1f} s)")
        bars = market_bars_arrays(market_id=market.pk)
        started = time.perf_counter()
        written = demo_books_refill(market=market, bars=bars, seed=1, days=7)
        print(f"  demo books: {written} simulated in {time.perf_counter() - started:.1f} s")
        client = Client(HTTP_HOST="127.0.0.1")
        for window in settings.LIQSITE_WINDOWS:
            snapshot = market_snapshot_light(market=market, window=window)

            def compute(snapshot=snapshot):
                LevelsSnapshot.objects.filter(market=market).delete()
                return services.levels_for(snapshot=snapshot)

            line(f"levels_for {window} (read, compute, store)", *timed(compute, repeat))

        def every_window():
            LevelsSnapshot.objects.filter(market=market).delete()
            return tasks.market_levels_compute(market.pk, list(settings.LIQSITE_WINDOWS))

        line("market_levels_compute, all 6 windows (the task)", *timed(every_window, repeat))
        for path in ("levels?window=7d", "orderbook?window=24h", "orderbook?window=7d"):

            def get(path=path):
                cache.clear()
                response = client.get(f"/api/v1/binance/btcusdt/{path}")
                assert response.status_code == 200, response.content[:200]

            line(f"GET .../{path} (uncached)", *timed(get, max(repeat // 2, 3)))
        snapshot_task(market, repeat, connectors)
        storage(market, bars, connection, OrderBookSnapshot)
        Exchange.objects.all().delete()
    finally:
        connections.close_all()
        database_recreate(url, name, drop_only=True)


def snapshot_task(market, repeat: int, connectors) -> None:
    """The minute's work on each recorded book: fetch through ccxt, check, bin, upsert."""
    from maps.levels import services
    from maps.models import Exchange, Market

    symbols = {
        "binanceusdm": ("binance", "BTCUSDT"),
        "bybit": ("bybit", "BTCUSDT"),
        "okx": ("okx", "BTC-USDT-SWAP"),
    }
    for ccxt_id, (slug, symbol) in symbols.items():
        exchange, _ = Exchange.objects.get_or_create(
            slug=f"rec-{slug}", defaults={"name": slug, "ccxt_id": ccxt_id}
        )
        recorded, _ = Market.objects.get_or_create(
            exchange=exchange,
            symbol=symbol,
            defaults={"slug": "btcusdt", "base": "BTC", "quote": "USDT"},
        )
        connectors._cache[ccxt_id] = connectors.connector_new(ccxt_id, replay=RECORDINGS)
        line(
            f"book snapshot {slug} (recorded answer, parse, bin, upsert)",
            *timed(lambda m=recorded: services.market_orderbook_snapshot(market=m), repeat),
        )


def storage(market, bars, connection, model) -> None:
    """One day of books written one a minute as the task writes them, then the table's size."""
    from maps.analytics.orderbook import book_checked
    from maps.levels import services

    model.objects.all().delete()
    rng = np.random.default_rng(9)
    table = model._meta.db_table
    end = int(bars.ts[-1]) + 300_000
    started = time.perf_counter()
    times = []
    for minute in range(1440):
        t = end - (1440 - minute) * 60_000
        mid = float(bars.close[np.searchsorted(bars.ts, t) - 1])
        offsets = np.cumsum(rng.exponential(mid * 5e-5, 1000))
        below = np.floor((mid - 0.05 - offsets) * 10) / 10
        above = np.ceil((mid + 0.05 + offsets) * 10) / 10
        bids = np.column_stack([below, rng.lognormal(-1, 1, 1000)])
        asks = np.column_stack([above, rng.lognormal(-1, 1, 1000)])
        bids = bids[np.unique(bids[:, 0], return_index=True)[1]]
        asks = asks[np.unique(asks[:, 0], return_index=True)[1]]
        book = book_checked(bids, asks, time_ms=t)
        one = time.perf_counter()
        services.orderbook_store(market=market, book=book)
        times.append((time.perf_counter() - one) * 1000)
    total = time.perf_counter() - started
    print(
        f"  one day of books, one a minute (1000 levels a side): {total:.1f} s in all; "
        f"store best {min(times):.2f} ms, median {statistics.median(times):.2f} ms"
    )
    with connection.cursor() as cursor:
        cursor.execute(f'VACUUM (FULL, ANALYZE) "{table}"')
        cursor.execute(
            "SELECT pg_relation_size(%s), pg_total_relation_size(%s) - pg_relation_size(%s) "
            "- pg_indexes_size(%s), pg_indexes_size(%s), pg_total_relation_size(%s), "
            "(SELECT count(*) FROM "
            + f'"{table}"'
            + "), (SELECT avg(octet_length(depth)) FROM "
            + f'"{table}"'
            + ")",
            [table] * 6,
        )
        heap, toast, indexes, total_size, rows, depth = cursor.fetchone()
    print(
        f"  storage per market per day: {total_size / 1e6:.2f} MB ({rows} books: heap "
        f"{heap / 1e6:.2f} MB, TOAST {toast / 1e6:.2f} MB, indexes {indexes / 1e6:.2f} MB; "
        f"depth {float(depth):.0f} bytes a book)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--skip-db", action="store_true", help="only the numbers")
    args = parser.parse_args()
    np.seterr(all="ignore")
    numbers(args.repeat)
    if not args.skip_db:
        end_to_end(max(args.repeat // 2, 5))


if __name__ == "__main__":
    main()
