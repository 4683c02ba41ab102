"""Import Binance's public bulk files (data.binance.vision) into one market's bars and events.

The engine's readers parse the files (`maps.engine.inputs`); this module streams their rows into
the database. Files are taken in the order of their first row's time, each in its own transaction:
a bad row stops the import at that file, and nothing of that file is stored. A bar needs the
klines of its step and the metrics row that closes it, which usually come from two files; the half
that arrives first waits in memory until its partner arrives, and is reported as skipped when no
partner can come any more (files are taken in time order: the wait is short, memory stays flat).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from django.db import transaction

from maps.engine.alignment import StampCheck, check_stamping, snapshot_times
from maps.engine.inputs import (
    ForceOrder,
    KlineTable,
    Metric,
    MetricsTable,
    StepKlines,
    aggregate_klines,
    detect_kind,
    first_time,
    join_step,
    metric_steps,
    no_metrics_reason,
    read_force_orders,
    read_klines,
    read_metrics,
    symbol_from_name,
)
from maps.engine.types import EngineError
from maps.metrics_rows import ROW_FIELDS, market_metrics_check_store, metrics_rows_upsert
from maps.models import (
    BAR_VALUE_FIELDS,
    Bar,
    Exchange,
    LiquidationEvent,
    Market,
    ms_to_datetime,
)
from maps.services import exchange_demo_refresh

BATCH_SIZE = 2000
SOURCE = "binance-vision"
FILE_SUFFIXES = (".csv", ".zip", ".json", ".jsonl", ".ndjson")
QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "USD")
EXCHANGES = {
    "binance": ("Binance", "binanceusdm"),
    "bybit": ("Bybit", "bybit"),
    "okx": ("OKX", "okx"),
}
KIND_ORDER = {"klines": 0, "metrics": 1, "liquidations": 2}
BAR_UPDATE_FIELDS = list(BAR_VALUE_FIELDS)


class ImportFailed(Exception):
    """A file could not be imported; the message says which, where and why."""


@dataclass
class ImportSummary:
    files: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KIND_ORDER, 0))
    bars_written: int = 0
    first_bar: int | None = None
    last_bar: int | None = None
    events_read: int = 0
    events_new: int = 0
    events_other_symbols: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=lambda: {"klines": 0, "metrics": 0})
    metrics_rows: int = 0
    checks: list[StampCheck] = field(default_factory=list)

    def note_bar(self, ts: int) -> None:
        self.bars_written += 1
        self.first_bar = ts if self.first_bar is None else min(self.first_bar, ts)
        self.last_bar = ts if self.last_bar is None else max(self.last_bar, ts)


def split_symbol(symbol: str) -> tuple[str, str]:
    """('BTC', 'USDT') from 'BTCUSDT'; a symbol without a known quote keeps it whole."""
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


def market_for_symbol(*, exchange_slug: str, symbol: str) -> tuple[Market, bool]:
    """The exchange's market for `symbol`, created (with its exchange) when missing. A market an
    import creates is not tracked: the admin decides whether it is followed live."""
    name, ccxt_id = EXCHANGES.get(exchange_slug, (exchange_slug.title(), exchange_slug))
    exchange, _ = Exchange.objects.get_or_create(
        slug=exchange_slug, defaults={"name": name, "ccxt_id": ccxt_id}
    )
    base, quote = split_symbol(symbol)
    ccxt_symbol = f"{base}/{quote}:{quote}" if quote else ""
    market, created = Market.objects.select_related("exchange").get_or_create(
        exchange=exchange,
        symbol=symbol,
        defaults={
            "slug": re.sub(r"[^a-z0-9]+", "", symbol.lower()),
            "base": base,
            "quote": quote,
            "ccxt_symbol": ccxt_symbol,
            "tracked": False,
        },
    )
    if created:
        exchange_demo_refresh(exchange=exchange)
    return market, created


def market_discard_if_empty(*, market: Market) -> bool:
    """Delete a market (and its exchange, if that is left empty) that holds no data at all: what
    an import that stored nothing leaves behind. Returns whether it was deleted."""
    if market.bars.exists() or market.events.exists() or market.metrics_rows.exists():
        return False
    exchange = market.exchange
    market.delete()
    if not exchange.markets.exists():
        exchange.delete()
    return True


def collect_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The files named, and those inside the folders named (recursively), each once."""
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                visible = not any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and visible and child.name.lower().endswith(FILE_SUFFIXES):
                    found.setdefault(child.resolve())
        elif path.is_file():
            found.setdefault(path.resolve())
        else:
            raise ImportFailed(f"{raw}: no such file or folder")
    return list(found)


