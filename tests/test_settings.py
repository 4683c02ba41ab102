"""Settings come from the environment: bad values stop the start-up with a clear message."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
GOOD_SECRET = "k3Jx9-Qv_pL2mZr8Tn4Wy7Bc1Hd6Fg0Sa5Ue9Io3Xk7Rq2Lt8Nv4Mb6Zc1Yp0Gw5Ej"
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "liq.example.com"}


def run_python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run the project's Python in a clean environment holding only `env` (and PATH/HOME)."""
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env={**base, "DJANGO_SETTINGS_MODULE": "liqsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def import_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_python(env, "-c", "import liqsite.settings")


def settings_values(env: dict[str, str], *names: str) -> list[str]:
    code = "import liqsite.settings as s; " + "; ".join(f"print(repr(s.{n}))" for n in names)
    result = run_python(env, "-c", code)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def assert_refused(env: dict[str, str], message: str) -> None:
    result = import_settings(env)
    assert result.returncode != 0
    assert "django.core.exceptions.ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_it_starts_with_nothing_configured_and_debug_off() -> None:
    result = import_settings({})
    assert result.returncode == 0, result.stderr
    names = ("DEBUG", "DATABASES['default']['ENGINE']", "CELERY_TASK_ALWAYS_EAGER")
    assert settings_values({}, *names) == ["False", "'django.db.backends.sqlite3'", "True"]


def test_it_runs_a_task_in_process_without_a_warning_with_nothing_configured() -> None:
    code = (
        "import logging, django; logging.basicConfig(level=logging.WARNING); django.setup()\n"
        "from liqsite.celery import app\n"
        "@app.task\n"
        "def ping(): return 'pong'\n"
        "print(ping.delay().get())"
    )
    result = run_python({}, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pong"]
    assert "WARNING" not in result.stderr, result.stderr


@pytest.mark.parametrize("value", ["maybe", "2", "enabled"])
def test_it_refuses_a_debug_that_is_not_a_boolean(value: str) -> None:
    assert_refused({"DEBUG": value}, f"DEBUG={value!r} is not a boolean")


def test_it_refuses_a_database_url_with_an_unknown_scheme() -> None:
    url = "mysql://root@localhost/liqsite"
    assert_refused({"DATABASE_URL": url}, f"DATABASE_URL={url!r} is not a URL with a scheme among")


def test_it_refuses_a_postgres_url_without_a_database_name() -> None:
    url = "postgres://postgres@127.0.0.1:5432"
    assert_refused({"DATABASE_URL": url}, "names no database")


def test_it_refuses_a_redis_url_with_an_unknown_scheme() -> None:
    assert_refused({"REDIS_URL": "http://127.0.0.1:6379/0"}, "REDIS_URL='http://127.0.0.1:6379/0'")


def test_it_requires_a_secret_key_when_debug_is_off() -> None:
    env = {"DEBUG": "0", "ALLOWED_HOSTS": "liq.example.com"}
    assert_refused(env, "SECRET_KEY must be set when DEBUG is off")


def test_it_refuses_a_short_secret_key_when_debug_is_off() -> None:
    env = {**PRODUCTION, "SECRET_KEY": "short-secret"}
    assert_refused(env, "SECRET_KEY must be at least 50 characters long")


def test_it_requires_allowed_hosts_when_debug_is_off() -> None:
    env = {"DEBUG": "0", "SECRET_KEY": GOOD_SECRET}
    assert_refused(env, "ALLOWED_HOSTS must list the site's host names")
    assert_refused({**env, "ALLOWED_HOSTS": " , "}, "ALLOWED_HOSTS must list the site's host names")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SECURE_HSTS_SECONDS", "a year", "SECURE_HSTS_SECONDS='a year' is not an integer"),
        ("CELERY_TASK_TIME_LIMIT", "0", "CELERY_TASK_TIME_LIMIT=0 must be at least 1"),
        ("AXES_FAILURE_LIMIT", "five", "AXES_FAILURE_LIMIT='five' is not an integer"),
        ("LIQSITE_MAX_COLUMNS", "3", "LIQSITE_MAX_COLUMNS=3 must be at least 10"),
    ],
)
def test_it_refuses_bad_integers(name: str, value: str, message: str) -> None:
    assert_refused({name: value}, message)


