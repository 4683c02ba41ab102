"""The liquidation stream: parsing recorded messages, batching, and reconnecting to a local
websocket server (127.0.0.1) that drops the connection and sends malformed messages."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command

from maps import stream
from maps.connectors import ConnectorError, Liquidation
from maps.connectors.binance import BinanceConnector
from maps.connectors.bybit import BybitConnector
from maps.connectors.okx import OkxConnector
from maps.models import Exchange, LiquidationEvent, Market
from maps.stream import Backoff, EventWriter, Subscription, liquidation_event, stream_run

RECORDINGS = Path(__file__).parent / "fixtures" / "exchanges"


def messages(exchange: str, name: str) -> list[str]:
    return [json.dumps(m) for m in json.loads((RECORDINGS / exchange / name).read_text())]


def test_it_reads_a_binance_sell_force_order_as_a_long_liquidated():
    doc, wrapped, other = messages("binance", "ws_force_orders.json")
    connector = BinanceConnector(None)
    sizes = {"BTCUSDT": 1.0}

    assert connector.parse_liquidations(doc, sizes) == [
        Liquidation("BTCUSDT", 1568014460893, "long", 9910.0, 0.014)
    ]
    assert connector.parse_liquidations(wrapped, sizes) == [
        Liquidation("BTCUSDT", 1736920812340, "short", 96911.4, 0.25)
    ]
    assert connector.parse_liquidations(other, sizes) == []


def test_it_subscribes_binance_streams_in_the_url_under_the_market_path():
    url = BinanceConnector(None).stream_url(["ETHUSDT", "BTCUSDT"])

    assert url == (
        "wss://fstream.binance.com/market/stream?streams=btcusdt@forceOrder/ethusdt@forceOrder"
    )


def test_it_takes_each_exchanges_stream_url_from_the_settings(settings):
    settings.LIQSITE_STREAM_URLS = {
        **settings.LIQSITE_STREAM_URLS,
        "binanceusdm": "wss://fstream.example.test/market/stream",
        "okx": "wss://okx.example.test/ws/v5/public",
    }

    url = BinanceConnector(None).stream_url(["BTCUSDT"])

    assert url == "wss://fstream.example.test/market/stream?streams=btcusdt@forceOrder"
    assert OkxConnector(None).stream_url(["BTC-USDT-SWAP"]) == "wss://okx.example.test/ws/v5/public"
    assert BybitConnector(None).stream_url([]) == "wss://stream.bybit.com/v5/public/linear"


def test_it_reads_a_bybit_buy_as_a_long_liquidated():
    ack, doc, btc, pong = messages("bybit", "ws_all_liquidation.json")
    connector = BybitConnector(None)
    sizes = {"BTCUSDT": 1.0, "ROSEUSDT": 1.0}

    assert connector.parse_liquidations(ack, sizes) == []
    assert connector.parse_liquidations(pong, sizes) == []
    assert connector.parse_liquidations(doc, sizes) == [
        Liquidation("ROSEUSDT", 1739502302929, "short", 0.04499, 20000.0)
    ]
    assert connector.parse_liquidations(btc, sizes) == [
        Liquidation("BTCUSDT", 1736920812101, "long", 95870.2, 0.412),
        Liquidation("BTCUSDT", 1736920812233, "long", 95861.0, 0.05),
    ]


def test_it_subscribes_bybit_topics_ten_at_a_time():
    symbols = [f"C{i:02d}USDT" for i in range(12)]

    subscribes = [json.loads(m) for m in BybitConnector(None).subscribe_messages(symbols)]

    assert [len(m["args"]) for m in subscribes] == [10, 2]
    assert subscribes[0] == {
        "op": "subscribe",
        "args": [f"allLiquidation.{s}" for s in symbols[:10]],
    }


def test_it_reads_okx_position_sides_and_contracts():
    event, doc, btc = messages("okx", "ws_liquidation_orders.json")
    connector = OkxConnector(None)
    sizes = {"BTC-USDT-SWAP": 0.01, "IOST-USDT-SWAP": 1000.0}

    assert connector.parse_liquidations(event, sizes) == []
    assert connector.parse_liquidations("pong", sizes) == []
    assert connector.parse_liquidations(doc, sizes) == [
        Liquidation("IOST-USDT-SWAP", 1692266434010, "short", 0.007831, 13000.0)
    ]
    assert connector.parse_liquidations(btc, sizes) == [
        Liquidation("BTC-USDT-SWAP", 1736920812999, "long", 96105.3, 0.25),
        Liquidation("BTC-USDT-SWAP", 1736920813101, "short", 97550.1, 0.04),
    ]


@pytest.mark.parametrize(
    ("connector", "payload"),
    [
        (BinanceConnector, "{not json"),
        (BinanceConnector, '{"e": "forceOrder"}'),
        (BinanceConnector, '{"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "HOLD", "p": "1"}}'),
        (BinanceConnector, '{"e": "aggTrade"}'),
        (BybitConnector, '{"topic": "allLiquidation.BTCUSDT", "data": [{"s": "BTCUSDT"}]}'),
        (BybitConnector, '{"topic": "publicTrade.BTCUSDT", "data": []}'),
        (BybitConnector, '{"success": false, "ret_msg": "error:handler not found", "op": "x"}'),
        (OkxConnector, '{"event": "error", "code": "60012", "msg": "Invalid request"}'),
        (OkxConnector, '{"arg": {"channel": "liquidation-orders"}, "data": {}}'),
        (
            OkxConnector,
            '{"arg": {"channel": "liquidation-orders"}, "data": [{"instId": "BTC-USDT-SWAP",'
            ' "details": [{"side": "sell", "sz": "x", "bkPx": "1", "ts": "1"}]}]}',
        ),
    ],
)
def test_it_rejects_what_the_exchange_does_not_document(connector, payload):
    sizes = {"BTCUSDT": 1.0, "BTC-USDT-SWAP": 0.01}

    with pytest.raises(ConnectorError):
        connector(None).parse_liquidations(payload, sizes)


def test_it_backs_off_exponentially_with_jitter_and_a_cap():
    backoff = Backoff(base=1.0, cap=60.0)

    assert 0.5 <= backoff.delay(0) <= 1.0
    assert 4.0 <= backoff.delay(3) <= 8.0
    assert 30.0 <= backoff.delay(20) <= 60.0


@pytest.mark.parametrize(
    ("connector", "payload"),
    [
        (BybitConnector, '{"topic": "allLiquidation.BTCUSDT", "data": [{"s": ["BTCUSDT"]}]}'),
        (
            BybitConnector,
            '{"topic": "allLiquidation.BTCUSDT", "data": [{"T": 99999999999999999999,'
            ' "s": "BTCUSDT", "S": "Buy", "v": "1", "p": "97000"}]}',
        ),
        (BinanceConnector, '{"e": "forceOrder", "o": {"s": "BTCUSDT", "S": ["SELL"]}}'),
        (OkxConnector, '{"arg": "liquidation-orders", "data": []}'),
    ],
)
def test_it_skips_a_message_of_any_wrong_shape_and_keeps_reading(connector, payload):
    subscription = Subscription(connector.ccxt_id, {"BTCUSDT": (1, 1.0)})
    good = messages("bybit", "ws_all_liquidation.json")[2]

    async def run():
        writer = EventWriter()
        await stream._handle(connector(None), payload, subscription, writer)
        await stream._handle(BybitConnector(None), good, subscription, writer)
        return writer

    writer = asyncio.run(run())

    assert writer.stats.malformed == 1
    assert writer.queue.qsize() == 2


@pytest.fixture
def bybit_market(transactional_db):
    exchange = Exchange.objects.create(slug="bybit", name="Bybit", ccxt_id="bybit")
    return Market.objects.create(
        exchange=exchange, symbol="BTCUSDT", slug="btcusdt", base="BTC", quote="USDT"
    )


def event(market: Market, ms: int, quantity: float = 1.0) -> object:
    return liquidation_event(Liquidation(market.symbol, ms, "long", 100.0, quantity), market.pk)


def test_it_writes_in_batches_and_each_order_once(bybit_market, monkeypatch):
    batches = []
    original = stream.events_write
    monkeypatch.setattr(stream, "events_write", lambda b: batches.append(len(b)) or original(b))
    orders = [event(bybit_market, 1736920800000 + i) for i in range(5)]
    orders += [event(bybit_market, 1736920800000), event(bybit_market, 1736920800001)]

    async def run():
        writer = EventWriter(batch_size=3, flush_seconds=5)
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        for order in orders:
            await writer.put(order)
        await asyncio.sleep(0.2)
        stop.set()
        await task

    asyncio.run(run())

    assert batches == [3, 3, 1]
    assert LiquidationEvent.objects.filter(market=bybit_market).count() == 5


def test_it_drops_the_events_of_a_deleted_market_and_writes_the_rest(bybit_market):
    gone = Market(pk=bybit_market.pk + 1000, symbol="ETHUSDT")
    orders = [event(bybit_market, 1736920800000), event(gone, 1736920800000)]

    assert stream.events_write(orders) == 1
    assert list(LiquidationEvent.objects.values_list("market_id", flat=True)) == [bybit_market.pk]


def test_it_flushes_a_partial_batch_after_the_flush_interval(bybit_market):
    async def run():
        writer = EventWriter(batch_size=100, flush_seconds=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        await writer.put(event(bybit_market, 1736920800000, 2.5))
        await asyncio.sleep(0.5)
        stored = await sync_to_async(LiquidationEvent.objects.count)()
        stop.set()
        await task
        return stored

    assert asyncio.run(run()) == 1
    stored = LiquidationEvent.objects.get()
    assert (stored.side, stored.quantity, stored.notional_usd, stored.source) == (
        "long",
        2.5,
        250.0,
        "stream",
    )
    assert stored.time == datetime(2025, 1, 15, 6, 0, tzinfo=UTC)


class FlakyServer:
    """Connection 1: an ack, two orders, two malformed messages, then a drop. Later ones: one
    order again and a new one, then quiet. Records each connection's subscribe message."""

    def __init__(self) -> None:
        self.subscribes: list[dict] = []
        recorded = messages("bybit", "ws_all_liquidation.json")
        self.ack, self.btc = recorded[0], recorded[2]

    async def handler(self, ws) -> None:
        self.subscribes.append(json.loads(await ws.recv()))
        await ws.send(self.ack)
        if len(self.subscribes) == 1:
            await ws.send(self.btc)
            await ws.send("{truncated")
            await ws.send(
                json.dumps({"topic": "allLiquidation.BTCUSDT", "data": [{"s": "BTCUSDT"}]})
            )
            await ws.close(code=1011)
            return
        again = json.loads(self.btc)
        again["data"].append(
            {"T": 1736920899000, "s": "BTCUSDT", "S": "Sell", "v": "1.5", "p": "97000"}
        )
        await ws.send(json.dumps(again))
        await ws.wait_closed()


