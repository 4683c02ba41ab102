"""Pages benchmark: the pair page, its proximity widget, its chart data, the coin page's widget
and the API under load.

A throwaway PostgreSQL database (<name>_pages) gets the demo markets (`manage.py seed_demo`, 30
days, every window computed); static files are collected into a temporary directory; gunicorn
serves the app (2 sync workers, DEBUG=0) on 127.0.0.1:8102. A second process loads it over
loopback: first one client at a time (latency), then 50 concurrent clients (throughput, errors).
Server time comes from gunicorn's access log (%(D)s, microseconds per request). Last, the pair
page's total transfer with gzip: HTML, the chart JSON, and every script and stylesheet it loads.
Targets: pair page p50 under 25 ms server time, widget under 10 ms, no errors under 50 concurrent
clients, total transfer under 1.5 MB.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/liqsite_p REDIS_URL=redis://127.0.0.1:6379/2 \\
        .venv/bin/python benchmarks/pages_bench.py [--port 8102] [--seconds 10] [--clients 50]

The Redis database in REDIS_URL is flushed before and after, so give it one nothing else uses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from support import bench_database_url, database_recreate

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SECRET = "pages-benchmark-secret-key-that-is-long-enough-for-django-checks-0123456789"
ENDPOINTS = {
    "pair page": "/binance/btcusdt/?window=7d&side=both",
    "proximity widget": "/binance/btcusdt/proximity/?window=7d",
    "chart data": "/binance/btcusdt/charts.json?window=7d&side=both",
    "api clusters": "/api/v1/binance/btcusdt/clusters?window=7d",
    "api heatmap": "/api/v1/binance/btcusdt/heatmap?window=7d",
    "coin widget": "/coin/btc/proximity/?window=7d",
    "api coin clusters": "/api/v1/coin/btc/clusters?window=7d",
}
TARGETS_MS = {"pair page": 25.0, "proximity widget": 10.0}
BUDGET_BYTES = 1_500_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--seconds", type=float, default=10.0, help="per concurrent run")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--serial", type=int, default=200, help="requests per latency run")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    return parser.parse_args()


# The load generator (runs in its own process).


async def fetch(port: int, path: str, gzip: bool = True) -> tuple[int, int, float]:
    """One GET on a new connection: (status, body bytes on the wire, seconds)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    encoding = "Accept-Encoding: gzip\r\n" if gzip else ""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{encoding}Connection: close\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    body = await reader.read()
    writer.close()
    status = int(head.split(b" ", 2)[1])
    return status, len(body), time.perf_counter() - started


async def serial(port: int, path: str, count: int) -> dict:
    times, errors = [], 0
    for _ in range(count):
        status, _, seconds = await fetch(port, path)
        errors += status != 200
        times.append(seconds)
    return {"latencies": times, "errors": errors, "requests": count}


async def concurrent(port: int, path: str, clients: int, seconds: float) -> dict:
    times: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            try:
                status, _, took = await fetch(port, path)
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                continue
            errors += status != 200
            times.append(took)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {"latencies": times, "errors": errors, "requests": len(times), "elapsed": elapsed}


