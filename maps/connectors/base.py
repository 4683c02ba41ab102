"""What every exchange connector provides, and the paging, rate-limit and error rules they share.

A connector wraps one ccxt exchange instance and turns its answers into plain records in our units:
prices in quote currency, sizes in base units, times in epoch ms. The subclasses (binance.py,
bybit.py, okx.py) are the only places that know an exchange's endpoints, units and conventions.
Every series is fetched in windows [start, end) that one request can cover; rows an exchange
returns outside the window asked for are dropped, so a page that repeats or overlaps never counts
twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import ccxt

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
FIVE_MINUTES_MS = 300_000
DAY_MS = 86_400_000
DEFAULT_RETRY_AFTER = 30.0


@dataclass(frozen=True)
class Candle:
    """One 1-minute kline: open time, prices, volume and taker-buy volume in base units."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    taker_buy: float | None = None


@dataclass(frozen=True)
class Point:
    """A value observed at a time: open interest (base units), a ratio or a funding rate. For
    open interest and ratios `ts` is the row's own stamp, which the connector's `oi_stamping`
    maps to the snapshot time (maps.engine.alignment); `usd` is the open interest's USD value
    where the exchange gives it (what the stamping is checked with)."""

    ts: int
    value: float
    usd: float | None = None


@dataclass(frozen=True)
class TakerBucket:
    """Taker buy volume (base units) of the period that opens at `ts` and lasts `span_ms`."""

    ts: int
    span_ms: int
    buy: float


@dataclass(frozen=True)
class Liquidation:
    """One liquidation order, normalised: the side is the side of the position liquidated."""

    symbol: str
    time_ms: int
    side: str
    price: float
    quantity: float

    @property
    def notional(self) -> float:
        return self.price * self.quantity


@dataclass(frozen=True)
class Perpetual:
    """One linear perpetual an exchange lists, with its open interest in USD (None when the
    exchange gave none for it)."""

    symbol: str
    ccxt_symbol: str
    base: str
    quote: str
    contract_size: float
    active: bool
    oi_usd: float | None


class ConnectorError(Exception):
    """An exchange answered something we cannot use (bad symbol, malformed payload)."""


class RateLimited(ConnectorError):
    """The exchange asked us to slow down; `retry_after` is how long to wait, in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


POSITIONING_SERIES = ("top_position_ratio", "top_account_ratio", "taker_ratio")

RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (ccxt.NetworkError, RateLimited)


def windows(start: int, end: int, span: int) -> Iterator[tuple[int, int]]:
    """[start, end) cut into consecutive windows of at most `span` ms."""
    cursor = start
    while cursor < end:
        yield cursor, min(cursor + span, end)
        cursor += span


def number(value: Any) -> float | None:
    """A finite float from an exchange's string or number, None when absent or malformed."""
    if value is None or value == "":
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if result == result and abs(result) != float("inf") else None


