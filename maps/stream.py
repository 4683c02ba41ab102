"""The liquidation stream: one websocket per exchange for its tracked markets, events in batches.

Each exchange's connector knows its URL, subscription and message format (maps/connectors). A feed
reconnects after any failure with exponential backoff and jitter, resubscribes, and starts over
from a clean connection; a message it cannot read is logged and skipped. Events go through one
writer that inserts them in batches with `ignore_conflicts`, so an order seen twice (a replay
after a reconnect, two identical pushes) is stored once: LiquidationEvent is unique on market,
time, side, price and quantity. The set of tracked markets is re-read periodically; a feed whose
markets changed is restarted with the new subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import websockets
from asgiref.sync import sync_to_async
from django.db import close_old_connections, connections

from maps.connectors import Connector, Liquidation, connector_for
from maps.engine.types import event_problem
from maps.models import LiquidationEvent, Market
from maps.selectors import markets_ingestible

log = logging.getLogger(__name__)

SOURCE = "stream"


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: base * 2**attempt seconds, capped, times a random factor in [0.5, 1]."""

    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.base * 2**attempt) * random.uniform(0.5, 1.0)


@dataclass
class StreamStats:
    connects: int = 0
    messages: int = 0
    malformed: int = 0
    written: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Subscription:
    """One exchange's tracked markets: exchange symbol -> (market id, base units per contract)."""

    ccxt_id: str
    markets: dict[str, tuple[int, float]]

    @property
    def contract_sizes(self) -> dict[str, float]:
        return {symbol: size for symbol, (_, size) in self.markets.items()}


def tracked_subscriptions(ccxt_ids: Iterable[str] | None = None) -> dict[str, Subscription]:
    """The tracked live markets per exchange we can stream, keyed by ccxt id. A market's
    `symbol` is the exchange's own (BTCUSDT; BTC-USDT-SWAP on OKX), as the stream names it."""
    markets = markets_ingestible(ccxt_ids=ccxt_ids).values_list(
        "exchange__ccxt_id", "symbol", "pk", "contract_size"
    )
    grouped: dict[str, dict[str, tuple[int, float]]] = {}
    for ccxt_id, symbol, pk, size in markets:
        grouped.setdefault(ccxt_id, {})[symbol] = (pk, size or 1.0)
    return {ccxt_id: Subscription(ccxt_id, symbols) for ccxt_id, symbols in grouped.items()}


def liquidation_event(liquidation: Liquidation, market_id: int) -> LiquidationEvent:
    return LiquidationEvent(
        market_id=market_id,
        time=datetime.fromtimestamp(liquidation.time_ms / 1000, tz=UTC),
        side=liquidation.side,
        price=liquidation.price,
        quantity=liquidation.quantity,
        notional_usd=liquidation.notional,
        source=SOURCE,
    )


def events_write(events: list[LiquidationEvent]) -> int:
    """Insert the events, each order once (repeats in the batch or already stored are ignored);
    returns how many distinct orders the batch held. Events of a market deleted since the stream
    read the tracked markets are dropped: they could never be stored, and retrying them would
    hold back every later batch."""
    close_old_connections()
    ids = {e.market_id for e in events}
    existing = set(Market.objects.filter(pk__in=ids).values_list("pk", flat=True))
    if existing != ids:
        log.warning("events of deleted market(s) %s dropped", sorted(ids - existing))
    unique = {
        (e.market_id, e.time, e.side, e.price, e.quantity): e
        for e in events
        if e.market_id in existing
    }
    LiquidationEvent.objects.bulk_create(list(unique.values()), ignore_conflicts=True)
    return len(unique)


