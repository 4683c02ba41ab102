"""Binance USD-M futures (ccxt `binanceusdm`).

Conventions: sizes are in base units everywhere (klines, open interest, force orders). Klines carry
the taker-buy base volume at index 9, which ccxt's OHLCV drops, so they are read through ccxt's
implicit `fapiPublicGetKlines` and parsed with ccxt's `parse_ohlcv` plus that column.
`/futures/data/openInterestHist` and `globalLongShortAccountRatio` keep 30 days at 5 minutes. Their
docs do not say when a row's snapshot was taken; they are the statistics the bulk `metrics` files
are cut from, so they follow the same stamping (`auto`: since 2024-03-04 a row stamped T holds the
snapshot taken at T + 5 min), and every ingest checks it on the data: the row's
`sumOpenInterestValue / sumOpenInterest` against the kline closes (maps.ingest). The liquidation
stream is `<symbol>@forceOrder`, under the market path since Binance retired its legacy USD-M
websocket URLs on 2026-04-23 (`LIQSITE_STREAM_URL_BINANCE`). A force order's side is the side of
the liquidation order: SELL closes (liquidates) a long position, BUY a short one. HTTP 429 asks to
slow down, 418 is an IP ban until the time named in the message.
"""

from __future__ import annotations

import logging
import re

import ccxt

from maps.connectors.base import (
    DAY_MS,
    RETRYABLE_ERRORS,
    Candle,
    Connector,
    ConnectorError,
    Liquidation,
    Point,
    load_json,
    make_candle,
    number,
    rows_of,
)

log = logging.getLogger(__name__)
BANNED_UNTIL = re.compile(r"banned until (\d{13})")
ORDER_SIDE_TO_POSITION = {"SELL": "long", "BUY": "short"}


class BinanceConnector(Connector):
    slug = "binance"
    ccxt_id = "binanceusdm"
    options = {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}}
    history_ms = 30 * DAY_MS
    candle_page = 1000
    stat_page = 500
    funding_page = 1000
    oi_stamping = "auto"
    positioning_series = ("top_position_ratio", "top_account_ratio", "taker_ratio")
    POSITIONING_ENDPOINTS = {
        # series: (ccxt implicit method, the row's field), /futures/data/<endpoint>
        "top_position_ratio": ("fapiDataGetTopLongShortPositionRatio", "longShortRatio"),
        "top_account_ratio": ("fapiDataGetTopLongShortAccountRatio", "longShortRatio"),
        "taker_ratio": ("fapiDataGetTakerlongshortRatio", "buySellRatio"),
    }

    def _positioning(self, name: str, symbol: str, start: int, end: int) -> list[Point]:
        """One page of /futures/data/topLongShortPositionRatio, topLongShortAccountRatio or
        takerlongshortRatio (period 5m, 30 days kept, stamped like openInterestHist)."""
        method, field = self.POSITIONING_ENDPOINTS[name]
        market = self.market(symbol)
        request = {
            "symbol": market["id"],
            "period": "5m",
            "startTime": start,
            "endTime": end - 1,
            "limit": self.stat_page,
        }
        rows = self.call(getattr(self.exchange, method), request)
        points = []
        for row in rows_of(rows, f"binance {market['id']} {name}"):
            value = number(row.get(field)) if isinstance(row, dict) else None
            stamp = number(row.get("timestamp")) if isinstance(row, dict) else None
            if value is None or value < 0 or stamp is None:
                log.warning("binance %s %s: malformed row skipped: %r", market["id"], name, row)
                continue
            points.append(Point(int(stamp), value))
        return points

    def retry_after(self, message: str) -> float:
        banned = BANNED_UNTIL.search(message)
        if banned:
            return max(1.0, (int(banned.group(1)) - self.now_ms()) / 1000)
        return super().retry_after(message)

    def _candles(self, symbol: str, start: int, end: int) -> list[Candle]:
        market = self.market(symbol)
        request = {
            "symbol": market["id"],
            "interval": "1m",
            "startTime": start,
            "endTime": end - 1,
            "limit": self.candle_page,
        }
        rows = rows_of(self.call(self.exchange.fapiPublicGetKlines, request), "binance klines")
        candles = []
        for row in rows:
            taker = row[9] if isinstance(row, list) and len(row) > 9 else None
            candle = make_candle(self.exchange.parse_ohlcv(row, market), taker)
            if candle is None or candle.taker_buy is None:
                log.warning("binance %s: malformed kline skipped: %r", market["id"], row)
                continue
            candles.append(candle)
        return candles

    def open_interests_usd(self, markets: list[dict]) -> dict[str, float]:
        """Binance has no all-symbols open interest: one `/fapi/v1/premiumIndex` call gives every
        mark price, then `/fapi/v1/openInterest` (base units) is asked per symbol. A symbol it
        refuses (delisted in between) is left out with a warning."""
        marks = {}
        payload = self.call(self.exchange.fapiPublicGetPremiumIndex, {})
        for row in rows_of(payload, "binance premium index"):
            price = number(row.get("markPrice")) if isinstance(row, dict) else None
            if price and price > 0:
                marks[row["symbol"]] = price
        out = {}
        for market in markets:
            symbol = market["id"]
            if symbol not in marks:
                log.warning("binance %s: no mark price, open interest unknown", symbol)
                continue
            try:
                answer = self.call(self.exchange.fapiPublicGetOpenInterest, {"symbol": symbol})
            except RETRYABLE_ERRORS:
                raise
            except ccxt.ExchangeError as exc:
                log.warning("binance %s: open interest refused: %s", symbol, exc)
                continue
            amount = number(answer.get("openInterest")) if isinstance(answer, dict) else None
            if amount is None or amount < 0:
                log.warning("binance %s: malformed open interest %r", symbol, answer)
                continue
            out[symbol] = amount * marks[symbol]
        return out

    def stream_url(self, symbols: list[str]) -> str:
        streams = "/".join(f"{symbol.lower()}@forceOrder" for symbol in sorted(symbols))
        return f"{self.stream_base}?streams={streams}"

    def parse_liquidations(
        self, payload: str | bytes, contract_sizes: dict[str, float]
    ) -> list[Liquidation]:
        message = load_json(payload)
        if isinstance(message, dict) and "stream" in message and "data" in message:
            message = message["data"]
        if isinstance(message, dict) and "result" in message and "id" in message:
            return []
        if not isinstance(message, dict) or message.get("e") != "forceOrder":
            raise ConnectorError(f"binance: not a forceOrder event: {str(message)[:120]}")
        order = message.get("o")
        if not isinstance(order, dict):
            raise ConnectorError("binance: forceOrder without an order")
        symbol = order.get("s")
        if symbol not in contract_sizes:
            return []
        side = ORDER_SIDE_TO_POSITION.get(order.get("S"))
        price = number(order.get("ap")) or number(order.get("p"))
        quantity = number(order.get("z")) or number(order.get("q"))
        time_ms = number(order.get("T"))
        if side is None or not price or price <= 0 or not quantity or quantity <= 0 or not time_ms:
            raise ConnectorError(f"binance: malformed force order {order}")
        return [Liquidation(symbol, int(time_ms), side, price, quantity * contract_sizes[symbol])]
