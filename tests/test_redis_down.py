"""Redis down: the cache is best-effort, so every page and API document still answers 200.

The probe: with Redis stopped, the pair, coin and chart pages and every snapshot API document
answered 500 (`cache.get` raised in maps/charts.py). The fault test runs the real thing: gunicorn
with production settings on a Redis of its own, which it kills while gunicorn serves.
"""

from __future__ import annotations

import html
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.cache import cache

from liqsite import cache as best_effort
from tests.conftest import free_port

BASE_DIR = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
SECRET = "k3Jx9-Qv_pL2mZr8Tn4Wy7Bc1Hd6Fg0Sa5Ue9Io3Xk7Rq2Lt8Nv4Mb6Zc1Yp0Gw5Ej"
KINDS = ("heatmap", "map", "clusters", "proximity")
CACHE_WARNING = "serving without the cache"


@pytest.fixture
def dead_redis_cache(settings):
    """The site's cache backend pointed at a port where no Redis listens."""
    best_effort._outages.clear()
    settings.CACHES = {
        "default": {
            "BACKEND": "liqsite.cache.BestEffortRedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    yield
    best_effort._outages.clear()


@pytest.fixture
def btc(tracked_market):
    return tracked_market("BTCUSDT", "binance", windows=("24h", "7d"))


def test_it_serves_pages_and_api_documents_when_the_cache_raises(
    client, btc, dead_redis_cache, caplog
):
    caplog.set_level(logging.WARNING, logger="liqsite.cache")
    paths = [
        "/",
        "/binance/btcusdt/",
        "/binance/btcusdt/charts.json",
        "/coin/btc/",
        "/coin/btc/charts.json",
        *(f"/api/v1/binance/btcusdt/{kind}" for kind in KINDS),
        *(f"/api/v1/coin/btc/{kind}?format=csv" for kind in KINDS),
    ]

    statuses = {path: client.get(path).status_code for path in paths}

    assert statuses == dict.fromkeys(paths, 200)
    warnings = [r for r in caplog.records if CACHE_WARNING in r.getMessage()]
    assert len(warnings) == 1, "one warning for the outage, not one per request"


def test_it_misses_and_drops_writes_while_redis_is_down(dead_redis_cache):
    cache.set("key", "value")

    assert cache.get("key", "default") == "default"
    assert cache.add("key", "value") is False
    assert cache.get_many(["key"]) == {}
    assert cache.delete("key") is False


def test_it_leaves_a_failing_redis_alone_for_a_few_seconds(dead_redis_cache, monkeypatch):
    cache.get("key")
    calls = []
    monkeypatch.setattr(
        "django.core.cache.backends.redis.RedisCacheClient.get",
        lambda *args: calls.append(args),
    )

    cache.get("key")

    assert calls == [], "no connection attempt per request while Redis is known to be down"


@pytest.mark.redis
def test_it_caches_as_before_while_redis_is_up(settings, empty_cache):
    if not settings.CACHES["default"]["BACKEND"].endswith("BestEffortRedisCache"):
        pytest.skip("the cache is not Redis here")

    cache.set("best-effort", {"a": 1}, 30)

    assert cache.get("best-effort") == {"a": 1}


# The fault test: gunicorn with production settings, its Redis killed while it serves.


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory):
    """collectstatic once, as a deployment does (production settings need the manifest)."""
    root = tmp_path_factory.mktemp("static")
    env = {**production_env(), "STATIC_ROOT": str(root)}
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return root


def production_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "liqsite.settings",
        "DEBUG": "0",
        "SECRET_KEY": SECRET,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }


def database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Browser:
    """A cookie-keeping HTTP client that reports statuses instead of raising."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(self, path: str) -> tuple[int, str]:
        return self.open(urllib.request.Request(self.base + path))

    def post(self, path: str, data: dict) -> tuple[int, str]:
        body = urlencode(data).encode()
        headers = {"Referer": self.base + path}
        return self.open(urllib.request.Request(self.base + path, body, headers))

    def open(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")


@pytest.fixture
def gunicorn(collected_static, redis_server, tmp_path):
    """start() -> (base URL, Redis process, log path): gunicorn, 2 workers, production settings,
    on the test database and a Redis of its own."""
    processes = []

    def start():
        redis_url, redis_process = redis_server()
        port = free_port()
        env = {
            **production_env(),
            "STATIC_ROOT": str(collected_static),
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_url,
        }
        log_path = tmp_path / "gunicorn.log"
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "liqsite.wsgi:application"),
                *("--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "60"),
                *("--forwarded-allow-ips", "127.0.0.1"),
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_path.open("w"),
        )
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        return base, redis_process, log_path

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def site_paths(browser: Browser) -> list[str]:
    """Every page and API document of one market and its coin, as a visitor reaches them."""
    pages = [
        "/",
        "/?window=24h",
        "/_/markets/",
        "/coin/",
        "/coin/btc/",
        "/coin/btc/proximity/",
        "/binance/",
        "/binance/btcusdt/",
        "/binance/btcusdt/?window=24h&side=long",
        "/binance/btcusdt/proximity/",
        "/okx/solusdt/",
        "/model/",
        "/api/",
        "/accounts/login/",
        "/accounts/signup/",
        "/accounts/password/reset/",
    ]
    charts = []
    for page in ("/binance/btcusdt/", "/coin/btc/"):
        _, body = browser.get(page)
        charts += [html.unescape(u) for u in re.findall(r'data-charts-url="([^"]+)"', body)]
    assert len(charts) == 2
    api = ["/api/v1/", "/api/v1/markets/", "/api/v1/markets/?format=csv"]
    for kind in KINDS:
        for document in (f"/api/v1/binance/btcusdt/{kind}", f"/api/v1/coin/btc/{kind}"):
            api += [document, f"{document}?window=24h", f"{document}?format=csv"]
    return pages + charts + api


SIGNED_IN = ["/watchlist/", "/watchlist/alerts/", "/accounts/profile/", "/accounts/notifications/"]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis_server
@pytest.mark.django_db(transaction=True)
def test_it_keeps_every_page_and_api_document_200_when_redis_dies_under_gunicorn(
    gunicorn, tracked_market
):
    from accounts.models import User

    tracked_market("BTCUSDT", "binance", windows=("24h", "7d"), is_demo=True)
    tracked_market("SOLUSDT", "okx", windows=("24h", "7d"), is_demo=True, price=150.0)
    User.objects.create_user("alice", "alice@example.com", PASSWORD)
    base, redis_process, log_path = gunicorn()
    visitor, member = Browser(base), Browser(base)
    paths = site_paths(visitor)
    member.get("/accounts/login/")
    member.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    before = {p: visitor.get(p)[0] for p in paths} | {p: member.get(p)[0] for p in SIGNED_IN}
    assert visitor.get("/healthz")[0] == 200
    redis_process.kill()
    redis_process.wait()
    started = time.perf_counter()
    after = {p: visitor.get(p)[0] for p in paths} | {p: member.get(p)[0] for p in SIGNED_IN}
    elapsed = time.perf_counter() - started
    health_status, health = visitor.get("/healthz")

    expected = dict.fromkeys([*paths, *SIGNED_IN], 200)
    assert before == expected
    assert after == expected
    assert health_status == 503
    assert '"broker": {"ok": false' in health
    log = log_path.read_text()
    assert "Traceback" not in log
    warnings = log.count(CACHE_WARNING)
    assert 1 <= warnings <= 2, "at most one warning a minute per gunicorn worker"
    print(
        f"\n{len(after)} pages and API documents with Redis down: all 200 in {elapsed:.1f} s "
        f"({elapsed / len(after) * 1000:.0f} ms each), {warnings} cache warning(s) logged"
    )
