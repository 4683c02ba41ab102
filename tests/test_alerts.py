from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.core import mail
from django.db import connection

from accounts import services
from accounts.models import Alert, AlertEvent, Notification, WatchlistItem
from accounts.services import Observation, crossing, market_alerts_check
from maps.models import LiquidationEvent

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NEAR_LONG = [("long", 99.0, 99.5, 5e6)]  # 0.5% below a close of 100
FAR_LONG = [("long", 90.0, 91.0, 5e6)]  # 9% below


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@pytest.fixture
def watch(user_factory, market_factory):
    return WatchlistItem.objects.create(user=user_factory(), market=market_factory())


def proximity_alert(watch, **extra) -> Alert:
    fields = {
        "kind": "proximity",
        "within_pct": 1.0,
        "min_notional_usd": 1e6,
        "cooldown_minutes": 0,
    }
    return Alert.objects.create(watch=watch, **(fields | extra))


def liquidation_alert(watch, **extra) -> Alert:
    fields = {"kind": "liquidations", "threshold_usd": 2e6, "cooldown_minutes": 0}
    return Alert.objects.create(watch=watch, **(fields | extra))


def check(market, at: datetime) -> list[AlertEvent]:
    return market_alerts_check(market_id=market.pk, now=at + minutes(5))


# The crossing rule on its own


def obs(hit: bool, minute: int = 0) -> Observation:
    return Observation(time=T0 + minutes(minute), hit=hit)


def test_it_fires_on_the_first_hit_while_armed_and_disarms():
    fired, armed = crossing([obs(False, 0), obs(True, 5), obs(True, 10)], armed=True)
    assert fired.time == T0 + minutes(5)
    assert armed is False


def test_it_does_not_fire_while_disarmed_and_rearms_on_a_miss():
    fired, armed = crossing([obs(True, 0), obs(False, 5)], armed=False)
    assert fired is None
    assert armed is True


def test_it_fires_at_most_once_for_several_crossings_in_one_batch():
    fired, armed = crossing([obs(True, 0), obs(False, 5), obs(True, 10)], armed=True)
    assert fired.time == T0
    assert armed is False


# Proximity alerts


def test_it_fires_a_proximity_alert_when_price_comes_near_a_big_cluster(watch, snapshot_factory):
    alert = proximity_alert(watch)
    snapshot_factory(watch.market, clusters=[*NEAR_LONG, ("short", 120.0, 121.0, 9e6)], as_of=T0)

    events = check(watch.market, T0)

    assert len(events) == 1
    event = events[0]
    assert event.step_time == T0
    assert event.detail["cluster"]["side"] == "long"
    assert "0.50% from a $5M long cluster below" in event.message
    alert.refresh_from_db()
    assert alert.armed is False
    assert alert.checked_through == T0
    notification = Notification.objects.get(user=watch.user)
    assert notification.event == event
    assert notification.url == watch.market.get_absolute_url()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [watch.user.email]
    assert "BTCUSDT" in mail.outbox[0].subject


def test_it_says_when_a_fired_alert_is_about_demo_data(
    user_factory, market_factory, snapshot_factory
):
    demo = WatchlistItem.objects.create(
        user=user_factory(), market=market_factory("ETHUSDT", is_demo=True)
    )
    proximity_alert(demo)
    snapshot_factory(demo.market, clusters=NEAR_LONG, as_of=T0)

    check(demo.market, T0)

    notification = Notification.objects.get(user=demo.user)
    assert notification.title == "ETHUSDT on Binance: price near a cluster (demo data)"
    assert mail.outbox[0].subject.endswith("(demo data)")
    assert "simulated demo data" in mail.outbox[0].body


def test_it_keeps_real_markets_alerts_unmarked(watch, snapshot_factory):
    proximity_alert(watch)
    snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0)

    check(watch.market, T0)

    assert Notification.objects.get(user=watch.user).title == (
        "BTCUSDT on Binance: price near a cluster"
    )
    assert "demo" not in mail.outbox[0].subject
    assert "demo" not in mail.outbox[0].body