class Connector:
    """One exchange's public market data, normalised. Subclasses fill in the class attributes."""

    slug: ClassVar[str]
    ccxt_id: ClassVar[str]
    options: ClassVar[dict] = {}
    history_ms: ClassVar[int]
    """How far back the scarcest required series (5-minute open interest) reaches."""
    has_taker_volume: ClassVar[bool] = True
    default_long_share: ClassVar[str] = "taker"
    candle_page: ClassVar[int]
    stat_page: ClassVar[int]
    funding_page: ClassVar[int] = 100
    oi_stamping: ClassVar[str] = "end"
    """How the 5-minute open-interest and ratio history is stamped (maps.engine.alignment)."""
    positioning_series: ClassVar[tuple[str, ...]] = ()
    """The positioning series the exchange publishes at 5 minutes, of POSITIONING_SERIES."""
    ws_ping: ClassVar[str | None] = None
    ws_ping_seconds: ClassVar[float] = 20.0

    def __init__(self, exchange: ccxt.Exchange) -> None:
        self.exchange = exchange

    # --- shared plumbing -------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.exchange.milliseconds())

    def load(self) -> None:
        """Load the exchange's markets once per process (ccxt caches them on the instance)."""
        self.call(self.exchange.load_markets)

    def market(self, symbol: str) -> dict:
        """The ccxt market for a unified symbol (BTC/USDT:USDT) or the exchange's own id. An
        unknown one makes the markets load again once, for instruments listed since."""
        self.load()
        found = self._find(symbol)
        if found is None:
            self.call(self.exchange.load_markets, True)
            found = self._find(symbol)
        if found is None:
            raise ConnectorError(f"{self.slug}: unknown market {symbol!r}")
        return found

    def _find(self, symbol: str) -> dict | None:
        if symbol in self.exchange.markets:
            return self.exchange.markets[symbol]
        for market in self.exchange.markets_by_id.get(symbol) or []:
            if market.get("swap"):
                return market
        return None

    def contract_size(self, symbol: str) -> float:
        """Base units per contract; 1 where the exchange counts sizes in base units."""
        return 1.0

    def call(self, method: Callable, *args: Any, **kwargs: Any) -> Any:
        """Call a ccxt method, turning rate-limit answers into RateLimited with a wait."""
        try:
            return method(*args, **kwargs)
        except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as exc:
            wait = self.retry_after(str(exc))
            raise RateLimited(f"{self.slug}: rate limited: {exc}", wait) from exc

    def retry_after(self, message: str) -> float:
        """Seconds to wait after a rate-limit answer: Retry-After if sent, else a default."""
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        value = number(_header(headers, "Retry-After"))
        if value is not None and value > 0:
            return value
        return DEFAULT_RETRY_AFTER

    def _series(self, fetch: Callable[[int, int], list], start: int, end: int, span: int) -> list:
        """Rows of every window of [start, end), each kept only inside its window, by time."""
        rows: dict[int, Any] = {}
        for low, high in windows(start, end, span):
            for row in fetch(low, high):
                if low <= row.ts < high:
                    rows[row.ts] = row
        return [rows[ts] for ts in sorted(rows)]

    # --- series ------------------------------------------------------------------------------
    def candles(self, symbol: str, start: int, end: int) -> list[Candle]:
        """1-minute candles opening in [start, end), ascending."""
        return self._series(
            lambda a, b: self._candles(symbol, a, b), start, end, self.candle_page * MINUTE_MS
        )

    def open_interest(self, symbol: str, start: int, end: int) -> list[Point]:
        """5-minute open-interest rows (base units) stamped at times in [start, end)."""
        return self._series(
            lambda a, b: self._open_interest(symbol, a, b),
            start,
            end,
            self.stat_page * FIVE_MINUTES_MS,
        )

    def long_short_ratio(self, symbol: str, start: int, end: int) -> list[Point]:
        """5-minute global long/short account ratios stamped at times in [start, end)."""
        return self._series(
            lambda a, b: self._long_short_ratio(symbol, a, b),
            start,
            end,
            self.stat_page * FIVE_MINUTES_MS,
        )

    def positioning(self, name: str, symbol: str, start: int, end: int) -> list[Point]:
        """One of the 5-minute positioning series the exchange publishes (`positioning_series`,
        of POSITIONING_SERIES: top traders' long/short ratio by positions and by accounts, the
        taker buy/sell volume ratio), stamped like its open interest at times in [start, end).
        A series it does not publish is not asked of it: it stays empty."""
        if name not in self.positioning_series:
            return []
        return self._series(
            lambda a, b: self._positioning(name, symbol, a, b),
            start,
            end,
            self.stat_page * FIVE_MINUTES_MS,
        )

    def _positioning(self, name: str, symbol: str, start: int, end: int) -> list[Point]:
        """One page of a positioning series; an exchange that lists any in `positioning_series`
        reads them here."""
        return []

    def taker_volume(self, symbol: str, start: int, end: int) -> list[TakerBucket]:
        """Taker buy volume per period opening in [start, end), for exchanges that publish it
        apart from the candles; empty where the candles carry it or nothing does."""
        return []

    def funding(self, symbol: str, start: int, end: int) -> list[Point]:
        """Funding rates settled at times in [start, end)."""
        span = self.funding_page * 3_600_000
        return self._series(lambda a, b: self._funding(symbol, a, b), start, end, span)

    def _candles(self, symbol: str, start: int, end: int) -> list[Candle]:
        """One page of ccxt's 1-minute OHLCV (no taker volume); malformed rows are logged and
        left out, so their steps are reported incomplete rather than guessed."""
        market = self.market(symbol)
        rows = self.call(
            self.exchange.fetch_ohlcv,
            market["symbol"],
            "1m",
            since=start,
            limit=self.candle_page,
            params={"until": end - 1},
        )
        candles = []
        for row in rows_of(rows, f"{self.slug} candles"):
            candle = make_candle(row)
            if candle is None:
                log.warning("%s %s: malformed candle skipped: %r", self.slug, market["id"], row)
                continue
            candles.append(candle)
        return candles

    def _open_interest_rows(self, symbol: str, start: int, end: int) -> tuple[dict, list]:
        """The market and one page of ccxt's 5-minute open interest history, as ccxt parsed it."""
        market = self.market(symbol)
        rows = self.call(
            self.exchange.fetch_open_interest_history,
            market["symbol"],
            "5m",
            since=start,
            limit=self.stat_page,
            params={"until": end - 1},
        )
        return market, rows

    def _open_interest(self, symbol: str, start: int, end: int) -> list[Point]:
        """One page of 5-minute open interest, in base units (contracts times the contract
        size)."""
        market, rows = self._open_interest_rows(symbol, start, end)
        label = f"{self.slug} {market['id']} open interest"
        return points_from(
            rows,
            "openInterestAmount",
            label,
            scale=self.contract_size(symbol),
            usd_field="openInterestValue",
        )

    def _long_short_ratio(self, symbol: str, start: int, end: int) -> list[Point]:
        """One page of ccxt's 5-minute global long/short account ratio history."""
        market = self.market(symbol)
        rows = self.call(
            self.exchange.fetch_long_short_ratio_history,
            market["symbol"],
            "5m",
            since=start,
            limit=self.stat_page,
            params={"until": end - 1},
        )
        return points_from(rows, "longShortRatio", f"{self.slug} {market['id']} long/short ratio")

    def _funding(self, symbol: str, start: int, end: int) -> list[Point]:
        market = self.market(symbol)
        rows = self.call(
            self.exchange.fetch_funding_rate_history,
            market["symbol"],
            since=start,
            limit=self.funding_page,
            params={"until": end - 1},
        )
        points = []
        for row in rows:
            rate = number(row.get("fundingRate"))
            if rate is not None and row.get("timestamp") is not None:
                points.append(Point(int(row["timestamp"]), rate))
        return points

    # --- whole-exchange listing ---------------------------------------------------------------
    def perpetuals(self, quote: str) -> list[Perpetual]:
        """Every linear perpetual settled in `quote` that the exchange lists now (trading or not,
        dated futures left out), with its open interest in USD, by symbol. The markets are
        loaded afresh, so one delisted since the last call is gone."""
        self.call(self.exchange.load_markets, True)
        listed = [
            m
            for m in self.exchange.markets.values()
            if m.get("swap") and m.get("linear") and m.get("quote") == quote
            if m.get("settle") in (None, quote)
        ]
        oi_usd = self.open_interests_usd([m for m in listed if m.get("active") is not False])
        return sorted(
            (
                Perpetual(
                    symbol=m["id"],
                    ccxt_symbol=m["symbol"],
                    base=m["base"],
                    quote=m["quote"],
                    contract_size=number(m.get("contractSize")) or 1.0,
                    active=m.get("active") is not False,
                    oi_usd=oi_usd.get(m["id"]),
                )
                for m in listed
            ),
            key=lambda p: p.symbol,
        )

    def open_interests_usd(self, markets: list[dict]) -> dict[str, float]:
        """Open interest in USD by exchange id for these ccxt markets; each exchange says how."""
        raise ConnectorError(f"{self.slug} cannot list open interest")

    # --- liquidation stream -------------------------------------------------------------------
    @property
    def stream_base(self) -> str:
        """The exchange's liquidation websocket, from settings.LIQSITE_STREAM_URLS (the
        documented addresses by default, so the next migration is a configuration change)."""
        from django.conf import settings

        return settings.LIQSITE_STREAM_URLS[self.ccxt_id]

    def stream_url(self, symbols: list[str]) -> str:
        return self.stream_base

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return []

    def parse_liquidations(
        self, payload: str | bytes, contract_sizes: dict[str, float]
    ) -> list[Liquidation]:
        """The liquidations in one websocket message (none for acks and pongs).

        `contract_sizes` maps each tracked symbol to its base units per contract; orders of other
        symbols are left out. A payload that is not what the exchange documents raises
        ConnectorError.
        """
        raise ConnectorError(f"{self.slug} has no liquidation stream")


