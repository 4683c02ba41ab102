"""Maintenance brackets from the exchanges' own payloads, in their documented shapes.

- Binance `GET /fapi/v1/leverageBracket` (needs an API key, so its published table is recorded in
  tables/binance.json): `[{"symbol", "brackets": [{"bracket", "initialLeverage", "notionalCap",
  "notionalFloor", "maintMarginRatio", "cum"}]}]`.
- Bybit `GET /v5/market/risk-limit?category=linear` (public): `{"retCode": 0, "result": {"list":
  [{"id", "symbol", "riskLimitValue", "maintenanceMargin", "initialMargin", "maxLeverage",
  "mmDeduction"}]}}`. Rates are fractions on the live API but percentages in the documentation's
  own example ("0.5" with "initialMargin": "1" and 100x); the unit is read from
  initialMargin x maxLeverage (1 for fractions, 100 for percentages).
- OKX `GET /api/v5/public/position-tiers?instType=SWAP&tdMode=isolated&instFamily=...` (public):
  `{"code": "0", "data": [{"tier", "minSz", "maxSz", "mmr", "imr", "maxLever"}]}`; sizes in
  contracts, converted to base units with the market's contract size.

Each parser returns the rows of `MarginBracket` (tier, floor, cap, basis, maintenance_rate,
maintenance_amount, max_leverage) or raises BracketError naming the symbol and the row.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from maps.analytics.risk import Brackets, RiskError, maintenance_amounts

TABLES = Path(__file__).resolve().parent / "tables"
RECORDED_FILES = {"binanceusdm": "binance.json", "bybit": "bybit.json", "okx": "okx.json"}
LIVE_EXCHANGES = ("bybit", "okx")  # Binance's endpoint needs an API key
ROW_FIELDS = (
    "tier",
    "floor",
    "cap",
    "basis",
    "maintenance_rate",
    "maintenance_amount",
    "max_leverage",
)


class BracketError(ValueError):
    """A payload that is not the exchange's documented shape, or a table that cannot be used."""


def _number(row: dict, key: str, where: str, *, blank: float | None = None) -> float:
    value = row.get(key) if isinstance(row, dict) else None
    if value in (None, "") and blank is not None:
        return blank
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BracketError(f"{where}: {key} is {value!r}, not a number") from None
    if not math.isfinite(number):
        raise BracketError(f"{where}: {key} is {value!r}, not a finite number")
    return number


def checked(rows: list[dict], where: str) -> list[dict]:
    """The rows, ascending, after checking they make one usable table (see risk.Brackets)."""
    if not rows:
        raise BracketError(f"{where}: no brackets")
    rows = sorted(rows, key=lambda r: r["floor"])
    for tier, row in enumerate(rows, start=1):
        row["tier"] = tier
    try:
        brackets_from_rows(rows)
    except RiskError as exc:
        raise BracketError(f"{where}: {exc}") from None
    return rows


def brackets_from_rows(rows: list[dict]) -> Brackets:
    return Brackets(
        floor=[r["floor"] for r in rows],
        cap=[r["cap"] for r in rows],
        rate=[r["maintenance_rate"] for r in rows],
        amount=[r["maintenance_amount"] for r in rows],
        max_leverage=[r["max_leverage"] for r in rows],
        basis=rows[0]["basis"],
    )


def binance_rows(payload: Any, symbol: str) -> list[dict]:
    """The symbol's brackets from a leverageBracket answer (a list, or one object)."""
    items = payload if isinstance(payload, list) else [payload]
    item = next((i for i in items if isinstance(i, dict) and i.get("symbol") == symbol), None)
    if item is None:
        raise BracketError(f"binance: no brackets for {symbol}")
    brackets = item.get("brackets")
    if not isinstance(brackets, list):
        raise BracketError(f"binance {symbol}: 'brackets' is not a list")
    rows = []
    for n, b in enumerate(brackets, start=1):
        where = f"binance {symbol} bracket {n}"
        rows.append(
            {
                "floor": _number(b, "notionalFloor", where),
                "cap": _number(b, "notionalCap", where),
                "basis": "notional",
                "maintenance_rate": _number(b, "maintMarginRatio", where),
                "maintenance_amount": _number(b, "cum", where),
                "max_leverage": _number(b, "initialLeverage", where),
            }
        )
    return checked(rows, f"binance {symbol}")


