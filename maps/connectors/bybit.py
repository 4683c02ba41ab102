"""Bybit v5, linear (USDT) perpetuals (ccxt `bybit`, category linear).

Conventions: linear sizes are in base units (kline volume, open interest, liquidation size). Lists
come newest first; ccxt sorts klines and open interest, and the paging here sorts the rest.
Answers carry `retCode`/`retMsg` (0 is success; 10001 a bad parameter or symbol, 10006 too many
requests) and an IP over its limit gets HTTP 403. Bybit publishes no taker buy volume per kline,
so bars store a neutral half of the volume and the market's long share comes from the global
long/short account ratio (`/v5/market/account-ratio`, 5min), mode `ratio`. The `allLiquidation`
stream's `S` is the side of the position liquidated: Buy means a long was liquidated.

Open interest (`/v5/market/open-interest`): Bybit's current v5 docs describe `openInterest` as the
sum of both sides and add `singleOpenInterest`, one side (half of it in their example). Binance and
OKX report one side, and so does the model, so the one-sided figure is used wherever it is given;
a row that carries `singleOpenInterest` but no usable value of it has its two-sided `openInterest`
halved; a row in the older shape (no `singleOpenInterest` field) was one-sided and is taken as it
is. The rule follows the payload's fields, never a date. Rows are stamped with their snapshot time
(`end`); the payload has no USD value to check that against.
"""

from __future__ import annotations

import json
import logging

from maps.connectors.base import (
    DAY_MS,
    Connector,
    ConnectorError,
    Liquidation,
    Point,
    load_json,
    number,
    points_from,
    rows_of,
)

log = logging.getLogger(__name__)
POSITION_SIDE = {"Buy": "long", "Sell": "short"}
TOPICS_PER_SUBSCRIBE = 10


class BybitConnector(Connector):
    slug = "bybit"
    ccxt_id = "bybit"
    options = {
        "defaultType": "swap",
        "defaultSubType": "linear",
        "fetchMarkets": {"types": ["linear"]},
    }
    history_ms = 90 * DAY_MS
    has_taker_volume = False
    default_long_share = "ratio"
    candle_page = 1000
    stat_page = 200
    funding_page = 200
    ws_ping = json.dumps({"op": "ping"})
    ws_ping_seconds = 20.0

    def _open_interest(self, symbol: str, start: int, end: int) -> list[Point]:
        """One page of 5-minute open interest, one side of it (see the module's docstring)."""
        market, rows = self._open_interest_rows(symbol, start, end)
        points = []
        for row in rows_of(rows, f"bybit {market['id']} open interest"):
            info = row.get("info") if isinstance(row, dict) else None
            value = one_sided_open_interest(info)
            stamp = number(info.get("timestamp")) if isinstance(info, dict) else None
            if value is None or stamp is None:
                log.warning("bybit %s: malformed open interest row skipped: %r", market["id"], info)
                continue
            points.append(Point(int(stamp), value))
        return points

    def _long_short_ratio(self, symbol: str, start: int, end: int) -> list[Point]:
        market = self.market(symbol)
        rows = self.call(
            self.exchange.fetch_long_short_ratio_history,
            market["symbol"],
            "5min",
            limit=self.stat_page,
            params={"startTime": start, "endTime": end - 1},
        )
        return points_from(rows, "longShortRatio", f"bybit {market['id']} long/short ratio")

    def open_interests_usd(self, markets: list[dict]) -> dict[str, float]:
        """Every linear ticker from one `/v5/market/tickers` call: `openInterestValue` is USD;
        without it, `openInterest` (base units) times `markPrice`."""
        wanted = {m["id"] for m in markets}
        response = self.call(self.exchange.publicGetV5MarketTickers, {"category": "linear"})
        result = response.get("result") if isinstance(response, dict) else None
        out = {}
        for row in rows_of(result.get("list") if isinstance(result, dict) else None, "bybit"):
            if not isinstance(row, dict) or row.get("symbol") not in wanted:
                continue
            value = number(row.get("openInterestValue"))
            if value is None:
                amount, mark = number(row.get("openInterest")), number(row.get("markPrice"))
                value = amount * mark if amount is not None and mark else None
            if value is None or value < 0:
                log.warning("bybit %s: malformed open interest in %r", row.get("symbol"), row)
                continue
            out[row["symbol"]] = value
        return out

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        topics = [f"allLiquidation.{symbol}" for symbol in sorted(symbols)]
        return [
            json.dumps({"op": "subscribe", "args": topics[i : i + TOPICS_PER_SUBSCRIBE]})
            for i in range(0, len(topics), TOPICS_PER_SUBSCRIBE)
        ]

    def parse_liquidations(
        self, payload: str | bytes, contract_sizes: dict[str, float]
    ) -> list[Liquidation]:
        message = load_json(payload)
        if not isinstance(message, dict):
            raise ConnectorError(f"bybit: unexpected message {str(message)[:120]}")
        if "op" in message and "topic" not in message:
            if message.get("success") is False:
                raise ConnectorError(
                    f"bybit: {message.get('op')} refused: {message.get('ret_msg')}"
                )
            return []
        if not str(message.get("topic", "")).startswith("allLiquidation."):
            raise ConnectorError(f"bybit: unexpected topic {message.get('topic')!r}")
        data = message.get("data")
        items = data if isinstance(data, list) else [data]
        return [
            liquidation
            for item in items
            if (liquidation := _liquidation(item, contract_sizes)) is not None
        ]


def one_sided_open_interest(row: object) -> float | None:
    """One side's open interest (base units) of a `/v5/market/open-interest` row: its
    `singleOpenInterest`, else half the two-sided `openInterest` of a row in the current shape,
    else the `openInterest` of a row in the older, one-sided shape; None when malformed."""
    if not isinstance(row, dict):
        return None
    both = number(row.get("openInterest"))
    if "singleOpenInterest" in row:
        single = number(row.get("singleOpenInterest"))
        if single is not None and single >= 0:
            return single
        return both / 2 if both is not None and both >= 0 else None
    return both if both is not None and both >= 0 else None


def _liquidation(item: object, contract_sizes: dict[str, float]) -> Liquidation | None:
    if not isinstance(item, dict):
        raise ConnectorError(f"bybit: malformed liquidation {item!r}")
    symbol = item.get("s")
    if symbol not in contract_sizes:
        return None
    side = POSITION_SIDE.get(item.get("S"))
    price, size, time_ms = number(item.get("p")), number(item.get("v")), number(item.get("T"))
    if side is None or not price or price <= 0 or not size or size <= 0 or not time_ms:
        raise ConnectorError(f"bybit: malformed liquidation {item}")
    return Liquidation(symbol, int(time_ms), side, price, size * contract_sizes[symbol])
