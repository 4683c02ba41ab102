"""The pipeline at scale: every window from one pass stored in one transaction, markets with no
new step skipped, the beat's claims (never a market queued twice, one queue per exchange), and
why a stale market is stale (/healthz, the admin)."""

from __future__ import annotations

import io
import time
import zipfile
from datetime import timedelta

import numpy as np
import pytest
from django.core.cache import cache
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from liqsite.celery import app
from maps import engine, tasks
from maps.engine import EngineError
from maps.models import Bar, Exchange, MapSnapshot, Market
from maps.selectors import market_bars_arrays
from maps.services import _ARRAY_DTYPES, market_snapshots_compute, zip_deflated

WINDOWS = ["12h", "24h", "3d", "7d", "30d", "90d"]
JUST_NOW = "just now found"


@pytest.fixture
def eager(settings):
    """Tasks run in-process; every window is computed; a backfill reaches one day back."""
    settings.LIQSITE_WINDOWS = WINDOWS
    settings.LIQSITE_BACKFILL_DAYS = 1
    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, False
    cache.clear()
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved
    cache.clear()


@pytest.fixture
def market(db, tracked_market, settings):
    """A real Binance market with 4 days of bars (so 3d and 7d differ) and every window."""
    settings.LIQSITE_WINDOWS = WINDOWS
    made = tracked_market("BTCUSDT", steps=4 * 288, windows=tuple(WINDOWS))
    Exchange.objects.filter(pk=made.exchange_id).update(ccxt_id="binanceusdm")
    made.refresh_from_db()
    return made


def stored_arrays(snapshot: MapSnapshot) -> dict[str, np.ndarray]:
    return snapshot.arrays


def test_it_stores_for_each_window_exactly_what_a_separate_run_gives(market):
    bars = market_bars_arrays(market_id=market.pk)

    for snapshot in MapSnapshot.objects.filter(market=market):
        alone = engine.run(bars, market.engine_params(snapshot.window))
        arrays = stored_arrays(snapshot)
        for name, dtype in _ARRAY_DTYPES.items():
            expected = np.ascontiguousarray(getattr(alone, name), dtype=dtype)
            assert np.array_equal(arrays[name], expected), (snapshot.window, name)
        assert snapshot.clusters == alone.clusters
        assert snapshot.proximity == alone.proximity
        assert snapshot.last_close == alone.last_close


def test_it_grades_the_market_and_notes_what_its_maps_reflect(market):
    market.refresh_from_db()
    last = market.bars.order_by("-time").first()

    assert market.maps_as_of == last.time
    assert market.grade in {"A", "B", "C", "D"}
    assert market.oi_usd == pytest.approx(last.open_interest * last.close)
    assert {r["criterion"] for r in market.grade_reasons} >= {"open_interest", "trading"}
    assert market.graded_at is not None


def test_it_stores_nothing_when_the_transaction_fails(market, monkeypatch):
    before = list(MapSnapshot.objects.filter(market=market).values_list("window", "computed_at"))
    Bar.objects.create(
        market=market,
        time=market.bars.order_by("-time").first().time + timedelta(minutes=5),
        open=60_000,
        high=60_100,
        low=59_900,
        close=60_050,
        volume=3,
        taker_buy_volume=1,
        open_interest=1_000,
    )

    def broken(**kwargs):
        raise RuntimeError("grade store failed")

    monkeypatch.setattr("maps.services.market_grade_refresh", broken)
    with pytest.raises(RuntimeError):
        market_snapshots_compute(market=market)

    after = list(MapSnapshot.objects.filter(market=market).values_list("window", "computed_at"))
    assert after == before


def test_it_keeps_the_windows_it_can_and_names_those_it_cannot(market):
    market.long_share = "ratio"
    market.save()
    first = market.bars.order_by("time").first()
    bars = market.bars.order_by("time")
    bars.update(long_short_ratio=1.2)
    Bar.objects.filter(pk=first.pk).update(long_short_ratio=None)

    with pytest.raises(EngineError) as raised:
        market_snapshots_compute(market=market)

    assert str(raised.value).startswith("7d, 30d, 90d: long-share mode 'ratio' needs")
    fresh = MapSnapshot.objects.filter(market=market, params__long_share="ratio")
    assert sorted(fresh.values_list("window", flat=True)) == ["12h", "24h", "3d"]


