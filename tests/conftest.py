from __future__ import annotations

import os
import shutil

import pytest

REQUIRED = os.environ.get("LIQSITE_REQUIRE_SERVICES") == "1"


def _missing_service(marker: str) -> str | None:
    from django.db import connection

    if marker == "postgres" and connection.vendor != "postgresql":
        return "needs PostgreSQL: DATABASE_URL is not set or not reachable"
    if marker == "redis" and not os.environ.get("REDIS_URL"):
        return "needs Redis: REDIS_URL is not set or not reachable"
    if marker == "browser" and not (
        shutil.which("chromium") or os.path.exists("/usr/bin/chromium")
    ):
        return "needs headless Chromium: install Debian's chromium package"
    if marker == "redis_server" and not shutil.which("redis-server"):
        return "needs redis-server to start a Redis of its own: install Debian's redis-server"
    return None


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium, one per test module (tests/browser.py launches it)."""
    from playwright.sync_api import sync_playwright

    from tests.browser import chromium_launch

    # Playwright's sync API keeps an event loop running in this thread while the browser is
    # open; the ORM calls of the tests and of the database teardown stay plain synchronous code.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = chromium_launch(playwright)
            yield chromium
            chromium.close()


@pytest.fixture
def empty_cache():
    """A cache emptied before and after the test (pages and API cache what they render)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in ("postgres", "redis", "browser", "redis_server"):
            if item.get_closest_marker(marker) is None:
                continue
            reason = _missing_service(marker)
            if reason and REQUIRED:
                raise pytest.UsageError(f"{item.nodeid} {reason} (LIQSITE_REQUIRE_SERVICES=1)")
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if reason.startswith("Skipped: "):
            reason = reason[len("Skipped: ") :]
        if reason.startswith("needs "):
            reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("skipped for lack of a service")
        for reason, count in sorted(reasons.items()):
            terminalreporter.write_line(f"{count:4d} test(s) {reason}")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path):
    """start(persistent=False) -> (url, process): a redis-server of the test's own on a free port,
    killed at the end. Fault tests kill it; the shared Redis is never touched."""
    import subprocess
    import time

    import redis

    processes = []

    def start(*, persistent: bool = False):
        port = free_port()
        persistence = ["--appendonly", "yes"] if persistent else ["--appendonly", "no"]
        process = subprocess.Popen(
            [
                *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
                *persistence,
                *("--dir", str(tmp_path)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        return f"redis://127.0.0.1:{port}/0", process

    yield start
    for process in processes:
        process.kill()
        process.wait()


# Accounts, watchlists and alerts: users, markets and hand-made snapshots.


@pytest.fixture
def fast_password_hashing(settings):
    """A cheap hasher: the default one costs ~0.3 s a hash, and account tests hash a lot."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user_factory(db, fast_password_hashing):
    from accounts.models import User

    def make(username: str = "alice", password: str = "correct horse battery", **extra):
        extra.setdefault("email", f"{username}@example.com")
        return User.objects.create_user(username=username, password=password, **extra)

    return make


@pytest.fixture
def alice(user_factory):
    return user_factory("alice")


@pytest.fixture
def bob(user_factory):
    """A second user, for checking that nobody sees or changes another's data."""
    return user_factory("bob")


@pytest.fixture
def market_factory(db):
    from maps.models import Exchange, Market

    def make(symbol: str = "BTCUSDT", exchange: str = "binance", **extra):
        name = exchange.title()
        venue, _ = Exchange.objects.get_or_create(slug=exchange, defaults={"name": name})
        base = symbol.removesuffix("USDT")
        defaults = {"slug": symbol.lower(), "base": base, "quote": "USDT"}
        return Market.objects.create(exchange=venue, symbol=symbol, **(defaults | extra))

    return make


@pytest.fixture
def snapshot_factory(db):
    """Store a MapSnapshot without running the engine: given clusters and per-step liquidations.

    clusters: (side, price_low, price_high, notional_usd) tuples; liquidations: (long, short) USD
    per step, the last step opening at `as_of`.
    """
    import io
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from maps.engine.clusters import distance_pct, proximity_from_clusters, rank_clusters
    from maps.engine.serialize import params_to_json
    from maps.models import MapSnapshot

    def make(
        market,
        *,
        last_close: float = 100.0,
        clusters: list[tuple] = (),
        liquidations: list[tuple[float, float]] = ((0.0, 0.0),),
        as_of: datetime | None = None,
        window: str = "7d",
    ):
        if as_of is None:  # the last whole step before now: fresh data, whenever the tests run
            now_ms = int(datetime.now(tz=UTC).timestamp() * 1000)
            as_of_ms = now_ms - now_ms % market.step_ms - market.step_ms
            as_of = datetime.fromtimestamp(as_of_ms / 1000, tz=UTC)
        total = sum(c[3] for c in clusters) or 1.0
        made = [
            {
                "side": side,
                "price_low": low,
                "price_high": high,
                "peak_price": (low + high) / 2,
                "notional_usd": usd,
                "share": usd / total,
                "distance_pct": distance_pct(low, high, last_close),
            }
            for side, low, high, usd in clusters
        ]
        ranked = rank_clusters(
            [c for c in made if c["side"] == "long"], [c for c in made if c["side"] == "short"]
        )
        step = market.step_ms
        last_ms = int(as_of.timestamp() * 1000)
        times = last_ms - step * np.arange(len(liquidations))[::-1]
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            liq_times=times.astype(np.int64),
            liq_long=np.array([[lo] for lo, _ in liquidations], dtype=np.float32),
            liq_short=np.array([[sh] for _, sh in liquidations], dtype=np.float32),
        )
        snapshot, _ = MapSnapshot.objects.update_or_create(
            market=market,
            window=window,
            defaults={
                "as_of": as_of,
                "computed_at": as_of + timedelta(milliseconds=step),
                "engine_version": "test",
                "params": params_to_json(market.engine_params(window)),
                "last_close": last_close,
                "bin_start": last_close * 0.5,
                "bin_width": last_close * 0.001,
                "bin_count": 1000,
                "data": buffer.getvalue(),
                "clusters": ranked,
                "proximity": proximity_from_clusters(ranked, last_close),
            },
        )
        return snapshot

    return make


def synthetic_bars(*, steps: int, seed: int, price: float, end_ms: int, step_ms: int = 300_000):
    """A seeded random walk with rising open interest: `steps` bars, the last opening at end_ms."""
    import numpy as np

    from maps.engine.types import Bars

    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.0016, steps)))
    open_ = np.r_[price, close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0008, steps)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0008, steps)))
    volume = rng.uniform(100, 1000, steps)
    open_interest = 40_000 * np.exp(np.cumsum(rng.normal(0.0004, 0.002, steps)))
    return Bars(
        ts=end_ms - step_ms * np.arange(steps - 1, -1, -1, dtype=np.int64),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        taker_buy_volume=volume * rng.uniform(0.3, 0.7, steps),
        open_interest=open_interest,
    )