async def transfer(port: int, path: str) -> dict:
    """Bytes on the wire (gzip) for the page and everything it loads."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    html = raw.split(b"\r\n\r\n", 1)[1].decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+\.(?:js|css))"', html)
    charts = re.search(r'data-charts-url="([^"]+)"', html).group(1).replace("&amp;", "&")
    parts = {"html": (await fetch(port, path))[1], "chart data": (await fetch(port, charts))[1]}
    for asset in assets:
        parts[asset.rsplit("/", 1)[-1]] = (await fetch(port, asset))[1]
    return parts


async def client_main(phase: str, port: int, seconds: float, clients: int, count: int) -> dict:
    if phase == "transfer":
        return await transfer(port, ENDPOINTS["pair page"])
    out = {}
    for name, path in ENDPOINTS.items():
        if phase == "serial":
            await fetch(port, path)
            out[name] = await serial(port, path, count)
        else:
            out[name] = await concurrent(port, path, clients, seconds)
    return out


def run_client(phase: str, args: argparse.Namespace) -> dict:
    """One phase of the load, from a second process."""
    spec = json.dumps([phase, args.port, args.seconds, args.clients, args.serial])
    done = subprocess.run(
        [PYTHON, __file__, "--client", spec], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


# The server side.


def server_env(database_url: str, static_root: str) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DEBUG="0",
        SECRET_KEY=SECRET,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        SECURE_HSTS_SECONDS="0",
        STATIC_ROOT=static_root,
        LOG_LEVEL="WARNING",
    )
    return env


def manage(env: dict, *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def redis_flush() -> None:
    parts = urlsplit(os.environ["REDIS_URL"])
    db = int(parts.path.lstrip("/") or 0)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379)) as sock:
        sock.sendall(f"SELECT {db}\r\nFLUSHDB\r\n".encode())
        sock.recv(64)


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"gunicorn did not listen on {port} within {timeout:.0f} s")


def start_gunicorn(env: dict, port: int, access_log: str) -> subprocess.Popen:
    command = [
        str(Path(PYTHON).parent / "gunicorn"),
        "liqsite.wsgi:application",
        "--workers=2",
        f"--bind=127.0.0.1:{port}",
        "--backlog=2048",
        f"--access-logfile={access_log}",
        "--access-logformat=%(U)s %(s)s %(D)s",
        "--log-level=warning",
    ]
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def server_times(access_log: str, skip: int = 0) -> tuple[dict[str, list[float]], int]:
    """Per path: the server's milliseconds per request, from the access log's lines after the
    first `skip`; and how many lines the log holds."""
    lines = Path(access_log).read_text().splitlines()
    out: dict[str, list[float]] = {}
    for line in lines[skip:]:
        path, _status, micros = line.split()
        out.setdefault(path, []).append(int(micros) / 1000)
    return out, len(lines)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(result: dict) -> int:
    failures = 0
    print(
        f"\none client at a time ({len(next(iter(result['serial'].values()))['latencies'])} "
        "requests each)"
    )
    print(f"{'endpoint':18} {'server p50':>10} {'p99':>8} {'client p50':>10} {'p99':>8}")
    for name, run in result["serial"].items():
        server = result["server_serial"].get(urlsplit(ENDPOINTS[name]).path, [0.0])
        lat = [t * 1000 for t in run["latencies"]]
        print(
            f"{name:18} {statistics.median(server):8.2f}ms {pct(server, 0.99):6.2f}ms "
            f"{statistics.median(lat):8.2f}ms {pct(lat, 0.99):6.2f}ms"
        )
        if name in TARGETS_MS and statistics.median(server) >= TARGETS_MS[name]:
            print(f"  ! {name}: server p50 over the {TARGETS_MS[name]:.0f} ms target")
            failures += 1
    print(f"\n{result['clients']} concurrent clients, {result['seconds']:.0f} s each")
    print(
        f"{'endpoint':18} {'req/s':>8} {'client p50':>10} {'p99':>8} {'server p50':>10} "
        f"{'p99':>8} {'errors':>6}"
    )
    for name, run in result["concurrent"].items():
        lat = [t * 1000 for t in run["latencies"]] or [0.0]
        server = result["server_concurrent"].get(urlsplit(ENDPOINTS[name]).path, [0.0])
        rate = run["requests"] / run["elapsed"]
        print(
            f"{name:18} {rate:8.1f} {statistics.median(lat):8.1f}ms {pct(lat, 0.99):6.1f}ms "
            f"{statistics.median(server):8.2f}ms {pct(server, 0.99):6.2f}ms {run['errors']:6d}"
        )
        failures += run["errors"] > 0
    total = sum(result["transfer"].values())
    print("\npair page transfer (gzip):")
    for part, size in result["transfer"].items():
        print(f"  {part:28} {size / 1024:8.1f} KiB")
    print(f"  {'total':28} {total / 1024:8.1f} KiB (budget {BUDGET_BYTES / 1e6:.1f} MB)")
    failures += total >= BUDGET_BYTES
    return failures


def main() -> int:
    args = parse_args()
    if args.client:
        print(json.dumps(asyncio.run(client_main(*json.loads(args.client)))))
        return 0
    url, name = bench_database_url("pages")
    database_recreate(url, name)
    redis_flush()
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        env = server_env(url, str(Path(tmp) / "static"))
        try:
            manage(env, "migrate", "--noinput", "-v0")
            manage(env, "seed_demo", "--days", "30", "-v0")
            manage(env, "collectstatic", "--noinput", "-v0")
            access_log = str(Path(tmp) / "access.log")
            server = start_gunicorn(env, args.port, access_log)
            wait_for_port(args.port)
            result = {"clients": args.clients, "seconds": args.seconds}
            result["serial"] = run_client("serial", args)
            result["server_serial"], seen = server_times(access_log)
            result["concurrent"] = run_client("concurrent", args)
            result["server_concurrent"], _ = server_times(access_log, seen)
            result["transfer"] = run_client("transfer", args)
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
            redis_flush()
            if not args.keep:
                database_recreate(url, name, drop_only=True)
    failures = report(result)
    print("\nall targets met" if not failures else f"\n{failures} target(s) missed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