@pytest.mark.parametrize(
    ("extra", "clusters"),
    [
        ({"min_notional_usd": 6e6}, NEAR_LONG),
        ({"within_pct": 0.4}, NEAR_LONG),
        ({"side": "short"}, NEAR_LONG),
        ({}, FAR_LONG),
        ({}, []),
    ],
    ids=["too-small", "too-far", "other-side", "far", "no-clusters"],
)
def test_it_does_not_fire_when_no_cluster_qualifies(watch, snapshot_factory, extra, clusters):
    alert = proximity_alert(watch, **extra)
    snapshot_factory(watch.market, clusters=clusters, as_of=T0)

    assert check(watch.market, T0) == []
    alert.refresh_from_db()
    assert alert.armed is True
    assert alert.checked_through == T0
    assert not Notification.objects.exists()


def test_it_fires_on_a_short_cluster_above_when_asked_for_shorts(watch, snapshot_factory):
    proximity_alert(watch, side="short")
    snapshot_factory(watch.market, clusters=[*FAR_LONG, ("short", 100.8, 101.0, 3e6)], as_of=T0)

    [event] = check(watch.market, T0)

    assert event.detail["cluster"]["side"] == "short"
    assert "short cluster above" in event.message


def test_it_fires_once_per_crossing_and_rearms_after_the_condition_clears(watch, snapshot_factory):
    alert = proximity_alert(watch)
    fired = []
    for step, clusters in enumerate([NEAR_LONG, NEAR_LONG, NEAR_LONG, FAR_LONG, NEAR_LONG]):
        at = T0 + minutes(5 * step)
        snapshot_factory(watch.market, clusters=clusters, as_of=at)
        fired += [e.step_time for e in check(watch.market, at)]

    assert fired == [T0, T0 + minutes(20)]
    assert AlertEvent.objects.filter(alert=alert).count() == 2
    assert Notification.objects.count() == 2


def test_it_keeps_quiet_inside_the_cooldown_and_fires_after_it(watch, snapshot_factory):
    proximity_alert(watch, cooldown_minutes=60)
    sequence = [(0, NEAR_LONG), (5, FAR_LONG), (10, NEAR_LONG), (15, FAR_LONG), (70, NEAR_LONG)]
    fired = []
    for minute, clusters in sequence:
        at = T0 + minutes(minute)
        snapshot_factory(watch.market, clusters=clusters, as_of=at)
        fired += [e.step_time for e in market_alerts_check(market_id=watch.market.pk, now=at)]

    assert fired == [T0, T0 + minutes(70)]


def test_it_treats_a_crossing_inside_the_cooldown_as_seen(watch, snapshot_factory):
    """The condition stays true past the cooldown: no late firing for a crossing already seen."""
    proximity_alert(watch, cooldown_minutes=60)
    sequence = [(0, NEAR_LONG), (5, FAR_LONG), (10, NEAR_LONG), (80, NEAR_LONG)]
    fired = []
    for minute, clusters in sequence:
        at = T0 + minutes(minute)
        snapshot_factory(watch.market, clusters=clusters, as_of=at)
        fired += [e.step_time for e in market_alerts_check(market_id=watch.market.pk, now=at)]

    assert fired == [T0]


def test_it_fires_at_once_when_created_while_the_condition_holds(watch, snapshot_factory):
    snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0)
    proximity_alert(watch)

    assert len(check(watch.market, T0)) == 1


def test_it_skips_paused_alerts(watch, snapshot_factory):
    proximity_alert(watch, is_active=False)
    snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0)

    assert check(watch.market, T0) == []


def test_it_only_checks_alerts_of_the_recomputed_windows(watch, snapshot_factory):
    proximity_alert(watch, window="30d")
    snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0, window="30d")

    assert market_alerts_check(market_id=watch.market.pk, windows=["7d"], now=T0) == []
    assert len(market_alerts_check(market_id=watch.market.pk, windows=["30d"], now=T0)) == 1