def test_it_skips_a_market_with_no_new_step(market, eager):
    before = dict(MapSnapshot.objects.filter(market=market).values_list("window", "computed_at"))

    skipped = tasks.market_snapshots_refresh.delay(market.pk, only_if_stale=True).get()

    assert skipped == 0
    after = dict(MapSnapshot.objects.filter(market=market).values_list("window", "computed_at"))
    assert after == before


def test_it_writes_an_npz_that_numpy_and_zipfile_read_back_exactly():
    rng = np.random.default_rng(1)
    arrays = {
        "zeros.npy": np.zeros((50, 40), dtype=np.float32),
        "noise.npy": rng.normal(size=(7, 300)).astype(np.float32),
        "times.npy": np.arange(1000, dtype=np.int64) * 300_000,
        "empty.npy": np.zeros((0, 5), dtype=np.float64),
    }
    members = []
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, allow_pickle=False)
        members.append((name, buffer.getvalue()))

    data = zip_deflated(members)

    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    assert [i.compress_type for i in archive.infolist()] == [zipfile.ZIP_DEFLATED] * 4
    with np.load(io.BytesIO(data)) as npz:
        for name, array in arrays.items():
            loaded = npz[name.removesuffix(".npy")]
            assert loaded.dtype == array.dtype and np.array_equal(loaded, array)


@pytest.mark.postgres
def test_postgresql_compresses_the_arrays_itself_so_they_are_stored_as_they_are(market):
    snapshot = MapSnapshot.objects.get(market=market, window="90d")

    archive = zipfile.ZipFile(io.BytesIO(bytes(snapshot.data)))
    assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_column_compression(data), pg_column_size(data), octet_length(data) "
            "FROM maps_mapsnapshot WHERE id = %s",
            [snapshot.pk],
        )
        method, stored, length = cursor.fetchone()
    assert method == "lz4" and stored < length / 2


@pytest.mark.postgres
def test_a_server_without_lz4_gets_the_arrays_deflated(market, monkeypatch):
    monkeypatch.setattr("maps.services._lz4_databases", {})
    with connection.cursor() as cursor:  # what migration 0012 leaves on such a server
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no foreign key check left pending
        cursor.execute('ALTER TABLE "maps_mapsnapshot" ALTER COLUMN "data" SET COMPRESSION pglz')

    market_snapshots_compute(market=market)

    snapshot = MapSnapshot.objects.get(market=market, window="7d")
    archive = zipfile.ZipFile(io.BytesIO(bytes(snapshot.data)))
    assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    alone = engine.run(market_bars_arrays(market_id=market.pk), market.engine_params("7d"))
    assert np.array_equal(snapshot.arrays["heat_long"], alone.heat_long.astype(np.float32))


def test_it_replaces_each_windows_snapshot_in_place(market):
    before = dict(MapSnapshot.objects.filter(market=market).values_list("window", "pk"))

    stored = market_snapshots_compute(market=market)

    assert {s.window: s.pk for s in stored} == before
    assert MapSnapshot.objects.filter(market=market).count() == len(WINDOWS)
    assert all(not s._state.adding for s in stored)


# The beat's claims.


@pytest.fixture
def queued(monkeypatch):
    """The chains the beat queues, as (market id, ingest queue) instead of sending them."""
    sent: list[tuple[int, str]] = []

    def apply_async(self, *args, **kwargs):
        first = self.tasks[0]
        sent.append((first.args[0], first.options["queue"]))

    monkeypatch.setattr("celery.canvas._chain.apply_async", apply_async)
    return sent


@pytest.fixture
def live(db):
    def make(ccxt_id: str, slug: str, symbol: str = "BTCUSDT", **extra) -> Market:
        exchange, _ = Exchange.objects.get_or_create(
            slug=slug, defaults={"name": slug.title(), "ccxt_id": ccxt_id}
        )
        return Market.objects.create(
            exchange=exchange, symbol=symbol, slug=symbol.lower(), base="BTC", quote="USDT", **extra
        )

    return make


def test_it_queues_each_market_once_on_its_exchanges_queue(live, queued, eager):
    binance = live("binanceusdm", "binance")
    okx = live("okx", "okx", "BTC-USDT-SWAP")
    live("bybit", "bybit", is_demo=True)

    first = tasks.markets_ingest_tracked.delay().get()
    again = tasks.markets_ingest_tracked.delay().get()

    assert (first, again) == (2, 0)
    assert sorted(queued) == sorted([(binance.pk, "ingest.binance"), (okx.pk, "ingest.okx")])
    assert Market.objects.filter(queued_at__isnull=False).count() == 2


