"""Readers for Binance's public bulk files and the step builder (MODEL.md's alignment rule).

A file is read in one pass, in blocks of whole lines, and parsed column-wise with numpy (a year of
1-minute klines parses in about a second); a block that does not parse cleanly is read again row
by row, so every malformed row raises EngineError as 'file:line: reason'. Files may be plain or a
zip holding one file; a zip member is refused by its declared size, and any line by its length,
before memory grows.

Within a file and across the files of one run, rows equal in every column read here (Binance's
files repeat rows) are dropped and counted; two rows of the same time with different values are an
error naming both lines. Which step a metrics row closes is `alignment.py`'s business.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import IO, ClassVar, NamedTuple

import numpy as np

from .alignment import (
    StampCheck,
    check_stamping,
    check_stamping_name,
    snapshot_times,
    step_of_snapshot,
)
from .types import (
    TAKER_TOLERANCE,
    TIME_MAX_MS,
    TIME_MIN_MS,
    Bars,
    EngineError,
    Events,
    event_problem,
    iso_utc,
    num,
    time_problem,
)

MINUTE_MS = 60_000
MICROSECONDS_FROM = 10**14
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KLINE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "taker_buy_volume")
KLINE_POSITIONS = (0, 1, 2, 3, 4, 5, 9)
KLINE_CLOSE_TIME = ("close_time", 6)
METRIC_COLUMNS = (
    "create_time",
    "symbol",
    "sum_open_interest",
    "sum_open_interest_value",
    "count_long_short_ratio",
)
METRIC_POSITIONS = (0, 1, 2, 3, 6)
METRIC_EXTRA = (
    ("count_toptrader_long_short_ratio", 4),
    ("sum_toptrader_long_short_ratio", 5),
    ("sum_taker_long_short_vol_ratio", 7),
)
KLINE_INTERVALS_MS = (60_000, 180_000, 300_000, 900_000, 1_800_000, 3_600_000)
BULK_NAME = re.compile(r"([A-Z0-9]{2,})-(?:\d+[mhd]|metrics|forceOrder)-")
NAMED_INTERVAL = re.compile(r"-(\d+)([mh])-")
MAX_LINE_BYTES = 65_536
MAX_MEMBER_BYTES = 1 << 30
BLOCK_BYTES = 4 << 20
READ_BYTES = 65_536
MAX_JSON_DEPTH = 32


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
    top_account_ratio: float = math.nan
    top_position_ratio: float = math.nan
    taker_ratio: float = math.nan


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
    """The klines of one step, aggregated; minutes counts the klines seen (of `expected`)."""

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


# --- bytes and lines ---------------------------------------------------------------------------


@contextmanager
def _binary(path: str | os.PathLike) -> Iterator[tuple[str, IO[bytes] | _Member]]:
    """The name to use in messages and the file's bytes; a zip must hold exactly one file, of a
    declared size under MAX_MEMBER_BYTES, not encrypted, packed by a method Python reads."""
    path = os.fspath(path)
    if not path.lower().endswith(".zip"):
        with open(path, "rb") as raw:
            yield os.path.basename(path), raw
        return
    name = os.path.basename(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise EngineError(f"{name}: not a readable zip file") from None
    with archive:
        members = [m for m in archive.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise EngineError(f"{name}: a zip must hold exactly one file, found {len(members)}")
        info = archive.getinfo(members[0])
        _check_member(name, info)
        try:
            member = _Member(archive, info)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
            raise EngineError(f"{name}: cannot open {members[0]}: {exc}") from None
        with member.raw:
            yield members[0], member


class _Damaged(Exception):
    """Zip data that cannot be inflated; `good` is all the member's bytes before the damage."""

    def __init__(self, error: Exception, good: bytes) -> None:
        super().__init__(str(error))
        self.good = good


_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError)


