"""liqsite settings: every value comes from the environment, read here and nowhere else.

With nothing set, the app runs on an embedded default (SQLite, local-memory cache, Celery tasks run
in-process). `DATABASE_URL` switches to PostgreSQL, `REDIS_URL` to a Redis cache and real Celery
workers. `.env.example` lists every variable.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bokeh.util.paths import bokehjs_path
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from liqsite.assets import static_headers

BASE_DIR = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def envstr(name: str, default: str) -> str:
    """The variable's text; unset or empty (NAME= in an env file) means the default."""
    return os.environ.get(name, "").strip() or default


def envbool(name: str, default: bool) -> bool:
    """The variable as a boolean; unset or empty (NAME= in an env file) means the default."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no, on/off"
    )


def envint(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def envfloat(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be a finite number of at least {minimum}")
    return value


def envlist(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def envurl(name: str, schemes: set[str]) -> str:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not (parts.hostname or parts.path):
        allowed = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(f"{name}={raw!r} is not a URL with a scheme among: {allowed}")
    return raw


# DEBUG is an explicit choice. DEBUG=1: a developer's run, with Django's debug pages. DEBUG=0:
# production: SECRET_KEY and ALLOWED_HOSTS are required and the HTTPS-only settings default to on.
# Unset: the embedded local default (`make run`): debug pages off, so visitors see the site's own
# 404 and 500 pages, and plain HTTP on this machine with nothing to configure.
DEBUG = envbool("DEBUG", False)
LIQSITE_PRODUCTION = os.environ.get("DEBUG", "").strip() != "" and not DEBUG
LOCAL_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
SECRET_KEY = os.environ.get("SECRET_KEY", "")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", [] if LIQSITE_PRODUCTION else LOCAL_HOSTS)
if LIQSITE_PRODUCTION:
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured(
            "SECRET_KEY must be at least 50 characters long when DEBUG is off"
        )
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS must list the site's host names when DEBUG is off"
        )
elif not SECRET_KEY:
    if set(ALLOWED_HOSTS) - {*LOCAL_HOSTS, "::1", "testserver"}:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set to serve hosts other than this machine "
            f"(ALLOWED_HOSTS={','.join(ALLOWED_HOSTS)}); for a public site set DEBUG=0 too"
        )
    SECRET_KEY = "insecure-local-key-only-used-on-this-machine-without-a-secret-key"

CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])
SITE_NAME = envstr("SITE_NAME", "liqsite")
SITE_URL = envstr("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "axes",
    "maps",
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "liqsite.middleware.security_headers",
    "liqsite.middleware.control_characters_refused",
    "django.middleware.gzip.GZipMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.timezones.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "liqsite.urls"
WSGI_APPLICATION = "liqsite.wsgi.application"
ASGI_APPLICATION = "liqsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "liqsite.context_processors.site",
                "accounts.timezones.time_zone_context",
            ],
        },
    }
]

# Databases: SQLite in var/ by default, PostgreSQL (psycopg 3) with DATABASE_URL.
DATABASE_URL = envurl("DATABASE_URL", {"postgres", "postgresql", "sqlite"})


def _database(url: str) -> dict:
    if not url:
        (BASE_DIR / "var").mkdir(exist_ok=True)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "var" / "db.sqlite3",
            "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
        }
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parts.path or ":memory:"}
    name = parts.path.lstrip("/")
    if not name:
        raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no database")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(name),
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": envint("DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        "TEST": {"NAME": f"test_{name}"},
    }


DATABASES = {"default": _database(DATABASE_URL)}
# SQLite cannot hold the bars' covering unique constraint (maps.Bar); migration 0009 gives it the
# plain unique index instead, so the warning that the constraint is left out says nothing new.
SILENCED_SYSTEM_CHECKS = (
    ["models.W039"] if DATABASES["default"]["ENGINE"].endswith("sqlite3") else []
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# Redis: cache and Celery broker. Without it: local-memory cache and tasks run in-process.
REDIS_URL = envurl("REDIS_URL", {"redis", "rediss"})
if REDIS_URL:
    CACHES = {
        "default": {
            # Best-effort: while Redis is down, reads miss and writes are dropped (logged), so
            # pages and the API are built afresh instead of failing.
            "BACKEND": "liqsite.cache.BestEffortRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "liqsite",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Embedded: tasks run in process; the in-memory broker is named with its host, or kombu warns at
# every task that it had to pick one.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost//"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=1)
if CELERY_TASK_SOFT_TIME_LIMIT >= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_TASK_SOFT_TIME_LIMIT={CELERY_TASK_SOFT_TIME_LIMIT} must be below "
        f"CELERY_TASK_TIME_LIMIT={CELERY_TASK_TIME_LIMIT}: the soft limit lets a task stop cleanly"
    )
# An unacknowledged task (its worker was killed) goes back to the queue after this many seconds.
# A worker holds a task unacknowledged while it waits out a retry countdown (at most 305 s) and
# while it runs (at most its time limit, 1800 s for a backfill), so anything shorter than
# 305 + 1800 s would hand a live task to a second worker; anything much longer only delays the
# recovery from a killed worker. The `liqsite.W001`/`E001` checks compare it with the tasks.
#
# A worker consuming several queues takes from them in the order its -Q names them
# ("priority"), not in turn: a compute worker on `-Q compute,followup` refreshes every market's
# maps before it spends time on the signals, levels and positioning those refreshes queue.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 2160, minimum=1),
    "queue_order_strategy": "priority",
}
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = "compute"
CELERY_TASK_ROUTES = {
    "maps.tasks.market_ingest": {"queue": "ingest"},
    "maps.tasks.market_backfill": {"queue": "ingest"},
    "maps.tasks.markets_ingest_tracked": {"queue": "ingest"},
    "maps.tasks.exchange_track_markets": {"queue": "ingest"},
    "maps.tasks.exchanges_track_markets": {"queue": "ingest"},
    "maps.tasks.market_calibrate_task": {"queue": "followup"},
    "maps.tasks.markets_calibrate_tracked": {"queue": "followup"},
    "maps.tasks.*": {"queue": "compute"},
    "maps.levels.tasks.market_orderbook_snapshot": {"queue": "ingest"},
    "maps.levels.tasks.orderbooks_snapshot_tracked": {"queue": "ingest"},
    "maps.levels.tasks.*": {"queue": "followup"},
    "maps.market_signals.tasks.*": {"queue": "followup"},
    "maps.whales.tasks.*": {"queue": "followup"},
}
# What a market's new maps are followed by (its signals, levels and positioning) is superseded by
# the next step's: one nobody started within this many seconds is dropped, so a cluster that
# cannot keep up with them never piles up a backlog (the maps themselves never expire).
LIQSITE_FOLLOWUP_EXPIRES_SECONDS = envint("LIQSITE_FOLLOWUP_EXPIRES_SECONDS", 600, minimum=300)
CELERY_TASK_ANNOTATIONS = {
    name: {"expires": LIQSITE_FOLLOWUP_EXPIRES_SECONDS}
    for name in (
        "maps.levels.tasks.market_levels_compute",
        "maps.market_signals.tasks.market_signals_refresh",
        "maps.whales.tasks.market_positioning_refresh",
    )
}
CELERY_WORKER_SEND_TASK_EVENTS = False
# Every minute: ingest every tracked market, then recompute its snapshots (a chain per market).
# Daily: fit each market's tier weights to its real liquidations, and backtest each market's maps
# (maps.market_signals). `expires` drops a run that no worker picked up in time instead of letting
# runs pile up.
CELERY_BEAT_SCHEDULE = {
    "ingest-tracked-markets": {
        "task": "maps.tasks.markets_ingest_tracked",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "calibrate-tracked-markets": {
        "task": "maps.tasks.markets_calibrate_tracked",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 3600},
    },
    "backtest-tracked-markets": {
        "task": "maps.market_signals.tasks.markets_backtest_tracked",
        "schedule": crontab(hour=3, minute=47),
        "options": {"expires": 3600},
    },
    "track-exchange-markets": {
        "task": "maps.tasks.exchanges_track_markets",
        "schedule": crontab(hour=2, minute=47),
        "options": {"expires": 3600},
    },
    # Every minute: each tracked market's order book (maps/levels/); hourly: drop the books
    # older than LIQSITE_ORDERBOOK_DAYS.
    "snapshot-order-books": {
        "task": "maps.levels.tasks.orderbooks_snapshot_tracked",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "prune-order-books": {
        "task": "maps.levels.tasks.orderbooks_prune",
        "schedule": crontab(minute=41),
        "options": {"expires": 3000},
    },
}
# Task modules outside an app's tasks.py (autodiscover finds only those).
CELERY_IMPORTS = ["maps.market_signals.tasks"]
# Whole-exchange coverage: the exchanges whose linear perpetuals settled in the quote are read
# again daily (and by the admin action), tracking those whose open interest reaches the minimum.
LIQSITE_COVERAGE_EXCHANGES = envlist("LIQSITE_COVERAGE_EXCHANGES", [])
_unknown = set(LIQSITE_COVERAGE_EXCHANGES) - {"binance", "bybit", "okx"}
if _unknown:
    raise ImproperlyConfigured(
        f"LIQSITE_COVERAGE_EXCHANGES names {', '.join(sorted(_unknown))}: use binance, bybit, okx"
    )
LIQSITE_COVERAGE_QUOTE = envstr("LIQSITE_COVERAGE_QUOTE", "USDT").upper()
LIQSITE_COVERAGE_MIN_OI_USD = envfloat("LIQSITE_COVERAGE_MIN_OI_USD", 5e6)
# Ingestion: how far back a backfill reaches (the exchanges may allow less), and, for tests and
# offline demos, a directory of recorded exchange answers to use instead of the network.
LIQSITE_BACKFILL_DAYS = envint("LIQSITE_BACKFILL_DAYS", 90, minimum=1)
LIQSITE_EXCHANGE_REPLAY = os.environ.get("LIQSITE_EXCHANGE_REPLAY", "")
LIQSITE_EXCHANGE_REPLAY_DELAY_MS = envint("LIQSITE_EXCHANGE_REPLAY_DELAY_MS", 0)
# The liquidation websockets, as each exchange documents them today: Binance's forceOrder moved
# under /market/ when it retired its legacy USD-M URLs on 2026-04-23. A URL change is a setting.
_WS = {"ws", "wss"}
LIQSITE_STREAM_URLS = {
    "binanceusdm": envurl("LIQSITE_STREAM_URL_BINANCE", _WS)
    or "wss://fstream.binance.com/market/stream",
    "bybit": envurl("LIQSITE_STREAM_URL_BYBIT", _WS) or "wss://stream.bybit.com/v5/public/linear",
    "okx": envurl("LIQSITE_STREAM_URL_OKX", _WS) or "wss://ws.okx.com:8443/ws/v5/public",
}

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "maps:home"
LOGOUT_REDIRECT_URL = "maps:home"
# Log-in lockouts (django-axes, accounts/lockout.py), each for AXES_COOLOFF_MINUTES: a (username,
# address) pair after AXES_FAILURE_LIMIT failures; an address after AXES_ADDRESS_FAILURE_LIMIT
# failures across all usernames (password spraying); a username after the higher
# AXES_USERNAME_FAILURE_LIMIT failures across all addresses. Addresses come from
# TRUSTED_PROXY_HOPS, so a proxy's own address never stands for every client.
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_ADDRESS_FAILURE_LIMIT = envint("AXES_ADDRESS_FAILURE_LIMIT", 20, minimum=1)
AXES_USERNAME_FAILURE_LIMIT = envint("AXES_USERNAME_FAILURE_LIMIT", 50, minimum=1)
for _name, _limit in (
    ("AXES_ADDRESS_FAILURE_LIMIT", AXES_ADDRESS_FAILURE_LIMIT),
    ("AXES_USERNAME_FAILURE_LIMIT", AXES_USERNAME_FAILURE_LIMIT),
):
    if _limit <= AXES_FAILURE_LIMIT:
        raise ImproperlyConfigured(
            f"{_name}={_limit} must be above AXES_FAILURE_LIMIT={AXES_FAILURE_LIMIT}: "
            "it counts the failures of many usernames or many addresses together"
        )
AXES_COOLOFF_TIME = envint("AXES_COOLOFF_MINUTES", 15, minimum=1) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "accounts.lockout.LoginLockoutHandler"
AXES_CLIENT_IP_CALLABLE = "liqsite.client.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
# Forms that send an email (sign-up, password reset) per client address and per typed address in
# an hour, and wrong current passwords (password and email change) per account in the cool-off.
ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR = envint("ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR", 10, minimum=1)
ACCOUNT_EMAILS_PER_EMAIL_PER_HOUR = envint("ACCOUNT_EMAILS_PER_EMAIL_PER_HOUR", 3, minimum=1)
CURRENT_PASSWORD_FAILURE_LIMIT = envint("CURRENT_PASSWORD_FAILURE_LIMIT", 5, minimum=1)

EMAIL_URL = envurl("EMAIL_URL", {"smtp", "smtps", "console"})
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "liqsite <noreply@localhost>")
if EMAIL_URL.startswith("smtp"):
    _email = urlsplit(EMAIL_URL)
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _email.hostname or "localhost"
    EMAIL_PORT = _email.port or (465 if _email.scheme == "smtps" else 587)
    EMAIL_HOST_USER = _email.username or ""
    EMAIL_HOST_PASSWORD = _email.password or ""
    EMAIL_USE_SSL = _email.scheme == "smtps"
    EMAIL_USE_TLS = _email.scheme == "smtp" and envbool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static", ("bokeh", bokehjs_path())]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if not LIQSITE_PRODUCTION
        else "liqsite.storage.StaticStorage"
    },
}
WHITENOISE_USE_FINDERS = not LIQSITE_PRODUCTION
if WHITENOISE_USE_FINDERS:  # files come from the finders; STATIC_ROOT exists after collectstatic
    warnings.filterwarnings("ignore", message="No directory at: ", category=UserWarning)
WHITENOISE_MAX_AGE = 3600
WHITENOISE_ADD_HEADERS_FUNCTION = static_headers

# HTTPS-only in production (DEBUG=0); each switch can be turned off for plain HTTP behind a TLS
# proxy.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", LIQSITE_PRODUCTION)
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", LIQSITE_PRODUCTION)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", LIQSITE_PRODUCTION)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000 if LIQSITE_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", LIQSITE_PRODUCTION)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", LIQSITE_PRODUCTION)
if envbool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Sent with every response (liqsite.middleware.security_headers). The pages carry no inline script
# and load nothing from elsewhere; inline styles stay allowed because BokehJS styles its widgets
# with them (and htmx its indicators). The two pages that draw Bokeh charts (pair and coin) also
# allow eval: BokehJS compiles the charts' own formatters (CustomJS models, code the server
# wrote) with `new Function`; inline script stays refused there too.
_CSP = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
]
CONTENT_SECURITY_POLICY = "; ".join(_CSP)
CONTENT_SECURITY_POLICY_CHARTS = CONTENT_SECURITY_POLICY.replace(
    "script-src 'self'", "script-src 'self' 'unsafe-eval'"
)
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "publickey-credentials-get",
        "usb",
        "xr-spatial-tracking",
    )
)
# How many proxies in front of gunicorn append to X-Forwarded-For (0: clients connect directly).
# The client's address, which log-in lockouts and throttles count by, is the one the outermost of
# them saw; anything a client writes into the header itself further left is ignored.
TRUSTED_PROXY_HOPS = envint("TRUSTED_PROXY_HOPS", 0)

LOG_LEVEL = envstr("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL={LOG_LEVEL!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# liqsite itself.
LIQSITE_WINDOWS = ["12h", "24h", "3d", "7d", "30d", "90d"]
LIQSITE_DEFAULT_WINDOW = "7d"
LIQSITE_MAX_COLUMNS = envint("LIQSITE_MAX_COLUMNS", 500, minimum=10)
LIQSITE_STALE_AFTER_SECONDS = envint("LIQSITE_STALE_AFTER_SECONDS", 900, minimum=60)
LIQSITE_REFRESH_SECONDS = envint("LIQSITE_REFRESH_SECONDS", 15, minimum=1)
# Alert delivery by webhook (docs/webhooks.md): seconds before a delivery gives up; whether user
# webhook URLs may point at private or loopback addresses (off: only public hosts); Telegram's
# bot API address (tests point it at a local fake server).
LIQSITE_WEBHOOK_TIMEOUT = envint("LIQSITE_WEBHOOK_TIMEOUT", 5, minimum=1)
LIQSITE_WEBHOOK_ALLOW_PRIVATE = envbool("LIQSITE_WEBHOOK_ALLOW_PRIVATE", False)
LIQSITE_TELEGRAM_API_URL = envurl("LIQSITE_TELEGRAM_API_URL", {"http", "https"}) or (
    "https://api.telegram.org"
)
# The embedded default (no REDIS_URL): `manage.py serve` (make run) runs an in-process scheduler
# every LIQSITE_SCHEDULER_SECONDS that rolls the demo forward, ingests tracked markets, recomputes
# the maps and checks alerts. 0 turns it off.
LIQSITE_SCHEDULER_SECONDS = envint("LIQSITE_SCHEDULER_SECONDS", 60, minimum=0)
# How many days of one-minute order books each market keeps (the rolling window of maps/levels/).
LIQSITE_ORDERBOOK_DAYS = envint("LIQSITE_ORDERBOOK_DAYS", 7, minimum=1)