def test_it_queues_a_market_again_once_its_chain_ended_or_its_claim_lapsed(live, queued, eager):
    binance = live("binanceusdm", "binance")
    okx = live("okx", "okx", "BTC-USDT-SWAP")
    tasks.markets_ingest_tracked.delay().get()

    tasks.market_release(binance.pk)
    lapsed = timezone.now() - timedelta(seconds=tasks.CLAIM_SECONDS + 1)
    Market.objects.filter(pk=okx.pk).update(queued_at=lapsed)
    count = tasks.markets_ingest_tracked.delay().get()

    assert count == 2
    assert [market_id for market_id, _ in queued].count(binance.pk) == 2


def test_it_leaves_out_an_exchange_cooling_down(live, queued, eager):
    live("binanceusdm", "binance")
    okx = live("okx", "okx", "BTC-USDT-SWAP")
    cache.set(tasks.cooldown_key("binanceusdm"), time.time() + 60, 60)

    assert tasks.markets_ingest_tracked.delay().get() == 1
    assert queued == [(okx.pk, "ingest.okx")]


def test_the_chain_releases_its_claim_when_it_ends(live, eager, replay_connector):
    market = live("binanceusdm", "binance")
    Market.objects.filter(pk=market.pk).update(queued_at=timezone.now())

    tasks.markets_ingest_tracked.delay().get()  # claimed already: nothing queued
    assert Market.objects.get(pk=market.pk).queued_at is not None
    tasks.market_ingest.delay(market.pk, release=True).get()
    assert Market.objects.get(pk=market.pk).queued_at is not None  # the refresh comes next
    stored = tasks.market_snapshots_refresh.delay(market.pk, True, True).get()

    assert stored == len(WINDOWS)
    assert Market.objects.get(pk=market.pk).queued_at is None


def test_a_failed_ingestion_releases_the_claim(live, eager, replay_connector):
    market = live("binanceusdm", "binance", is_demo=False)
    Exchange.objects.filter(pk=market.exchange_id).update(ccxt_id="binanceusdm")
    Market.objects.filter(pk=market.pk).update(queued_at=timezone.now(), symbol="NOPEUSDT")

    result = tasks.market_ingest.delay(market.pk, release=True)

    assert result.failed()
    assert Market.objects.get(pk=market.pk).queued_at is None


def test_it_routes_the_listing_tasks_to_the_ingest_queue():
    router = app.amqp.router

    assert router.route({}, "maps.tasks.exchange_track_markets")["queue"].name == "ingest"
    assert router.route({}, "maps.tasks.exchanges_track_markets")["queue"].name == "ingest"
    assert tasks.ingest_queue("bybit") == "ingest.bybit"
    assert tasks.ingest_queue("kraken") == "ingest"
    assert tasks.INGEST_QUEUES == ["ingest", "ingest.binance", "ingest.bybit", "ingest.okx"]


# Why a market is stale.


@pytest.fixture
def fed(db, settings):
    """make(symbol, data_age, **fields) -> a tracked live Binance market whose data ended
    `data_age` seconds ago (None: no bar)."""
    settings.LIQSITE_STALE_AFTER_SECONDS = 900
    exchange = Exchange.objects.create(slug="binance", name="Binance", ccxt_id="binanceusdm")

    def make(symbol: str, data_age: float | None, **fields) -> Market:
        last = None
        if data_age is not None:
            last = timezone.now() - timedelta(seconds=data_age, minutes=5)
        return Market.objects.create(
            exchange=exchange,
            symbol=symbol,
            slug=symbol.lower(),
            base=symbol.removesuffix("USDT"),
            quote="USDT",
            last_bar_at=last,
            **fields,
        )

    return make


