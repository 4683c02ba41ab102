"""The signal alert kinds: cascade started, cluster swept, reversal confirmed; each fires once at
the step the signal became known, for the watched side and size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from accounts.forms import AlertForm
from accounts.models import Alert, AlertEvent, Notification, WatchlistItem
from accounts.services import market_alerts_check
from maps.market_signals import services
from maps.models import MarketSignals, datetime_to_ms

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)


@pytest.fixture
def watch(user_factory, market_factory):
    return WatchlistItem.objects.create(user=user_factory(), market=market_factory())


def signal_alert(watch, kind: str, **extra) -> Alert:
    return Alert.objects.create(watch=watch, kind=kind, cooldown_minutes=0, **extra)


def checklist(side: str = "long", confirmed: bool = True) -> dict:
    keys = ("exhausted", "stalled", "rsi", "divergence", "candle", "open_interest")
    holds = {"exhausted": True, "stalled": True, "rsi": True, "open_interest": confirmed}
    return {
        "cascade_start": datetime_to_ms(T0 - 4 * STEP),
        "side": side,
        "direction": "up" if side == "long" else "down",
        "time": datetime_to_ms(T0),
        "extreme_price": 95.0,
        "extreme_time": datetime_to_ms(T0 - 2 * STEP),
        "confirmed": confirmed,
        "confirmations": 2 if confirmed else 1,
        "reasons": [{"key": k, "holds": holds.get(k, False)} for k in keys],
    }


def cascade(detected: datetime, side: str = "long", usd: float = 5e6, **extra) -> dict:
    return {
        "start": datetime_to_ms(detected - STEP),
        "end": datetime_to_ms(detected),
        "detected": datetime_to_ms(detected),
        "side": side,
        "notional_usd": usd,
        "source": "real",
        "price_start": 100.0,
        "price_extreme": 95.0,
        "move_pct": -5.0,
        "oi_change_pct": -6.0,
        "cluster": None,
        "reversal_confirmed_at": None,
        "reversal_watching": True,
        "reversal": checklist(side, confirmed=False),
        **extra,
    }


def sweep(at: datetime, side: str = "long", usd: float = 4e6) -> dict:
    return {
        "time": datetime_to_ms(at),
        "side": side,
        "cluster": {
            "price_low": 95.0,
            "price_high": 96.0,
            "peak_price": 95.5,
            "notional_usd": usd,
            "share": 0.3,
        },
        "map_time": datetime_to_ms(at - STEP),
        "wick_price": 94.8,
        "depth_pct": 0.21,
        "fake": None,
        "back_at": None,
        "close": 95.1,
        "return_1h_pct": None,
        "return_4h_pct": None,
        "opposite": None,
    }


def store_signals(market, as_of: datetime, *, cascades=(), sweeps=()) -> MarketSignals:
    signals, _ = MarketSignals.objects.update_or_create(
        market=market,
        defaults={
            "as_of": as_of,
            "start": as_of - timedelta(days=90),
            "version": services.VERSION,
            "source": "real",
            "cascades": list(cascades),
            "sweeps": list(sweeps),
            "reversal": None,
            "thresholds": {},
        },
    )
    return signals


def check(market, at: datetime) -> list[AlertEvent]:
    return market_alerts_check(market_id=market.pk, now=at + STEP)


def test_it_fires_a_cascade_alert_once_at_the_step_the_cascade_became_known(
    watch, snapshot_factory
):
    market = watch.market
    alert = signal_alert(watch, "cascade")
    snapshot_factory(market, as_of=T0)
    store_signals(market, T0, cascades=[cascade(T0)])
    (event,) = check(market, T0)
    assert event.step_time == T0
    assert "long liquidation cascade started" in event.message
    assert event.detail["side"] == "long" and event.detail["notional_usd"] == 5e6
    notification = Notification.objects.get(event=event)
    assert notification.title == "BTCUSDT on Binance: cascade started"
    snapshot_factory(market, as_of=T0 + STEP)
    store_signals(market, T0 + STEP, cascades=[cascade(T0)])
    assert check(market, T0 + STEP) == []
    alert.refresh_from_db()
    assert alert.armed is True and alert.checked_through == T0 + STEP


def test_it_watches_only_the_chosen_side_and_size(watch, snapshot_factory):
    market = watch.market
    signal_alert(watch, "cascade", side="short")
    signal_alert(watch, "cascade", signal_min_usd=1e7)
    snapshot_factory(market, as_of=T0)
    store_signals(market, T0, cascades=[cascade(T0, side="long", usd=5e6)])
    assert check(market, T0) == []
    snapshot_factory(market, as_of=T0 + STEP)
    store_signals(market, T0 + STEP, cascades=[cascade(T0 + STEP, side="short", usd=2e7)])
    fired = check(market, T0 + STEP)
    assert len(fired) == 2


def test_it_fires_when_a_cluster_is_swept(watch, snapshot_factory):
    market = watch.market
    signal_alert(watch, "sweep", side="long", signal_min_usd=1e6)
    snapshot_factory(market, as_of=T0 - STEP)
    store_signals(market, T0 - STEP)
    assert check(market, T0 - STEP) == []
    snapshot_factory(market, as_of=T0 + STEP)
    store_signals(market, T0 + STEP, sweeps=[sweep(T0)])
    (event,) = check(market, T0 + STEP)
    assert event.step_time == T0
    assert "long cluster below" in event.message and "was swept" in event.message


def test_it_fires_when_a_reversal_checklist_is_confirmed(watch, snapshot_factory):
    market = watch.market
    signal_alert(watch, "reversal")
    snapshot_factory(market, as_of=T0)
    confirmed = cascade(
        T0 - 6 * STEP,
        reversal_confirmed_at=datetime_to_ms(T0),
        reversal=checklist(confirmed=True),
    )
    store_signals(market, T0, cascades=[confirmed])
    (event,) = check(market, T0)
    assert "checklist for a turn up" in event.message and "not advice" in event.message
    assert event.detail["checklist"]["confirmed"] is True


def test_it_computes_the_signals_when_the_stored_ones_are_older(watch, tracked_market):
    market = tracked_market("SOLUSDT", "okx", price=150.0, windows=("7d",))
    item = WatchlistItem.objects.create(user=watch.user, market=market)
    signal_alert(item, "cascade", window="7d")
    assert not MarketSignals.objects.filter(market=market).exists()
    market_alerts_check(market_id=market.pk)
    stored = MarketSignals.objects.get(market=market)
    assert stored.as_of == market.snapshots.get(window="7d").as_of


# The form and the words


SIGNAL_FORM = {
    "side": "long",
    "window": "7d",
    "within_pct": "1",
    "min_notional_usd": "100",
    "threshold_usd": "5",
    "source": "estimated",
    "signal_min_usd": "2000000",
    "cooldown_minutes": "30",
    "is_active": "on",
}


@pytest.mark.parametrize("kind", ["cascade", "sweep", "reversal"])
def test_it_accepts_a_signal_alert_and_drops_the_other_kinds_fields(db, kind):
    form = AlertForm(SIGNAL_FORM | {"kind": kind})
    assert form.is_valid(), form.errors
    data = form.cleaned_data
    assert data["within_pct"] is None and data["threshold_usd"] is None
    assert data["signal_min_usd"] == 2e6
    assert AlertForm(SIGNAL_FORM | {"kind": kind, "signal_min_usd": ""}).is_valid()


def test_it_rejects_a_negative_signal_size_with_a_message(db):
    form = AlertForm(SIGNAL_FORM | {"kind": "cascade", "signal_min_usd": "-3"})
    assert not form.is_valid()
    assert "at least $1" in form.errors["signal_min_usd"][0]


def test_it_drops_the_signal_size_from_other_kinds(db):
    form = AlertForm(SIGNAL_FORM | {"kind": "liquidations"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["signal_min_usd"] is None


def test_it_describes_signal_alerts_in_words(watch):
    assert signal_alert(watch, "cascade").describe() == "a liquidation cascade starts"
    sweep_alert = signal_alert(watch, "sweep", side="short", signal_min_usd=5e6)
    assert sweep_alert.describe() == "a short cluster of at least $5M is swept"
    assert signal_alert(watch, "reversal", side="long").describe() == (
        "a reversal is confirmed after a long cascade"
    )


def test_it_creates_a_signal_alert_from_the_form(watch):
    client = Client()
    client.force_login(watch.user)
    url = reverse("accounts:alert_create", args=[watch.pk])
    page = client.get(url).content.decode()
    assert 'value="cascade"' in page and 'value="reversal"' in page
    assert "alert-form__group--signals" in page
    response = client.post(url, SIGNAL_FORM | {"kind": "sweep"})
    assert response.status_code == 302
    alert = Alert.objects.get(watch=watch)
    assert alert.kind == "sweep" and alert.signal_min_usd == 2e6
