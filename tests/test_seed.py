"""manage.py seed_demo: three exchanges, three coins and two thin altcoin markets, a month of
realistic simulated data."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from maps.demo import THIN_MARKETS
from maps.models import Bar, Exchange, LiquidationEvent, MapSnapshot, Market
from maps.selectors import market_bars_arrays

END = "2024-05-01T12:00:00Z"
END_TIME = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STEP_MS = 300_000
WINDOWS = ["12h", "24h", "3d", "7d", "30d", "90d"]
THIN = {thin.coin.base for thin in THIN_MARKETS}  # altcoins traded in some steps only


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The full demo seed (90 days, maps and calibrations computed), made once for the module's
    tests."""
    with django_db_blocker.unblock():
        output = seed("--end", END)
        yield output
        Exchange.objects.all().delete()


@pytest.fixture
def empty(db) -> None:
    """No market at all (inside this test's transaction), even beside the module's demo seed."""
    Exchange.objects.all().delete()


def market_arrays(exchange: str, slug: str):
    market = Market.objects.get(exchange__slug=exchange, slug=slug)
    return market, market_bars_arrays(market_id=market.pk)


def rows(market: Market) -> tuple[list, list]:
    bars = list(market.bars.order_by("time").values_list("time", "open", "close", "open_interest"))
    events = list(
        market.events.order_by("time", "price").values_list("time", "side", "price", "quantity")
    )
    return bars, events


@pytest.mark.django_db
def test_it_creates_three_demo_exchanges_with_three_coins_each_and_two_thin_markets(demo) -> None:
    exchanges = Exchange.objects.order_by("slug")
    assert [(e.slug, e.name, e.is_demo) for e in exchanges] == [
        ("binance", "Binance", True),
        ("bybit", "Bybit", True),
        ("okx", "OKX", True),
    ]
    markets = Market.objects.all()
    assert markets.count() == 11
    assert all(m.is_demo and m.tracked and m.step_ms == STEP_MS for m in markets)
    thin = {"bybit": ["ghstusdt"], "okx": ["alpacausdt"]}
    for exchange in exchanges:
        assert sorted(exchange.markets.values_list("slug", flat=True)) == sorted(
            ["btcusdt", "ethusdt", "solusdt", *thin.get(exchange.slug, [])]
        )
    okx = Market.objects.get(exchange__slug="okx", slug="btcusdt")
    assert (okx.symbol, okx.base, okx.quote, okx.ccxt_symbol) == (
        "BTC-USDT-SWAP",
        "BTC",
        "USDT",
        "BTC/USDT:USDT",
    )
    assert Market.objects.get(exchange__slug="bybit", slug="ethusdt").symbol == "ETHUSDT"
    assert okx.get_absolute_url().endswith("/okx/btcusdt/")


@pytest.mark.django_db
def test_it_fills_ninety_days_of_five_minute_bars_without_gaps(demo) -> None:
    for market in Market.objects.all():
        bars = market_bars_arrays(market_id=market.pk)
        assert len(bars.ts) == 90 * 288
        assert np.all(np.diff(bars.ts) == STEP_MS)
        assert bars.ts[-1] == int(END_TIME.timestamp() * 1000)
        assert market.last_bar_at == END_TIME


@pytest.mark.django_db
def test_it_makes_valid_bars(demo) -> None:
    for market in Market.objects.all():
        b = market_bars_arrays(market_id=market.pk)  # Bars validates itself as well
        thin = market.base in THIN
        assert np.all(b.low > 0)
        assert np.all(b.low <= np.minimum(b.open, b.close))
        assert np.all(b.high >= np.maximum(b.open, b.close))
        assert np.all(b.open[1:] == b.close[:-1])
        assert np.all((b.volume >= 0 if thin else b.volume > 0) & (b.taker_buy_volume <= b.volume))
        assert np.all(b.open_interest > 0)
        assert np.all((b.long_short_ratio > 0.3) & (b.long_short_ratio < 5))
        traded = b.volume > 0
        share = b.taker_buy_volume[traded] / b.volume[traded]
        assert 0.45 < np.median(share) < 0.55