def test_healthz_tells_why_each_market_is_stale(client, fed, empty_cache):
    now = timezone.now()
    fed("AAAUSDT", 60)  # fresh
    fed("BBBUSDT", 2000, last_error="ingest: NetworkError: timed out", last_ingest_at=now)
    fed("CCCUSDT", 2000, queued_at=now - timedelta(minutes=4))
    fed("DDDUSDT", None)
    fed("EEEUSDT", 2000, last_ingest_at=now - timedelta(seconds=40))
    fed("FFFUSDT", 2000, last_ingest_at=now - timedelta(hours=2))
    fed(
        "GGGUSDT",
        60,
        maps_as_of=now - timedelta(hours=1),
        last_error="compute: EngineError: bad row",
    )
    fed("HHHUSDT", 60, maps_as_of=now - timedelta(hours=1))

    freshness = client.get("/healthz").json()["freshness"]

    reasons = {s["market"].split("/")[1]: (s["reason"], s["detail"]) for s in freshness["stale"]}
    assert reasons == {
        "BBBUSDT": ("ingestion failing", "ingest: NetworkError: timed out"),
        "CCCUSDT": ("waiting for an ingest worker", "queued on ingest.binance 4 min ago"),
        "DDDUSDT": ("no data yet", "never ingested"),
        "EEEUSDT": (
            "exchange has no newer step",
            "last ingest just now found no newer complete step",
        ),
        "FFFUSDT": ("not ingested lately", "last ingest 2 h ago"),
        "GGGUSDT": ("maps behind the data", "compute: EngineError: bad row"),
        "HHHUSDT": ("maps behind the data", reasons["HHHUSDT"][1]),
    }
    assert reasons["HHHUSDT"][1].startswith("maps to ")
    assert freshness["stale_count"] == 7
    assert freshness["reasons"] == {
        "ingestion failing": 1,
        "waiting for an ingest worker": 1,
        "no data yet": 1,
        "exchange has no newer step": 1,
        "not ingested lately": 1,
        "maps behind the data": 2,
    }
    assert freshness["by_exchange"] == {"binance": {"tracked": 8, "stale": 7}}


def test_healthz_counts_a_cooling_exchange_apart(client, fed, empty_cache):
    fed("AAAUSDT", 2000, last_error="ingest: RateLimited: slow down")
    cache.set(tasks.cooldown_key("binanceusdm"), time.time() + 120, 120)

    stale = client.get("/healthz").json()["freshness"]["stale"]

    assert stale[0]["reason"] == "exchange asked us to slow down"
    assert stale[0]["detail"].startswith("for 1")


def test_the_admin_lists_stale_markets_with_their_reasons(admin_client, fed, empty_cache):
    fed("AAAUSDT", 60)
    fed("BBBUSDT", None)

    page = admin_client.get(reverse("admin:maps_market_changelist")).content.decode()

    assert "1 of 2 tracked live markets stale" in page
    assert "1 no data yet" in page
    assert "binance 1/2" in page
    assert "stale: no data yet" in page
    assert ">fresh<" in page


def test_a_market_graded_d_carries_a_caution_on_its_page(client, market, empty_cache):
    reasons = [
        {"criterion": "open_interest", "grade": "D", "text": "Open interest $2M: few positions"},
        {"criterion": "history", "grade": "A", "text": "30 days of history"},
    ]
    Market.objects.filter(pk=market.pk).update(grade="D", grade_reasons=reasons)

    page = client.get(market.get_absolute_url()).content.decode()
    home = client.get(reverse("maps:home")).content.decode()

    assert "Caution: low-reliability map (grade D)." in page
    assert "Open interest $2M: few positions" in page
    assert 'class="grade grade--d"' in page
    assert 'class="grade grade--d"' in home
    assert 'title="Reliability D: Open interest $2M: few positions"' in home


def test_a_market_graded_above_d_has_no_caution(client, market, empty_cache):
    market.refresh_from_db()
    Market.objects.filter(pk=market.pk).update(grade="B")

    page = client.get(market.get_absolute_url()).content.decode()

    assert "Caution: low-reliability map" not in page
    assert 'class="grade grade--b"' in page


def test_the_api_lists_each_markets_grade_and_reasons(client, market, empty_cache):
    market.refresh_from_db()

    document = client.get("/api/v1/markets/").json()
    table = client.get("/api/v1/markets/?format=csv").content.decode().splitlines()

    item = document["markets"][0]
    assert item["grade"]["grade"] == market.grade
    assert item["grade"]["reasons"] == [
        {"criterion": r["criterion"], "grade": r["grade"], "text": r["text"]}
        for r in market.grade_reasons
    ]
    assert table[0].endswith(",grade,grade_reasons")
    assert f",{market.grade}," in table[1]


def test_it_takes_the_exact_windows_even_when_one_is_asked_twice_in_a_row(market):
    first = list(MapSnapshot.objects.filter(market=market).order_by("window"))

    again = market_snapshots_compute(market=market)

    assert sorted(s.window for s in again) == sorted(WINDOWS)
    later = {s.window: s for s in MapSnapshot.objects.filter(market=market)}
    for snapshot in first:
        assert later[snapshot.window].as_of == snapshot.as_of
        assert bytes(later[snapshot.window].data) == bytes(snapshot.data)
    assert MapSnapshot.objects.filter(market=market).count() == len(WINDOWS)