async def serve_and_stream(server: FlakyServer, until, **options) -> stream.StreamStats:
    async with websockets.serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        task = asyncio.create_task(
            stream_run(
                stop,
                urls={"bybit": f"ws://127.0.0.1:{port}"},
                flush_seconds=0.05,
                backoff=Backoff(base=0.05, cap=0.2),
                **options,
            )
        )
        deadline = asyncio.get_running_loop().time() + 20
        while not await until() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        return await asyncio.wait_for(task, timeout=20)


def test_it_reconnects_after_a_drop_skips_malformed_messages_and_stores_each_order_once(
    bybit_market,
):
    server = FlakyServer()
    count = sync_to_async(LiquidationEvent.objects.count)

    async def three_events():
        return await count() >= 3 and len(server.subscribes) >= 2

    stats = asyncio.run(serve_and_stream(server, three_events))

    rows = list(LiquidationEvent.objects.order_by("time").values_list("side", "quantity", "price"))
    assert rows == [("long", 0.412, 95870.2), ("long", 0.05, 95861.0), ("short", 1.5, 97000.0)]
    assert stats.connects >= 2
    assert stats.malformed == 2
    assert server.subscribes[0] == {"op": "subscribe", "args": ["allLiquidation.BTCUSDT"]}
    assert server.subscribes[1] == server.subscribes[0]