def bybit_rows(payload: Any, symbol: str) -> list[dict]:
    """The symbol's risk limits from a /v5/market/risk-limit answer."""
    if not isinstance(payload, dict) or payload.get("retCode") not in (0, "0"):
        message = payload.get("retMsg") if isinstance(payload, dict) else payload
        raise BracketError(f"bybit: the risk-limit answer is an error: {message!r}")
    items = (payload.get("result") or {}).get("list")
    if not isinstance(items, list):
        raise BracketError("bybit: result.list is not a list")
    tiers = [i for i in items if isinstance(i, dict) and i.get("symbol") == symbol]
    if not tiers:
        raise BracketError(f"bybit: no risk limits for {symbol}")
    tiers.sort(key=lambda i: _number(i, "riskLimitValue", f"bybit {symbol}"))
    scale = _bybit_rate_scale(tiers[0], symbol)
    rows, floor = [], 0.0
    for n, t in enumerate(tiers, start=1):
        where = f"bybit {symbol} tier {n}"
        cap = _number(t, "riskLimitValue", where)
        rows.append(
            {
                "floor": floor,
                "cap": cap,
                "basis": "notional",
                "maintenance_rate": _number(t, "maintenanceMargin", where) / scale,
                "maintenance_amount": _number(t, "mmDeduction", where, blank=math.nan),
                "max_leverage": _number(t, "maxLeverage", where),
            }
        )
        floor = cap
    _fill_amounts(rows)
    return checked(rows, f"bybit {symbol}")


def _bybit_rate_scale(tier: dict, symbol: str) -> float:
    """1 when the rates are fractions, 100 when percentages (see the module docstring)."""
    where = f"bybit {symbol} tier 1"
    product = _number(tier, "initialMargin", where) * _number(tier, "maxLeverage", where)
    return 100.0 if abs(product - 100) < abs(product - 1) else 1.0


def _fill_amounts(rows: list[dict]) -> None:
    """Deductions left blank follow the exchanges' formula from the rates and floors."""
    amounts = np.array([r["maintenance_amount"] for r in rows])
    if np.isnan(amounts).any():
        derived = maintenance_amounts(
            np.array([r["floor"] for r in rows]), np.array([r["maintenance_rate"] for r in rows])
        )
        for row, value in zip(rows, derived.tolist(), strict=True):
            if math.isnan(row["maintenance_amount"]):
                row["maintenance_amount"] = value


def okx_rows(payload: Any, family: str, contract_size: float) -> list[dict]:
    """The instrument family's isolated tiers from a position-tiers answer, sizes in base units."""
    if not isinstance(payload, dict) or str(payload.get("code")) != "0":
        message = payload.get("msg") if isinstance(payload, dict) else payload
        raise BracketError(f"okx: the position-tiers answer is an error: {message!r}")
    items = payload.get("data")
    if not isinstance(items, list):
        raise BracketError("okx: data is not a list")
    tiers = [
        i
        for i in items
        if isinstance(i, dict) and family in (i.get("instFamily"), i.get("uly"), i.get("instId"))
    ]
    if not tiers:
        raise BracketError(f"okx: no position tiers for {family}")
    if not (contract_size > 0):
        raise BracketError(f"okx {family}: the contract size must be positive")
    tiers.sort(key=lambda i: _number(i, "maxSz", f"okx {family}"))
    rows, floor = [], 0.0
    for n, t in enumerate(tiers, start=1):
        where = f"okx {family} tier {n}"
        cap = _number(t, "maxSz", where) * contract_size
        rows.append(
            {
                "floor": floor,
                "cap": cap,
                "basis": "quantity",
                "maintenance_rate": _number(t, "mmr", where),
                "maintenance_amount": 0.0,
                "max_leverage": _number(t, "maxLever", where),
            }
        )
        floor = cap
    return checked(rows, f"okx {family}")


def okx_family(symbol: str) -> str:
    """BTC-USDT-SWAP -> BTC-USDT."""
    return symbol.removesuffix("-SWAP")


def rows_from_payload(ccxt_id: str, payload: Any, symbol: str, contract_size: float) -> list[dict]:
    if ccxt_id == "binanceusdm":
        return binance_rows(payload, symbol)
    if ccxt_id == "bybit":
        return bybit_rows(payload, symbol)
    if ccxt_id == "okx":
        return okx_rows(payload, okx_family(symbol), contract_size)
    raise BracketError(f"no bracket table format for exchange {ccxt_id!r}")


def recorded_payload(ccxt_id: str, directory: Path = TABLES) -> Any:
    """The exchange's published table as recorded in tables/ (see tables/README.md)."""
    name = RECORDED_FILES.get(ccxt_id)
    if name is None:
        raise BracketError(f"no recorded bracket table for exchange {ccxt_id!r}")
    path = Path(directory) / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BracketError(f"{path.name}: cannot read it as JSON: {exc}") from None


def live_payload(exchange: Any, ccxt_id: str, symbol: str) -> Any:
    """The table from the exchange's public endpoint, through ccxt's raw API methods."""
    if ccxt_id == "bybit":
        return exchange.public_get_v5_market_risk_limit({"category": "linear", "symbol": symbol})
    if ccxt_id == "okx":
        request = {"instType": "SWAP", "tdMode": "isolated", "instFamily": okx_family(symbol)}
        return exchange.public_get_public_position_tiers(request)
    raise BracketError(f"{ccxt_id}: brackets are not public; load the recorded table")
