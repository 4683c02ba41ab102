"""Text in, JSON out: durations, tier lists, and the result.json shape."""

from __future__ import annotations

import math
import re

import numpy as np

from .core import ENGINE_VERSION
from .types import EngineError, Params, Result, Tier

UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(text: str) -> int | None:
    """'5m', '24h', '7d', '1.5h', '300000ms' -> milliseconds; 'inf' -> None."""
    if str(text).strip().lower() in ("inf", "infinite", "none"):
        return None
    match = DURATION.match(str(text))
    if not match:
        raise EngineError(
            f"bad duration {text!r}: use a number and a unit (ms, s, m, h, d, w) or inf"
        )
    value = float(match.group(1)) * UNIT_MS[match.group(2)]
    if value <= 0 or value != math.floor(value):
        raise EngineError(f"bad duration {text!r}: must be a positive whole number of ms")
    return int(value)


def parse_tiers(text: str) -> tuple[Tier, ...]:
    """'5:0.15,10:0.30,...' -> tiers (leverage:weight, comma separated)."""
    tiers = []
    for part in str(text).split(","):
        pieces = part.strip().split(":")
        try:
            if len(pieces) != 2:
                raise ValueError
            tiers.append(Tier(float(pieces[0]), float(pieces[1])))
        except ValueError:
            raise EngineError(
                f"bad tier {part.strip()!r}: use leverage:weight, e.g. 10:0.30"
            ) from None
    return tuple(tiers)


def params_to_json(params: Params) -> dict:
    return {
        "tiers": [
            {"leverage": _plain(t.leverage), "weight": float(t.weight)} for t in params.tiers
        ],
        "mmr": params.mmr,
        "long_share": params.long_share,
        "holding_ms": params.holding_ms,
        "bin_bps": params.bin_bps,
        "window_ms": params.window_ms,
        "max_columns": params.max_columns,
        "step_ms": params.step_ms,
    }


def params_from_json(data: dict) -> Params:
    """The Params that params_to_json wrote."""
    fields = {key: data[key] for key in Params.__dataclass_fields__ if key != "tiers"}
    tiers = tuple(Tier(float(t["leverage"]), float(t["weight"])) for t in data["tiers"])
    return Params(tiers=tiers, **fields)


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def result_to_json(result: Result, *, arrays: bool = False) -> dict:
    """The result.json document: plain lists and numbers; with `arrays`, the big lists stay
    C-contiguous numpy arrays for an encoder that writes them directly (orjson)."""

    def out(values) -> list | np.ndarray:
        values = np.asarray(values)
        return np.ascontiguousarray(values) if arrays else values.tolist()

    calibration = dict(result.calibration) if result.calibration is not None else None
    liquidated = {
        "times": out(result.liq_times),
        "long": out(result.liq_long.sum(1)),
        "short": out(result.liq_short.sum(1)),
        "long_by_tier": out(result.liq_long.T),
        "short_by_tier": out(result.liq_short.T),
    }
    if calibration is not None:
        for key in ("real_long", "real_short"):
            if key in calibration:
                liquidated[key] = out(calibration.pop(key))
    return {
        "engine_version": ENGINE_VERSION,
        "as_of": int(result.as_of),
        "last_close": float(result.last_close),
        "step_ms": int(result.step_ms),
        "params": params_to_json(result.params),
        "bins": {"edges": out(result.edges), "width": _width(result)},
        "map": {
            "leverages": [_plain(t.leverage) for t in result.params.tiers],
            "long": out(result.map_long),
            "short": out(result.map_short),
        },
        "cumulative": {"long": out(result.cum_long), "short": out(result.cum_short)},
        "heatmap": {
            "times": out(result.heat_times),
            "long": out(result.heat_long),
            "short": out(result.heat_short),
        },
        "liquidated": liquidated,
        "clusters": to_plain(result.clusters),
        "proximity": to_plain(result.proximity),
        "calibration": to_plain(calibration),
        "report": to_plain(result.report),
    }


def _width(result: Result) -> float:
    width = result.report.get("bin_width")
    if width is None:
        width = result.last_close * result.params.bin_bps / 1e4
    return float(width)


def to_plain(value: object) -> object:
    """numpy scalars and arrays inside dicts and lists as plain Python values."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