@pytest.fixture
def tracked_market(db, market_factory):
    """Store a market's synthetic bars and compute its snapshots with the real engine.

    make(symbol, exchange, steps=..., windows=..., seed=..., price=...) -> Market; the last bar
    opens one step before the current step, so the data is fresh.
    """
    from datetime import UTC, datetime

    from django.utils import timezone

    from maps.models import Bar
    from maps.services import market_snapshots_compute

    def make(
        symbol: str = "BTCUSDT",
        exchange: str = "binance",
        *,
        steps: int = 600,
        windows: tuple[str, ...] = ("12h", "24h", "7d"),
        seed: int = 7,
        price: float = 60_000.0,
        **extra,
    ):
        market = market_factory(symbol, exchange, **extra)
        now_ms = int(timezone.now().timestamp() * 1000)
        end_ms = now_ms // market.step_ms * market.step_ms - market.step_ms
        bars = synthetic_bars(
            steps=steps, seed=seed, price=price, end_ms=end_ms, step_ms=market.step_ms
        )
        Bar.objects.bulk_create(
            Bar(
                market=market,
                time=datetime.fromtimestamp(int(t) / 1000, tz=UTC),
                open=o,
                high=h,
                low=lo,
                close=c,
                volume=v,
                taker_buy_volume=tb,
                open_interest=oi,
            )
            for t, o, h, lo, c, v, tb, oi in zip(
                bars.ts.tolist(),
                bars.open.tolist(),
                bars.high.tolist(),
                bars.low.tolist(),
                bars.close.tolist(),
                bars.volume.tolist(),
                bars.taker_buy_volume.tolist(),
                bars.open_interest.tolist(),
                strict=True,
            )
        )
        market_snapshots_compute(market=market, windows=list(windows))
        return market

    return make


