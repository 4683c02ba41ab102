"""python -m maps.engine: Binance bulk files in, result.json out (see docs/model.md)."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from collections.abc import Callable, Iterator

import numpy as np
import orjson

from .alignment import STAMPINGS
from .calibration import events_per_step
from .core import run
from .inputs import (
    KlineTable,
    MetricsTable,
    build_bars,
    build_events,
    detect_kind,
    read_force_orders,
    read_klines,
    read_metrics,
    stamp_checks,
    symbol_from_name,
)
from .serialize import parse_duration, parse_tiers, result_to_json
from .types import LONG_SHARE_MODES, Bars, EngineError, Params, iso_utc

DEFAULT_TIERS_TEXT = "5:0.15,10:0.30,25:0.25,50:0.20,100:0.10"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m maps.engine",
        description="Run the liquidation model on Binance bulk files and write result.json.",
    )
    files = {"nargs": "+", "action": "extend", "metavar": "FILE"}
    parser.add_argument("--klines", required=True, help="1-minute klines CSV/zip files", **files)
    parser.add_argument("--metrics", required=True, help="5-minute metrics CSV/zip files", **files)
    parser.add_argument("--liquidations", default=[], help="forceOrder JSON-lines files", **files)
    parser.add_argument("--symbol", help="keep liquidations of this symbol (default: the metrics')")
    parser.add_argument("--step", default="5m", help="step length [5m]")
    parser.add_argument("--window", default="7d", help="lookback, or inf for all the data [7d]")
    parser.add_argument("--tiers", default=DEFAULT_TIERS_TEXT, help="leverage:weight,... ")
    parser.add_argument("--mmr", type=float, default=0.004, help="maintenance margin rate [0.004]")
    parser.add_argument("--long-share", default="taker", choices=LONG_SHARE_MODES)
    parser.add_argument("--holding", default="24h", help="mean holding time, or inf [24h]")
    parser.add_argument("--bin-bps", type=float, default=10.0, help="bin width in bps [10]")
    parser.add_argument("--max-columns", type=int, default=500, help="heatmap columns [500]")
    parser.add_argument(
        "--metrics-stamp",
        default="auto",
        choices=STAMPINGS,
        help="how metrics rows are stamped: auto (Binance's rule: the snapshot time before "
        "2024-03-04, the start of its 5-minute period from then on), start, or end [auto]",
    )
    parser.add_argument("--calibrate", action="store_true", help="fit weights to --liquidations")
    parser.add_argument("--out", required=True, help="result.json path, or - for stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a bad argument already reported in one line
        return int(exc.code or 0)
    if args.calibrate and not args.liquidations:
        print("error: --calibrate needs --liquidations", file=sys.stderr)
        return 2
    try:
        return _main(args)
    except EngineError as exc:
        message = str(exc)
    except OSError as exc:
        message = f"cannot use {exc.filename or 'a file'}: {exc.strerror or exc}"
    print(f"error: {message}", file=sys.stderr)
    return 1


def _main(args: argparse.Namespace) -> int:
    params = _params(args)
    symbol = _Symbol(args.symbol)
    inputs = _bars(args, params, symbol)
    bars = inputs.bars
    if args.window.strip().lower() == "inf":
        params = dataclasses.replace(
            params, window_ms=int(bars.ts[-1] - bars.ts[0]) + params.step_ms
        )
    events, others = None, 0
    if args.liquidations:
        events, others = build_events(_chain(args.liquidations, read_force_orders), symbol.value)
    result = run(bars, params, events if args.calibrate else None)
    result.report.update(inputs.report())
    result.report["symbol"] = symbol.value
    result.report["events_other_symbols"] = others
    if result.calibration is not None and not len(events):
        result.calibration["reason"] = (
            f"no liquidation event of {symbol.value or 'this symbol'} in the files "
            f"({others} of other symbols): nothing to fit, the weights stay as configured"
        )
    doc = result_to_json(result, arrays=True)
    if events is not None and not args.calibrate:
        ts = np.concatenate([[result.report["window_start"]], result.liq_times])
        real_long, real_short, _ = events_per_step(events, ts, params.step_ms)
        doc["liquidated"]["real_long"] = real_long
        doc["liquidated"]["real_short"] = real_short
    _write(doc, args.out)
    print(_summary(result, args.out), file=sys.stderr)
    return 0


@dataclasses.dataclass
class _Inputs:
    """The bars of a run and what reading the files found on the way."""

    bars: Bars
    skipped: list[dict]
    klines: KlineTable
    metrics: MetricsTable
    checks: list

    def report(self) -> dict:
        return {
            "skipped": [dict(s, time=iso_utc(s["ts"])) for s in self.skipped],
            "duplicates_dropped": {
                "klines": self.klines.duplicates,
                "metrics": self.metrics.duplicates,
            },
            "metrics_checks": [check.as_dict() for check in self.checks],
        }


def _bars(args: argparse.Namespace, params: Params, symbol: _Symbol) -> _Inputs:
    """The bars of the klines and metrics files, after checking that every file is of the kind
    its flag says and of one symbol, and each metrics file against the klines' prices."""
    for paths, kind in (
        (args.klines, "klines"),
        (args.metrics, "metrics"),
        (args.liquidations, "liquidations"),
    ):
        for path in paths:
            _check_kind(path, kind)
            if kind != "liquidations":
                symbol.check(symbol_from_name(path), path)
    klines = KlineTable.concat([read_klines(path) for path in args.klines])
    metrics = MetricsTable.concat([symbol.rows(read_metrics(path)) for path in args.metrics])
    bars, skipped = build_bars(klines, metrics, params.step_ms, args.metrics_stamp)
    if len(bars) < 2:
        raise EngineError(_too_few(len(bars), skipped))
    checks = stamp_checks(klines, metrics, args.metrics_stamp)
    return _Inputs(bars, skipped, klines, metrics, checks)


