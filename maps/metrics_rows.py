"""Raw 5-minute open-interest rows: stored as their source stamped them, joined to the bars by
MODEL.md v2.1's alignment (`maps.engine.alignment`), and re-aligned from storage.

Every import and ingest keeps the rows it read (`metrics_rows_upsert`), so a bar's open interest
can always be traced to, and rebuilt from, the row that closes its step. Re-alignment
(`market_open_interest_realign`) recomputes each row's snapshot time under the market's stamping
and gives every bar the open interest of the row whose snapshot closes it; a bar no row closes
keeps its prices and loses its open interest (the model leaves it out, like a skipped step), and
the alignment check of the rows against the bars' own closes is stored on the market.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from maps.engine.alignment import StampCheck, check_stamping, snapshot_times, step_of_snapshot
from maps.models import Bar, Market, MetricsRow, datetime_to_ms, ms_to_datetime

ROW_FIELDS = (
    "open_interest",
    "open_interest_value",
    "long_short_ratio",
    "top_account_ratio",
    "top_position_ratio",
    "taker_ratio",
)
CHECKS_KEPT = 20


def metrics_rows_upsert(*, market: Market, rows: list[dict], source: str) -> int:
    """Insert or update the market's raw rows ({stamped_ms, snapshot_ms, and ROW_FIELDS, NaN or
    None when unknown}) on (market, stamped_at); returns how many were written."""
    objects = [
        MetricsRow(
            market=market,
            stamped_at=ms_to_datetime(row["stamped_ms"]),
            snapshot_at=ms_to_datetime(row["snapshot_ms"]),
            source=source,
            **{name: _value(row.get(name)) for name in ROW_FIELDS},
        )
        for row in rows
    ]
    MetricsRow.objects.bulk_create(
        objects,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["market", "stamped_at"],
        update_fields=["snapshot_at", "source", *ROW_FIELDS],
    )
    return len(objects)


def _value(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def market_metrics_check_store(*, market: Market, checks: list[StampCheck], stamping: str) -> None:
    """Keep the latest alignment checks on the market (what its admin page shows)."""
    if not checks:
        return
    replaced = {check.source for check in checks}
    previous = [c for c in market.metrics_check.get("files", []) if c["source"] not in replaced]
    files = (previous + [c.as_dict() for c in checks])[-CHECKS_KEPT:]
    market.metrics_check = {
        "checked_at": timezone.now().isoformat(timespec="seconds"),
        "stamping": stamping,
        "contradicted": sum(1 for c in files if c["contradicts"]),
        "files": files,
    }
    market.save(update_fields=["metrics_check"])


@dataclass
class RealignReport:
    market_id: int
    rows: int = 0
    bars: int = 0
    changed: int = 0
    without_oi: int = 0
    rows_without_bar: int = 0
    check: StampCheck | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.bars} bars from {self.rows} stored rows: {self.changed} changed, "
            f"{self.without_oi} left without open interest (no row closes their step), "
            f"{self.rows_without_bar} rows waiting for their step's klines"
        )
        if self.check is not None:
            text += f"; {self.check.describe()}"
        return text


def market_open_interest_realign(*, market: Market, stamping: str | None = None) -> RealignReport:
    """Give every bar of the market the open interest and ratio of the stored row whose snapshot
    closes its step, under `stamping` (the market's own by default); nothing is deleted."""
    stamping = stamping or market.metrics_stamp
    report = RealignReport(market_id=market.pk)
    rows = list(
        MetricsRow.objects.filter(market=market)
        .order_by("stamped_at")
        .values_list("pk", "stamped_at", "snapshot_at", *ROW_FIELDS)
    )
    bars = list(
        Bar.objects.filter(market=market)
        .order_by("time")
        .values_list("pk", "time", "close", "open_interest", "long_short_ratio")
    )
    report.rows, report.bars = len(rows), len(bars)
    stamps = np.array([datetime_to_ms(r[1]) for r in rows], dtype=np.int64)
    snapshots = snapshot_times(stamps, stamping)
    row_steps = step_of_snapshot(snapshots, market.step_ms)
    bar_times = np.array([datetime_to_ms(b[1]) for b in bars], dtype=np.int64)
    at = {int(t): i for i, t in enumerate(row_steps) if t >= 0}
    bar_updates, row_updates = _bar_updates(bars, bar_times, rows, at, report), []
    for i, row in enumerate(rows):
        if datetime_to_ms(row[2]) != int(snapshots[i]):
            row_updates.append((ms_to_datetime(int(snapshots[i])), row[0]))
    report.rows_without_bar = len(set(at) - set(bar_times.tolist()))
    report.check = _check(rows, stamps, bars, bar_times, market.step_ms, stamping)
    with transaction.atomic():
        _execute_many(Bar, "open_interest = %s, long_short_ratio = %s", bar_updates)
        _execute_many(MetricsRow, "snapshot_at = %s", row_updates)
        market.oi_realign_pending = False
        market.save(update_fields=["oi_realign_pending"])
        if report.check is not None:
            market_metrics_check_store(market=market, checks=[report.check], stamping=stamping)
    return report


def _bar_updates(bars, bar_times, rows, at: dict[int, int], report: RealignReport) -> list:
    """(open interest, ratio, bar id) for every bar whose values change."""
    updates = []
    for bar, ts in zip(bars, bar_times.tolist(), strict=True):
        pk, _, close, old_oi, old_ratio = bar
        index = at.get(ts)
        oi = ratio = None
        if index is not None:
            row = rows[index]
            oi, value, ratio = row[3], row[4], row[5]
            if oi is None and value is not None and close:
                oi = value / close
            if oi is not None and oi <= 0:
                oi = None
        if oi is None:
            report.without_oi += 1
        if (oi, ratio) != (old_oi, old_ratio):
            updates.append((oi, ratio, pk))
    report.changed = len(updates)
    return updates


def _check(rows, stamps, bars, bar_times, step_ms: int, stamping: str) -> StampCheck | None:
    """The stored rows against the bars' closes (closes at step ends; rows need a USD value)."""
    implied = np.array([r[4] / r[3] if r[3] and r[4] else np.nan for r in rows], dtype=np.float64)
    if not np.isfinite(implied).any():
        return None
    closes = np.array([b[2] for b in bars], dtype=np.float64)
    return check_stamping(
        source="stored rows",
        stamps=stamps,
        implied=implied,
        close_times=bar_times + step_ms,
        closes=closes,
        stamping=stamping,
    )


def _execute_many(model, assignments: str, params: list[tuple]) -> None:
    """UPDATE model SET <assignments> WHERE id = %s, once per parameter tuple (pipelined)."""
    if not params:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {assignments} WHERE id = %s", params)