def test_it_resubscribes_when_the_tracked_markets_change(bybit_market):
    server = FlakyServer()

    async def add_then_see_it():
        if (
            len(server.subscribes) == 2
            and not await sync_to_async(Market.objects.filter(symbol="ETHUSDT").exists)()
        ):
            await sync_to_async(Market.objects.create)(
                exchange=bybit_market.exchange,
                symbol="ETHUSDT",
                slug="ethusdt",
                base="ETH",
                quote="USDT",
            )
        return any("allLiquidation.ETHUSDT" in s["args"] for s in server.subscribes)

    asyncio.run(serve_and_stream(server, add_then_see_it, refresh_seconds=0.1))

    assert server.subscribes[-1] == {
        "op": "subscribe",
        "args": ["allLiquidation.BTCUSDT", "allLiquidation.ETHUSDT"],
    }


def test_it_keeps_trying_while_the_exchange_is_unreachable(bybit_market):
    subscription = Subscription("bybit", {"BTCUSDT": (bybit_market.pk, 1.0)})

    async def run():
        writer = EventWriter()
        stop = asyncio.Event()
        task = asyncio.create_task(
            stream.feed_run(
                subscription, writer, stop, url="ws://127.0.0.1:9", backoff=Backoff(0.02, 0.05)
            )
        )
        await asyncio.sleep(0.6)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        return writer.stats

    stats = asyncio.run(run())

    assert stats.connects == 0
    assert len(stats.errors) >= 3


def test_it_refuses_a_batch_size_below_one():
    with pytest.raises(CommandError, match="batch-size"):
        call_command("stream_liquidations", "--batch-size", "0")


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        ({"T": 1736920812340, "p": "1e200", "v": "1e200"}, "price 1e+200 is above"),
        ({"T": -5000, "p": "97000", "v": "1"}, "lies outside 2010-2100"),
        ({"T": 1736920812340, "p": "97000", "v": "1e9"}, "notional 9.7e+13 USD is above"),
    ],
)
def test_it_refuses_a_hostile_liquidation_and_keeps_the_others_of_its_message(
    order, reason, caplog
):
    subscription = Subscription("bybit", {"BTCUSDT": (1, 1.0)})
    good = {"T": 1736920812340, "s": "BTCUSDT", "S": "Buy", "v": "0.5", "p": "97000"}
    payload = json.dumps(
        {"topic": "allLiquidation.BTCUSDT", "data": [{"s": "BTCUSDT", "S": "Buy", **order}, good]}
    )

    async def run():
        writer = EventWriter()
        await stream._handle(BybitConnector(None), payload, subscription, writer)
        return writer

    writer = asyncio.run(run())

    assert writer.stats.malformed == 1
    assert writer.queue.qsize() == 1
    assert writer.queue.get_nowait().quantity == 0.5
    assert reason in caplog.text
