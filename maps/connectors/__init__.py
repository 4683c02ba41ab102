"""Exchange connectors by ccxt id, one instance per process (ccxt keeps the markets it loaded).

With `LIQSITE_EXCHANGE_REPLAY` set to a directory, every exchange is answered from the recordings
in its sub-directory (see replay.py) instead of the network: tests and demos run offline.
"""

from __future__ import annotations

import threading
from pathlib import Path

import ccxt
from django.conf import settings

from maps.connectors.base import (
    RETRYABLE_ERRORS,
    Candle,
    Connector,
    ConnectorError,
    Liquidation,
    Perpetual,
    Point,
    RateLimited,
    TakerBucket,
)
from maps.connectors.binance import BinanceConnector
from maps.connectors.bybit import BybitConnector
from maps.connectors.okx import OkxConnector

__all__ = [
    "CONNECTORS",
    "RETRYABLE_ERRORS",
    "Candle",
    "Connector",
    "ConnectorError",
    "Liquidation",
    "Perpetual",
    "Point",
    "RateLimited",
    "TakerBucket",
    "connector_for",
    "connector_new",
]

CONNECTORS: dict[str, type[Connector]] = {
    cls.ccxt_id: cls for cls in (BinanceConnector, BybitConnector, OkxConnector)
}
TIMEOUT_MS = 15_000
_cache: dict[str, Connector] = {}
_lock = threading.Lock()


def connector_new(ccxt_id: str, *, replay: str | Path | None = None) -> Connector:
    """A fresh connector for `ccxt_id`, on the network or on the recordings under `replay`."""
    try:
        cls = CONNECTORS[ccxt_id]
    except KeyError:
        raise ConnectorError(f"no connector for ccxt id {ccxt_id!r}") from None
    exchange = getattr(ccxt, ccxt_id)(
        {"enableRateLimit": True, "timeout": TIMEOUT_MS, "options": dict(cls.options)}
    )
    if replay:
        from maps.connectors.replay import attach

        delay = getattr(settings, "LIQSITE_EXCHANGE_REPLAY_DELAY_MS", 0)
        attach(exchange, Path(replay) / cls.slug, delay_ms=delay)
    return cls(exchange)


def connector_for(ccxt_id: str) -> Connector:
    """This process's connector for `ccxt_id`, made on first use."""
    with _lock:
        if ccxt_id not in _cache:
            replay = getattr(settings, "LIQSITE_EXCHANGE_REPLAY", "") or None
            _cache[ccxt_id] = connector_new(ccxt_id, replay=replay)
        return _cache[ccxt_id]
