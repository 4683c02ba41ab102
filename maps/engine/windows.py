"""run_windows(): every window of one market from one pass over the longest.

A group's liquidation price, notional at opening, liquidation step and end do not depend on the
window: they follow from its opening step and the bars after it. A window only decides which
groups count (those opened after its first step, which only sets OI) and where its cumulative
step factors start. So the groups are opened, and their first passages searched, once over the
longest window; each window takes the suffix of them that it counts, renumbered from its own
first step, and builds its own outputs exactly as run() does. The result of each window is equal,
array for array and bit for bit, to run() on the same bars with that window's parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .core import _result
from .simulate import Groups, Path, build_path, liquidations, open_groups
from .types import Bars, EngineError, Params, Result

# The parameters that shape the groups: every window of one pass must share them. The window,
# the heatmap's columns and the bin width only shape each window's outputs.
GROUP_PARAMS = ("tiers", "mmr", "long_share", "holding_ms", "step_ms")


@dataclass
class WindowsRun:
    """Each window's result, or the message run() would have raised for it."""

    results: dict[str, Result] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def run_windows(bars: Bars, params_by_window: Mapping[str, Params]) -> WindowsRun:
    """Run the model over every window of `params_by_window` (name -> Params) in one pass.

    The parameters may differ only in window_ms, max_columns and bin_bps. A window the bars
    cannot serve (fewer than 2 steps, a missing long/short ratio inside it, a price grid too wide
    for its bin width) gets the error run() would raise for it; the others are still computed.
    """
    if not isinstance(bars, Bars):
        raise EngineError(f"bars must be a Bars, not {type(bars).__name__}")
    if not params_by_window:
        raise EngineError("run_windows needs at least one window")
    _check_shared(params_by_window)
    out = WindowsRun()
    paths: dict[str, Path] = {}
    for name, params in params_by_window.items():
        try:
            paths[name] = build_path(bars, params)
        except EngineError as exc:
            out.errors[name] = str(exc)
    if not paths:
        return out
    longest = min(paths, key=lambda name: paths[name].first_row)
    params = params_by_window[longest]
    tiers = np.flatnonzero(params.weights > 0)
    shared = tuple(open_groups(paths[longest], params, side, tiers) for side in (True, False))
    origin = paths[longest].first_row
    for name, path in paths.items():
        sides = tuple(_window_groups(g, path, path.first_row - origin) for g in shared)
        per_tier = tuple(liquidations(path, g, len(params.weights)) for g in sides)
        try:
            out.results[name] = _result(path, params_by_window[name], sides, per_tier)
        except EngineError as exc:
            out.errors[name] = str(exc)
    return out


def _check_shared(params_by_window: Mapping[str, Params]) -> None:
    items = list(params_by_window.items())
    for name, params in items:
        if not isinstance(params, Params):
            raise EngineError(f"window {name!r}: params must be a Params")
    first_name, first = items[0]
    for name, params in items[1:]:
        for attr in GROUP_PARAMS:
            if getattr(params, attr) != getattr(first, attr):
                raise EngineError(
                    f"window {name!r}: {attr} differs from window {first_name!r}; one pass "
                    "needs the same " + ", ".join(GROUP_PARAMS) + " for every window"
                )


def _window_groups(groups: Groups, path: Path, offset: int) -> Groups:
    """The groups a window starting `offset` steps into the longest one counts (those opened
    after its first step), with steps counted from the window's first step."""
    keep = groups.step > offset
    step = groups.step[keep] - offset
    death = groups.death[keep] - offset
    return Groups(
        is_long=groups.is_long,
        step=step,
        tier=groups.tier[keep],
        lp=groups.lp[keep],
        base=groups.base[keep],
        death=death,
        end=np.minimum(death, path.next_zero[step + 1]),
    )
