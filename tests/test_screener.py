"""The screener: the home page's table of every market, sorted, filtered and coloured from the
stored results (maps/whales/screener.py, maps/whales/pages.py), and /api/v1/screener/."""

from __future__ import annotations

import pytest
from django.urls import reverse

from maps.demo import demo_seed
from maps.services import market_snapshots_compute
from maps.whales.screener import Filters, ScreenerRow, cross_z, screener_apply, tone
from maps.whales.services import market_positioning_refresh

END_MS = 1_714_564_800_000


def row(key: int, symbol: str, **values) -> ScreenerRow:
    return ScreenerRow(key, symbol, "Binance", values, {"whale_long": values.get("z")})


ROWS = [
    row(0, "BTCUSDT", whale_long=40.0, delta=-9.0, magnet="long", oi_z=0.5, z=3.5),
    row(1, "ETHUSDT", whale_long=55.0, delta=2.0, magnet="short", oi_z=-4.0, z=-1.2),
    row(2, "SOLUSDT", whale_long=None, delta=None, magnet="long", oi_z=1.0),
    row(3, "HYPEUSDT", whale_long=51.0, delta=12.0, magnet="short", oi_z=3.2, z=0.1),
]


def test_it_sorts_with_rows_lacking_the_value_last_in_both_directions() -> None:
    up = screener_apply(ROWS, sort="whale_long", descending=False, filters=Filters(), colour="own")
    down = screener_apply(ROWS, sort="whale_long", descending=True, filters=Filters(), colour="own")
    assert [r.symbol for r in up] == ["BTCUSDT", "HYPEUSDT", "ETHUSDT", "SOLUSDT"]
    assert [r.symbol for r in down] == ["ETHUSDT", "HYPEUSDT", "BTCUSDT", "SOLUSDT"]


def test_it_filters_on_magnet_whales_delta_oi_z_and_search() -> None:
    def kept(**f):
        rows = screener_apply(ROWS, sort=None, descending=False, filters=Filters(**f), colour="own")
        return [r.symbol for r in rows]

    assert kept(magnet="short") == ["ETHUSDT", "HYPEUSDT"]
    assert kept(min_whale=50) == ["ETHUSDT", "HYPEUSDT"]
    assert kept(max_whale=50) == ["BTCUSDT"]
    assert kept(min_delta=9) == ["BTCUSDT", "HYPEUSDT"]
    assert kept(min_oi_z=3) == ["ETHUSDT", "HYPEUSDT"]
    assert kept(search="hype") == ["HYPEUSDT"]


def test_it_colours_by_own_past_or_across_markets() -> None:
    own = screener_apply(ROWS, sort=None, descending=False, filters=Filters(), colour="own")
    assert own[0].tones["whale_long"] == "tone-p3" and own[1].tones["whale_long"] == "tone-n1"
    across = screener_apply(ROWS, sort=None, descending=False, filters=Filters(), colour="all")
    assert across[0].tones["whale_long"].startswith("tone-n")  # the lowest of 40, 55, 51
    assert tone(None) == "" and tone(0.5) == "" and tone(-2.5) == "tone-n2"
    assert cross_z([1.0, None]) == [None, None]


@pytest.fixture
def screened(db):
    markets = demo_seed(seed=3, days=10, end_ms=END_MS).markets
    for market in markets:
        market_snapshots_compute(market=market, windows=["7d"])
        market_positioning_refresh(market=market)
    return markets


def test_the_home_page_is_a_screener_with_sortable_headers(client, screened) -> None:
    body = client.get(reverse("maps:home"), {"window": "7d"}).content.decode()
    for label in ("Whales long", "Whales vs retail", "OI change z", "Funding", "Last cascade"):
        assert label in body
    assert "sort=whale_long" in body and "hx-push-url" not in body.split("<thead>")[0][-10:]
    assert "Nearest long cluster" in body and "Grade" in body


def test_sorting_and_filtering_keep_their_state_in_the_links(client, screened) -> None:
    response = client.get(
        reverse("maps:markets_table"),
        {"window": "7d", "sort": "-whale_long", "magnet": "long", "push": "1"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert response.headers["HX-Push-Url"] == "/?window=7d&sort=-whale_long&magnet=long"
    body = response.content.decode()
    assert 'aria-sort="descending"' in body
    symbols = [m.symbol for m in screened if m.symbol in body]
    assert symbols


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"sort": "price;drop"}, "sort"),
        ({"colour": "rainbow"}, "colour"),
        ({"magnet": "up"}, "magnet"),
        ({"min_whale": "abc"}, "min_whale"),
        ({"min_whale": "101"}, "min_whale"),
        ({"min_oi_z": "nan"}, "min_oi_z"),
        ({"q": "<script>"}, "q"),
        ({"push": "2"}, "push"),
    ],
)
def test_bad_screener_options_are_a_400_naming_them(client, db, query, field) -> None:
    for url in (reverse("maps:home"), reverse("maps:markets_table"), reverse("api:screener")):
        if url != reverse("maps:markets_table") and field == "push":
            continue  # only the fragment knows push
        response = client.get(url, {"window": "7d", **query})
        assert response.status_code == 400, (url, query)
        assert f"{field}=" in response.content.decode()


def test_the_screener_api_returns_the_rows(client, screened) -> None:
    response = client.get(reverse("api:screener"), {"window": "7d", "sort": "-delta"})
    assert response.status_code == 200
    rows = response.json()["rows"]
    assert len(rows) == len(screened)
    deltas = [r["delta"] for r in rows if r["delta"] is not None]
    assert deltas == sorted(deltas, reverse=True)
    assert {"exchange", "symbol", "price", "whale_long_pct", "oi_change_z", "magnet"} <= set(
        rows[0]
    )