@pytest.mark.django_db
def test_it_settles_funding_every_eight_hours(demo) -> None:
    market = Market.objects.get(exchange__slug="bybit", slug="ethusdt")
    times, rates = zip(
        *market.bars.order_by("time").values_list("time", "funding_rate"), strict=True
    )
    rates = np.array(rates)
    changed = np.flatnonzero(np.diff(rates) != 0) + 1
    assert len(changed) > 45
    assert all((times[i].hour % 8, times[i].minute) == (7, 55) for i in changed)
    assert np.all(np.abs(rates) <= 0.003)
    assert 0 < np.median(rates) < 0.0005


@pytest.mark.django_db
def test_it_moves_one_coin_together_across_exchanges(demo) -> None:
    _, binance = market_arrays("binance", "btcusdt")
    _, bybit = market_arrays("bybit", "btcusdt")
    _, okx = market_arrays("okx", "btcusdt")
    for other in (bybit, okx):
        basis = other.close / binance.close - 1
        assert np.abs(basis).max() < 0.002
        returns = np.corrcoef(np.diff(np.log(binance.close)), np.diff(np.log(other.close)))
        assert returns[0, 1] > 0.95
    sizes = [np.median(b.open_interest) for b in (binance, bybit, okx)]
    assert sizes[0] > sizes[1] > sizes[2]


@pytest.mark.django_db
def test_it_simulates_trends_volatility_clusters_and_cascades(demo) -> None:
    _, btc = market_arrays("binance", "btcusdt")
    returns = np.diff(np.log(btc.close))
    assert 0.0005 < returns.std() < 0.005
    absolute = np.abs(returns)
    clustering = np.corrcoef(absolute[:-1], absolute[1:])[0, 1]
    assert clustering > 0.1
    oi_change = btc.open_interest[1:] / btc.open_interest[:-1] - 1
    flushes = np.flatnonzero(oi_change < -0.01)
    assert len(flushes) >= 3
    wick = (np.minimum(btc.open, btc.close) - btc.low) / btc.close
    assert np.median(wick[1:][flushes]) > 5 * np.median(wick)


@pytest.mark.django_db
def test_it_places_liquidations_inside_the_wick_of_the_liquidated_side(demo) -> None:
    for market in Market.objects.all():
        bars = market_bars_arrays(market_id=market.pk)
        events = list(market.events.values_list("time", "side", "price"))
        assert len(events) > (100 if market.base in THIN else 1000)
        times = np.array([int(t.timestamp() * 1000) for t, _, _ in events])
        step = (times - bars.ts[0]) // STEP_MS
        price = np.array([p for _, _, p in events])
        long = np.array([s == "long" for _, s, _ in events])
        body_low = np.minimum(bars.open, bars.close)[step]
        body_high = np.maximum(bars.open, bars.close)[step]
        assert np.all(price[long] >= bars.low[step][long])
        assert np.all(price[long] <= body_low[long])
        assert np.all(price[~long] >= body_high[~long])
        assert np.all(price[~long] <= bars.high[step][~long])


