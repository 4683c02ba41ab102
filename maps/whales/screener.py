"""The screener, pure Python: each market's row from its stored results, sorted, filtered and
coloured (no engine run, no database: `maps.whales.pages` gathers the stored results).

Two colour modes: `own` colours a cell by how unusual the value is for that market itself (the
robust z stored with its positioning: the 24-hour change, whales' long %, delta, OI change per
hour and funding against its own trailing week); `all` by how it stands among the rows shown
(robust z across markets: median and MAD of the column).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

COLUMNS = {
    "market": "Pair",
    "price": "Price",
    "change": "24 h",
    "long_distance": "Nearest long cluster",
    "short_distance": "Nearest short cluster",
    "magnet": "Magnet",
    "whale_long": "Whales long",
    "delta": "Whales vs retail",
    "oi_z": "OI change z",
    "funding": "Funding",
    "cascade": "Last cascade",
}
TONED = ("change", "whale_long", "delta", "oi_z", "funding")
COLOURS = ("own", "all")
MAGNETS = ("any", "long", "short")


@dataclass
class ScreenerRow:
    key: int
    symbol: str
    exchange: str
    values: dict[str, float | str | None]
    own_z: dict[str, float | None] = field(default_factory=dict)
    tones: dict[str, str] = field(default_factory=dict)

    def sort_value(self, column: str) -> float | str | None:
        if column == "market":
            return f"{self.symbol} {self.exchange}".lower()
        return self.values.get(column)


@dataclass(frozen=True)
class Filters:
    magnet: str = "any"
    min_whale: float | None = None
    max_whale: float | None = None
    min_delta: float | None = None  # |whale - retail| at least this
    min_oi_z: float | None = None  # |OI change z| at least this
    search: str = ""


def row_passes(row: ScreenerRow, f: Filters) -> bool:
    v = row.values
    if f.magnet != "any" and v.get("magnet") != f.magnet:
        return False
    if f.search and f.search.lower() not in f"{row.symbol} {row.exchange}".lower():
        return False
    checks = (
        (f.min_whale, v.get("whale_long"), lambda x, t: x >= t),
        (f.max_whale, v.get("whale_long"), lambda x, t: x <= t),
        (f.min_delta, v.get("delta"), lambda x, t: abs(x) >= t),
        (f.min_oi_z, v.get("oi_z"), lambda x, t: abs(x) >= t),
    )
    for threshold, value, holds in checks:
        if threshold is not None and (value is None or not holds(value, threshold)):
            return False
    return True


def screener_apply(
    rows: list[ScreenerRow], *, sort: str | None, descending: bool, filters: Filters, colour: str
) -> list[ScreenerRow]:
    """The rows that pass the filters, sorted on `sort` (rows without a value last, whatever the
    direction; the input order when None), each with its cells' tones for `colour`."""
    kept = [row for row in rows if row_passes(row, filters)]
    if sort is not None:
        present = [r for r in kept if r.sort_value(sort) is not None]
        missing = [r for r in kept if r.sort_value(sort) is None]
        present.sort(key=lambda r: r.sort_value(sort), reverse=descending)
        kept = present + missing
    tones_set(kept, colour)
    return kept


def tones_set(rows: list[ScreenerRow], colour: str) -> None:
    """Each toned cell's class: tone-p1..p3 (unusually high), tone-n1..n3 (low), '' otherwise."""
    for column in TONED:
        if colour == "own":
            scores = [row.own_z.get(column) for row in rows]
        else:
            scores = cross_z([row.values.get(column) for row in rows])
        for row, z in zip(rows, scores, strict=True):
            row.tones[column] = tone(z)


def cross_z(values: list) -> list[float | None]:
    """Each value's robust z among the values (median and MAD; None for missing ones)."""
    finite = sorted(v for v in values if isinstance(v, int | float) and math.isfinite(v))
    if len(finite) < 3:
        return [None] * len(values)
    median = _median(finite)
    mad = 1.4826 * _median(sorted(abs(v - median) for v in finite))
    if mad <= 0:
        return [None] * len(values)
    return [None if v is None else (v - median) / mad for v in values]


def _median(ordered: list[float]) -> float:
    n = len(ordered)
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def tone(z: float | None) -> str:
    if z is None or not math.isfinite(z) or abs(z) < 1:
        return ""
    level = 3 if abs(z) >= 3 else 2 if abs(z) >= 2 else 1
    return f"tone-{'p' if z > 0 else 'n'}{level}"
