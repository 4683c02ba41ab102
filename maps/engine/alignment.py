"""When a 5-minute open-interest row was taken, and which step it closes (MODEL.md v2.1).

This is the one place that knows how a source stamps its open-interest rows. Binance's `metrics`
bulk files stamp a row with its snapshot time T up to 2024-03-03 and, from 2024-03-04 00:00 UTC
on, with the start of the 5-minute period whose end the snapshot closes (the snapshot is taken at
T + 5 min). The engine's file reader, `import_binance_vision` and every connector that reads a
5-minute open-interest history map a row's stamp T to its snapshot time S here, and the row then
closes the step [S - step, S).

A stamping is one of:
- `auto`: the date rule above (Binance's files and REST history);
- `start`: every row is stamped with the start of its period, S = T + 5 min;
- `end`: every row is stamped with its snapshot time, S = T.

`check_stamping` tests a source against its own prices: the implied price of a row
(`sum_open_interest_value / sum_open_interest`) should equal the close at its snapshot time, so
the median deviation from the close at T (the `end` reading) and at T + 5 min (the `start`
reading) tells which stamping the data follow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .types import EngineError

STAMP_CHANGE_MS = 1_709_510_400_000  # 2024-03-04T00:00:00Z
SNAPSHOT_PERIOD_MS = 300_000
STAMPINGS = ("auto", "start", "end")
CHECK_MIN_ROWS = 12
"""Fewer rows with both closes known than this and the check says nothing."""
CONTRADICTION_RATIO = 0.5
"""The data contradict the rule when the other reading's median deviation is below this share
of the rule's own."""
CONFIRMATION_DEVIATION = 0.0025
"""The data confirm the rule when its median deviation is below this (0.25 %; real files: 0.03 %);
above it, and not contradicted, the check is inconclusive (the values do not follow the price)."""


def check_stamping_name(stamping: str) -> str:
    if stamping not in STAMPINGS:
        choices = ", ".join(STAMPINGS)
        raise EngineError(f"metrics stamping must be one of {choices}, not {stamping!r}")
    return stamping


def snapshot_times(stamps: np.ndarray, stamping: str = "auto") -> np.ndarray:
    """The snapshot time S (int64 ms) of rows stamped `stamps` under `stamping`."""
    stamps = np.asarray(stamps, dtype=np.int64)
    check_stamping_name(stamping)
    if stamping == "end":
        return stamps.copy()
    if stamping == "start":
        return stamps + SNAPSHOT_PERIOD_MS
    return np.where(stamps < STAMP_CHANGE_MS, stamps, stamps + SNAPSHOT_PERIOD_MS)


def snapshot_time(stamp: int, stamping: str = "auto") -> int:
    """The snapshot time S of one row stamped `stamp`."""
    return int(snapshot_times(np.array([stamp], dtype=np.int64), stamping)[0])


def step_of_snapshot(snapshots: np.ndarray, step_ms: int) -> np.ndarray:
    """The open time of the step each snapshot closes, [S - step, S); -1 where S is off the step
    grid (such a row closes no step)."""
    snapshots = np.asarray(snapshots, dtype=np.int64)
    return np.where(snapshots % step_ms == 0, snapshots - step_ms, -1)


def stamping_label(stamps: np.ndarray, stamping: str) -> str:
    """How the rule read these rows: 'start', 'end', or 'start and end' for a file that spans
    2024-03-04 under `auto`."""
    if stamping != "auto":
        return stamping
    stamps = np.asarray(stamps, dtype=np.int64)
    kinds = [
        name
        for name, present in (
            ("end", bool((stamps < STAMP_CHANGE_MS).any())),
            ("start", bool((stamps >= STAMP_CHANGE_MS).any())),
        )
        if present
    ]
    return " and ".join(kinds) or "none"


