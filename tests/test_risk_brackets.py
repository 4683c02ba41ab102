"""Maintenance brackets: the exchanges' payloads, the recorded tables, load_brackets, the admin."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from maps.models import Exchange, MarginBracket
from maps.risk import brackets
from maps.risk.brackets import BracketError
from maps.risk.selectors import FALLBACK_SOURCE, market_brackets
from maps.risk.services import brackets_load

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "exchanges"


def fixture(path: str):
    return json.loads((FIXTURES / path).read_text())


def test_it_reads_binances_documented_leverage_bracket_example():
    rows = brackets.binance_rows(fixture("binance/doc_leverage_bracket.json"), "ETHUSDT")
    assert rows == [
        {
            "tier": 1,
            "floor": 0.0,
            "cap": 10_000.0,
            "basis": "notional",
            "maintenance_rate": 0.0065,
            "maintenance_amount": 0.0,
            "max_leverage": 75.0,
        }
    ]
    with pytest.raises(BracketError, match="binance: no brackets for BTCUSDT"):
        brackets.binance_rows(fixture("binance/doc_leverage_bracket.json"), "BTCUSDT")


def test_it_reads_bybits_rates_as_fractions_or_as_the_documentations_percentages():
    doc = brackets.bybit_rows(fixture("bybit/doc_risk_limit.json"), "BTCUSD")
    assert doc[0]["maintenance_rate"] == pytest.approx(0.005)  # "0.5" with IM "1" at 100x
    live = brackets.bybit_rows(fixture("bybit/risk_limit_linear.json"), "BTCUSDT")
    assert len(live) == 20
    assert (live[0]["cap"], live[0]["maintenance_rate"], live[0]["max_leverage"]) == (
        2e6,
        0.005,
        100.0,
    )
    assert (live[1]["floor"], live[1]["maintenance_amount"]) == (2e6, 1_200.0)
    # A blank deduction follows the published formula: limit(n-1) x (rate(n) - rate(n-1)) + ...
    payload = fixture("bybit/risk_limit_linear.json")
    for tier in payload["result"]["list"]:
        tier["mmDeduction"] = ""
    derived = brackets.bybit_rows(payload, "BTCUSDT")
    assert [r["maintenance_amount"] for r in derived] == pytest.approx(
        [r["maintenance_amount"] for r in live], abs=0.5
    )


def test_it_reads_okx_tiers_in_contracts_as_base_units():
    rows = brackets.okx_rows(fixture("okx/position_tiers_swap.json"), "ETH-USDT", 0.1)
    assert [(r["floor"], r["cap"]) for r in rows[:3]] == [(0, 300), (300, 600), (600, 1_200)]
    assert {r["basis"] for r in rows} == {"quantity"}
    assert rows[2]["max_leverage"] == 66.66
    doc = brackets.okx_rows(fixture("okx/doc_position_tiers.json"), "BTC-USDT", 1.0)
    assert (doc[0]["maintenance_rate"], doc[0]["max_leverage"]) == (0.03, 10.0)


@pytest.mark.parametrize(
    "parse, payload, message",
    [
        (brackets.bybit_rows, {"retCode": 10001, "retMsg": "params error"}, "error: 'params"),
        (brackets.bybit_rows, {"retCode": 0, "result": {}}, "result.list is not a list"),
        (
            brackets.bybit_rows,
            {"retCode": 0, "result": {"list": [{"symbol": "X", "riskLimitValue": "abc"}]}},
            "riskLimitValue is 'abc', not a number",
        ),
        (brackets.okx_rows, {"code": "51001", "msg": "bad"}, "okx: the position-tiers answer"),
        (brackets.binance_rows, [{"symbol": "X", "brackets": "no"}], "'brackets' is not a list"),
    ],
)
def test_it_refuses_payloads_not_in_the_documented_shape(parse, payload, message):
    args = ("X", 1.0) if parse is brackets.okx_rows else ("X",)
    with pytest.raises(BracketError, match=message):
        parse(payload, *args)


def test_it_refuses_a_table_with_a_gap():
    payload = fixture("binance/doc_leverage_bracket.json")
    payload[0]["brackets"].append(
        {
            "bracket": 2,
            "initialLeverage": 50,
            "notionalCap": 90000,
            "notionalFloor": 20000,
            "maintMarginRatio": 0.01,
            "cum": 65,
        }
    )
    with pytest.raises(BracketError, match="bracket 2: floor must equal the previous cap"):
        brackets.binance_rows(payload, "ETHUSDT")


@pytest.fixture
def venues(db, market_factory):
    made = {}
    for slug, ccxt_id, symbol, size in (
        ("binance", "binanceusdm", "BTCUSDT", 1.0),
        ("bybit", "bybit", "BTCUSDT", 1.0),
        ("okx", "okx", "ETH-USDT-SWAP", 0.1),
    ):
        market = market_factory(symbol, slug, contract_size=size)
        Exchange.objects.filter(slug=slug).update(ccxt_id=ccxt_id)
        market.refresh_from_db()
        made[slug] = market
    made["sol"] = market_factory("SOLUSDT", "binance")
    return made


def test_it_loads_the_recorded_tables_and_keeps_what_has_none(venues):
    out = StringIO()
    call_command("load_brackets", stdout=out)
    text = out.getvalue()
    assert "binance/BTCUSDT: 10 brackets" in text
    assert "bybit/BTCUSDT: 20 brackets" in text
    assert "okx/ETH-USDT-SWAP: 10 brackets" in text
    assert "binance/SOLUSDT: kept as is (binance: no brackets for SOLUSDT)" in text
    table = market_brackets(market=venues["okx"])
    assert table.published and table.formula == "okx" and table.brackets.basis == "quantity"
    assert table.fee_rate == 0.0005
    fallback = market_brackets(market=venues["sol"])
    assert not fallback.published and fallback.source == FALLBACK_SOURCE
    assert fallback.brackets.rate.tolist() == [venues["sol"].mmr]
    call_command("load_brackets", "--if-empty", stdout=out)
    assert "nothing to do" in out.getvalue()


def test_it_loads_bybit_and_okx_through_ccxt_from_their_public_endpoints(venues, replay_connector):
    replay_connector("bybit")  # points connector_for at the recordings
    results = brackets_load(markets=[venues["bybit"], venues["okx"], venues["binance"]], live=True)
    assert [(r.loaded, r.error) for r in results] == [(20, ""), (10, ""), (10, "")]
    sources = MarginBracket.objects.values_list("market__exchange__slug", "source").distinct()
    sources = dict(sources)
    assert sources["bybit"].startswith("Bybit public endpoint")
    assert sources["binance"] == "Binance published table (recorded)"


def test_it_keeps_the_stored_table_when_an_exchange_answers_an_error(venues, replay_connector):
    call_command("load_brackets", stdout=StringIO())
    before = list(MarginBracket.objects.filter(market=venues["bybit"]).values_list("cap"))
    replay_connector("bybit")
    from maps.connectors import connector_for

    route = {
        "path": "/v5/market/risk-limit",
        "match": {"symbol": "BTCUSDT"},
        "file": "error_params.json",
    }
    connector_for("bybit").exchange.session.routes.insert(0, route)
    [result] = brackets_load(markets=[venues["bybit"]], live=True)
    assert result.error
    assert list(MarginBracket.objects.filter(market=venues["bybit"]).values_list("cap")) == before


def test_it_edits_a_bracket_in_the_admin_and_refuses_one_that_breaks_the_table(
    venues, admin_client
):
    market = venues["binance"]
    call_command("load_brackets", "--exchange", "binance", "--symbol", "BTCUSDT", stdout=StringIO())
    row = MarginBracket.objects.get(market=market, tier=2)
    url = reverse("admin:maps_marginbracket_change", args=[row.pk])
    assert admin_client.get(url).status_code == 200
    data = {
        "market": market.pk,
        "tier": 2,
        "floor": 60_000,  # a gap after bracket 1
        "cap": row.cap,
        "basis": "notional",
        "maintenance_rate": row.maintenance_rate,
        "maintenance_amount": row.maintenance_amount,
        "max_leverage": row.max_leverage,
        "source": "typed in the admin",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "bracket 2: floor must equal the previous cap" in response.content.decode()
    assert MarginBracket.objects.get(pk=row.pk).floor == 50_000
    data.update(floor=50_000, maintenance_rate=0.0055)
    assert admin_client.post(url, data).status_code == 302
    assert MarginBracket.objects.get(pk=row.pk).maintenance_rate == 0.0055
    assert market_brackets(market=market).brackets.rate[1] == 0.0055
    listing = admin_client.get(reverse("admin:maps_marginbracket_changelist"), {"q": "BTCUSDT"})
    assert listing.status_code == 200 and b"typed in the admin" in listing.content
