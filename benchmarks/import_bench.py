"""Import throughput and array-load time on a real PostgreSQL, in a throwaway database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/liqsite \
        .venv/bin/python benchmarks/import_bench.py [--days 30] [--runs 15]

Generates --days (30) days of Binance-style daily zip files (1-minute klines with a header, 5-minute
metrics) into a temporary folder, imports them with `manage.py import_binance_vision` in a child
process (its wall time gives rows/s, its peak RSS the import's memory), then times loading the
market's last 30 days of bars into numpy arrays with `maps.selectors.market_bars_arrays` (median of
--runs). It creates its own database beside the one DATABASE_URL names and drops it at the end, so
it never touches real data.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from benchmarks.binance_files import write_days  # noqa: E402

SYMBOL = "BTCUSDT"
START = datetime(2024, 1, 1, tzinfo=UTC)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30, help="days of 1-minute klines [30]")
    parser.add_argument("--runs", type=int, default=15, help="timed array loads [15]")
    parser.add_argument("--child-import", metavar="FOLDER", help=argparse.SUPPRESS)
    return parser.parse_args()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def admin_connect(url: str) -> psycopg.Connection:
    parts = urlsplit(url)
    return psycopg.connect(
        host=parts.hostname or "",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or "",
        dbname="postgres",
        autocommit=True,
    )


def run_import(folder: Path, url: str) -> dict:
    """Run the import in a fresh child process; its timings and memory as a dict."""
    env = {**os.environ, "DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, __file__, "--child-import", str(folder)],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(f"import failed:\n{result.stdout}{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def child_import(folder: str) -> int:
    """In the child: set Django up, then time the command alone and watch the peak RSS."""
    setup_django()
    from django.core.management import call_command

    before = reset_peak_rss()
    out = io.StringIO()
    began = time.perf_counter()
    call_command(
        "import_binance_vision", folder, symbol=SYMBOL, no_compute=True, quiet=True, stdout=out
    )
    seconds = time.perf_counter() - began
    peak = peak_rss()
    report = {"seconds": seconds, "rss_before": before, "rss_peak": peak, "output": out.getvalue()}
    print(json.dumps(report))
    return 0


def reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark (Linux) and return the current RSS in MiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return _status_mib("VmRSS")


def peak_rss() -> float:
    """The peak RSS in MiB since the last reset_peak_rss()."""
    try:
        return _status_mib("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status")


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liqsite.settings")
    import django

    django.setup()


def time_loads(runs: int) -> tuple[list[float], float, int]:
    """Seconds per market_bars_arrays call for the last 30 days, and one ORM load for contrast."""
    from maps.models import Bar, Market
    from maps.selectors import market_bars_arrays

    market = Market.objects.get(symbol=SYMBOL)
    end = market.bars.order_by("-time").values_list("time", flat=True).first()
    start = end - timedelta(days=30) + timedelta(minutes=5)
    market_bars_arrays(market_id=market.pk, start=start)  # warm the connection and the cache
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        bars = market_bars_arrays(market_id=market.pk, start=start)
        timings.append(time.perf_counter() - began)
    began = time.perf_counter()
    list(Bar.objects.filter(market=market, time__gte=start).order_by("time"))
    orm = time.perf_counter() - began
    return timings, orm, len(bars.ts)


def main() -> int:
    args = parse_args()
    if args.child_import:
        return child_import(args.child_import)
    url = os.environ.get("DATABASE_URL", "")
    if urlsplit(url).scheme not in {"postgres", "postgresql"}:
        print("DATABASE_URL must name a PostgreSQL server (postgres://...)", file=sys.stderr)
        return 2
    name = f"liqsite_bench_{os.getpid()}"
    bench_url = with_database(url, name)
    with admin_connect(url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return bench(args, bench_url)
    finally:
        from django.db import connections

        connections.close_all()
        with admin_connect(url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench(args: argparse.Namespace, url: str) -> int:
    os.environ["DATABASE_URL"] = url
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"database: throwaway {urlsplit(url).path.lstrip('/')} (dropped at the end)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        klines, metrics = write_days(folder, start=START, days=args.days, symbol=SYMBOL)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        print(
            f"input: {args.days} days, {klines} kline rows + {metrics} metrics rows in "
            f"{2 * args.days} zip files ({size:.1f} MiB), generated in "
            f"{time.perf_counter() - began:.1f} s"
        )
        run = run_import(folder, url)
    bars, elapsed = klines // 5, run["seconds"]
    print(run["output"].rstrip())
    print(
        f"import: {elapsed:.2f} s: {(klines + metrics) / elapsed:,.0f} rows/s "
        f"({klines / elapsed:,.0f} kline rows/s, {bars / elapsed:,.0f} bars/s); peak RSS "
        f"{run['rss_peak']:.0f} MiB, of which {run['rss_peak'] - run['rss_before']:.0f} MiB "
        f"above the {run['rss_before']:.0f} MiB the process held before the import"
    )
    timings, orm, count = time_loads(args.runs)
    ms = [t * 1000 for t in timings]
    print(
        f"load 30 days ({count} bars) into arrays via market_bars_arrays: median "
        f"{statistics.median(ms):.2f} ms (min {min(ms):.2f}, max {max(ms):.2f}, {args.runs} runs; "
        f"target < 50 ms); one ORM object per row instead: {orm * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