@pytest.mark.django_db
def test_it_clusters_liquidations_in_cascades_with_heavy_tailed_sizes(demo) -> None:
    market = Market.objects.get(exchange__slug="binance", slug="btcusdt")
    bars = market_bars_arrays(market_id=market.pk)
    usd = np.array(market.events.values_list("notional_usd", flat=True))
    times = np.array(
        [int(t.timestamp() * 1000) for t in market.events.values_list("time", flat=True)]
    )
    per_step = np.bincount((times - bars.ts[0]) // STEP_MS, weights=usd, minlength=len(bars.ts))
    busiest = np.sort(per_step)[::-1]
    assert busiest[: len(busiest) // 100].sum() > 0.5 * per_step.sum()
    assert usd.max() > 50 * np.median(usd)
    assert set(market.events.values_list("source", flat=True)) == {"demo"}


@pytest.mark.django_db
def test_it_computes_a_snapshot_for_every_window_of_every_market(demo) -> None:
    for market in Market.objects.all():
        snapshots = MapSnapshot.objects.filter(market=market)
        assert sorted(snapshots.values_list("window", flat=True)) == sorted(WINDOWS)
        assert all(s.as_of == END_TIME for s in snapshots)
    assert "Maps: 66 snapshots (6 windows x 11 markets)" in demo


@pytest.mark.django_db
def test_it_holds_data_for_every_window_it_offers(demo) -> None:
    from maps.pages import snapshot_coverage

    for snapshot in MapSnapshot.objects.select_related("market"):
        assert snapshot_coverage(snapshot, snapshot.market.step_ms) is None, snapshot


@pytest.mark.django_db
def test_it_scores_every_demo_market_against_its_liquidations(demo) -> None:
    from maps.models import Calibration

    for market in Market.objects.all():
        calibration = Calibration.objects.get(market=market)
        assert calibration.events_used > 100
        assert 0 <= calibration.hit_rate <= 1 and 0 <= calibration.coverage <= 1
        assert calibration.period_end == END_TIME + timedelta(minutes=5)
    assert "Calibration: 11 of 11 markets scored" in demo


@pytest.mark.django_db
def test_it_does_nothing_with_if_empty_when_a_market_exists(demo, monkeypatch) -> None:
    monkeypatch.setattr(timezone, "now", lambda: END_TIME + timedelta(hours=3))
    before = Bar.objects.count(), LiquidationEvent.objects.count()

    output = seed("--if-empty", "--days", "1")

    assert "Markets exist already: no demo data seeded." in output
    assert (Bar.objects.count(), LiquidationEvent.objects.count()) == before


def test_it_gives_the_same_rows_for_the_same_seed(empty) -> None:
    seed("--days", "2", "--seed", "7", "--end", END, "--no-compute")
    market = Market.objects.get(exchange__slug="bybit", slug="solusdt")
    first = rows(market)

    seed("--days", "2", "--seed", "7", "--end", END, "--no-compute")
    again = rows(market)
    seed("--days", "2", "--seed", "8", "--end", END, "--no-compute")
    other = rows(market)

    assert len(first[0]) == 2 * 288
    assert again == first
    assert other[0] != first[0]
    assert other[1] != first[1]


def test_it_seeds_when_empty_and_ends_at_the_last_whole_step(empty, monkeypatch) -> None:
    now = datetime(2024, 6, 3, 9, 17, 42, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: now)

    output = seed("--if-empty", "--days", "1", "--no-compute")

    assert "Demo data: 11 markets on 3 exchanges" in output
    assert Market.objects.count() == 11
    last = datetime(2024, 6, 3, 9, 10, tzinfo=UTC)  # the step [09:10, 09:15) is the last whole one
    assert set(Market.objects.values_list("last_bar_at", flat=True)) == {last}
    assert Bar.objects.filter(time=last).count() == 11


def test_it_seeds_stale_demo_data_again_up_to_now_with_if_empty(empty, monkeypatch) -> None:
    seed("--days", "1", "--end", END, "--no-compute")
    later = datetime(2024, 5, 4, 8, 2, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: later)

    output = seed("--if-empty", "--days", "1", "--no-compute")

    assert "The demo data ended over a day ago: seeding it again up to now." in output
    last = datetime(2024, 5, 4, 7, 55, tzinfo=UTC)
    assert set(Market.objects.values_list("last_bar_at", flat=True)) == {last}
    assert not Bar.objects.filter(time__lte=END_TIME).exists()


def test_it_never_reseeds_beside_real_markets(empty, market_factory, bar_factory, monkeypatch):
    seed("--days", "1", "--end", END, "--no-compute")
    real = market_factory("XRPUSDT")
    bar_factory(real, END_TIME)
    monkeypatch.setattr(timezone, "now", lambda: datetime(2024, 5, 9, tzinfo=UTC))
    before = Bar.objects.count()

    output = seed("--if-empty", "--days", "1", "--no-compute")

    assert "Markets exist already: no demo data seeded." in output
    assert Bar.objects.count() == before


def test_it_reads_an_end_time_without_a_zone_as_utc(empty) -> None:
    seed("--days", "1", "--end", "2024-05-01T12:00:00", "--no-compute")

    assert set(Market.objects.values_list("last_bar_at", flat=True)) == {END_TIME}


def test_it_leaves_real_markets_untouched(empty, market_factory, bar_factory) -> None:
    real = market_factory("BTCUSDT")
    bar_factory(real, END_TIME)

    output = seed("--days", "1", "--end", END, "--no-compute")

    assert "Binance BTCUSDT holds real data: left untouched" in output
    assert real.bars.count() == 1
    assert Market.objects.filter(is_demo=True).count() == 10


def test_it_refuses_bad_options(empty) -> None:
    with pytest.raises(CommandError, match="--days must lie between 1 and 120"):
        seed("--days", "0")
    with pytest.raises(CommandError, match="is not on a whole 5-minute step"):
        seed("--end", "2024-05-01T12:01:00Z")
    with pytest.raises(CommandError, match="is not an ISO 8601 time"):
        seed("--end", "yesterday")
    assert not Market.objects.exists()


def test_it_adds_the_real_sample_once_beside_the_demo_with_real(empty) -> None:
    output = seed("--days", "1", "--end", END, "--real")

    assert "Real data: Binance HYPEUSDT, 383 bars of history (2025-05-30T10:30:00Z to" in output
    hype = Market.objects.get(exchange__slug="binance", symbol="HYPEUSDT")
    assert not hype.is_demo and not hype.tracked and hype.is_historical
    assert hype.snapshots.count() == len(WINDOWS)
    assert Market.objects.filter(is_demo=True).count() == 11
    assert not Exchange.objects.get(slug="binance").is_demo  # it lists a real market now

    again = seed("--if-empty", "--days", "1", "--real", "--no-compute")
    assert "Real data" not in again and hype.bars.count() == 383


@pytest.mark.django_db
def test_it_makes_two_thin_altcoin_markets_that_grade_below_btc_by_the_rules(demo) -> None:
    grades = {m.symbol: m for m in Market.objects.all()}
    ghst, alpaca = grades["GHSTUSDT"], grades["ALPACA-USDT-SWAP"]
    btc = [m for m in grades.values() if m.base == "BTC"]

    def graded(market: Market) -> dict[str, str | None]:
        return {r["criterion"]: r["grade"] for r in market.grade_reasons}

    # graded after their calibrations, as every later refresh grades them: the model's skill
    # against the simulated liquidations counts from the start
    assert all(graded(m)["skill"] is not None for m in [*btc, ghst, alpaca])
    assert all(graded(m)["open_interest"] == graded(m)["trading"] == "A" for m in btc)
    assert max(m.grade for m in btc) < min(ghst.grade, alpaca.grade)  # "A" is the best
    assert ghst.grade == "D"
    worst = {r["criterion"] for r in ghst.grade_reasons if r["grade"] == "D"}
    assert worst == {"open_interest", "trading"}
    assert ghst.oi_usd < 5e6 < alpaca.oi_usd < 20e6 < min(m.oi_usd for m in btc)


@pytest.mark.django_db
def test_it_trades_the_thin_markets_in_some_steps_only(demo) -> None:
    for symbol, traded in (("GHSTUSDT", (0.35, 0.55)), ("ALPACA-USDT-SWAP", (0.85, 0.95))):
        market = Market.objects.get(symbol=symbol)
        bars = market_bars_arrays(market_id=market.pk)
        idle = bars.volume == 0
        assert traded[0] < 1 - idle.mean() < traded[1]
        flat = (bars.open == bars.close) & (bars.high == bars.low) & (bars.open == bars.high)
        assert flat[idle].all()
        assert (bars.open[1:] == bars.close[:-1]).all()  # each step opens at the last trade
        assert (np.diff(bars.open_interest)[idle[1:]] == 0).all()
        times = np.array(
            [int(t.timestamp() * 1000) for t in market.events.values_list("time", flat=True)]
        )
        assert len(times) > 0
        assert not idle[(times - bars.ts[0]) // STEP_MS].any()  # no liquidation without a trade
