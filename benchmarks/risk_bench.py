"""Position planner benchmark: the numbers alone, then a position and a what-if end to end.

1. maps/analytics/risk.py on an engine result of 30 days of synthetic 5-minute steps: a
   liquidation price with Binance's 10 BTCUSDT brackets, the max safe leverage (every whole
   leverage at once), reading the curves at a price (both sides and per tier), the cascade, the
   impact fit over the window, the hourly ATR.
2. In a throwaway PostgreSQL database (<name>_risk) holding the demo markets (seed_demo, 30 days)
   and the recorded bracket tables: `position_plan` and `what_if` as the pages call them (risk
   profile already fitted, and once with the fit), and the two API documents through Django's
   test client (routing, forms, JSON), best and median of many calls.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/liqsite_i14 \\
        .venv/bin/python benchmarks/risk_bench.py [--repeat 200] [--skip-db]

Target: a position or a what-if answers in well under 50 ms (it reads one snapshot).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
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

from maps.analytics import risk  # noqa: E402
from maps.engine import Params, run  # noqa: E402
from maps.risk.brackets import binance_rows, brackets_from_rows  # noqa: E402


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) wall time in ms over `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return min(times), statistics.median(times)


def line(name: str, best: float, median: float) -> None:
    print(f"  {name:<46} best {best:8.3f} ms   median {median:8.3f} ms")


def numbers(repeat: int) -> None:
    bars = synthetic_bars(30 * 288)
    result = run(bars, Params(window_ms=30 * 86_400_000, max_columns=500))
    table = brackets_from_rows(
        binance_rows(json.loads((ROOT / "maps/risk/tables/binance.json").read_text()), "BTCUSDT")
    )
    totals = result.report["totals"]
    beyond = (totals["long"]["beyond_close"], totals["short"]["beyond_close"])
    close = result.last_close
    print(f"numbers (30 days, {len(result.edges) - 1} bins, {len(table)} brackets)")

    def curves() -> risk.Curves:
        return risk.Curves.from_map(
            edges=result.edges,
            cum_long=result.cum_long,
            cum_short=result.cum_short,
            map_long=result.map_long,
            map_short=result.map_short,
            last_close=close,
            beyond=beyond,
        )

    built = curves()
    price = close * 0.97
    n = len(result.liq_times)
    long = result.liq_long.reshape(n, -1).sum(1)
    short = result.liq_short.reshape(n, -1).sum(1)
    closes = bars.close[-n:]
    previous = bars.close[-n - 1 : -1]
    impact = risk.impact_fit(close=closes, previous=previous, long_usd=long, short_usd=short)
    cases = {
        "liquidation price (Binance brackets)": lambda: risk.liquidation_price(
            side="long", entry=close, quantity=3.0, margin=3 * close / 20, brackets=table
        ),
        "max safe leverage (1x..125x)": lambda: risk.max_safe_leverage(
            side="long", entry=close, quantity=0.5, stop=close * 0.97, brackets=table
        ),
        "curves from the map": curves,
        "what-if read (both sides, per tier)": lambda: (
            built.long_to(price),
            built.short_to(price),
            built.tiers_to(price),
        ),
        "cascade to its fixed point": lambda: risk.cascade(
            price=price, curves=built, impact=impact
        ),
        f"impact fit ({n} steps)": lambda: risk.impact_fit(
            close=closes, previous=previous, long_usd=long, short_usd=short
        ),
        "hourly ATR (15 hours)": lambda: risk.hourly_atr(
            ts=bars.ts[-180:], high=bars.high[-180:], low=bars.low[-180:], close=bars.close[-180:]
        ),
    }
    for name, fn in cases.items():
        line(name, *timed(fn, repeat))
    run_ = risk.cascade(price=price, curves=built, impact=impact)
    print(
        f"  (impact {impact.per_usd:.3g} per USD, R2 {impact.r2:.3f}; a move to {price:,.0f} "
        f"runs to {run_.price:,.0f} in {run_.iterations} iterations)"
    )


def end_to_end(repeat: int) -> None:
    url, name = bench_database_url("risk", needs_redis=False)
    database_recreate(url, name)
    os.environ["DATABASE_URL"] = url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liqsite.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from maps.models import Market, RiskProfile
    from maps.risk import services
    from maps.risk.selectors import market_snapshot_full

    try:
        start = time.perf_counter()
        call_command("migrate", verbosity=0)
        call_command("seed_demo", "--days", "30", verbosity=0)
        call_command("load_brackets", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
        print(f"end to end (demo markets seeded in {time.perf_counter() - start:.1f} s)")
        market = Market.objects.select_related("exchange").get(
            exchange__slug="binance", slug="btcusdt"
        )
        client = Client(HTTP_HOST="127.0.0.1")
        for window in ("7d", "30d"):
            snapshot = market_snapshot_full(market=market, window=window)
            close = snapshot.last_close
            inputs = services.PlanInput(side="long", entry=close, leverage=20, size=1.0)
            started = time.perf_counter()
            RiskProfile.objects.filter(market=market, window=window).delete()
            services.position_plan(market=market, snapshot=snapshot, inputs=inputs)
            first = (time.perf_counter() - started) * 1000
            print(f"  {window}: first plan, fitting the risk profile: {first:.1f} ms")

            def plan(window=window, inputs=inputs):
                fresh = market_snapshot_full(market=market, window=window)
                return services.position_plan(market=market, snapshot=fresh, inputs=inputs)

            def what_if(window=window, close=close):
                fresh = market_snapshot_full(market=market, window=window)
                return services.what_if(snapshot=fresh, price=close * 0.97)

            line(f"{window} position_plan (reads the snapshot)", *timed(plan, repeat))
            line(f"{window} what_if (reads the snapshot)", *timed(what_if, repeat))
            base = "/api/v1/binance/btcusdt"
            for path in (
                f"{base}/position?side=long&entry={close}&leverage=20&window={window}",
                f"{base}/what-if?price={close * 0.97:.2f}&window={window}",
            ):
                assert client.get(path).status_code == 200, path
            position_url = f"{base}/position?side=long&entry={close}&leverage=20&size=1"
            what_if_url = f"{base}/what-if?price={close * 0.97:.2f}"
            line(
                f"{window} GET .../position",
                *timed(lambda u=position_url, w=window: client.get(f"{u}&window={w}"), repeat),
            )
            line(
                f"{window} GET .../what-if",
                *timed(lambda u=what_if_url, w=window: client.get(f"{u}&window={w}"), repeat),
            )
    finally:
        from django.db import connections

        connections.close_all()
        database_recreate(url, name, drop_only=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--skip-db", action="store_true", help="only the numbers")
    args = parser.parse_args()
    np.seterr(all="ignore")
    numbers(args.repeat)
    if not args.skip_db:
        end_to_end(max(args.repeat // 4, 20))


if __name__ == "__main__":
    main()