def test_it_rearms_an_edited_alert(watch, snapshot_factory):
    alert = proximity_alert(watch)
    snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0)
    check(watch.market, T0)
    alert.refresh_from_db()
    alert.within_pct = 2.0
    services.alert_save(alert=alert)

    snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0 + minutes(5))
    assert len(check(watch.market, T0 + minutes(5))) == 1


def test_it_never_fires_twice_at_the_same_step_even_after_an_edit(watch, snapshot_factory):
    alert = proximity_alert(watch)
    snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0)
    check(watch.market, T0)
    alert.refresh_from_db()
    alert.within_pct = 2.0
    services.alert_save(alert=alert)

    assert check(watch.market, T0) == []
    assert AlertEvent.objects.count() == 1
    alert.refresh_from_db()
    assert (alert.armed, alert.checked_through) == (False, T0)


# Liquidation alerts


def test_it_fires_when_estimated_liquidations_in_a_step_exceed_the_threshold(
    watch, snapshot_factory
):
    alert = liquidation_alert(watch)
    snapshot_factory(watch.market, liquidations=[(1e5, 0.0), (1.5e6, 1e6)], as_of=T0)

    [event] = check(watch.market, T0)

    assert event.step_time == T0
    assert event.detail["source"] == "estimated"
    assert event.detail["amount_usd"] == pytest.approx(2.5e6)
    assert "$2.5M of estimated liquidations in the 12:00 UTC step" in event.message
    alert.refresh_from_db()
    assert alert.armed is False


def test_it_counts_only_the_chosen_side_of_liquidations(watch, snapshot_factory):
    liquidation_alert(watch, side="long")
    snapshot_factory(watch.market, liquidations=[(1.5e6, 1e6)], as_of=T0)

    assert check(watch.market, T0) == []


def test_it_fires_on_real_liquidations_reported_in_the_step(watch, snapshot_factory):
    liquidation_alert(watch, source="real", side="short")
    snapshot_factory(watch.market, liquidations=[(0.0, 0.0)], as_of=T0)
    for second, usd in [(10, 1.5e6), (200, 1e6)]:
        LiquidationEvent.objects.create(
            market=watch.market,
            time=T0 + timedelta(seconds=second),
            side="short",
            price=100.0,
            quantity=usd / 100,
            notional_usd=usd,
            source="test",
        )
    LiquidationEvent.objects.create(
        market=watch.market,
        time=T0 + minutes(5),
        side="short",
        price=100.0,
        quantity=1e5,
        notional_usd=1e7,
        source="test",
    )

    [event] = check(watch.market, T0)

    assert event.detail["source"] == "real"
    assert event.detail["amount_usd"] == pytest.approx(2.5e6)
    assert event.detail["real"] == {"long": 0.0, "short": pytest.approx(2.5e6)}


def test_it_fires_on_either_source_with_the_larger_one(watch, snapshot_factory):
    liquidation_alert(watch, source="either")
    snapshot_factory(watch.market, liquidations=[(3e6, 0.0)], as_of=T0)
    LiquidationEvent.objects.create(
        market=watch.market,
        time=T0,
        side="long",
        price=100.0,
        quantity=1e4,
        notional_usd=1e6,
        source="test",
    )

    [event] = check(watch.market, T0)

    assert event.detail["source"] == "estimated"
    assert event.detail["real"]["long"] == pytest.approx(1e6)


def test_it_evaluates_every_step_since_the_last_check(watch, snapshot_factory):
    """A spike between two checks is not missed, and fires once; the miss after it re-arms."""
    alert = liquidation_alert(watch)
    snapshot_factory(watch.market, liquidations=[(0.0, 0.0)], as_of=T0)
    assert check(watch.market, T0) == []

    steps = [(0.0, 0.0), (3e6, 0.0), (4e6, 0.0), (0.0, 0.0)]
    snapshot_factory(watch.market, liquidations=steps, as_of=T0 + minutes(15))
    [event] = check(watch.market, T0 + minutes(15))

    assert event.step_time == T0 + minutes(5)
    alert.refresh_from_db()
    assert alert.armed is True
    assert alert.checked_through == T0 + minutes(15)


