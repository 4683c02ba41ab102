"""Reads for the planner: a market's brackets, its risk profile, users' saved positions."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from django.db.models import QuerySet

from maps.analytics.risk import OKX_TAKER_FEE, Brackets
from maps.models import MapSnapshot, MarginBracket, Market, RiskProfile, SavedPosition
from maps.risk.brackets import brackets_from_rows
from maps.selectors import market_snapshot_light

FORMULA_BY_CCXT_ID = {"binanceusdm": "binance", "bybit": "bybit", "okx": "okx"}
FEE_BY_FORMULA = {"binance": 0.0, "bybit": 0.0, "okx": OKX_TAKER_FEE}
BRACKET_FIELDS = (
    "tier",
    "floor",
    "cap",
    "basis",
    "maintenance_rate",
    "maintenance_amount",
    "max_leverage",
    "source",
)
FALLBACK_SOURCE = "one bracket at the market's maintenance rate (no published table loaded)"


@dataclass(frozen=True)
class MarketBrackets:
    """A market's bracket table, the exchange formula it is used with, and where it comes from."""

    brackets: Brackets
    formula: str
    fee_rate: float
    source: str
    published: bool
    rows: list[dict]


def market_formula(market: Market) -> str:
    """The exchange's own liquidation formula; MODEL.md's (Binance's) for any other exchange."""
    return FORMULA_BY_CCXT_ID.get(market.exchange.ccxt_id, "binance")


def market_brackets(*, market: Market) -> MarketBrackets:
    """The market's stored table, or one bracket at its model maintenance rate, with the
    highest leverage of its model tiers as the maximum."""
    formula = market_formula(market)
    rows = list(
        MarginBracket.objects.filter(market=market).order_by("tier").values(*BRACKET_FIELDS)
    )
    if rows:
        source = rows[0]["source"] or "the market's bracket table (admin)"
        return MarketBrackets(
            brackets_from_rows(rows), formula, FEE_BY_FORMULA[formula], source, True, rows
        )
    top = max(float(lev) for lev, _ in market.tiers) if market.tiers else 100.0
    single = Brackets.single(market.mmr, top)
    return MarketBrackets(single, formula, FEE_BY_FORMULA[formula], FALLBACK_SOURCE, False, [])


def market_snapshot_full(*, market: Market, window: str) -> MapSnapshot | None:
    """The snapshot; its arrays load on first use (`snapshot_arrays`), usually never: the
    planner's curves and profile are kept per snapshot version."""
    return market_snapshot_light(market=market, window=window)


def snapshot_arrays(snapshot: MapSnapshot, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Only these arrays of the snapshot's npz (the heatmaps are the bulk of it)."""
    if "arrays" in snapshot.__dict__:
        return {name: snapshot.arrays[name] for name in names}
    data = MapSnapshot.objects.filter(pk=snapshot.pk).values_list("data", flat=True).first()
    with np.load(io.BytesIO(bytes(data))) as npz:
        return {name: npz[name] for name in names}


def risk_profile(*, market: Market, window: str) -> RiskProfile | None:
    return RiskProfile.objects.filter(market=market, window=window).first()


def user_positions(*, user) -> QuerySet[SavedPosition]:
    return SavedPosition.objects.filter(user=user).select_related("market__exchange")


def market_user_positions(*, user, market: Market) -> list[SavedPosition]:
    if not user.is_authenticated:
        return []
    return list(user_positions(user=user).filter(market=market))