# Exchanges: connectors answered from recorded payloads (tests/fixtures/exchanges), never the net.

EXCHANGE_RECORDINGS = os.path.join(os.path.dirname(__file__), "fixtures", "exchanges")


@pytest.fixture
def replay_connector(settings):
    """make(ccxt_id, *routes) -> a connector served from tests/fixtures/exchanges/<exchange>;
    extra routes ({"path", "match", "status", "headers", "file"}) are tried before the recorded
    ones. Connectors made through maps.connectors.connector_for use the same recordings."""
    from maps import connectors

    settings.LIQSITE_EXCHANGE_REPLAY = EXCHANGE_RECORDINGS
    connectors._cache.clear()

    def make(ccxt_id: str, *routes: dict):
        connector = connectors.connector_new(ccxt_id, replay=EXCHANGE_RECORDINGS)
        connector.exchange.session.routes[:0] = list(routes)
        return connector

    yield make
    connectors._cache.clear()


# Admin, import and demo seed: staff users and hand-made bars.


@pytest.fixture
def staff_client(client, user_factory):
    """A client logged in as a staff user (not a superuser) with every permission on maps."""
    from django.contrib.auth.models import Permission

    staff = user_factory("staffer", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="maps"))
    client.force_login(staff)
    return client


@pytest.fixture
def bar_factory(db):
    """Store one valid bar: a calm step around 100 unless values say otherwise."""
    from maps.models import Bar

    def make(market, time, **values):
        fields = {
            "open": 100.0,
            "high": 101.0,
            "low": 99.0,
            "close": 100.5,
            "volume": 10.0,
            "taker_buy_volume": 6.0,
            "open_interest": 1000.0,
            "long_short_ratio": 1.2,
        }
        return Bar.objects.create(market=market, time=time, **(fields | values))

    return make


# Webhooks: a local HTTP server that records what it receives (never the network).


@pytest.fixture
def fake_http_server():
    """A local HTTP server on 127.0.0.1: `.url`, `.requests` (path, headers, JSON body) and
    `.answers`, a list of (status, body) popped one per request (then 200 {"ok": true})."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Server(ThreadingHTTPServer):
        requests: list
        answers: list

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            self.server.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "raw": raw,
                    "json": json.loads(raw),
                }
            )
            status, body = (
                self.server.answers.pop(0) if self.server.answers else (200, '{"ok": true}')
            )
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args) -> None:
            return

    server = Server(("127.0.0.1", 0), Handler)
    server.requests, server.answers = [], []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# Signals: simulated markets with scheduled shocks (tests/shock_market.py).


@pytest.fixture
def shocked_market(db, market_factory):
    """make(symbol, exchange, *, days, shocks, events=True, windows=("7d",), seed=8) ->
    (Market, ShockMarket): the simulation stored (its true liquidations as the market's events
    unless events=False), the last bar one step before now, snapshots computed."""
    from django.utils import timezone

    from maps.services import market_snapshots_compute
    from tests.shock_market import market_store, shock_market

    def make(
        symbol: str = "BTCUSDT",
        exchange: str = "binance",
        *,
        days: int = 10,
        shocks=(),
        events: bool = True,
        windows: tuple[str, ...] = ("7d",),
        seed: int = 8,
        **extra,
    ):
        market = market_factory(symbol, exchange, **extra)
        now_ms = int(timezone.now().timestamp() * 1000)
        end_ms = now_ms // market.step_ms * market.step_ms - market.step_ms
        sim = shock_market(seed=seed, days=days, end_ms=end_ms, shocks=list(shocks))
        market_store(market, sim, events=events)
        market_snapshots_compute(market=market, windows=list(windows))
        return market, sim

    return make
