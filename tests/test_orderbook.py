"""Order books: the numbers (maps/analytics/orderbook.py), the three exchanges' recorded payloads
through ccxt (maps/levels/books.py, including the refused shapes), storage, the snapshot and prune
tasks, and the demo's simulated books."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection

from liqsite.celery import app
from maps import connectors
from maps.analytics import orderbook as ob
from maps.levels import demo, services, tasks
from maps.levels.books import order_book_fetch
from maps.levels.selectors import (
    book_history,
    common_edges,
    depth_decode,
    depth_encode,
    market_book_rows,
    mid_bin,
)
from maps.models import OrderBookSnapshot
from tests.conftest import synthetic_bars

MINUTE = 60_000
NOW = 1736920950000  # the recordings' clock
BOOKS = {
    "binanceusdm": ("BTCUSDT", "/fapi/v1/depth", "depth"),
    "bybit": ("BTCUSDT", "/v5/market/orderbook", "orderbook"),
    "okx": ("BTC-USDT-SWAP", "/api/v5/market/books-full", "books"),
}


def route(ccxt_id: str, file: str) -> dict:
    return {"path": BOOKS[ccxt_id][1], "file": file}


@pytest.fixture
def exchange_answers(replay_connector):
    """make(ccxt_id, *routes): the connector the tasks get (connector_for) answers from the
    recordings, with these routes first."""

    def make(ccxt_id: str, *routes: dict):
        connectors._cache[ccxt_id] = replay_connector(ccxt_id, *routes)
        return connectors._cache[ccxt_id]

    return make


@pytest.fixture
def eager():
    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


# The numbers.


def test_it_refuses_an_empty_side_a_crossed_book_and_bad_levels():
    asks = [[101.0, 1.0], [102.0, 2.0]]
    with pytest.raises(ob.BookError, match="the bid side is empty"):
        ob.book_checked([], asks, time_ms=0)
    with pytest.raises(ob.BookError, match="the ask side is empty"):
        ob.book_checked([[99.0, 1.0]], [], time_ms=0)
    with pytest.raises(
        ob.BookError, match=r"crossed book: best bid 101\.5 is not below best ask 101"
    ):
        ob.book_checked([[101.5, 1.0]], asks, time_ms=0)
    with pytest.raises(ob.BookError, match="crossed book"):
        ob.book_checked([[101.0, 1.0]], asks, time_ms=0)
    with pytest.raises(ob.BookError, match=r"bid level 2 is \[0.0, 1.0\]"):
        ob.book_checked([[99.0, 1.0], [0.0, 1.0]], asks, time_ms=0)
    with pytest.raises(ob.BookError, match="ask level 1"):
        ob.book_checked([[99.0, 1.0]], [[101.0, float("nan")]], time_ms=0)
    with pytest.raises(ob.BookError, match="repeats a price"):
        ob.book_checked([[99.0, 1.0], [99.0, 2.0]], asks, time_ms=0)
    with pytest.raises(ob.BookError, match="not a list"):
        ob.book_checked("bids", asks, time_ms=0)


def test_it_sorts_a_book_best_first():
    book = ob.book_checked([[98.0, 1.0], [99.0, 2.0]], [[102.0, 1.0], [101.0, 3.0]], time_ms=5)
    assert book.best_bid == 99.0 and book.best_ask == 101.0 and book.mid == 100.0


def test_it_bins_a_book_in_usd_on_the_grid():
    book = ob.book_checked(
        [[99.95, 2.0], [97.0, 1.0], [80.0, 9.0]], [[100.05, 1.0], [104.9, 3.0]], time_ms=0
    )
    edges = ob.book_grid(mid=book.mid, width=1.0, anchor=100.0)
    assert edges[0] == 95.0 and edges[-1] == 105.0
    binned = ob.book_bins(book, edges=edges, contract_size=0.5)
    assert binned.bids[edges[:-1] == 99.0][0] == pytest.approx(99.95 * 2.0 * 0.5)
    assert binned.bids.sum() == pytest.approx((99.95 * 2 + 97.0) * 0.5)  # 80 is beyond 5 %
    assert binned.asks.sum() == pytest.approx((100.05 + 104.9 * 3) * 0.5)
    assert binned.reach_bid == pytest.approx(0.2) and binned.reach_ask == pytest.approx(0.049)


def test_it_redraws_books_on_another_grid_keeping_what_overlaps():
    values = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 8.0, 0.0]])
    out = ob.rebin(values, np.array([100.0, 100.5]), np.array([1.0, 1.0]), np.arange(99.0, 106.0))
    assert out.sum(axis=1) == pytest.approx([10.0, 8.0])
    np.testing.assert_allclose(out[0], [0, 1, 2, 3, 4, 0])
    np.testing.assert_allclose(out[1], [0, 0, 0, 4, 4, 0])


def test_it_stores_each_side_only_up_to_the_mids_bin():
    bids = np.array([1.0, 2.0, 0.5, 0.0, 0.0])
    asks = np.array([0.0, 0.0, 0.25, 3.0, 4.0])
    data = depth_encode(bids, asks, split=2)
    assert len(data) == 4 * 6
    back = depth_decode(data, 5, 2)
    np.testing.assert_allclose(back[0], bids)
    np.testing.assert_allclose(back[1], asks)
    assert mid_bin(mid=102.5, start=100.0, width=1.0, count=5) == 2


def history(values_bid: list[list[float]], values_ask: list[list[float]], gap: int = MINUTE):
    bids, asks = np.array(values_bid, float), np.array(values_ask, float)
    times = np.arange(len(bids)) * gap
    return ob.BookHistory(
        times, np.arange(bids.shape[1] + 1.0), bids, asks, np.full(len(bids), 5.0)
    )


def test_it_finds_walls_far_above_the_typical_depth_and_how_long_they_stood():
    calm = [1.0, 1.0, 1.0, 1.0, 1.0]
    wall = [1.0, 9.0, 1.0, 1.0, 1.0]
    moved = [1.0, 1.0, 9.0, 1.0, 1.0]
    walls = ob.book_walls(
        history(
            [calm, wall, wall, moved, wall, calm], [calm, calm, calm, calm, calm, [1, 1, 1, 1, 6]]
        )
    )
    bid = [w for w in walls if w["side"] == "bid"]
    assert len(bid) == 1  # a move of one bin is the same wall
    assert bid[0]["appeared"] == MINUTE and bid[0]["last_seen"] == 4 * MINUTE
    assert bid[0]["stood_ms"] == 3 * MINUTE and not bid[0]["standing"]
    assert bid[0]["multiple"] == pytest.approx(9.0) and bid[0]["usd"] == 9.0
    ask = [w for w in walls if w["side"] == "ask"]
    assert ask == [] or ask[0]["standing"]
    standing = [w for w in walls if w["standing"]]
    assert all(w["last_seen"] == 5 * MINUTE for w in standing)


def test_it_ends_a_wall_across_a_gap_in_the_books():
    calm, wall = [1.0] * 5, [1.0, 9.0, 1.0, 1.0, 1.0]
    walls = ob.book_walls(history([wall, wall, wall], [calm] * 3, gap=10 * MINUTE))
    assert len(walls) == 3 and all(w["stood_ms"] == 0 for w in walls)


def test_it_picks_evenly_spaced_columns_of_the_latest_books():
    times = np.array([0, 60_000, 120_000, 600_000]) + 10 * MINUTE
    pick, columns, spacing = ob.depth_columns(times, start=10 * MINUTE, end=20 * MINUTE, limit=5)
    assert spacing == 3 * MINUTE
    assert columns[-1] == 20 * MINUTE
    assert len(columns) <= 5
    assert pick[-1] == 3
    assert -1 in pick.tolist()  # a column whose latest book is older than one spacing


# The exchanges' payloads, through ccxt.


@pytest.mark.parametrize("ccxt_id", list(BOOKS))
def test_it_reads_each_exchanges_recorded_book(replay_connector, ccxt_id):
    symbol, path, _ = BOOKS[ccxt_id]
    connector = replay_connector(ccxt_id)
    fetched = order_book_fetch(connector, symbol)
    book = fetched.book
    assert (book.best_bid, book.best_ask) == (89977.8, 89977.9)
    assert book.time_ms <= NOW
    assert np.all(np.diff(book.bids[:, 0]) < 0) and np.all(np.diff(book.asks[:, 0]) > 0)
    requested = connector.exchange.session.requests[-1]
    assert requested[0] == path
    limit = requested[1].get("limit") or requested[1].get("sz")
    assert int(limit) == {"binanceusdm": 1000, "bybit": 500, "okx": 5000}[ccxt_id]
    assert fetched.contract_size == (0.01 if ccxt_id == "okx" else 1.0)
    wall = book.bids[book.bids[:, 0] == 89000.0]
    assert wall[0, 1] * fetched.contract_size == pytest.approx(120.0)


@pytest.mark.parametrize(
    ("ccxt_id", "file", "best"),
    [
        ("binanceusdm", "doc_depth.json", (4.0, 4.000002)),
        ("bybit", "doc_orderbook.json", (65485.47, 65557.7)),
        ("okx", "doc_books.json", (41006.3, 41006.8)),
    ],
)
def test_it_reads_the_documentations_examples(replay_connector, ccxt_id, file, best):
    connector = replay_connector(ccxt_id, route(ccxt_id, file))
    book = order_book_fetch(connector, BOOKS[ccxt_id][0]).book
    assert (book.best_bid, book.best_ask) == best


@pytest.mark.parametrize("ccxt_id", list(BOOKS))
@pytest.mark.parametrize(
    ("shape", "message"), [("empty_side", r"the (bid|ask) side is empty"), ("crossed", "crossed")]
)
def test_it_refuses_an_empty_side_and_a_crossed_book_from_every_exchange(
    replay_connector, ccxt_id, shape, message
):
    symbol, _, stem = BOOKS[ccxt_id]
    connector = replay_connector(ccxt_id, route(ccxt_id, f"{stem}_{shape}.json"))
    with pytest.raises(ob.BookError, match=message) as refused:
        order_book_fetch(connector, symbol)
    assert symbol in str(refused.value)


# Storage and tasks.


@pytest.fixture
def okx_btc(market_factory):
    return market_factory(
        "BTC-USDT-SWAP", "okx", slug="btcusdt", ccxt_symbol="BTC/USDT:USDT", contract_size=0.01
    )


@pytest.fixture
def okx_exchange(okx_btc):
    okx_btc.exchange.ccxt_id = "okx"
    okx_btc.exchange.save()
    return okx_btc


@pytest.mark.django_db
def test_it_snapshots_a_book_into_one_compact_row_per_minute(exchange_answers, okx_exchange):
    exchange_answers("okx")
    stored = services.market_orderbook_snapshot(market=okx_exchange)
    again = services.market_orderbook_snapshot(market=okx_exchange)
    assert again.pk == stored.pk
    assert OrderBookSnapshot.objects.count() == 1
    assert stored.time == datetime.fromtimestamp((NOW - 40) // MINUTE * 60, tz=UTC)
    assert stored.source == "rest"
    assert stored.bin_width == pytest.approx(stored.mid * 1e-3)
    assert stored.bin_count in range(100, 103)
    assert len(bytes(stored.depth)) == 4 * (stored.bin_count + 1)
    rows = market_book_rows(
        market_id=okx_exchange.pk,
        start=stored.time - timedelta(minutes=1),
        end=stored.time + timedelta(minutes=1),
    )
    edges = stored.bin_start + stored.bin_width * np.arange(stored.bin_count + 1)
    wall = np.searchsorted(edges, 89000.0, side="right") - 1
    assert rows.bids[0, wall] >= 120 * 89000.0
    assert (
        rows.asks[
            0,
            : mid_bin(
                mid=stored.mid,
                start=stored.bin_start,
                width=stored.bin_width,
                count=stored.bin_count,
            ),
        ].sum()
        == 0
    )
    assert rows.bids[0].sum() + rows.asks[0].sum() > 100e6


@pytest.mark.django_db
def test_it_bins_books_on_the_maps_grid(exchange_answers, okx_exchange, snapshot_factory):
    snapshot_factory(okx_exchange, last_close=90_000.0)
    exchange_answers("okx")
    stored = services.market_orderbook_snapshot(market=okx_exchange)
    assert stored.bin_width == pytest.approx(90.0)
    offset = (stored.bin_start - 45_000.0) / 90.0
    assert offset == pytest.approx(round(offset))


@pytest.mark.django_db
def test_the_task_records_a_refused_book_and_stores_nothing(exchange_answers, okx_exchange):
    exchange_answers("okx", route("okx", "books_crossed.json"))
    assert tasks.market_orderbook_snapshot(okx_exchange.pk) is None
    okx_exchange.refresh_from_db()
    assert okx_exchange.last_error.startswith("orderbook: BookError: okx BTC-USDT-SWAP")
    assert "crossed book" in okx_exchange.last_error
    assert OrderBookSnapshot.objects.count() == 0


@pytest.mark.django_db
def test_the_task_stores_a_book_and_clears_its_error(exchange_answers, okx_exchange):
    okx_exchange.last_error = "orderbook: BookError: an older one"
    okx_exchange.save()
    exchange_answers("okx")
    pk = tasks.market_orderbook_snapshot(okx_exchange.pk)
    okx_exchange.refresh_from_db()
    assert OrderBookSnapshot.objects.filter(pk=pk).exists()
    assert okx_exchange.last_error == ""
    assert tasks.market_orderbook_snapshot(10**9) is None


@pytest.mark.django_db
def test_the_beat_snapshots_tracked_real_markets_only(
    exchange_answers, eager, okx_exchange, market_factory
):
    market_factory("ETHUSDT", "okx", is_demo=True)
    market_factory("SOLUSDT", "okx", tracked=False)
    exchange_answers("okx")
    assert tasks.orderbooks_snapshot_tracked() == 1
    assert list(OrderBookSnapshot.objects.values_list("market_id", flat=True)) == [okx_exchange.pk]


@pytest.mark.django_db
def test_it_prunes_books_older_than_the_window_but_keeps_the_demos(market_factory, settings):
    settings.LIQSITE_ORDERBOOK_DAYS = 7
    market = market_factory()
    now = datetime(2026, 1, 10, tzinfo=UTC)
    for days, source in ((8, "rest"), (6, "rest"), (9, "demo")):
        OrderBookSnapshot.objects.create(
            market=market,
            time=now - timedelta(days=days),
            mid=100.0,
            best_bid=99.9,
            best_ask=100.1,
            bin_start=95.0,
            bin_width=0.1,
            bin_count=1,
            depth=depth_encode(np.ones(1), np.ones(1), 0),
            reach_bid=0.05,
            reach_ask=0.05,
            source=source,
        )
    assert services.orderbooks_prune(now=now) == 1
    assert sorted(OrderBookSnapshot.objects.values_list("source", flat=True)) == ["demo", "rest"]


# The demo's books.


@pytest.mark.django_db
def test_the_demo_simulates_books_with_walls_that_appear_and_vanish(market_factory):
    market = market_factory(is_demo=True)
    end = 1_800_000_000_000 // 300_000 * 300_000
    bars = synthetic_bars(steps=2 * 288, seed=5, price=60_000.0, end_ms=end)
    count = demo.demo_books_refill(market=market, bars=bars, seed=1, days=1)
    assert count == 1440
    assert demo.demo_books_refill(market=market, bars=bars, seed=1, days=1) == 1440
    assert OrderBookSnapshot.objects.filter(market=market, source="demo").count() == 1440
    start = datetime.fromtimestamp((end + 300_000) / 1000 - 86_400, tz=UTC)
    rows = market_book_rows(market_id=market.pk, start=start, end=start + timedelta(days=1))
    assert len(rows) == 1440
    assert np.all(rows.widths == pytest.approx(float(bars.close[-1]) * 1e-3))
    walls = ob.book_walls(book_history(rows, common_edges(rows)))
    lasting = [w for w in walls if w["stood_ms"] >= 30 * MINUTE]
    gone = [w for w in lasting if not w["standing"]]
    assert len(lasting) >= 5 and gone
    assert all(w["multiple"] >= ob.WALL_MULTIPLE for w in walls)
    below = [w for w in walls if w["side"] == "bid"]
    assert all(w["price"] < rows.mids[np.searchsorted(rows.times, w["last_seen"])] for w in below)


@pytest.mark.django_db
def test_a_days_books_take_about_a_megabyte(market_factory):
    """The rows' own bytes (the table with its indexes is measured by the benchmark)."""
    market = market_factory(is_demo=True)
    bars = synthetic_bars(steps=288, seed=6, price=60_000.0, end_ms=1_800_000_000_000)
    demo.demo_books_refill(market=market, bars=bars, seed=2, days=1)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(pg_column_size(t.*)) FROM maps_orderbooksnapshot t WHERE market_id = %s",
            [market.pk],
        )
        size = cursor.fetchone()[0]
    assert size < 1_000_000