# Idempotence: retries, redelivery, concurrency


def test_it_fires_nothing_new_when_the_same_snapshots_are_checked_again(watch, snapshot_factory):
    proximity_alert(watch)
    liquidation_alert(watch)
    snapshot_factory(watch.market, clusters=NEAR_LONG, liquidations=[(3e6, 0.0)], as_of=T0)

    first = check(watch.market, T0)
    second = check(watch.market, T0)
    third = market_alerts_check(market_id=watch.market.pk, now=T0 + minutes(120))

    assert len(first) == 2
    assert second == third == []
    assert AlertEvent.objects.count() == 2
    assert Notification.objects.count() == 2
    assert len(mail.outbox) == 1


def test_it_does_not_fire_a_claim_that_another_check_moved_first(watch, snapshot_factory):
    """A check holding a stale copy of the alert (read before another worker's update) loses the
    compare-and-set and fires nothing."""
    alert = proximity_alert(watch)
    snapshot = snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0)
    stale = Alert.objects.select_related("watch__user", "watch__market__exchange").get(pk=alert.pk)

    assert services.alert_check(alert=alert, snapshot=snapshot, now=T0) is not None
    assert services.alert_check(alert=stale, snapshot=snapshot, now=T0) is None
    assert AlertEvent.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_fires_once_when_checks_run_concurrently(user_factory, market_factory, snapshot_factory):
    watch = WatchlistItem.objects.create(user=user_factory(), market=market_factory())
    proximity_alert(watch)
    liquidation_alert(watch)
    snapshot_factory(watch.market, clusters=NEAR_LONG, liquidations=[(3e6, 0.0)], as_of=T0)
    start = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            results.append(len(market_alerts_check(market_id=watch.market.pk, now=T0)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(results) == 2
    assert AlertEvent.objects.count() == 2
    assert Notification.objects.count() == 2
    assert AlertEvent.objects.filter(email="sent").count() == 2
    emailed = [
        line for m in mail.outbox for line in m.body.splitlines() if "Your condition:" in line
    ]
    assert sorted(emailed) == sorted(
        f"  Your condition: {a.describe()}." for a in Alert.objects.all()
    )


# Email delivery


def test_it_sends_each_user_at_most_one_email_per_check(
    user_factory, market_factory, snapshot_factory
):
    market = market_factory()
    alice = WatchlistItem.objects.create(user=user_factory("alice"), market=market)
    bob = WatchlistItem.objects.create(user=user_factory("bob"), market=market)
    proximity_alert(alice)
    proximity_alert(alice, within_pct=2.0)
    liquidation_alert(alice)
    proximity_alert(bob)
    snapshot_factory(market, clusters=NEAR_LONG, liquidations=[(3e6, 0.0)], as_of=T0)

    events = check(market, T0)

    assert len(events) == 4
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "bob@example.com"]
    alice_mail = next(m for m in mail.outbox if m.to == ["alice@example.com"])
    assert "3 alerts fired" in alice_mail.subject
    assert alice_mail.body.count("Your condition:") == 3
    assert alice_mail.alternatives and "text/html" in alice_mail.alternatives[0][1]


def test_it_respects_the_users_email_preference(user_factory, market_factory, snapshot_factory):
    user = user_factory(email_alerts=False)
    watch = WatchlistItem.objects.create(user=user, market=market_factory())
    proximity_alert(watch)
    snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0)

    [event] = check(watch.market, T0)

    assert mail.outbox == []
    assert event.email == "skipped"
    assert Notification.objects.filter(user=user).count() == 1