@dataclass(frozen=True)
class StampCheck:
    """One source's rows checked against its own prices; deviations are fractions (0.0003 is
    0.03 %), None when no row could be checked."""

    source: str
    rows: int
    checked: int
    applied: str
    median_end: float | None
    median_start: float | None
    median_rule: float | None
    median_other: float | None
    share_other: float | None
    """Share of the checked rows whose other reading is closer than the rule's."""

    @property
    def contradicts(self) -> bool:
        if self.checked < CHECK_MIN_ROWS or self.median_rule is None or self.median_other is None:
            return False
        return self.median_other < CONTRADICTION_RATIO * self.median_rule

    @property
    def confirms(self) -> bool:
        if self.checked < CHECK_MIN_ROWS or self.median_rule is None or self.contradicts:
            return False
        return self.median_rule < CONFIRMATION_DEVIATION

    def describe(self) -> str:
        """One line for reports: what was checked and whether the data agree."""
        if self.checked < CHECK_MIN_ROWS:
            return (
                f"{self.source}: stamping not checked ({self.checked} of {self.rows} rows have "
                f"both closes; {CHECK_MIN_ROWS} needed)"
            )
        deviations = (
            f"median deviation of the implied price from the close at T {_pct(self.median_end)}, "
            f"at T + 5 min {_pct(self.median_start)}"
        )
        if self.contradicts:
            return (
                f"{self.source}: the data contradict the stamping applied "
                f"({self.applied}): "
                f"{_pct(self.share_other, 0)} of {self.checked} checked rows sit closer to the "
                f"other reading; {deviations} (--metrics-stamp forces one)"
            )
        if not self.confirms:
            return (
                f"{self.source}: stamping not confirmed: the implied price follows neither "
                f"reading on {self.checked} rows; {deviations}"
            )
        return (
            f"{self.source}: stamping {self.applied} confirmed on {self.checked} rows; {deviations}"
        )

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "contradicts": self.contradicts,
            "confirms": self.confirms,
            "message": self.describe(),
        }


def _pct(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f} %"


def check_stamping(
    *,
    source: str,
    stamps: np.ndarray,
    implied: np.ndarray,
    close_times: np.ndarray,
    closes: np.ndarray,
    stamping: str = "auto",
) -> StampCheck:
    """Check rows stamped `stamps` with implied prices `implied` (NaN where unknown) against the
    closes known at `close_times` (ascending ms, the end time of each kline)."""
    stamps = np.asarray(stamps, dtype=np.int64)
    implied = np.asarray(implied, dtype=np.float64)
    at_end = _close_at(stamps, close_times, closes)
    at_start = _close_at(stamps + SNAPSHOT_PERIOD_MS, close_times, closes)
    dev_end = np.abs(implied / at_end - 1)
    dev_start = np.abs(implied / at_start - 1)
    rule_is_start = snapshot_times(stamps, stamping) != stamps
    dev_rule = np.where(rule_is_start, dev_start, dev_end)
    dev_other = np.where(rule_is_start, dev_end, dev_start)
    ok = np.isfinite(dev_rule) & np.isfinite(dev_other)
    checked = int(ok.sum())
    return StampCheck(
        source=source,
        rows=len(stamps),
        checked=checked,
        applied=stamping_label(stamps, stamping),
        median_end=_median(dev_end[ok]),
        median_start=_median(dev_start[ok]),
        median_rule=_median(dev_rule[ok]),
        median_other=_median(dev_other[ok]),
        share_other=float((dev_other[ok] < dev_rule[ok]).mean()) if checked else None,
    )


def _close_at(times: np.ndarray, close_times: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """The close of the kline ending exactly at each time, NaN where none does."""
    close_times = np.asarray(close_times, dtype=np.int64)
    out = np.full(len(times), np.nan)
    if not len(close_times):
        return out
    at = np.searchsorted(close_times, times)
    inside = at < len(close_times)
    hit = np.zeros(len(times), dtype=bool)
    hit[inside] = close_times[at[inside]] == times[inside]
    out[hit] = np.asarray(closes, dtype=np.float64)[at[hit]]
    return out


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if len(values) else None