class _Symbol:
    """The one symbol a run is about: --symbol, else the first file name or metrics row that
    names one. Klines and metrics of another symbol are an error (their prices and open interest
    would not belong together); liquidations of others are counted and left out."""

    def __init__(self, given: str | None) -> None:
        self.value = given.strip().upper() if given else None
        self.source = "--symbol"

    def check(self, symbol: str | None, where: str) -> None:
        if not symbol:
            return
        if self.value is None:
            self.value, self.source = symbol, where
        elif symbol != self.value:
            raise EngineError(f"{where}: symbol {symbol} differs from {self.value} ({self.source})")

    def rows(self, table: MetricsTable) -> MetricsTable:
        """The table, once every row named a symbol is checked to be this run's."""
        named = np.flatnonzero(table.symbol != "")
        if named.size:
            self.check(str(table.symbol[named[0]]), table.where(int(named[0])))
            other = named[table.symbol[named] != self.value]
            if other.size:
                self.check(str(table.symbol[other[0]]), table.where(int(other[0])))
        return table


def _params(args: argparse.Namespace) -> Params:
    step = parse_duration(args.step)
    if step is None:
        raise EngineError("--step cannot be inf")
    window = parse_duration(args.window)
    return Params(
        tiers=parse_tiers(args.tiers),
        mmr=args.mmr,
        long_share=args.long_share,
        holding_ms=parse_duration(args.holding),
        bin_bps=args.bin_bps,
        window_ms=window if window is not None else step,
        max_columns=args.max_columns,
        step_ms=step,
    )


def _check_kind(path: str, expected: str) -> None:
    try:
        kind = detect_kind(path)
    except EngineError:
        return
    if kind != expected:
        raise EngineError(f"{path} looks like a {kind} file, not {expected}")


def _chain(paths: list[str], reader: Callable) -> Iterator:
    return itertools.chain.from_iterable(reader(path) for path in paths)


def _too_few(count: int, skipped: list[dict]) -> str:
    message = f"fewer than 2 complete steps ({count} built, {len(skipped)} skipped)"
    if skipped:
        first = skipped[0]
        message += f"; first skipped {iso_utc(first['ts'])}: {first['reason']}"
    return message


def _write(doc: dict, out: str) -> None:
    """result.json through orjson, which writes the numpy arrays directly."""
    data = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if out == "-":
        sys.stdout.buffer.write(data + b"\n")
        sys.stdout.flush()
        return
    with open(out, "wb") as handle:
        handle.write(data)


def _summary(result, out: str) -> str:
    """What the run did, in a few lines for standard error: the alignment check of every
    metrics file comes first when the data contradict the stamping applied."""
    report = result.report
    dropped = report["duplicates_dropped"]
    lines = [
        f"{out}: {report['steps']} steps to {iso_utc(result.as_of)}, {report['bins']} bins, "
        f"{report['columns']} columns, {len(report['skipped'])} steps skipped, "
        f"{len(report['gaps'])} gaps, duplicate rows dropped: {dropped['klines']} klines, "
        f"{dropped['metrics']} metrics"
    ]
    checks = report["metrics_checks"]
    warnings = [c["message"] for c in checks if c["contradicts"]]
    lines += [f"warning: {message}" for message in warnings]
    if checks and not warnings:
        lines.append(_checks_line(checks))
    calibration = result.calibration
    if calibration is not None and calibration.get("reason"):
        lines.append(f"calibration: scale null: {calibration['reason']}")
    return "\n".join(lines)


def _checks_line(checks: list[dict]) -> str:
    """One line for metrics files none of which contradicts its stamping."""
    confirmed = [c for c in checks if c["confirms"]]
    if len(confirmed) < len(checks):
        other = next(c for c in checks if not c["confirms"])
        return f"metrics stamping: {other['message']}"
    rows = sum(c["checked"] for c in confirmed)
    worst = max(confirmed, key=lambda c: c["median_rule"])
    return (
        f"metrics stamping confirmed on {rows} rows of {len(confirmed)} file(s) "
        f"(worst median deviation from the close at the snapshot {100 * worst['median_rule']:.3f} "
        f"%, the other reading {100 * worst['median_other']:.3f} %)"
    )
