"""What the benchmarks share: a throwaway PostgreSQL database next to the one DATABASE_URL names."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit, urlunsplit

import psycopg


def bench_database_url(suffix: str, *, needs_redis: bool = True) -> tuple[str, str]:
    """(URL, name) of the benchmark's own database, `<DATABASE_URL's name>_<suffix>`; exits with
    a message when DATABASE_URL is not PostgreSQL (or REDIS_URL is missing and needed)."""
    parts = urlsplit(os.environ.get("DATABASE_URL", ""))
    if parts.scheme not in {"postgres", "postgresql"}:
        sys.exit("DATABASE_URL must name a PostgreSQL server (postgres://...)")
    if needs_redis and not os.environ.get("REDIS_URL"):
        sys.exit("REDIS_URL must name a Redis database the benchmark may flush")
    name = f"{parts.path.lstrip('/') or 'liqsite'}_{suffix}"
    return urlunsplit(parts._replace(path=f"/{name}")), name


def database_recreate(url: str, name: str, *, drop_only: bool = False) -> None:
    """Drop the benchmark database (closing its sessions) and, unless drop_only, create it."""
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')
