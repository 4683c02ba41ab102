"""Readers for Binance's public bulk files and the step builder (MODEL.md's alignment rule).

Readers are generators: a year of daily files streams through in flat memory. Every malformed
row raises EngineError as 'file:line: reason'. Files may be plain or a zip holding one file.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import zipfile
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import IO, NamedTuple

import numpy as np

from .types import TAKER_TOLERANCE, Bars, EngineError, Events, iso_utc, num

MINUTE_MS = 60_000
MICROSECONDS_FROM = 10**14
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KLINE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "taker_buy_volume")
KLINE_POSITIONS = (0, 1, 2, 3, 4, 5, 9)
METRIC_COLUMNS = (
    "create_time",
    "symbol",
    "sum_open_interest",
    "sum_open_interest_value",
    "count_long_short_ratio",
)
METRIC_POSITIONS = (0, 1, 2, 3, 6)
BULK_NAME = re.compile(r"([A-Z0-9]{2,})-(?:1m|metrics|forceOrder)-")


class Kline(NamedTuple):
    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    taker_buy_volume: float
    source: str
    line: int


class Metric(NamedTuple):
    time: int
    symbol: str
    open_interest: float
    open_interest_value: float
    long_short_ratio: float
    source: str
    line: int


class ForceOrder(NamedTuple):
    time: int
    symbol: str
    is_long: bool
    price: float
    quantity: float
    notional: float
    source: str
    line: int


class StepKlines(NamedTuple):
    """The 1-minute klines of one step, aggregated; minutes counts the klines seen."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    taker_buy_volume: float
    minutes: int
    expected: int

    @property
    def complete(self) -> bool:
        return self.minutes == self.expected


class RowError(Exception):
    """A reason why one row is bad; the reader adds file and line."""