def plan_files(files: Iterable[Path], *, symbol: str) -> list[tuple[Path, str, float]]:
    """(path, kind, first row's time) in time order, klines before metrics on ties.

    A file whose name gives another symbol than `symbol` (BTCUSDT-1m-2024-03-01.zip) is refused
    before anything is written. A file whose kind or first row cannot be read comes first (kind
    'unknown'), so a broken input fails the import before anything is written too.
    """
    keyed = []
    for path in files:
        named = symbol_from_name(path)
        if named and named != symbol:
            raise ImportFailed(f"{path}: the file is named for {named}, not {symbol}")
        try:
            kind = detect_kind(path)
            first = _first_time(path, kind)
        except (EngineError, OSError):
            kind, first = "unknown", -math.inf
        keyed.append((first, KIND_ORDER.get(kind, -1), str(path), kind))
    keyed.sort()
    return [(Path(path), kind, first) for first, _, path, kind in keyed]


def _first_time(path: Path, kind: str) -> float:
    return first_time(path, kind)


class MarketImport:
    """One import into one market: feed it the planned files in order, then call finish().

    `stamping` is how the metrics rows are stamped (MODEL.md v2.1; `auto` is Binance's date rule);
    each metrics file is checked against the closes of the klines imported before it."""

    def __init__(
        self, market: Market, *, batch_size: int = BATCH_SIZE, stamping: str = "auto"
    ) -> None:
        self.market = market
        self.step = market.step_ms
        self.batch_size = batch_size
        self.stamping = stamping
        self.klines: dict[int, StepKlines] = {}
        self.metrics: dict[int, Metric] = {}
        self.summary = ImportSummary()
        self._bars: dict[datetime, Bar] = {}
        self._skipped: list[tuple[int, str]] = []
        self._done: set[int] = set()
        self._closes: list[tuple[np.ndarray, np.ndarray]] = []

    def import_file(self, path: Path, kind: str, first: float) -> None:
        """Import one file in one transaction; a bad file stores nothing and raises ImportFailed."""
        try:
            if kind == "unknown":
                kind = detect_kind(path)
                first = _first_time(path, kind)
            if kind == "liquidations":
                self._import_events(path)
            else:
                self._expire(first - self.step)
                self._import_bars(path, kind)
        except EngineError as exc:
            raise ImportFailed(_located(str(exc), path)) from None
        except OSError as exc:
            raise ImportFailed(f"{path}: unreadable: {exc.strerror or exc}") from None
        self.summary.files[kind] += 1

    def finish(self) -> ImportSummary:
        """Report what never found its partner, record the market's last bar and keep the
        metrics files' stamping checks on the market (its admin page shows them)."""
        self._expire(math.inf)
        self.summary.skipped.sort()
        market_metrics_check_store(
            market=self.market, checks=self.summary.checks, stamping=self.stamping
        )
        last = self.market.bars.usable().order_by("-time").values_list("time", flat=True).first()
        if last != self.market.last_bar_at:
            self.market.last_bar_at = last
            self.market.save(update_fields=["last_bar_at"])
        return self.summary

    def _import_bars(self, path: Path, kind: str) -> None:
        """Write the bars this file completes; keep its unmatched halves only if it succeeds."""
        klines, metrics = dict(self.klines), dict(self.metrics)
        written: list[int] = []
        self._bars.clear()
        self._skipped.clear()
        with transaction.atomic():
            for ts, bar in self._joined(path, kind, klines, metrics):
                written.append(ts)
                self._queue_bar(bar)
            self._flush_bars()
        self.klines, self.metrics = klines, metrics
        self._done.update(written)
        for ts in written:
            self.summary.note_bar(ts)
        self.summary.skipped.extend(self._skipped)

    def _joined(
        self, path: Path, kind: str, klines: dict, metrics: dict
    ) -> Iterator[tuple[int, Bar]]:
        """The bars this file completes; its unmatched halves are left waiting in the dicts."""
        if kind == "klines":
            table = read_klines(path)
            self._note_klines(table)
            for step in aggregate_klines(table, self.step):
                if step.ts in self._done:
                    continue
                partner = metrics.pop(step.ts, None)
                if partner is None:
                    klines[step.ts] = step
                elif (bar := self._bar(step, partner)) is not None:
                    yield step.ts, bar
            return
        table = self._metrics_table(path)
        for ts, row in metric_steps(table, self.step, self.stamping):
            if ts in self._done:
                continue
            partner = klines.pop(ts, None)
            if partner is None:
                metrics[ts] = row
            elif (bar := self._bar(partner, row)) is not None:
                yield ts, bar

    def _note_klines(self, table: KlineTable) -> None:
        """Count the file's dropped duplicates and keep its closes at 5-minute boundaries (what
        the metrics files are checked against)."""
        self.summary.duplicates["klines"] += table.duplicates
        ends = table.end_times
        on_grid = ends % 300_000 == 0
        self._closes.append((ends[on_grid], table.close[on_grid]))

    def _metrics_table(self, path: Path) -> MetricsTable:
        """The file's rows, checked to be of this market's symbol and against the klines' closes,
        and kept as raw rows (inside the file's transaction)."""
        table = read_metrics(path)
        other = np.flatnonzero((table.symbol != "") & (table.symbol != self.market.symbol))
        if other.size:
            i = int(other[0])
            raise EngineError(
                f"{table.where(i)}: symbol {table.symbol[i]} is not {self.market.symbol}"
            )
        self.summary.duplicates["metrics"] += table.duplicates
        snapshots = snapshot_times(table.time, self.stamping)
        rows = [
            {
                "stamped_ms": int(table.time[i]),
                "snapshot_ms": int(snapshots[i]),
                **{name: float(getattr(table, name)[i]) for name in ROW_FIELDS},
            }
            for i in range(len(table))
        ]
        self.summary.metrics_rows += metrics_rows_upsert(
            market=self.market, rows=rows, source=SOURCE
        )
        if len(table):
            self.summary.checks.append(self._check(table))
        return table

    def _check(self, table: MetricsTable) -> StampCheck:
        ends = np.concatenate([e for e, _ in self._closes]) if self._closes else np.zeros(0, int)
        closes = np.concatenate([c for _, c in self._closes]) if self._closes else np.zeros(0)
        order = np.argsort(ends, kind="stable")
        return check_stamping(
            source=table.sources[0],
            stamps=table.time,
            implied=table.implied_price,
            close_times=ends[order],
            closes=closes[order],
            stamping=self.stamping,
        )

    def _bar(self, step: StepKlines, row: Metric) -> Bar | None:
        """The step's bar, or None (and the step reported skipped) when it cannot be built."""
        values, reason = join_step(step, row)
        if values is None:
            self._skipped.append((step.ts, reason))
            return None
        ratio = values.pop("long_short_ratio")
        return Bar(
            market=self.market,
            time=ms_to_datetime(values.pop("ts")),
            long_short_ratio=None if math.isnan(ratio) else ratio,
            **values,
        )

    def _queue_bar(self, bar: Bar) -> None:
        self._bars[bar.time] = bar
        if len(self._bars) >= self.batch_size:
            self._flush_bars()

    def _flush_bars(self) -> None:
        """Upsert the queued bars: a stored bar takes the new values (the same on a re-import)."""
        if self._bars:
            Bar.objects.bulk_create(
                list(self._bars.values()),
                update_conflicts=True,
                unique_fields=["market", "time"],
                update_fields=BAR_UPDATE_FIELDS,
            )
            self._bars.clear()

    def _import_events(self, path: Path) -> None:
        batch: list[LiquidationEvent] = []
        read = others = new = 0
        with transaction.atomic():
            for order in read_force_orders(path):
                if order.symbol and order.symbol != self.market.symbol:
                    others += 1
                    continue
                read += 1
                batch.append(self._event(order))
                if len(batch) >= self.batch_size:
                    new += self._write_events(batch)
                    batch = []
            new += self._write_events(batch)
        self.summary.events_read += read
        self.summary.events_new += new
        self.summary.events_other_symbols += others

    def _event(self, order: ForceOrder) -> LiquidationEvent:
        return LiquidationEvent(
            market=self.market,
            time=ms_to_datetime(order.time),
            side="long" if order.is_long else "short",
            price=order.price,
            quantity=order.quantity,
            notional_usd=order.notional,
            source=SOURCE,
        )

    def _write_events(self, batch: list[LiquidationEvent]) -> int:
        """Insert the events not stored yet (duplicates are ignored); return how many were new."""
        if not batch:
            return 0
        stored = self.market.events.filter(
            time__gte=min(e.time for e in batch), time__lte=max(e.time for e in batch)
        )
        before = stored.count()
        LiquidationEvent.objects.bulk_create(batch, ignore_conflicts=True)
        return stored.count() - before

    def _expire(self, before: float) -> None:
        """Report the halves older than `before`: no file still to come can hold their partner;
        closes kept for the checks older than a day before it are let go."""
        self._closes = [
            (ends[ends >= before - 86_400_000], closes[ends >= before - 86_400_000])
            for ends, closes in self._closes
        ]
        for ts in [ts for ts in self.klines if ts < before]:
            reason = no_metrics_reason(self.klines.pop(ts), self.step)
            self.summary.skipped.append((ts, reason))
        for ts in [ts for ts in self.metrics if ts < before]:
            self.metrics.pop(ts)
            self.summary.skipped.append((ts, "no klines"))


def _located(message: str, path: Path) -> str:
    """The reader's 'file:line: reason', with the full path when the reader named a zip member."""
    if message.startswith(path.name) or str(path) in message:
        return message.replace(path.name, str(path), 1)
    return f"{message} (in {path})"
