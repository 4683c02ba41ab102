"""OKX v5, USDT perpetual swaps (ccxt `okx`, instType SWAP).

Conventions: swap sizes are counted in contracts of `ctVal` base units (ccxt's `contractSize`):
open interest, taker volume and liquidation sizes are multiplied by it here; ccxt already reads a
swap candle's volume from `volCcy` (base units). Every list comes newest first and arrays come as
arrays of strings (`[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]`). Answers carry
`code`/`msg` ("0" is success; 51001 an unknown instrument, 50011 too many requests). The trading
statistics (rubik) keep about three days at 5 minutes; their bounds `begin`/`end` are exclusive.
Taker volume comes from `/api/v5/rubik/stat/taker-volume-contract` as `[ts, sellVol, buyVol]`, the
period opening at ts. Open-interest rows (`[ts, oi, oiCcy, oiUsd]`) are read as stamped with their
snapshot time (`end`; the docs do not say) and checked on every ingest, `oiUsd / oiCcy` against the
candles' closes. A liquidation order's `posSide` is the position's side (long/short); in
net mode it is `net` and the order side tells it: a sell order liquidates a long.
"""

from __future__ import annotations

import json
import logging

from maps.connectors.base import (
    DAY_MS,
    FIVE_MINUTES_MS,
    Connector,
    ConnectorError,
    Liquidation,
    Point,
    TakerBucket,
    load_json,
    number,
    rows_of,
)

log = logging.getLogger(__name__)
ORDER_SIDE_TO_POSITION = {"sell": "long", "buy": "short"}


class OkxConnector(Connector):
    slug = "okx"
    ccxt_id = "okx"
    options = {"defaultType": "swap", "fetchMarkets": {"types": ["swap"]}}
    history_ms = 3 * DAY_MS
    candle_page = 100
    stat_page = 100
    funding_page = 100
    ws_ping = "ping"
    ws_ping_seconds = 25.0

    def contract_size(self, symbol: str) -> float:
        size = number(self.market(symbol).get("contractSize"))
        if not size or size <= 0:
            raise ConnectorError(f"okx: {symbol} has no contract size")
        return size

    positioning_series = ("top_position_ratio", "top_account_ratio")
    POSITIONING_ENDPOINTS = {
        "top_position_ratio": "publicGetRubikStatContractsLongShortPositionRatioContractTopTrader",
        "top_account_ratio": "publicGetRubikStatContractsLongShortAccountRatioContractTopTrader",
    }

    def _positioning(self, name: str, symbol: str, start: int, end: int) -> list[Point]:
        """One page of /api/v5/rubik/stat/contracts/long-short-position-ratio-contract-top-trader
        (or the account one): `[ts, ratio]` rows, newest first, bounds exclusive."""
        market = self.market(symbol)
        request = {
            "instId": market["id"],
            "period": "5m",
            "begin": start - 1,
            "end": end,
            "limit": self.stat_page,
        }
        response = self.call(getattr(self.exchange, self.POSITIONING_ENDPOINTS[name]), request)
        data = response.get("data") if isinstance(response, dict) else None
        points = []
        for row in rows_of(data, f"okx {name}"):
            value = number(row[1]) if isinstance(row, list) and len(row) > 1 else None
            stamp = number(row[0]) if isinstance(row, list) and row else None
            if value is None or value < 0 or stamp is None:
                log.warning("okx %s %s: malformed row skipped: %r", market["id"], name, row)
                continue
            points.append(Point(int(stamp), value))
        return points

    def taker_volume(self, symbol: str, start: int, end: int) -> list[TakerBucket]:
        return self._series(
            lambda a, b: self._taker(symbol, a, b), start, end, self.stat_page * FIVE_MINUTES_MS
        )

    def _taker(self, symbol: str, start: int, end: int) -> list[TakerBucket]:
        market = self.market(symbol)
        request = {
            "instId": market["id"],
            "period": "5m",
            "unit": "1",
            "begin": start - 1,
            "end": end,
            "limit": self.stat_page,
        }
        response = self.call(self.exchange.publicGetRubikStatTakerVolumeContract, request)
        size = self.contract_size(symbol)
        buckets = []
        for row in rows_of(
            response.get("data") if isinstance(response, dict) else None, "okx taker"
        ):
            buy = number(row[2]) if isinstance(row, list) and len(row) > 2 else None
            stamp = number(row[0]) if isinstance(row, list) and row else None
            if buy is None or buy < 0 or stamp is None:
                log.warning("okx %s: malformed taker volume row skipped: %r", market["id"], row)
                continue
            buckets.append(TakerBucket(int(stamp), FIVE_MINUTES_MS, buy * size))
        return buckets

    def open_interests_usd(self, markets: list[dict]) -> dict[str, float]:
        """Every swap's open interest from one `/api/v5/public/open-interest` call (instType
        SWAP): `oiUsd` is USD."""
        wanted = {m["id"] for m in markets}
        response = self.call(self.exchange.publicGetPublicOpenInterest, {"instType": "SWAP"})
        data = response.get("data") if isinstance(response, dict) else None
        out = {}
        for row in rows_of(data, "okx open interest"):
            if not isinstance(row, dict) or row.get("instId") not in wanted:
                continue
            value = number(row.get("oiUsd"))
            if value is None or value < 0:
                log.warning("okx %s: malformed open interest in %r", row.get("instId"), row)
                continue
            out[row["instId"]] = value
        return out

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        channel = {"channel": "liquidation-orders", "instType": "SWAP"}
        return [json.dumps({"op": "subscribe", "args": [channel]})]

    def parse_liquidations(
        self, payload: str | bytes, contract_sizes: dict[str, float]
    ) -> list[Liquidation]:
        if payload in ("pong", b"pong"):
            return []
        message = load_json(payload)
        if not isinstance(message, dict):
            raise ConnectorError(f"okx: unexpected message {str(message)[:120]}")
        if "event" in message:
            if message["event"] == "error":
                raise ConnectorError(f"okx: {message.get('code')} {message.get('msg')}")
            return []
        if (message.get("arg") or {}).get("channel") != "liquidation-orders":
            raise ConnectorError(f"okx: unexpected channel in {str(message)[:120]}")
        data = message.get("data")
        if not isinstance(data, list):
            raise ConnectorError("okx: liquidation-orders without data")
        out = []
        for order in data:
            symbol = order.get("instId") if isinstance(order, dict) else None
            if symbol in contract_sizes:
                details = order.get("details")
                if not isinstance(details, list):
                    raise ConnectorError(f"okx: liquidation without details {order}")
                out += [_liquidation(symbol, d, contract_sizes[symbol]) for d in details]
        return out


def _liquidation(symbol: str, detail: object, contract_size: float) -> Liquidation:
    if not isinstance(detail, dict):
        raise ConnectorError(f"okx: malformed liquidation detail {detail!r}")
    side = detail.get("posSide")
    if side not in ("long", "short"):
        side = ORDER_SIDE_TO_POSITION.get(detail.get("side"))
    price, size, time_ms = (
        number(detail.get("bkPx")),
        number(detail.get("sz")),
        number(detail.get("ts")),
    )
    if side is None or not price or price <= 0 or not size or size <= 0 or not time_ms:
        raise ConnectorError(f"okx: malformed liquidation detail {detail}")
    return Liquidation(symbol, int(time_ms), side, price, size * contract_size)