@contextmanager
def open_text(path: str | os.PathLike) -> Iterator[tuple[str, Iterator[str]]]:
    """The file's name (for messages) and its lines as UTF-8 text; a zip must hold exactly one
    file. Bytes that are not UTF-8 and damaged zip data raise EngineError naming file and line."""
    path = os.fspath(path)
    name = os.path.basename(path)
    if not path.lower().endswith(".zip"):
        with open(path, "rb") as raw:
            yield name, _lines(name, raw)
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise EngineError(f"{name}: not a readable zip file") from None
    with archive:
        members = [m for m in archive.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise EngineError(f"{name}: a zip must hold exactly one file, found {len(members)}")
        _check_member(name, archive.getinfo(members[0]))
        try:
            raw = archive.open(members[0])
        except zipfile.BadZipFile as exc:
            raise EngineError(f"{name}: cannot open {members[0]}: {exc}") from None
        with raw:
            yield members[0], _lines(members[0], raw)


_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def _check_member(name: str, info: zipfile.ZipInfo) -> None:
    """Refuse a zip member Python cannot read: encrypted, or packed by an unknown method."""
    if info.flag_bits & 0x1:
        raise EngineError(f"{name}: {info.filename} is encrypted")
    if info.compress_type not in _ZIP_METHODS:
        raise EngineError(
            f"{name}: {info.filename} uses compression method {info.compress_type}, "
            "which cannot be read (use a plain or deflated zip)"
        )


def _lines(name: str, raw: IO[bytes]) -> Iterator[str]:
    """The decoded lines of a binary stream (a UTF-8 byte-order mark is dropped)."""
    line = 0
    try:
        for line, data in enumerate(raw, start=1):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = data[exc.start]
                raise EngineError(
                    f"{name}:{line}: not UTF-8 text (byte 0x{byte:02x} at column {exc.start + 1})"
                ) from None
            yield text.removeprefix("\ufeff") if line == 1 else text
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise EngineError(f"{name}:{line + 1}: damaged zip data ({exc})") from None


def symbol_from_name(path: str | os.PathLike) -> str | None:
    """The symbol a Binance bulk file's name gives (BTCUSDT-1m-2024-01-01.zip), or None."""
    match = BULK_NAME.match(os.path.basename(os.fspath(path)))
    return match.group(1) if match else None


def detect_kind(path: str | os.PathLike) -> str:
    """'klines', 'metrics' or 'liquidations', from the file's first line or else its name."""
    with open_text(path) as (_, lines):
        first = next(lines, "").strip()
    if first.startswith(("{", "[")):
        return "liquidations"
    head = first.split(",")[0].strip().lower()
    if head == "open_time":
        return "klines"
    if head == "create_time":
        return "metrics"
    if head.isdigit() and len(first.split(",")) >= 10:
        return "klines"
    lower = os.path.basename(os.fspath(path)).lower()
    for kind, marks in (
        ("metrics", ("metrics",)),
        ("klines", ("kline", "-1m-")),
        ("liquidations", ("force", "liquidation", ".jsonl", ".json")),
    ):
        if any(mark in lower for mark in marks):
            return kind
    raise EngineError(f"{os.path.basename(os.fspath(path))}: cannot tell what kind of file this is")


def _csv_rows(path, columns: tuple[str, ...], positions: tuple[int, ...]):
    """(source, line, fields picked in column order) for each data row of a CSV file."""
    with open_text(path) as (name, lines):
        reader = csv.reader(lines)
        picks = None
        try:
            for fields in reader:
                if not fields or not "".join(fields).strip():
                    continue
                if picks is None:
                    picks = _header_picks(fields, columns, f"{name}:{reader.line_num}")
                    if picks is not None:
                        continue
                    picks = positions
                if len(fields) <= max(picks):
                    raise EngineError(
                        f"{name}:{reader.line_num}: expected at least {max(picks) + 1} fields, "
                        f"found {len(fields)}"
                    )
                yield name, reader.line_num, [fields[p].strip() for p in picks]
        except csv.Error as exc:
            raise EngineError(f"{name}:{reader.line_num}: {exc}") from None


def _header_picks(fields: list[str], columns: tuple[str, ...], where: str) -> tuple | None:
    """The positions of `columns` when this first row is a header, None when it is data."""
    head = [f.strip().lower() for f in fields]
    if head[0] != columns[0]:
        return None
    missing = [c for c in columns if c not in head]
    if missing:
        raise EngineError(f"{where}: header lacks {', '.join(missing)}")
    return tuple(head.index(c) for c in columns)


def _csv_records(path, columns: tuple[str, ...], positions: tuple[int, ...], parse: Callable):
    """parse(fields, source, line) for each data row, a RowError becoming 'file:line: reason'."""
    for name, line, fields in _csv_rows(path, columns, positions):
        try:
            yield parse(fields, name, line)
        except RowError as exc:
            raise EngineError(f"{name}:{line}: {exc}") from None


def read_klines(path: str | os.PathLike) -> Iterator[Kline]:
    """Binance USD-M 1-minute klines (with or without header; open time in ms or µs)."""
    return _csv_records(path, KLINE_COLUMNS, KLINE_POSITIONS, _kline)


def _kline(fields: list[str], name: str, line: int) -> Kline:
    open_time = _time_ms(fields[0], "open_time")
    if open_time % MINUTE_MS:
        raise RowError(f"open_time {open_time} is not on a whole minute")
    o, h, lo, c, v, tb = (
        _number(text, col) for text, col in zip(fields[1:], KLINE_COLUMNS[1:], strict=True)
    )
    for value, col in ((o, "open"), (h, "high"), (lo, "low"), (c, "close")):
        if value <= 0:
            raise RowError(f"{col} {num(value)} is not positive")
    if h < lo:
        raise RowError(f"high {num(h)} is below low {num(lo)}")
    if h < max(o, c):
        raise RowError(f"high {num(h)} is below open/close {num(max(o, c))}")
    if lo > min(o, c):
        raise RowError(f"low {num(lo)} is above open/close {num(min(o, c))}")
    if v < 0 or tb < 0:
        raise RowError(f"volume {num(v)} / taker_buy_volume {num(tb)} is negative")
    if tb > v * (1 + TAKER_TOLERANCE):
        raise RowError(f"taker_buy_volume {num(tb)} exceeds volume {num(v)}")
    return Kline(open_time, o, h, lo, c, v, tb, name, line)


def _number(text: str, column: str, optional: bool = False) -> float:
    if optional and text == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise RowError(f"{column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RowError(f"{column} {text!r} is not a finite number")
    return value


def _time_ms(text: str, column: str) -> int:
    """Epoch time in ms from ms or µs digits, or from 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    text = text.strip()
    if text.isdigit():
        value = int(text)
        if value >= MICROSECONDS_FROM:
            if value % 1000:
                raise RowError(f"{column} {text} in µs is not a whole number of ms")
            value //= 1000
        return value
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise RowError(f"{column} {text!r} is not a time") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return (stamp - EPOCH) // timedelta(milliseconds=1)


def read_metrics(path: str | os.PathLike) -> Iterator[Metric]:
    """Binance USD-M metrics (5-minute): create_time (UTC), open interest, long/short ratio."""
    return _csv_records(path, METRIC_COLUMNS, METRIC_POSITIONS, _metric)


def _metric(fields: list[str], name: str, line: int) -> Metric:
    time = _time_ms(fields[0], "create_time")
    oi = _number(fields[2], "sum_open_interest", optional=True)
    value = _number(fields[3], "sum_open_interest_value", optional=True)
    ratio = _number(fields[4], "count_long_short_ratio", optional=True)
    if oi < 0:
        raise RowError(f"sum_open_interest {num(oi)} is negative")
    if value < 0:
        raise RowError(f"sum_open_interest_value {num(value)} is negative")
    if ratio <= 0:
        raise RowError(f"count_long_short_ratio {num(ratio)} is not positive")
    return Metric(time, fields[1], oi, value, ratio, name, line)


def read_force_orders(path: str | os.PathLike) -> Iterator[ForceOrder]:
    """Binance forceOrder JSON lines (the websocket payload, or its bare 'o' object per line).

    S = SELL means a long position was liquidated; notional = filled quantity z (else q) times
    the average price ap (else p); time = the trade time T."""
    with open_text(path) as (name, lines):
        for line, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                payload = json.loads(raw)
            except ValueError as exc:
                raise EngineError(f"{name}:{line}: not JSON ({exc.args[0]})") from None
            for item in payload if isinstance(payload, list) else [payload]:
                try:
                    yield _force_order(item, name, line)
                except RowError as exc:
                    raise EngineError(f"{name}:{line}: {exc}") from None


def _force_order(item: object, name: str, line: int) -> ForceOrder:
    if isinstance(item, dict) and isinstance(item.get("o"), dict):
        item = item["o"]
    if not isinstance(item, dict):
        raise RowError("expected a JSON object")
    for key in ("S", "T"):
        if key not in item:
            raise RowError(f"missing field {key!r}")
    side = str(item["S"]).upper()
    if side not in ("BUY", "SELL"):
        raise RowError(f"side {item['S']!r} is neither BUY nor SELL")
    time = _time_ms(str(item["T"]), "T")
    price = _first_positive(item, ("ap", "p"), "price")
    quantity = _first_positive(item, ("z", "q"), "quantity")
    return ForceOrder(
        time, str(item.get("s", "")), side == "SELL", price, quantity, price * quantity, name, line
    )


def _first_positive(item: dict, keys: tuple[str, str], what: str) -> float:
    for key in keys:
        if key in item and item[key] not in (None, ""):
            value = _number(str(item[key]), key)
            if value < 0:
                raise RowError(f"{key} {num(value)} is negative")
            if value > 0:
                return value
    raise RowError(f"no positive {what} in {' or '.join(keys)}")


def build_events(orders: Iterable[ForceOrder], symbol: str | None = None) -> tuple[Events, int]:
    """Events from force orders of one symbol (all when None), and how many were of others."""
    time, is_long, price, notional = [], [], [], []
    others = 0
    for order in orders:
        if symbol and order.symbol and order.symbol != symbol:
            others += 1
            continue
        time.append(order.time)
        is_long.append(order.is_long)
        price.append(order.price)
        notional.append(order.notional)
    events = Events(
        np.array(time, dtype=np.int64),
        np.array(is_long, dtype=bool),
        np.array(price, dtype=np.float64),
        np.array(notional, dtype=np.float64),
    )
    return events, others


def aggregate_klines(rows: Iterable[Kline], step_ms: int) -> Iterator[StepKlines]:
    """Every step touched by the (ascending) 1-minute klines, aggregated: open of the first,
    high and low over all, close of the last, volumes summed; check .complete before use."""
    if step_ms <= 0 or step_ms % MINUTE_MS:
        raise EngineError(f"the step must be a whole number of minutes, not {step_ms} ms")
    expected = step_ms // MINUTE_MS
    cur: list | None = None
    last_time = None
    for row in rows:
        if last_time is not None and row.open_time <= last_time:
            what = "duplicate kline" if row.open_time == last_time else "kline out of order"
            raise EngineError(f"{row.source}:{row.line}: {what} at {iso_utc(row.open_time)}")
        last_time = row.open_time
        ts = row.open_time - row.open_time % step_ms
        if cur is not None and cur[0] == ts:
            cur[2] = max(cur[2], row.high)
            cur[3] = min(cur[3], row.low)
            cur[4] = row.close
            cur[5] += row.volume
            cur[6] += row.taker_buy_volume
            cur[7] += 1
            continue
        if cur is not None:
            yield StepKlines(*cur)
        cur = [
            ts,
            row.open,
            row.high,
            row.low,
            row.close,
            row.volume,
            row.taker_buy_volume,
            1,
            expected,
        ]
    if cur is not None:
        yield StepKlines(*cur)


def metric_steps(rows: Iterable[Metric], step_ms: int) -> Iterator[tuple[int, Metric]]:
    """(step open time, row) for the metrics rows stamped on the step grid: a row stamped T
    closes the step [T - step, T). Rows off the grid are ignored; rows must ascend."""
    last_time = None
    for row in rows:
        if last_time is not None and row.time <= last_time:
            what = "duplicate metrics row" if row.time == last_time else "metrics row out of order"
            raise EngineError(f"{row.source}:{row.line}: {what} at {iso_utc(row.time)}")
        last_time = row.time
        if row.time % step_ms == 0:
            yield row.time - step_ms, row


def build_bars(
    klines_rows: Iterable[Kline], metrics_rows: Iterable[Metric], step_ms: int
) -> tuple[Bars, list[dict]]:
    """Bars from klines and metrics by MODEL.md's alignment, and the skipped steps
    ({ts, reason}): steps with missing klines, without a metrics row, or without open interest."""
    columns = {name: array("q" if name == "ts" else "d") for name in Bars.__dataclass_fields__}
    skipped: list[dict] = []
    steps = aggregate_klines(klines_rows, step_ms)
    metrics = metric_steps(metrics_rows, step_ms)
    k = next(steps, None)
    m = next(metrics, None)
    while k is not None or m is not None:
        if m is None or (k is not None and k.ts < m[0]):
            skipped.append({"ts": k.ts, "reason": no_metrics_reason(k, step_ms)})
            k = next(steps, None)
        elif k is None or m[0] < k.ts:
            skipped.append({"ts": m[0], "reason": "no klines"})
            m = next(metrics, None)
        else:
            reason = _join(columns, k, m[1])
            if reason:
                skipped.append({"ts": k.ts, "reason": reason})
            k, m = next(steps, None), next(metrics, None)
    return Bars(**{name: np.array(column) for name, column in columns.items()}), skipped


def no_metrics_reason(k: StepKlines, step_ms: int) -> str:
    """Why a step whose metrics row never came is skipped."""
    reason = f"no metrics row at {iso_utc(k.ts + step_ms)}"
    if not k.complete:
        reason = f"klines incomplete ({k.minutes} of {k.expected} minutes), {reason}"
    return reason


def join_step(k: StepKlines, m: Metric) -> tuple[dict | None, str | None]:
    """One step's bar values from its klines and the metrics row that closes it, or why it is
    skipped: (values, None) or (None, reason). OI falls back to the row's USD value / close."""
    if not k.complete:
        return None, f"klines incomplete ({k.minutes} of {k.expected} minutes)"
    oi = m.open_interest
    if math.isnan(oi):
        if math.isnan(m.open_interest_value):
            return None, f"metrics row {m.source}:{m.line} has no open interest"
        oi = m.open_interest_value / k.close
    values = {
        "ts": k.ts,
        "open": k.open,
        "high": k.high,
        "low": k.low,
        "close": k.close,
        "volume": k.volume,
        "taker_buy_volume": k.taker_buy_volume,
        "open_interest": oi,
        "long_short_ratio": m.long_short_ratio,
    }
    return values, None


def _join(columns: dict[str, array], k: StepKlines, m: Metric) -> str | None:
    """Append the step to the columns, or say why it is skipped."""
    values, reason = join_step(k, m)
    if values is not None:
        for name, value in values.items():
            columns[name].append(value)
    return reason
