"""The liquidation model in numpy: see docs/model.md. Never imports Django."""

from __future__ import annotations

from .aggregate import aggregate
from .calibration import events_per_step
from .clusters import clusters_from_bins, proximity_from_clusters
from .core import ENGINE_VERSION, run
from .serialize import parse_duration, parse_tiers, result_to_json
from .types import DEFAULT_TIERS, Bars, EngineError, Events, Params, Result, Tier
from .windows import WindowsRun, run_windows

__all__ = [
    "DEFAULT_TIERS",
    "ENGINE_VERSION",
    "Bars",
    "EngineError",
    "Events",
    "Params",
    "Result",
    "Tier",
    "WindowsRun",
    "aggregate",
    "clusters_from_bins",
    "events_per_step",
    "parse_duration",
    "parse_tiers",
    "proximity_from_clusters",
    "result_to_json",
    "run",
    "run_windows",
]
