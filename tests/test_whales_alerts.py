"""The whale alert kinds: "anomaly with |z| >= X on metric M" and "whales and retail diverge
beyond D" read the market's stored positioning, fire once per crossing, and their form refuses
bad values with a message."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from accounts.forms import AlertForm
from accounts.models import Alert, WatchlistItem
from accounts.services import market_alerts_check
from maps.models import PositioningSnapshot, datetime_to_ms
from maps.whales.services import WHALES_VERSION

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)


@pytest.fixture
def watch(user_factory, market_factory):
    return WatchlistItem.objects.create(user=user_factory(), market=market_factory())


def store_positioning(market, *, whale: list[float], retail: list[float], anomalies=()) -> None:
    """Stored positioning whose steps end at T0 (one per value)."""
    n = len(whale)
    times = np.array([datetime_to_ms(T0 - STEP * (n - 1 - k)) for k in range(n)], dtype=np.int64)
    arrays = {
        "times": times,
        "whale_long_pct": np.array(whale, dtype=float),
        "retail_long_pct": np.array(retail, dtype=float),
        "delta": np.array(whale, dtype=float) - np.array(retail, dtype=float),
        "close": np.full(n, 100.0),
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    PositioningSnapshot.objects.update_or_create(
        market=market,
        defaults={
            "as_of": T0,
            "start": T0 - STEP * (n - 1),
            "version": WHALES_VERSION,
            "positioning": {},
            "anomalies": list(anomalies),
            "data": buffer.getvalue(),
        },
    )


def anomaly(at: datetime, metric: str = "oi_change", z: float = 5.2) -> dict:
    return {
        "time": datetime_to_ms(at),
        "metric": metric,
        "value": 4.1,
        "z": z,
        "price_change_pct": 0.8,
        "kind": "longs opening",
        "oi_vs_price": "longs opening",
    }


def check(market, at: datetime):
    return market_alerts_check(market_id=market.pk, now=at + STEP)


def whale_alert(watch, kind: str, **extra) -> Alert:
    return Alert.objects.create(watch=watch, kind=kind, cooldown_minutes=0, **extra)


def test_an_anomaly_alert_fires_once_on_its_metric_and_size(watch, snapshot_factory) -> None:
    market = watch.market
    whale_alert(watch, "anomaly", anomaly_metric="oi_change", min_z=4)
    whale_alert(watch, "anomaly", anomaly_metric="volume", min_z=3)
    whale_alert(watch, "anomaly", anomaly_metric="any", min_z=6)
    snapshot_factory(market, as_of=T0)
    store_positioning(market, whale=[50.0], retail=[50.0], anomalies=[anomaly(T0)])
    (event,) = check(market, T0)
    assert event.alert.anomaly_metric == "oi_change"
    assert "unusual open interest change per step" in event.message and "z +5.2" in event.message
    assert event.detail["kind"] == "longs opening"
    snapshot_factory(market, as_of=T0 + STEP)
    assert check(market, T0 + STEP) == []


def test_a_divergence_alert_fires_when_whales_and_retail_split(watch, snapshot_factory) -> None:
    market = watch.market
    alert = whale_alert(watch, "divergence", divergence_pts=10)
    snapshot_factory(market, as_of=T0)
    store_positioning(market, whale=[44.0], retail=[58.5])
    (event,) = check(market, T0)
    assert "whales are 14.5 points shorter than retail" in event.message
    assert event.detail["delta"] == pytest.approx(-14.5)
    alert.refresh_from_db()
    assert alert.armed is False


def test_a_divergence_inside_the_threshold_does_not_fire(watch, snapshot_factory) -> None:
    whale_alert(watch, "divergence", divergence_pts=20)
    snapshot_factory(watch.market, as_of=T0)
    store_positioning(watch.market, whale=[44.0], retail=[58.5])
    assert check(watch.market, T0) == []


def test_it_describes_whale_alerts_in_words(watch) -> None:
    a = whale_alert(watch, "anomaly", anomaly_metric="oi_change_1h", min_z=3.5)
    assert a.describe() == "an anomaly with |z| of at least 3.5 on open interest change per hour"
    d = whale_alert(watch, "divergence", divergence_pts=12)
    assert d.describe() == "whales and retail diverge by more than 12 points"


FORM = {
    "kind": "anomaly",
    "side": "any",
    "window": "7d",
    "anomaly_metric": "volume",
    "min_z": "4",
    "divergence_pts": "15",
    "cooldown_minutes": "30",
    "is_active": "on",
}


def test_the_form_keeps_only_the_chosen_kinds_fields(db) -> None:
    form = AlertForm(FORM)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["min_z"] == 4 and form.cleaned_data["divergence_pts"] is None
    form = AlertForm(FORM | {"kind": "divergence"})
    assert form.is_valid(), form.errors
    data = form.cleaned_data
    assert data["divergence_pts"] == 15 and data["min_z"] is None
    assert data["anomaly_metric"] == "any"


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"min_z": "2"}, "min_z", "at least 3"),
        ({"min_z": "500"}, "min_z", "at most 50"),
        ({"min_z": ""}, "min_z", "Required"),
        ({"min_z": "abc"}, "min_z", "number"),
        ({"anomaly_metric": "price"}, "anomaly_metric", "valid choice"),
        ({"kind": "divergence", "divergence_pts": "0"}, "divergence_pts", "at least 0.1"),
        ({"kind": "divergence", "divergence_pts": "150"}, "divergence_pts", "at most 100"),
        ({"kind": "divergence", "divergence_pts": ""}, "divergence_pts", "Required"),
    ],
)
def test_the_form_refuses_bad_values_with_a_message(db, changes, field, words) -> None:
    form = AlertForm(FORM | changes)
    assert not form.is_valid()
    assert words in " ".join(form.errors[field])


def test_a_bad_edit_keeps_the_stored_alert(watch) -> None:
    alert = whale_alert(watch, "divergence", divergence_pts=12)
    client = Client()
    client.force_login(watch.user)
    url = reverse("accounts:alert_edit", args=[alert.pk])
    page = client.get(url).content.decode()
    assert "alert-form__group--divergence" in page and 'value="anomaly"' in page
    response = client.post(url, FORM | {"kind": "divergence", "divergence_pts": "-4"})
    assert response.status_code == 200
    assert "at least 0.1" in response.content.decode()
    alert.refresh_from_db()
    assert alert.divergence_pts == 12 and alert.kind == "divergence"


def test_it_creates_an_anomaly_alert_from_the_form(watch) -> None:
    client = Client()
    client.force_login(watch.user)
    response = client.post(reverse("accounts:alert_create", args=[watch.pk]), FORM)
    assert response.status_code == 302
    alert = Alert.objects.get(watch=watch)
    assert (alert.kind, alert.anomaly_metric, alert.min_z) == ("anomaly", "volume", 4.0)
