"""The positioning series from the exchanges (recorded payloads): Binance's top traders' ratios
by positions and accounts and its taker buy/sell ratio, OKX's top traders' ratios, and nothing
where an exchange publishes nothing (Bybit: the account ratio only)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.cache import cache

from maps.ingest import market_ingest
from maps.models import Exchange, Market

RECORDINGS = Path(__file__).parent / "fixtures" / "exchanges"
START = 1736877600000  # 2025-01-14T18:00:00Z


def dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@pytest.fixture
def live_market(db, settings, replay_connector):
    settings.LIQSITE_BACKFILL_DAYS = 1
    cache.clear()
    venues = {"binanceusdm": "binance", "bybit": "bybit", "okx": "okx"}
    symbols = {"binanceusdm": "BTCUSDT", "bybit": "BTCUSDT", "okx": "BTC-USDT-SWAP"}

    def make(ccxt_id: str) -> Market:
        exchange, _ = Exchange.objects.get_or_create(
            slug=venues[ccxt_id], defaults={"name": venues[ccxt_id].title(), "ccxt_id": ccxt_id}
        )
        return Market.objects.create(
            exchange=exchange, symbol=symbols[ccxt_id], slug="btcusdt", base="BTC", quote="USDT"
        )

    yield make
    cache.clear()


def recorded(exchange: str, name: str):
    return json.loads((RECORDINGS / exchange / name).read_text())


def test_binance_rows_carry_the_top_traders_and_taker_ratios_as_recorded(live_market) -> None:
    market = live_market("binanceusdm")
    report = market_ingest(market=market)
    assert report.warnings == []
    row = market.metrics_rows.get(stamped_at=dt(START))
    by_stamp = {
        name: {r["timestamp"]: r for r in recorded("binance", file)}
        for name, file in (
            ("position", "top_long_short_position_ratio_5m.json"),
            ("account", "top_long_short_account_ratio_5m.json"),
            ("taker", "taker_long_short_ratio_5m.json"),
        )
    }
    assert row.top_position_ratio == float(by_stamp["position"][START]["longShortRatio"])
    assert row.top_account_ratio == float(by_stamp["account"][START]["longShortRatio"])
    assert row.taker_ratio == float(by_stamp["taker"][START]["buySellRatio"])
    assert not market.metrics_rows.filter(top_position_ratio__isnull=True).exists()


def test_okx_rows_carry_the_top_traders_ratios_and_no_taker_ratio(live_market) -> None:
    market = live_market("okx")
    market_ingest(market=market)
    data = dict(recorded("okx", "long_short_position_ratio_top_trader_5m.json")["data"])
    rows = market.metrics_rows.exclude(top_position_ratio__isnull=True)
    assert rows.exists()
    for row in rows[:20]:
        stamp = str(int(row.stamped_at.timestamp() * 1000))
        assert row.top_position_ratio == float(data[stamp])
    assert not market.metrics_rows.exclude(taker_ratio__isnull=True).exists()


def test_bybit_publishes_no_top_trader_ratio_so_the_rows_leave_it_empty(live_market) -> None:
    market = live_market("bybit")
    market_ingest(market=market)
    rows = market.metrics_rows.all()
    assert rows.exists()
    assert not rows.exclude(top_position_ratio__isnull=True).exists()
    assert not rows.exclude(top_account_ratio__isnull=True).exists()


def test_a_failing_positioning_endpoint_is_a_warning_and_leaves_the_series_empty(
    live_market, replay_connector, monkeypatch
) -> None:
    from maps import connectors

    broken = replay_connector(
        "binanceusdm",
        {
            "path": "/futures/data/topLongShortPositionRatio",
            "status": 400,
            "file": "error_invalid_symbol.json",
        },
    )
    monkeypatch.setattr(connectors, "connector_for", lambda ccxt_id: broken)
    market = live_market("binanceusdm")
    report = market_ingest(market=market, connector=broken)
    assert report.written > 0
    assert any(w.startswith("positioning top_position_ratio:") for w in report.warnings)
    assert not market.metrics_rows.exclude(top_position_ratio__isnull=True).exists()
    assert not market.metrics_rows.filter(top_account_ratio__isnull=True).exists()