def _header(headers: Any, name: str) -> Any:
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name)
    if value is None:
        value = getter(name.lower())
    return value


def load_json(payload: str | bytes) -> Any:
    """Decode one websocket message, raising ConnectorError when it is not JSON."""
    try:
        return json.loads(payload)
    except (TypeError, ValueError) as exc:
        raise ConnectorError(f"not JSON: {str(payload)[:80]!r}") from exc


def make_candle(values: list, taker_buy: Any = None) -> Candle | None:
    """A Candle from ccxt's [ts, open, high, low, close, volume] and an optional taker-buy
    volume, or None when the row is malformed (a missing number, a price that is not positive,
    high below low, negative volume). A taker volume slightly above the volume is clipped."""
    if not isinstance(values, list | tuple) or len(values) < 6 or values[0] is None:
        return None
    prices = [number(v) for v in values[1:5]]
    volume = number(values[5])
    if any(p is None or p <= 0 for p in prices) or volume is None or volume < 0:
        return None
    open_, high, low, close = prices
    if high < max(open_, close, low) or low > min(open_, close):
        return None
    taker = number(taker_buy)
    if taker is not None:
        if taker < 0:
            return None
        taker = min(taker, volume)
    return Candle(int(values[0]), open_, high, low, close, volume, taker)


def rows_of(payload: Any, what: str) -> list:
    """The list an endpoint answered, or ConnectorError naming the endpoint when it is not one."""
    if not isinstance(payload, list):
        raise ConnectorError(f"{what}: expected a list, got {type(payload).__name__}")
    return payload


def points_from(
    rows: Any, field: str, label: str, *, scale: float = 1.0, usd_field: str | None = None
) -> list[Point]:
    """Points from ccxt structures (open interest, ratios), skipping and logging malformed ones;
    `usd_field` names the row's USD value, kept beside the value when it is given."""
    points = []
    for row in rows_of(rows, label):
        value = number(row.get(field)) if isinstance(row, dict) else None
        stamp = row.get("timestamp") if isinstance(row, dict) else None
        if value is None or value < 0 or stamp is None:
            info = row.get("info") if isinstance(row, dict) else row
            log.warning("%s: malformed row skipped: %r", label, info)
            continue
        usd = number(row.get(usd_field)) if usd_field else None
        points.append(Point(int(stamp), value * scale, usd if usd and usd > 0 else None))
    return points