class _Member:
    """A zip member read in large pieces. When its data turn out damaged it is inflated again in
    small pieces, to tell how far the good data reached (and so which line the damage spoils)."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        self.archive, self.info = archive, info
        self.raw = archive.open(info)

    def read1(self, size: int) -> bytes:
        try:
            return self.raw.read1(size)
        except _ZIP_ERRORS as exc:
            raise _Damaged(exc, self._good_bytes()) from None

    def _good_bytes(self) -> bytes:
        pieces = []
        with self.archive.open(self.info) as again:
            try:
                while piece := again.read1(4096):
                    pieces.append(piece)
            except _ZIP_ERRORS:
                pass
        return b"".join(pieces)


_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def _check_member(name: str, info: zipfile.ZipInfo) -> None:
    """Refuse a zip member Python cannot read (encrypted, unknown method) or that would expand
    past MAX_MEMBER_BYTES (zipfile never inflates a member past its declared size)."""
    if info.flag_bits & 0x1:
        raise EngineError(f"{name}: {info.filename} is encrypted")
    if info.compress_type not in _ZIP_METHODS:
        raise EngineError(
            f"{name}: {info.filename} uses compression method {info.compress_type}, "
            "which cannot be read (use a plain or deflated zip)"
        )
    if info.file_size > MAX_MEMBER_BYTES:
        raise EngineError(
            f"{name}: {info.filename} expands to {info.file_size:,} bytes, more than the "
            f"{MAX_MEMBER_BYTES:,} a bulk file may hold"
        )


def _blocks(name: str, raw: IO[bytes]) -> Iterator[tuple[int, list[str]]]:
    """(number of the first line, its lines) for consecutive blocks of whole lines, decoded. A
    line longer than MAX_LINE_BYTES, bytes that are not UTF-8 and damaged zip data raise
    EngineError naming the line; a UTF-8 byte-order mark and carriage returns are dropped."""
    carry, line_no = b"", 1
    while True:
        data = _read_block(name, raw, carry, line_no)
        if len(data) == len(carry):
            if carry:
                yield line_no, _decode(name, carry + b"\n", line_no)
            return
        cut = data.rfind(b"\n") + 1
        block, carry = data[:cut], data[cut:]
        if len(carry) > MAX_LINE_BYTES:
            at = line_no + block.count(b"\n")
            raise EngineError(f"{name}:{at}: line longer than {MAX_LINE_BYTES:,} bytes")
        if block:
            lines = _decode(name, block, line_no)
            yield line_no, lines
            line_no += len(lines)


def _read_block(name: str, raw, carry: bytes, line_no: int) -> bytes:
    """`carry` and up to BLOCK_BYTES more of the file; damaged zip data raise EngineError naming
    the first line they spoil."""
    pieces, size = [carry], 0
    while size < BLOCK_BYTES:
        try:
            piece = raw.read1(READ_BYTES)
        except _Damaged as damage:
            done = raw.raw.tell() if hasattr(raw.raw, "tell") else 0
            extra = damage.good[done:]
            at = line_no + sum(p.count(b"\n") for p in pieces) + extra.count(b"\n")
            raise EngineError(f"{name}:{at}: damaged zip data ({damage})") from None
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
    return b"".join(pieces)


def _decode(name: str, block: bytes, line_no: int) -> list[str]:
    """The lines of a block of whole lines (it ends with a newline)."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = line_no + block.count(b"\n", 0, exc.start)
        column = exc.start - (block.rfind(b"\n", 0, exc.start) + 1)
        raise EngineError(
            f"{name}:{line}: not UTF-8 text (byte 0x{block[exc.start]:02x} at column {column + 1})"
        ) from None
    if line_no == 1:
        text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    lines.pop()
    if "\r" in text:
        lines = [line.rstrip("\r") for line in lines]
    if max(map(len, lines)) > MAX_LINE_BYTES:
        at = next(i for i, line in enumerate(lines) if len(line) > MAX_LINE_BYTES)
        raise EngineError(f"{name}:{line_no + at}: line longer than {MAX_LINE_BYTES:,} bytes")
    return lines


@contextmanager
def open_text(path: str | os.PathLike) -> Iterator[tuple[str, Iterator[str]]]:
    """The file's name (for messages) and its lines as text, read block by block."""
    with _binary(path) as (name, raw):
        yield name, (line for _, lines in _blocks(name, raw) for line in lines)


def symbol_from_name(path: str | os.PathLike) -> str | None:
    """The symbol a Binance bulk file's name gives (BTCUSDT-1m-2024-01-01.zip), or None."""
    match = BULK_NAME.match(os.path.basename(os.fspath(path)))
    return match.group(1) if match else None


def detect_kind(path: str | os.PathLike) -> str:
    """'klines', 'metrics' or 'liquidations', from the file's first line or else its name."""
    first = _first_line(path).strip()
    if first.startswith(("{", "[")):
        return "liquidations"
    head = first.split(",")[0].strip().strip('"').lower()
    if head == "open_time":
        return "klines"
    if head == "create_time":
        return "metrics"
    if head.isdigit() and len(first.split(",")) >= 6:
        return "klines"
    lower = os.path.basename(os.fspath(path)).lower()
    for kind, marks in (
        ("metrics", ("metrics",)),
        ("klines", ("kline", "-1m-", "-5m-")),
        ("liquidations", ("force", "liquidation", ".jsonl", ".json")),
    ):
        if any(mark in lower for mark in marks):
            return kind
    raise EngineError(f"{os.path.basename(os.fspath(path))}: cannot tell what kind of file this is")


def _first_line(path: str | os.PathLike) -> str:
    """The first line of a file, read from its first bytes only."""
    with _binary(path) as (name, raw):
        head = b""
        while b"\n" not in head and len(head) < MAX_LINE_BYTES:
            try:
                piece = raw.read1(4096)
            except _Damaged as damage:
                if b"\n" not in damage.good:
                    raise EngineError(f"{name}:1: damaged zip data ({damage})") from None
                head = damage.good
                break
            if not piece:
                break
            head += piece
    cut = head.find(b"\n")
    if cut < 0 and len(head) >= MAX_LINE_BYTES:
        raise EngineError(f"{name}:1: line longer than {MAX_LINE_BYTES:,} bytes")
    return _decode(name, (head[:cut] if cut >= 0 else head) + b"\n", 1)[0]


