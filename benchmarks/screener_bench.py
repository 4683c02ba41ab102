"""Screener benchmark: sorting and filtering 100 markets, server side.

A throwaway PostgreSQL database (<name>_screener) gets 100 markets on 3 exchanges, each with a
stored 7d map snapshot (clusters and proximity, no arrays) and a stored positioning, as the
pipeline leaves them: nothing is computed per request, so this times what a visitor waits for.

1. the pure function: `screener_apply` (filter, sort, tones) on the 100 rows, every sort column
   in both directions with and without filters, both colour modes. Median and worst.
2. the server: GET /markets/table/ (the htmx fragment the sort links and filters fetch) and
   GET /api/v1/screener/ through Django's test client, cycling through sorts and filters. Median
   and 90th percentile. Target: under 50 ms.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/liqsite \\
        .venv/bin/python benchmarks/screener_bench.py [--markets 100] [--requests 60]
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from support import bench_database_url, database_recreate

ROOT = Path(__file__).resolve().parent.parent
SORTS = ["price", "change", "long_distance", "whale_long", "delta", "oi_z", "funding", "cascade"]
FILTERS = [{}, {"magnet": "long"}, {"min_whale": "50"}, {"min_delta": "5", "min_oi_z": "1"}]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markets", type=int, default=100)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    return parser.parse_args()


def markets_store(count: int) -> None:
    """`count` markets, each with a stored 7d snapshot and positioning (synthetic figures)."""
    from django.utils import timezone

    from maps.models import Exchange, MapSnapshot, Market, PositioningSnapshot

    rng = np.random.default_rng(12)
    now = timezone.now()
    venues = [
        Exchange.objects.create(slug=slug, name=slug.title(), ccxt_id=slug)
        for slug in ("binance", "bybit", "okx")
    ]
    for k in range(count):
        base = f"C{k:03d}"
        market = Market.objects.create(
            exchange=venues[k % 3],
            symbol=f"{base}USDT",
            slug=f"{base.lower()}usdt",
            base=base,
            quote="USDT",
            grade="ABCD"[k % 4],
            last_bar_at=now,
            maps_as_of=now,
        )
        close = float(rng.uniform(0.1, 60_000))
        below = float(-rng.uniform(0.3, 8))
        above = float(rng.uniform(0.3, 8))
        proximity = {
            "last_close": close,
            "magnet": "long" if rng.random() < 0.5 else "short",
            "long": _cluster("long", close, below, rng),
            "short": _cluster("short", close, above, rng),
        }
        MapSnapshot.objects.create(
            market=market,
            window="7d",
            as_of=now,
            engine_version="bench",
            params={},
            last_close=close,
            bin_start=close * 0.5,
            bin_width=close * 0.001,
            bin_count=1000,
            data=b"",
            clusters=[proximity["long"], proximity["short"]],
            proximity=proximity,
            report={"totals": {"long": {"active": 1e7}, "short": {"active": 1e7}}},
        )
        whale, retail = float(rng.uniform(35, 65)), float(rng.uniform(35, 70))
        PositioningSnapshot.objects.create(
            market=market,
            as_of=now,
            start=now,
            version="bench",
            positioning={
                "whale_long_pct": whale,
                "retail_long_pct": retail,
                "delta": whale - retail,
            },
            latest_z={"oi_change_1h": float(rng.normal(0, 1.5)), "delta": float(rng.normal())},
            figures={
                "price": close,
                "change_24h_pct": float(rng.normal(0, 3)),
                "change_24h_z": float(rng.normal()),
                "whale_long_z": float(rng.normal()),
                "funding_rate": float(rng.normal(1e-4, 1e-4)),
                "funding_z": float(rng.normal()),
                "last_cascade": {
                    "start": 1_700_000_000_000 + k,
                    "side": "long",
                    "notional_usd": 1e6,
                },
            },
            data=b"",
        )


def _cluster(side: str, close: float, distance: float, rng) -> dict:
    price = close * (1 + distance / 100)
    return {
        "side": side,
        "price_low": price * 0.998,
        "price_high": price * 1.002,
        "peak_price": price,
        "notional_usd": float(rng.uniform(1e5, 1e9)),
        "share": 0.2,
        "distance_pct": distance,
    }


def pure_bench() -> None:
    from maps import pages
    from maps.whales.pages import ScreenerQuery
    from maps.whales.screener import Filters, screener_apply

    rows = pages.listing_rows(window="7d")
    screened_rows = pages.screener_rows(rows, ScreenerQuery())
    screened = [row.screen for row in screened_rows]
    times = []
    combos = itertools.product(
        SORTS, (False, True), (Filters(), Filters(magnet="long", min_whale=45))
    )
    for (sort, descending, filters), colour in itertools.product(combos, ("own", "all")):
        started = time.perf_counter()
        screener_apply(screened, sort=sort, descending=descending, filters=filters, colour=colour)
        times.append(time.perf_counter() - started)
    print(
        f"screener_apply on {len(screened)} rows, {len(times)} sorts/filters/colours: median "
        f"{statistics.median(times) * 1000:.2f} ms, worst {max(times) * 1000:.2f} ms"
    )


def server_bench(requests: int) -> None:
    from django.test import Client
    from django.urls import reverse

    client = Client(HTTP_HOST="127.0.0.1")
    queries = [
        {"window": "7d", "sort": f"{'-' if k % 2 else ''}{sort}", **flt}
        for k, (sort, flt) in enumerate(itertools.product(SORTS, FILTERS))
    ]
    for url, label in (
        (reverse("maps:markets_table"), "table fragment"),
        (reverse("api:screener"), "API"),
    ):
        client.get(url, queries[0])  # warm imports and templates
        times, sizes = [], []
        for k in range(requests):
            query = queries[k % len(queries)]
            started = time.perf_counter()
            response = client.get(url, query, HTTP_HX_REQUEST="true")
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
            sizes.append(len(response.content))
        median = statistics.median(times) * 1000
        p90 = float(np.percentile(times, 90)) * 1000
        verdict = "within" if median < 50 else "OVER"
        print(
            f"{label} ({url}), {requests} requests over {len(queries)} sorts and filters: median "
            f"{median:.1f} ms, p90 {p90:.1f} ms ({verdict} the 50 ms target), "
            f"{statistics.median(sizes) / 1000:.0f} kB"
        )


def main() -> int:
    args = parse_args()
    url, name = bench_database_url("screener", needs_redis=False)
    database_recreate(url, name)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liqsite.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    try:
        call_command("migrate", verbosity=0, stdout=io.StringIO())
        started = time.perf_counter()
        markets_store(args.markets)
        took = time.perf_counter() - started
        print(f"{args.markets} markets with stored maps and positioning in {took:.1f} s")
        pure_bench()
        server_bench(args.requests)
    finally:
        connections.close_all()
        if not args.keep:
            database_recreate(url, name, drop_only=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