class EventWriter:
    """Collects events and writes them when `batch_size` are waiting or `flush_seconds` passed."""

    def __init__(self, *, batch_size: int = 200, flush_seconds: float = 2.0) -> None:
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.queue: asyncio.Queue[LiquidationEvent] = asyncio.Queue()
        self.stats = StreamStats()

    async def put(self, event: LiquidationEvent) -> None:
        await self.queue.put(event)

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches until `stop` is set, then write what is left."""
        while not stop.is_set():
            batch = await self._collect(stop)
            await self._write(batch)
        await self._write(self._drain())

    async def _collect(self, stop: asyncio.Event) -> list[LiquidationEvent]:
        """Events until the batch is full, `flush_seconds` have passed or `stop` is set."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.flush_seconds
        batch: list[LiquidationEvent] = []
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while len(batch) < self.batch_size:
                if not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0 or stop.is_set():
                    break
                getting = asyncio.ensure_future(self.queue.get())
                await asyncio.wait(
                    {getting, stopping}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if not getting.done():
                    getting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getting
                if getting.done() and not getting.cancelled():
                    batch.append(getting.result())
        finally:
            stopping.cancel()
        return batch

    def _drain(self) -> list[LiquidationEvent]:
        batch = []
        while not self.queue.empty():
            batch.append(self.queue.get_nowait())
        return batch

    async def _write(self, batch: list[LiquidationEvent]) -> None:
        if not batch:
            return
        try:
            written = await sync_to_async(events_write, thread_sensitive=True)(batch)
        except Exception:
            log.exception("writing %d liquidation events failed; they are requeued", len(batch))
            for event in batch:
                self.queue.put_nowait(event)
            await asyncio.sleep(self.flush_seconds)
            return
        self.stats.written += written
        log.debug("%d liquidation events written", written)


async def feed_run(
    subscription: Subscription,
    writer: EventWriter,
    stop: asyncio.Event,
    *,
    connector: Connector | None = None,
    url: str | None = None,
    backoff: Backoff | None = None,
) -> None:
    """Stream one exchange's liquidations until `stop`, reconnecting after every failure."""
    connector = connector or connector_for(subscription.ccxt_id)
    backoff = backoff or Backoff()
    symbols = sorted(subscription.markets)
    url = url or connector.stream_url(symbols)
    attempt = 0
    while not stop.is_set():
        try:
            async for _ in _session(connector, url, symbols, subscription, writer, stop):
                attempt = 0
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            writer.stats.errors.append(f"{connector.slug}: {exc!r}")
            log.warning("%s stream: %r", connector.slug, exc)
        except Exception as exc:
            writer.stats.errors.append(f"{connector.slug}: {exc!r}")
            log.exception("%s stream failed; it starts over", connector.slug)
        if stop.is_set():
            break
        delay = backoff.delay(attempt)
        attempt += 1
        log.info("%s stream: reconnecting in %.1f s", connector.slug, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)


async def _session(connector, url, symbols, subscription, writer, stop):
    """One connection: subscribe, then yield after each message read (the feed resets its
    backoff then); returns when the server closes or `stop` is set."""
    async with websockets.connect(url, open_timeout=15, close_timeout=5, max_size=2**22) as ws:
        for message in connector.subscribe_messages(symbols):
            await ws.send(message)
        writer.stats.connects += 1
        log.info("%s stream: connected, %d market(s)", connector.slug, len(symbols))
        pinger = asyncio.create_task(_ping(ws, connector))
        stopper = asyncio.create_task(_close_on(stop, ws))
        try:
            async for raw in ws:
                writer.stats.messages += 1
                await _handle(connector, raw, subscription, writer)
                yield
        finally:
            pinger.cancel()
            stopper.cancel()


async def _handle(connector, raw, subscription: Subscription, writer: EventWriter) -> None:
    """Queue the message's events. A message that cannot be read, whatever is wrong with it
    (not what the exchange documents, wrong types, an impossible time), is logged and skipped:
    one bad message must not cost the connection and the messages behind it. A liquidation with
    impossible values (`event_problem`: a time outside 2010-2100, a price or notional no market
    has) is skipped alone, with its reason."""
    try:
        liquidations = connector.parse_liquidations(raw, subscription.contract_sizes)
    except Exception as exc:
        writer.stats.malformed += 1
        log.warning("%s stream: message skipped: %r (%s)", connector.slug, str(raw)[:200], exc)
        return
    for liquidation in liquidations:
        problem = event_problem(liquidation.time_ms, liquidation.price, liquidation.quantity)
        if problem:
            writer.stats.malformed += 1
            log.warning(
                "%s stream: liquidation refused: %s: %r", connector.slug, problem, liquidation
            )
            continue
        market_id = subscription.markets[liquidation.symbol][0]
        await writer.put(liquidation_event(liquidation, market_id))


async def _ping(ws, connector: Connector) -> None:
    if not connector.ws_ping:
        return
    while True:
        await asyncio.sleep(connector.ws_ping_seconds)
        await ws.send(connector.ws_ping)


async def _close_on(stop: asyncio.Event, ws) -> None:
    await stop.wait()
    await ws.close()


async def stream_run(
    stop: asyncio.Event,
    *,
    ccxt_ids: Iterable[str] | None = None,
    batch_size: int = 200,
    flush_seconds: float = 2.0,
    refresh_seconds: float = 300.0,
    urls: dict[str, str] | None = None,
    backoff: Backoff | None = None,
) -> StreamStats:
    """Run a feed per exchange with tracked markets until `stop`; restart a feed whose markets
    changed. Returns the counters (connections, messages, malformed, events written)."""
    writer = EventWriter(batch_size=batch_size, flush_seconds=flush_seconds)
    writing = asyncio.create_task(writer.run(stop))
    running: dict[str, tuple[Subscription, asyncio.Event, asyncio.Task]] = {}
    wanted = list(ccxt_ids) if ccxt_ids else None
    while not stop.is_set():
        subscriptions = await sync_to_async(tracked_subscriptions, thread_sensitive=True)(wanted)
        for ccxt_id in set(running) - set(subscriptions):
            await _stop_feed(running.pop(ccxt_id))
        for ccxt_id, subscription in subscriptions.items():
            if ccxt_id in running and running[ccxt_id][0] == subscription:
                continue
            if ccxt_id in running:
                await _stop_feed(running.pop(ccxt_id))
            feed_stop = asyncio.Event()
            url = (urls or {}).get(ccxt_id)
            task = asyncio.create_task(
                feed_run(subscription, writer, feed_stop, url=url, backoff=backoff)
            )
            running[ccxt_id] = (subscription, feed_stop, task)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=refresh_seconds)
    for item in running.values():
        await _stop_feed(item)
    await writing
    await sync_to_async(connections.close_all, thread_sensitive=True)()
    return writer.stats


async def _stop_feed(item: tuple[Subscription, asyncio.Event, asyncio.Task]) -> None:
    _, feed_stop, task = item
    feed_stop.set()
    try:
        await asyncio.wait_for(task, timeout=10)
    except TimeoutError:
        task.cancel()