def test_it_keeps_a_failed_email_pending_and_sends_it_once_on_retry(watch, snapshot_factory):
    proximity_alert(watch)
    snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0)

    with (
        mock.patch("accounts.services.send_mail", side_effect=ConnectionRefusedError),
        pytest.raises(ConnectionRefusedError),
    ):
        check(watch.market, T0)
    event = AlertEvent.objects.get()
    assert event.email == "pending"
    assert Notification.objects.count() == 1

    assert check(watch.market, T0) == []
    assert check(watch.market, T0) == []

    assert len(mail.outbox) == 1
    event.refresh_from_db()
    assert event.email == "sent"
    assert event.emailed_at is not None


# Wiring: signal, receiver, task


def test_it_queues_the_check_when_a_watched_markets_snapshots_change(
    watch, django_capture_on_commit_callbacks
):
    from maps.models import Market
    from maps.signals import snapshots_computed

    proximity_alert(watch)
    with (
        mock.patch("accounts.tasks.market_alerts_check.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        snapshots_computed.send(sender=Market, market_id=watch.market.pk, windows=["7d", "30d"])

    delay.assert_called_once_with(watch.market.pk, ["7d", "30d"])


def test_it_queues_nothing_for_a_market_without_active_alerts(
    watch, django_capture_on_commit_callbacks
):
    from maps.models import Market
    from maps.signals import snapshots_computed

    proximity_alert(watch, is_active=False)
    with (
        mock.patch("accounts.tasks.market_alerts_check.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        snapshots_computed.send(sender=Market, market_id=watch.market.pk, windows=["7d"])

    delay.assert_not_called()


def test_it_runs_the_check_from_the_task(watch, snapshot_factory):
    from accounts.tasks import market_alerts_check as task

    proximity_alert(watch)
    snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0)

    assert task.apply(args=[watch.market.pk, ["7d"]]).get() == 1
    assert task.apply(args=[watch.market.pk, ["7d"]]).get() == 0
    assert AlertEvent.objects.count() == 1


def test_it_checks_alerts_after_a_real_snapshot_refresh(watch, django_capture_on_commit_callbacks):
    """maps' refresh task computes real snapshots, sends the signal, and the alert task runs."""
    from accounts.tasks import market_alerts_check as task
    from maps.models import Bar
    from maps.tasks import market_snapshots_refresh

    start = T0 - timedelta(days=2)
    closes = [100.0 + (i % 48 - 24) * 0.05 for i in range(576)]
    Bar.objects.bulk_create(
        Bar(
            market=watch.market,
            time=start + minutes(5 * i),
            open=c,
            high=c * 1.002,
            low=c * 0.998,
            close=c,
            volume=1000.0,
            taker_buy_volume=520.0,
            open_interest=50_000.0 + 10 * i,
        )
        for i, c in enumerate(closes)
    )
    liquidation_alert(watch, threshold_usd=1.0, window="24h")

    with (
        mock.patch.object(task, "delay", side_effect=lambda *a: task.apply(args=a)) as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        stored = market_snapshots_refresh(watch.market.pk)

    assert stored >= 1
    delay.assert_called_once()
    assert Alert.objects.get().checked_through is not None


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_it_checks_alerts_through_a_real_worker_and_broker(
    user_factory, market_factory, snapshot_factory
):
    from celery.contrib.testing.worker import start_worker

    from accounts.tasks import market_alerts_check as task
    from liqsite.celery import app

    watch = WatchlistItem.objects.create(user=user_factory(), market=market_factory())
    proximity_alert(watch)
    snapshot_factory(watch.market, clusters=NEAR_LONG, as_of=T0)
    app.control.purge()

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        first = task.delay(watch.market.pk, ["7d"])
        again = task.delay(watch.market.pk, ["7d"])
        assert (first.get(timeout=30), again.get(timeout=30)) == (1, 0)

    assert AlertEvent.objects.filter(email="sent").count() == 1
    assert len(mail.outbox) == 1
