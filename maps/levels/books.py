"""Order books from the exchanges, through ccxt's `fetch_order_book`, as deep as each one allows.

- Binance USD-M `GET /fapi/v1/depth` (limit up to 1000): `{"lastUpdateId", "E", "T", "bids":
  [["price", "qty"], ...], "asks": [...]}`, quantities in base units.
- Bybit v5 `GET /v5/market/orderbook?category=linear` (limit up to 500): `{"retCode": 0,
  "result": {"s", "b": [["price", "size"]], "a": [...], "ts", "u", "seq", "cts"}}`, base units.
- OKX v5 `GET /api/v5/market/books-full` (sz up to 5000; ccxt takes it for a limit above 400):
  `{"code": "0", "data": [{"asks": [["px", "sz", ...]], "bids": [...], "ts"}]}`, sizes in
  contracts, turned into base units with the instrument's contract size.

How far ±5 % of the price is reached depends on the book: the levels an exchange returns may end
closer to the mid on a busy market; each stored book records how far its sides reached. A book
with an empty side, a crossed book (best bid at or above the best ask), or a level that is not a
positive price and size is refused with a BookError naming the exchange and symbol: nothing of it
is stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from maps.analytics.orderbook import Book, BookError, book_checked
from maps.connectors import Connector

BOOK_LIMITS = {"binanceusdm": 1000, "bybit": 500, "okx": 5000}


@dataclass(frozen=True)
class FetchedBook:
    book: Book
    contract_size: float  # base units per size unit of the book's levels


def order_book_fetch(connector: Connector, symbol: str) -> FetchedBook:
    """The market's order book now, checked (BookError when it cannot be used; the connector's
    errors, such as RateLimited, pass through)."""
    market = connector.market(symbol)
    where = f"{connector.slug} {market['id']} order book"
    limit = BOOK_LIMITS.get(connector.ccxt_id, 1000)
    raw = connector.call(connector.exchange.fetch_order_book, market["symbol"], limit)
    if not isinstance(raw, dict):
        raise BookError(f"{where}: expected an order book, got {type(raw).__name__}")
    stamp = raw.get("timestamp")
    time_ms = int(stamp) if isinstance(stamp, int | float) and stamp > 0 else connector.now_ms()
    book = book_checked(raw.get("bids"), raw.get("asks"), time_ms=time_ms, where=where)
    return FetchedBook(book, connector.contract_size(symbol))