def first_time(path: str | os.PathLike, kind: str) -> float:
    """The time of the first row of a klines, metrics or liquidations file (inf when empty),
    read from its first data line only."""
    with open_text(path) as (name, lines):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            if kind == "liquidations":
                payload = _json_line(line, name, number)
                items = payload if isinstance(payload, list) else [payload]
                try:
                    return _force_order(items[0], name, number).time if items else math.inf
                except RowError as exc:
                    raise EngineError(f"{name}:{number}: {exc}") from None
            head = line.split(",")[0].strip().strip('"').lower()
            if head in ("open_time", "create_time"):
                continue
            try:
                return _time_ms(head, "open_time" if kind == "klines" else "create_time")
            except RowError as exc:
                raise EngineError(f"{name}:{number}: {exc}") from None
    return math.inf


# --- CSV blocks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where a file's columns are: the required ones, and optional ones (None when absent)."""

    picks: tuple[int, ...]
    optional: tuple[int | None, ...]


def _layout(first: str, columns, positions, extra, where: str) -> tuple[_Layout, bool]:
    """The file's layout from its first row, and whether that row is a header."""
    head = [f.strip().strip('"').lower() for f in first.split(",")]
    if head[0] != columns[0]:
        return _Layout(tuple(positions), tuple(pos for _, pos in extra)), False
    missing = [c for c in columns if c not in head]
    if missing:
        raise EngineError(f"{where}: header lacks {', '.join(missing)}")
    optional = tuple(head.index(c) if c in head else None for c, _ in extra)
    return _Layout(tuple(head.index(c) for c in columns), optional), True


def _csv_blocks(path, columns, positions, extra) -> Iterator[tuple[str, _Layout, list, list]]:
    """(source, layout, line numbers, lines) for the data rows of a CSV file, block by block;
    blank lines are skipped, a header row is recognised and used."""
    with _binary(path) as (name, raw):
        layout = None
        for first, block in _blocks(name, raw):
            if all(block) and not any(map(str.isspace, block)):
                numbers, lines = list(range(first, first + len(block))), block
            else:
                kept = [(first + i, line) for i, line in enumerate(block) if line.strip()]
                numbers, lines = [n for n, _ in kept], [line for _, line in kept]
            if layout is None and lines:
                where = f"{name}:{numbers[0]}"
                layout, header = _layout(lines[0], columns, positions, extra, where)
                if header:
                    numbers, lines = numbers[1:], lines[1:]
            if lines:
                yield name, layout, numbers, lines


def _fields(line: str, layout: _Layout) -> tuple[list[str], list[str]]:
    """The required fields of a row (stripped), and its optional ones ('' when absent)."""
    parts = line.split(",")
    need = max(layout.picks) + 1
    if len(parts) < need:
        raise RowError(f"expected at least {need} fields, found {len(parts)}")
    optional = [
        parts[p].strip() if p is not None and p < len(parts) else "" for p in layout.optional
    ]
    return [parts[p].strip() for p in layout.picks], optional


def _slow_rows(name: str, numbers: list[int], lines: list[str], layout: _Layout, parse) -> list:
    """Parse a block row by row: the rows, or the exact 'file:line: reason' of its first bad one."""
    out = []
    for line_no, line in zip(numbers, lines, strict=True):
        try:
            out.append(parse(*_fields(line, layout)))
        except RowError as exc:
            raise EngineError(f"{name}:{line_no}: {exc}") from None
    return out


def _numeric_block(lines: list[str], positions: tuple[int, ...]) -> np.ndarray | None:
    """An all-numeric block's columns at `positions` (n x k float64), parsed by numpy's C
    reader; None when the rows differ in width, a field is not a number, or a value is not
    finite (the row-by-row reader then names the row)."""
    try:
        values = np.loadtxt(
            lines, delimiter=",", usecols=positions, comments=None, dtype=np.float64, ndmin=2
        )
    except ValueError:
        return None
    return values if np.isfinite(values).all() else None


def _column(texts: tuple[str, ...] | None, size: int) -> np.ndarray | None:
    """A column of fields as float64, NaN for empty or absent (None) fields; None when a given
    field is not a finite number."""
    if texts is None:
        return np.full(size, np.nan)
    given = None
    if "" in texts or any(map(str.isspace, texts)):
        given = np.array([bool(t.strip()) for t in texts])
        texts = [t if t.strip() else "nan" for t in texts]
    try:
        values = np.array(texts, dtype=np.float64)
    except ValueError:
        return None
    finite = np.isfinite(values)
    if not finite.all() and (given is None or (given & ~finite).any()):
        return None
    return values


