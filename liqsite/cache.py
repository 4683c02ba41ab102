"""A best-effort Redis cache: Redis going away never takes a page or an API document down.

Everything liqsite caches (chart JSON, API bodies, page summaries) can be built again from the
database, so a cache error is a miss: reads return the default, writes are dropped. After an error
the cache leaves Redis alone for RETRY_SECONDS (no connection attempt per request while it is
down) and warns at most once every WARN_SECONDS per process. `/healthz` still reports the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_SECONDS = 5.0
WARN_SECONDS = 60.0
CACHE_ERRORS = (RedisError, OSError)


class Outage:
    """When Redis last failed for one cache location, shared by the threads of a process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.warned_at = -WARN_SECONDS
        self.errors = 0

    def skipping(self) -> bool:
        return time.monotonic() < self.down_until

    def record(self, operation: str, exc: BaseException) -> None:
        now = time.monotonic()
        with self.lock:
            self.down_until = now + RETRY_SECONDS
            self.errors += 1
            if now - self.warned_at < WARN_SECONDS:
                return
            self.warned_at, errors, self.errors = now, self.errors, 0
        log.warning(
            "cache %s failed (%s: %s); serving without the cache, %d error(s) since the last "
            "warning; next warning in %.0f s at the earliest",
            operation,
            type(exc).__name__,
            exc,
            errors,
            WARN_SECONDS,
        )


_outages: dict[str, Outage] = {}
_outages_lock = threading.Lock()


def outage_for(location: str) -> Outage:
    with _outages_lock:
        return _outages.setdefault(location, Outage())


class BestEffortRedisCache(RedisCache):
    """Django's Redis cache whose errors are misses (reads) and no-ops (writes)."""

    def __init__(self, server: str, params: dict) -> None:
        super().__init__(server, params)
        self._location = str(server)
        self._outage = outage_for(self._location)

    def _attempt(self, fallback: T, method: Callable[..., T], *args: Any) -> T:
        if self._outage.skipping():
            return fallback
        try:
            return method(*args)
        except CACHE_ERRORS as exc:
            self._outage.record(method.__name__, exc)
            return fallback

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        return self._attempt(default, super().get, key, default, version)

    def get_many(self, keys: list[str], version: int | None = None) -> dict:
        return self._attempt({}, super().get_many, keys, version)

    def has_key(self, key: str, version: int | None = None) -> bool:
        return self._attempt(False, super().has_key, key, version)

    def add(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return self._attempt(False, super().add, key, value, timeout, version)

    def set(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        self._attempt(None, super().set, key, value, timeout, version)

    def set_many(
        self, data: dict, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list:
        return self._attempt(list(data), super().set_many, data, timeout, version)

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._attempt(False, super().touch, key, timeout, version)

    def delete(self, key: str, version: int | None = None) -> bool:
        return self._attempt(False, super().delete, key, version)

    def delete_many(self, keys: list[str], version: int | None = None) -> None:
        self._attempt(None, super().delete_many, keys, version)

    def clear(self) -> bool:
        return self._attempt(False, super().clear)