def test_it_refuses_a_bad_integer_in_the_database_options() -> None:
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/liqsite", "DB_CONN_MAX_AGE": "-5"}
    assert_refused(env, "DB_CONN_MAX_AGE=-5 must be at least 0")


def test_it_passes_the_deployment_checks_with_debug_off() -> None:
    result = run_python(PRODUCTION, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_turns_the_https_settings_on_when_debug_is_off() -> None:
    names = ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")
    assert settings_values(PRODUCTION, *names, "SECURE_HSTS_SECONDS") == [
        "True",
        "True",
        "True",
        "31536000",
    ]
    assert settings_values({}, *names, "SECURE_HSTS_SECONDS") == ["False", "False", "False", "0"]


def test_it_switches_the_https_settings_off_for_a_tls_proxy() -> None:
    env = {
        **PRODUCTION,
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "no",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_HSTS_SECONDS": "0",
        "SECURE_PROXY_SSL_HEADER": "1",
    }
    names = ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")
    assert settings_values(env, *names, "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER") == [
        "False",
        "False",
        "False",
        "0",
        "('HTTP_X_FORWARDED_PROTO', 'https')",
    ]
    result = run_python(env, "manage.py", "check", "--deploy")
    assert result.returncode == 0
    assert "security.W008" in result.stdout + result.stderr


def test_it_uses_postgres_and_redis_when_their_urls_are_set() -> None:
    env = {
        "DATABASE_URL": "postgres://app:pw@db.internal:6543/liq",
        "REDIS_URL": "redis://cache.internal:6379/2",
    }
    engine, name, host, port, cache, eager = settings_values(
        env,
        "DATABASES['default']['ENGINE']",
        "DATABASES['default']['NAME']",
        "DATABASES['default']['HOST']",
        "DATABASES['default']['PORT']",
        "CACHES['default']['BACKEND']",
        "CELERY_TASK_ALWAYS_EAGER",
    )
    assert engine == "'django.db.backends.postgresql'"
    assert (name, host, port) == ("'liq'", "'db.internal'", "'6543'")
    assert cache == "'liqsite.cache.BestEffortRedisCache'"
    assert eager == "False"


def env_example() -> dict[str, str]:
    lines = (BASE_DIR / ".env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {name: value for name, value in pairs}


def test_it_passes_the_deployment_checks_from_a_copy_of_env_example() -> None:
    env = {**env_example(), **PRODUCTION}

    result = run_python(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert settings_values(env, "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS") == [
        "True",
        "31536000",
    ]


def test_it_lists_every_variable_it_reads_in_env_example() -> None:
    source = (BASE_DIR / "liqsite" / "settings.py").read_text()
    read = set(re.findall(r"""(?:env\w*|environ\.get)\(\s*"([A-Z_]+)\"""", source))

    assert read - set(env_example()) == set()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD' is not one of DEBUG, INFO"),
        (
            {"CELERY_TASK_TIME_LIMIT": "60", "CELERY_TASK_SOFT_TIME_LIMIT": "60"},
            "CELERY_TASK_SOFT_TIME_LIMIT=60 must be below CELERY_TASK_TIME_LIMIT=60",
        ),
        ({"SESSION_COOKIE_SECURE": "maybe"}, "SESSION_COOKIE_SECURE='maybe' is not a boolean"),
    ],
)
def test_it_refuses_other_bad_values(env: dict[str, str], message: str) -> None:
    assert_refused(env, message)


def test_it_decodes_escaped_characters_in_the_database_url() -> None:
    env = {"DATABASE_URL": "postgres://app%40eu:p%2Fw%3A1@db.internal/liq"}

    user, password = settings_values(
        env, "DATABASES['default']['USER']", "DATABASES['default']['PASSWORD']"
    )

    assert (user, password) == ("'app@eu'", "'p/w:1'")


def test_it_takes_the_default_for_a_variable_left_empty() -> None:
    env = {name: "" for name in ("STATIC_ROOT", "SITE_NAME", "LOG_LEVEL", "SECURE_SSL_REDIRECT")}

    static_root, site_name, level, redirect = settings_values(
        env, "STATIC_ROOT", "SITE_NAME", "LOG_LEVEL", "SECURE_SSL_REDIRECT"
    )

    assert static_root == repr(BASE_DIR / "staticfiles")
    assert (site_name, level, redirect) == ("'liqsite'", "'INFO'", "False")