def _times_ms(values: np.ndarray) -> np.ndarray | None:
    """Epoch ms from ms or µs numbers, None when any is not a whole, in-range time."""
    if not np.all(values == np.round(values)):
        return None
    micro = values >= MICROSECONDS_FROM
    if micro.any():
        if np.any(values[micro] % 1000):
            return None
        values = np.where(micro, values // 1000, values)
    times = values.astype(np.int64)
    if times.size and (times.min() < TIME_MIN_MS or times.max() >= TIME_MAX_MS):
        return None
    return times


def _time_ms(text: str, column: str) -> int:
    """Epoch time in ms from ms or µs digits, or from 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        value = int(text)
        if MICROSECONDS_FROM <= value < MICROSECONDS_FROM * 1000:
            if value % 1000:
                raise RowError(f"{column} {text} in µs is not a whole number of ms")
            value //= 1000
    else:
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise RowError(f"{column} {text!r} is not a time") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        value = (stamp - EPOCH) // timedelta(milliseconds=1)
    problem = time_problem(value)
    if problem:
        raise RowError(f"{column} {text}: {problem}")
    return value


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


# --- tables --------------------------------------------------------------------------------------


@dataclass
class _Table:
    """Rows of one or more files as columns; row i came from `sources[source[i]]`, line
    `line[i]`. Subclasses name their time column and the columns duplicates must agree on."""

    sources: list[str]
    source: np.ndarray
    line: np.ndarray
    duplicates: int

    TIME: ClassVar[str]
    WHAT: ClassVar[str]
    COMPARED: ClassVar[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.line)

    def where(self, i: int) -> str:
        """'file:line' of row i, how messages name a row."""
        return f"{self.sources[int(self.source[i])]}:{int(self.line[i])}"

    @property
    def times(self) -> np.ndarray:
        return getattr(self, self.TIME)

    def _array_names(self) -> list[str]:
        return [f.name for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)]

    def take(self, index: np.ndarray):
        """The rows at `index`, as a table of the same kind."""
        values = {name: getattr(self, name)[index] for name in self._array_names()}
        return replace(self, **values)

    def _compared(self) -> np.ndarray:
        return np.column_stack([getattr(self, name) for name in self.COMPARED])

    @classmethod
    def concat(cls, tables: list):
        """The tables' rows in time order, duplicates across them dropped (and counted)."""
        tables = [t for t in tables if t is not None and len(t)]
        if len(tables) <= 1:
            return tables[0] if tables else cls.empty()
        sources, shifted = [], []
        for table in tables:
            shifted.append(table.source + len(sources))
            sources.extend(table.sources)
        merged = {
            name: np.concatenate([getattr(t, name) for t in tables])
            for name in tables[0]._array_names()
        }
        merged["source"] = np.concatenate(shifted)
        duplicates = sum(t.duplicates for t in tables)
        table = replace(tables[0], sources=sources, duplicates=duplicates, **merged)
        return table.take(np.argsort(table.times, kind="stable")).deduplicated()

    def deduplicated(self):
        """Rows of equal time and equal values dropped (and counted); a same-time pair with
        different values, or a row earlier than the one before it, raises EngineError."""
        times = self.times
        if len(times) < 2 or bool(np.all(np.diff(times) > 0)):
            return self
        order = np.argsort(times, kind="stable")
        ordered = times[order]
        starts = np.r_[True, ordered[1:] != ordered[:-1]]
        group_first = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
        again = np.flatnonzero(~starts)
        later, first = order[again], order[group_first[again]]
        values = self._compared()
        a, b = values[later], values[first]
        same = ((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)
        if not same.all():
            k = int(np.flatnonzero(~same)[0])
            i, j = sorted((int(first[k]), int(later[k])))
            raise EngineError(
                f"{self.where(i)} and {self.where(j)}: two {self.WHAT}s at "
                f"{iso_utc(times[i])} with different values"
            )
        keep = np.ones(len(times), dtype=bool)
        keep[later] = False
        kept = replace(self.take(np.flatnonzero(keep)), duplicates=self.duplicates + len(later))
        back = np.flatnonzero(np.diff(kept.times) <= 0)
        if back.size:
            i = int(back[0]) + 1
            moment = iso_utc(kept.times[i])
            raise EngineError(f"{kept.where(i)}: {self.WHAT} out of order at {moment}")
        return kept


@dataclass
class KlineTable(_Table):
    """Klines of one or more files, by open time; `interval_ms` is what the data show."""

    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    taker_buy_volume: np.ndarray
    close_time: np.ndarray
    interval_ms: int = MINUTE_MS
    interval_source: str = "default"

    TIME = "open_time"
    WHAT = "kline"
    COMPARED = ("open", "high", "low", "close", "volume", "taker_buy_volume")

    @classmethod
    def empty(cls, sources: list[str] | None = None) -> KlineTable:
        floats = {name: np.zeros(0) for name in cls.COMPARED}
        ints = {name: np.zeros(0, dtype=np.int64) for name in ("line", "open_time", "close_time")}
        return cls(sources or [], np.zeros(0, dtype=np.int32), duplicates=0, **ints, **floats)

    def __iter__(self) -> Iterator[Kline]:
        for i in range(len(self)):
            yield Kline(
                int(self.open_time[i]),
                *(float(getattr(self, name)[i]) for name in self.COMPARED),
                self.sources[int(self.source[i])],
                int(self.line[i]),
            )

    @property
    def end_times(self) -> np.ndarray:
        """When each kline closes: its open time plus the interval."""
        return self.open_time + self.interval_ms

    @classmethod
    def concat(cls, tables: list) -> KlineTable:
        tables = [t for t in tables if t is not None and len(t)]
        if len({t.interval_ms for t in tables}) > 1:
            shown = ", ".join(f"{t.sources[0]} ({duration_text(t.interval_ms)})" for t in tables)
            raise EngineError(f"klines of different intervals cannot be mixed: {shown}")
        return super().concat(tables)


@dataclass
class MetricsTable(_Table):
    """Metrics rows of one or more files, by their stamp `time`."""

    time: np.ndarray
    symbol: np.ndarray
    open_interest: np.ndarray
    open_interest_value: np.ndarray
    long_short_ratio: np.ndarray
    top_account_ratio: np.ndarray
    top_position_ratio: np.ndarray
    taker_ratio: np.ndarray

    TIME = "time"
    WHAT = "metrics row"
    COMPARED = (
        "open_interest",
        "open_interest_value",
        "long_short_ratio",
        "top_account_ratio",
        "top_position_ratio",
        "taker_ratio",
    )

    @classmethod
    def empty(cls, sources: list[str] | None = None) -> MetricsTable:
        floats = {name: np.zeros(0) for name in cls.COMPARED}
        return cls(
            sources or [],
            np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=np.int64),
            0,
            time=np.zeros(0, dtype=np.int64),
            symbol=np.zeros(0, dtype=str),
            **floats,
        )

    def row(self, i: int) -> Metric:
        return Metric(
            int(self.time[i]),
            str(self.symbol[i]),
            float(self.open_interest[i]),
            float(self.open_interest_value[i]),
            float(self.long_short_ratio[i]),
            self.sources[int(self.source[i])],
            int(self.line[i]),
            float(self.top_account_ratio[i]),
            float(self.top_position_ratio[i]),
            float(self.taker_ratio[i]),
        )

    def __iter__(self) -> Iterator[Metric]:
        for i in range(len(self)):
            yield self.row(i)

    def _compared(self) -> np.ndarray:
        _, codes = np.unique(self.symbol, return_inverse=True)
        return np.column_stack([codes.astype(float), super()._compared()])

    @property
    def implied_price(self) -> np.ndarray:
        """sum_open_interest_value / sum_open_interest: the price the snapshot was taken at
        (NaN where either is missing or zero)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            price = self.open_interest_value / self.open_interest
        return np.where(np.isfinite(price) & (price > 0), price, np.nan)


def duration_text(ms: int) -> str:
    """5m, 1h, 90s: a duration as its largest whole unit."""
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# --- klines --------------------------------------------------------------------------------------


def read_klines(path: str | os.PathLike) -> KlineTable:
    """Binance USD-M klines (with or without header; open time in ms or µs) as a table whose
    rows iterate as Kline; the interval is read from the data (see `_interval`)."""
    extra = (KLINE_CLOSE_TIME,)
    parts = [
        _kline_block(name, layout, numbers, lines)
        for name, layout, numbers, lines in _csv_blocks(path, KLINE_COLUMNS, KLINE_POSITIONS, extra)
    ]
    name = _member_name(path)
    if not parts:
        return KlineTable.empty([name])
    columns = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    table = KlineTable(
        [name], np.zeros(len(columns["line"]), dtype=np.int32), duplicates=0, **columns
    ).deduplicated()
    interval, found_by = _interval(table, os.fspath(path))
    table = replace(table, interval_ms=interval, interval_source=found_by)
    off = np.flatnonzero(table.open_time % interval)
    if off.size:
        i = int(off[0])
        raise EngineError(
            f"{table.where(i)}: open_time {iso_utc(table.open_time[i])} is not on the "
            f"{duration_text(interval)} grid of this file's klines"
        )
    return table


def _member_name(path) -> str:
    with _binary(path) as (name, _):
        return name


def _kline_block(name: str, layout: _Layout, numbers: list[int], lines: list[str]) -> dict:
    """One block of klines as columns, checked; a bad row raises its 'file:line: reason'."""
    stamp_at = layout.optional[0]
    picks = layout.picks if stamp_at is None else (*layout.picks, stamp_at)
    values = _numeric_block(lines, picks)
    times = _times_ms(values[:, 0]) if values is not None else None
    close_time = np.full(len(lines), -1, dtype=np.int64)
    if times is None or _any_bad_kline(times, values):
        rows = np.array(_slow_rows(name, numbers, lines, layout, _kline_fields), dtype=np.float64)
        values, times = rows.reshape(len(lines), 7), rows[:, 0].astype(np.int64)
    elif stamp_at is not None:
        known = _times_ms(values[:, 7])
        if known is not None:
            close_time = known
    return {
        "line": np.asarray(numbers, dtype=np.int64),
        "open_time": times,
        **{name_: values[:, k] for k, name_ in enumerate(KLINE_COLUMNS[1:], start=1)},
        "close_time": close_time,
    }


def _any_bad_kline(times: np.ndarray, values: np.ndarray) -> bool:
    o, h, lo, c, v, tb = (values[:, k] for k in range(1, 7))
    return bool(
        np.any(
            (times % MINUTE_MS != 0)
            | (np.minimum(np.minimum(o, h), np.minimum(lo, c)) <= 0)
            | (h < lo)
            | (h < np.maximum(o, c))
            | (lo > np.minimum(o, c))
            | (v < 0)
            | (tb < 0)
            | (tb > v * (1 + TAKER_TOLERANCE))
        )
    )


def _kline_fields(fields_: list[str], optional: list[str]) -> tuple:
    open_time = _time_ms(fields_[0], "open_time")
    if open_time % MINUTE_MS:
        raise RowError(f"open_time {open_time} is not on a whole minute")
    o, h, lo, c, v, tb = (
        _number(text, col) for text, col in zip(fields_[1:], KLINE_COLUMNS[1:], strict=True)
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
    return open_time, o, h, lo, c, v, tb


def _interval(table: KlineTable, path: str) -> tuple[int, str]:
    """The klines' interval, read from the data: Binance's close_time (open time + interval -
    1 ms) when every row has it, else the smallest spacing of open times, else the file name,
    else 1 minute; and which of these told it."""
    spans = table.close_time - table.open_time + 1
    if len(table) and (table.close_time >= 0).all() and (spans == spans[0]).all() and spans[0] > 0:
        return int(spans[0]), "close_time"
    gaps = np.diff(table.open_time)
    if gaps.size:
        return int(gaps.min()), "open-time spacing"
    named = NAMED_INTERVAL.search(os.path.basename(path))
    if named:
        return int(named.group(1)) * (60_000 if named.group(2) == "m" else 3_600_000), "file name"
    return MINUTE_MS, "default"


def accepted_intervals(step_ms: int) -> list[int]:
    """Kline intervals a step of `step_ms` is built from: Binance's intervals that divide it."""
    return [i for i in KLINE_INTERVALS_MS if i <= step_ms and step_ms % i == 0]


def _check_interval(table: KlineTable, step_ms: int) -> None:
    if step_ms <= 0 or step_ms % MINUTE_MS:
        raise EngineError(f"the step must be a whole number of minutes, not {step_ms} ms")
    if len(table) and table.interval_ms not in accepted_intervals(step_ms):
        names = " or ".join(duration_text(i) for i in accepted_intervals(step_ms))
        raise EngineError(
            f"{table.sources[0]}: klines of a {duration_text(table.interval_ms)} interval (from "
            f"the {table.interval_source}); a {duration_text(step_ms)} step is built from {names} "
            "klines"
        )


def as_klines(klines) -> KlineTable:
    """A KlineTable from a table, a list of tables (merged), or Kline rows."""
    if isinstance(klines, KlineTable):
        return klines
    items = list(klines)
    if all(isinstance(item, KlineTable) for item in items):
        return KlineTable.concat(items)
    sources = sorted({row.source for row in items})
    index = {name: k for k, name in enumerate(sources)}
    columns = {
        name: np.array([getattr(row, name) for row in items], dtype=np.float64)
        for name in KlineTable.COMPARED
    }
    table = KlineTable(
        sources,
        np.array([index[row.source] for row in items], dtype=np.int32),
        np.array([row.line for row in items], dtype=np.int64),
        0,
        open_time=np.array([row.open_time for row in items], dtype=np.int64),
        close_time=np.full(len(items), -1, dtype=np.int64),
        **columns,
    ).deduplicated()
    interval, found_by = _interval(table, "")
    return replace(table, interval_ms=interval, interval_source=found_by)


def step_columns(klines, step_ms: int) -> dict:
    """Every step the klines touch, aggregated: open of the first, high and low over all, close
    of the last, volumes summed, and how many klines (`minutes`) of the `expected` were seen."""
    table = as_klines(klines)
    _check_interval(table, step_ms)
    expected = step_ms // table.interval_ms
    ts = table.open_time - table.open_time % step_ms
    if not len(ts):
        empty = np.zeros(0)
        columns = {name: empty for name in KLINE_COLUMNS[1:]}
        return {"ts": ts, **columns, "minutes": ts.copy(), "expected": expected}
    starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
    ends = np.r_[starts[1:], len(ts)] - 1
    return {
        "ts": ts[starts],
        "open": table.open[starts],
        "high": np.maximum.reduceat(table.high, starts),
        "low": np.minimum.reduceat(table.low, starts),
        "close": table.close[ends],
        "volume": _running_sums(table.volume, starts, ends),
        "taker_buy_volume": _running_sums(table.taker_buy_volume, starts, ends),
        "minutes": ends - starts + 1,
        "expected": expected,
    }


def _running_sums(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Each segment's sum added up left to right, as a plain loop over the klines adds it (numpy's
    reductions sum pairwise, which can differ in the last bit)."""
    sums = values[starts].copy()
    for offset in range(1, int((ends - starts).max(initial=0)) + 1):
        longer = np.flatnonzero(ends - starts >= offset)
        sums[longer] += values[starts[longer] + offset]
    return sums


def aggregate_klines(klines, step_ms: int) -> list[StepKlines]:
    """The steps the klines touch, aggregated (check .complete before use)."""
    c = step_columns(klines, step_ms)
    names = ("open", "high", "low", "close", "volume", "taker_buy_volume")
    return [
        StepKlines(
            int(c["ts"][i]),
            *(float(c[name][i]) for name in names),
            int(c["minutes"][i]),
            int(c["expected"]),
        )
        for i in range(len(c["ts"]))
    ]


# --- metrics -------------------------------------------------------------------------------------


def read_metrics(path: str | os.PathLike) -> MetricsTable:
    """Binance USD-M metrics (5-minute): stamp (UTC), open interest, the ratios; a table whose
    rows iterate as Metric."""
    parts = [
        _metric_block(name, layout, numbers, lines)
        for name, layout, numbers, lines in _csv_blocks(
            path, METRIC_COLUMNS, METRIC_POSITIONS, METRIC_EXTRA
        )
    ]
    name = _member_name(path)
    if not parts:
        return MetricsTable.empty([name])
    columns = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return MetricsTable(
        [name], np.zeros(len(columns["line"]), dtype=np.int32), duplicates=0, **columns
    ).deduplicated()


def _metric_block(name: str, layout: _Layout, numbers: list[int], lines: list[str]) -> dict:
    """One block of metrics rows as columns, checked; a bad row raises its 'file:line: reason'."""
    rows = [line.split(",") for line in lines]
    width = len(rows[0])
    uniform = all(len(r) == width for r in rows) and max(layout.picks) < width
    by_column = list(zip(*rows, strict=True)) if uniform else []
    columns = [
        _column(by_column[p] if p is not None and p < width else None, len(rows))
        for p in (*layout.picks[2:], *layout.optional)
    ]
    times = _parse_stamps(by_column[layout.picks[0]]) if uniform else None
    if times is None or any(c is None for c in columns) or _any_bad_metric(columns):
        parsed = _slow_rows(name, numbers, lines, layout, _metric_fields)
        times = np.array([row[0] for row in parsed], dtype=np.int64)
        columns = [np.array([row[k] for row in parsed]) for k in range(2, 8)]
    return {
        "line": np.asarray(numbers, dtype=np.int64),
        "time": times,
        "symbol": np.char.strip(np.array([r[layout.picks[1]] for r in rows])),
        **dict(zip(MetricsTable.COMPARED, columns, strict=True)),
    }


def _parse_stamps(texts: tuple[str, ...]) -> np.ndarray | None:
    """'YYYY-MM-DD HH:MM:SS' stamps (UTC) as epoch ms, None when any is written otherwise or is
    not a time in range (the row-by-row reader then names it)."""
    if any(len(t) != 19 or t[4] != "-" or t[10] != " " for t in texts):
        return None
    try:
        times = np.array(texts, dtype="datetime64[ms]").astype(np.int64)
    except ValueError:
        return None
    if times.min() < TIME_MIN_MS or times.max() >= TIME_MAX_MS:
        return None
    return times


def _any_bad_metric(columns: list[np.ndarray]) -> bool:
    oi, value, ratio, *extras = columns
    with np.errstate(invalid="ignore"):
        return bool(
            np.any(oi < 0)
            or np.any(value < 0)
            or np.any(ratio <= 0)
            or any(np.any(extra < 0) for extra in extras)
        )


def _metric_fields(fields_: list[str], optional: list[str]) -> tuple:
    time = _time_ms(fields_[0], "create_time")
    oi = _number(fields_[2], "sum_open_interest", optional=True)
    value = _number(fields_[3], "sum_open_interest_value", optional=True)
    ratio = _number(fields_[4], "count_long_short_ratio", optional=True)
    if oi < 0:
        raise RowError(f"sum_open_interest {num(oi)} is negative")
    if value < 0:
        raise RowError(f"sum_open_interest_value {num(value)} is negative")
    if ratio <= 0:
        raise RowError(f"count_long_short_ratio {num(ratio)} is not positive")
    extras = []
    for text, (column, _) in zip(optional, METRIC_EXTRA, strict=True):
        extras.append(_number(text, column, optional=True))
        if extras[-1] < 0:
            raise RowError(f"{column} {text} is negative")
    return time, fields_[1], oi, value, ratio, *extras


def as_metrics(metrics) -> MetricsTable:
    """A MetricsTable from a table or a list of tables (merged)."""
    if isinstance(metrics, MetricsTable):
        return metrics
    return MetricsTable.concat(list(metrics))


def metric_steps(metrics, step_ms: int, stamping: str = "auto") -> list[tuple[int, Metric]]:
    """(step open time, row) for each metrics row whose snapshot time falls on the step grid:
    the row closes [S - step, S), S from its stamp by `alignment.snapshot_times`."""
    table = as_metrics(metrics)
    steps = step_of_snapshot(snapshot_times(table.time, stamping), step_ms)
    return [(int(steps[i]), table.row(i)) for i in np.flatnonzero(steps >= 0)]


def stamp_checks(klines, metrics, stamping: str = "auto") -> list[StampCheck]:
    """The alignment check of each metrics file against the klines' closes."""
    kl = as_klines(klines)
    table = as_metrics(metrics)
    implied, close_times = table.implied_price, kl.end_times
    checks = []
    for k, source in enumerate(table.sources):
        rows = np.flatnonzero(table.source == k)
        if rows.size:
            checks.append(
                check_stamping(
                    source=source,
                    stamps=table.time[rows],
                    implied=implied[rows],
                    close_times=close_times,
                    closes=kl.close,
                    stamping=stamping,
                )
            )
    return checks


# --- bars ----------------------------------------------------------------------------------------


def build_bars(klines, metrics, step_ms: int, stamping: str = "auto") -> tuple[Bars, list[dict]]:
    """Bars from klines and metrics by MODEL.md's alignment, and the skipped steps ({ts, reason}):
    steps with missing klines, without a metrics row, or without (or with zero) open interest."""
    check_stamping_name(stamping)
    k = step_columns(klines, step_ms)
    table = as_metrics(metrics)
    m_steps = step_of_snapshot(snapshot_times(table.time, stamping), step_ms)
    on_grid = np.flatnonzero(m_steps >= 0)
    m_ts = m_steps[on_grid]
    both, k_at, m_at = np.intersect1d(k["ts"], m_ts, assume_unique=True, return_indices=True)
    skipped = [{"ts": int(t), "reason": "no klines"} for t in np.setdiff1d(m_ts, both)]
    for i in np.flatnonzero(~np.isin(k["ts"], both)):
        skipped.append({"ts": int(k["ts"][i]), "reason": _no_metrics(k, i, step_ms)})
    rows = on_grid[m_at]
    oi = table.open_interest[rows].copy()
    value = table.open_interest_value[rows]
    close = k["close"][k_at]
    from_value = np.isnan(oi) & ~np.isnan(value)
    oi[from_value] = value[from_value] / close[from_value]
    complete = k["minutes"][k_at] == k["expected"]
    usable = complete & ~np.isnan(oi) & (oi > 0)
    for j in np.flatnonzero(~usable):
        minutes = int(k["minutes"][k_at[j]])
        reason = _join_problem(minutes, int(k["expected"]), oi[j], table, rows[j])
        skipped.append({"ts": int(both[j]), "reason": reason})
    skipped.sort(key=lambda s: s["ts"])
    pick = k_at[usable]
    bars = Bars(
        ts=both[usable],
        open=k["open"][pick],
        high=k["high"][pick],
        low=k["low"][pick],
        close=k["close"][pick],
        volume=k["volume"][pick],
        taker_buy_volume=k["taker_buy_volume"][pick],
        open_interest=oi[usable],
        long_short_ratio=table.long_short_ratio[rows[usable]],
    )
    return bars, skipped


def _no_metrics(k: dict, i: int, step_ms: int) -> str:
    step = StepKlines(int(k["ts"][i]), 0, 0, 0, 0, 0, 0, int(k["minutes"][i]), int(k["expected"]))
    return no_metrics_reason(step, step_ms)


def _join_problem(minutes: int, expected: int, oi: float, table: MetricsTable, row: int) -> str:
    if minutes != expected:
        return f"klines incomplete ({minutes} of {expected} minutes)"
    if math.isnan(oi):
        return f"metrics row {table.where(row)} has no open interest"
    return f"metrics row {table.where(row)} has an open interest of 0 (taken as missing)"


def no_metrics_reason(k: StepKlines, step_ms: int) -> str:
    """Why a step whose metrics row never came is skipped."""
    reason = f"no metrics row for the snapshot at {iso_utc(k.ts + step_ms)}"
    if not k.complete:
        reason = f"klines incomplete ({k.minutes} of {k.expected} minutes), {reason}"
    return reason


def join_step(k: StepKlines, m: Metric) -> tuple[dict | None, str | None]:
    """One step's bar values from its klines and the metrics row that closes it, or why it is
    skipped: (values, None) or (None, reason). OI falls back to the row's USD value / close; an
    OI of 0 (an exchange glitch that would empty the book) counts as missing."""
    if not k.complete:
        return None, f"klines incomplete ({k.minutes} of {k.expected} minutes)"
    oi = m.open_interest
    if math.isnan(oi):
        if math.isnan(m.open_interest_value):
            return None, f"metrics row {m.source}:{m.line} has no open interest"
        oi = m.open_interest_value / k.close
    if oi <= 0:
        return None, f"metrics row {m.source}:{m.line} has an open interest of 0 (taken as missing)"
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


# --- liquidations --------------------------------------------------------------------------------


def read_force_orders(path: str | os.PathLike) -> Iterator[ForceOrder]:
    """Binance forceOrder JSON lines: the websocket payload, a combined-stream message
    (`{"stream": "...@forceOrder", "data": {...}}`) or the bare 'o' object, one per line.

    S = SELL means a long position was liquidated; notional = filled quantity z (else q) times
    the average price ap (else p); time = the trade time T. Impossible values (see
    `types.event_problem`) and JSON nested deeper than any payload are refused with the line."""
    with _binary(path) as (name, raw):
        for first, lines in _blocks(name, raw):
            for offset, text in enumerate(lines):
                if not text.strip():
                    continue
                line = first + offset
                payload = _json_line(text, name, line)
                for item in payload if isinstance(payload, list) else [payload]:
                    try:
                        yield _force_order(item, name, line)
                    except RowError as exc:
                        raise EngineError(f"{name}:{line}: {exc}") from None


def _json_line(text: str, name: str, line: int) -> object:
    if _depth(text) > MAX_JSON_DEPTH:
        raise EngineError(f"{name}:{line}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise EngineError(f"{name}:{line}: not JSON ({exc.args[0]})") from None
    except RecursionError:
        raise EngineError(f"{name}:{line}: JSON nested too deeply") from None


def _depth(text: str) -> int:
    """An upper bound of the nesting depth (brackets inside strings count too: a payload with
    such strings is no liquidation anyway)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _force_order(item: object, name: str, line: int) -> ForceOrder:
    if isinstance(item, dict) and isinstance(item.get("data"), dict) and "stream" in item:
        item = item["data"]
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
    problem = event_problem(time, price, quantity)
    if problem:
        raise RowError(problem)
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
