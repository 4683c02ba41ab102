"""Signals benchmark: the 30-day backtest of one market on one core, a replayed pair page
uncached, the stored signals' refresh, and the cascade detector's recall on simulated shocks.

A throwaway PostgreSQL database (<name>_signals) gets the demo markets with 44 days of history
(`seed_demo --days 44 --no-compute`: a 30-day backtest reads hourly 7d maps, each needing the week
before it, and a week of baseline before that), and binance/btcusdt's maps. Everything runs in
this process, pinned to one core.

1. backtest: `backtest_compute` for binance/btcusdt: load the bars and events, run the model once,
   build the 720 hourly maps, find cascades and sweeps, compute every rate, its chance and its
   bootstrap interval. Best and median of --runs. Target: under 10 s.
2. replayed page: GET /binance/btcusdt/?window=7d&at=<hour> through Django's test client (server
   time, no network), a different hour each time with the cache emptied first, so the engine runs
   for that moment. Median and 90th percentile of --pages. Target: under 300 ms. The replay's
   chart data and signals fragment, computed on demand after it, are timed for information.
3. signals refresh: the stored signals of binance/btcusdt over 90 days, in full, then extended
   after one new step.
4. recall: on --seeds simulated markets with scheduled shocks (tests/shock_market.py), from real
   events and from the model's estimates: the share of the five largest true episodes found, and
   cascades per true episode of that size (at most 3 is the target).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/liqsite REDIS_URL=redis://127.0.0.1:6379/3 \\
        .venv/bin/python benchmarks/signals_bench.py [--runs 3] [--pages 12] [--seeds 20]

The Redis database in REDIS_URL is flushed before and after, so give it one nothing else uses.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402
from support import bench_database_url, database_recreate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="backtest runs")
    parser.add_argument("--pages", type=int, default=12, help="replayed pages")
    parser.add_argument("--seeds", type=int, default=20, help="simulated markets for the recall")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    return parser.parse_args()


def one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity)"


def backtest_bench(market, runs: int) -> None:
    from maps.market_signals import services

    as_of = services.market_last_bar_ms(market=market)
    times, found = [], None
    for _ in range(runs):
        started = time.perf_counter()
        found = services.backtest_compute(market=market, as_of_ms=as_of)
        times.append(time.perf_counter() - started)
    best, median = min(times), statistics.median(times)
    verdict = "within" if median < 10 else "OVER"
    days = (found["period_end"] - found["period_start"]) / DAY_MS
    print(
        f"backtest, {days:.1f} days, {found['moments']} hourly maps, one market: best "
        f"{best:.2f} s, median {median:.2f} s ({verdict} the 10 s target)"
    )
    magnet = found["magnet"]
    print(
        f"  larger cluster first: {magnet['cases']} cases, hit {magnet['hit_rate']:.3f} vs chance "
        f"{magnet['chance_rate']:.3f}, edge {magnet['edge']:+.3f} "
        f"[{magnet['edge_low']:+.3f}, {magnet['edge_high']:+.3f}]"
    )


def replay_bench(market, pages: int) -> None:
    from django.core.cache import cache
    from django.test import Client
    from django.urls import reverse

    from maps.market_signals.replay import at_text
    from maps.models import datetime_to_ms

    client = Client(HTTP_HOST="127.0.0.1")
    args = [market.exchange.slug, market.slug]
    last = datetime_to_ms(market.bars.latest("time").time)
    url = market.get_absolute_url()
    client.get(url)  # warm imports and templates
    page_times, chart_times, signal_times = [], [], []
    for k in range(pages):
        at = (last - 2 * DAY_MS - k * 7 * HOUR_MS) // HOUR_MS * HOUR_MS
        cache.clear()
        started = time.perf_counter()
        response = client.get(url, {"window": "7d", "at": at_text(at)})
        page_times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        query = {"window": "7d", "at": at_text(at)}
        started = time.perf_counter()
        assert client.get(reverse("maps:pair_charts", args=args), query).status_code == 200
        chart_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert client.get(reverse("maps:pair_signals", args=args), query).status_code == 200
        signal_times.append(time.perf_counter() - started)
    median = statistics.median(page_times) * 1000
    p90 = float(np.percentile(page_times, 90)) * 1000
    verdict = "within" if median < 300 else "OVER"
    print(
        f"replayed pair page (7d, uncached), {pages} moments: median {median:.0f} ms, p90 "
        f"{p90:.0f} ms ({verdict} the 300 ms target)"
    )
    print(
        f"  then its chart data: median {statistics.median(chart_times) * 1000:.0f} ms; its "
        f"signals fragment: median {statistics.median(signal_times) * 1000:.0f} ms"
    )


def refresh_bench(market) -> None:
    from maps.market_signals import services
    from maps.models import Bar

    started = time.perf_counter()
    stored = services.market_signals_refresh(market=market, full=True)
    full = time.perf_counter() - started
    last = Bar.objects.filter(market=market).latest("time")
    last.pk = None
    last.time = last.time + (
        last.time - Bar.objects.filter(market=market).order_by("-time")[1].time
    )
    last.save()
    started = time.perf_counter()
    services.market_signals_refresh(market=market)
    step = time.perf_counter() - started
    print(
        f"stored signals over 90 days ({len(stored.cascades)} cascades, {len(stored.sweeps)} "
        f"sweeps): full {full:.2f} s, after one new step {step:.2f} s"
    )


def recall_bench(seeds: int) -> None:
    from maps.analytics import signals
    from maps.engine.types import Params
    from tests.shock_market import found_by, shock_market, shocks_scheduled

    end = 1_800_000_000_000 // 300_000 * 300_000
    figures: dict[str, list[tuple[float, float]]] = {"real": [], "estimated": []}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        shocks = shocks_scheduled(rng, 30, int(rng.integers(6, 11)))
        sim = shock_market(seed=seed, days=30, end_ms=end, shocks=shocks, coin_index=seed % 3)
        real = tuple(
            np.bincount(
                np.searchsorted(sim.bars.ts, sim.events.time[mask], side="right") - 1,
                weights=(sim.events.price * sim.events.quantity)[mask],
                minlength=len(sim.bars),
            )
            for mask in (sim.events.is_long, ~sim.events.is_long)
        )
        largest = sim.episodes[:5]
        size = [e for e in sim.episodes if e.notional >= largest[-1].notional]
        for source, series in (("real", real), ("estimated", None)):
            study = signals.study_build(sim.bars, Params(), series)
            cascades, _ = signals.study_cascades(study, int(sim.bars.ts[0]))
            recall = sum(found_by(e, cascades) for e in largest) / len(largest)
            figures[source].append((recall, len(cascades) / len(size)))
    for source, rows in figures.items():
        recalls, floods = np.array(rows).T
        print(
            f"recall on {seeds} simulated markets, {source} liquidations: five largest episodes "
            f"found {recalls.mean():.2f} on average (worst {recalls.min():.2f}); cascades per "
            f"true episode of that size {floods.mean():.2f} (worst {floods.max():.2f})"
        )


def main() -> int:
    args = parse_args()
    url, name = bench_database_url("signals")
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
    print(one_core())
    try:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        call_command("seed_demo", days=44, no_compute=True, stdout=io.StringIO())
        from maps.models import Market
        from maps.services import market_snapshots_compute

        market = Market.objects.select_related("exchange").get(
            exchange__slug="binance", slug="btcusdt"
        )
        market_snapshots_compute(market=market, windows=["7d"])
        print(f"demo markets, 44 days, seeded in {time.perf_counter() - started:.1f} s")
        backtest_bench(market, args.runs)
        replay_bench(market, args.pages)
        refresh_bench(market)
        recall_bench(args.seeds)
    finally:
        broker.flushdb()
        connections.close_all()
        if not args.keep:
            database_recreate(url, name, drop_only=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
