"""python -m maps.engine: Binance bulk files in, result.json out (see docs/model.md)."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from collections.abc import Callable, Iterator

import numpy as np

from .calibration import events_per_step
from .core import run
from .inputs import (
    build_bars,
    build_events,
    detect_kind,
    read_force_orders,
    read_klines,
    read_metrics,
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
    bars, skipped = _bars(args, params, symbol)
    if args.window.strip().lower() == "inf":
        params = dataclasses.replace(
            params, window_ms=int(bars.ts[-1] - bars.ts[0]) + params.step_ms
        )
    events, others = None, 0
    if args.liquidations:
        events, others = build_events(_chain(args.liquidations, read_force_orders), symbol.value)
    result = run(bars, params, events if args.calibrate else None)
    result.report["skipped"] = [dict(s, time=iso_utc(s["ts"])) for s in skipped]
    result.report["symbol"] = symbol.value
    result.report["events_other_symbols"] = others
    doc = result_to_json(result)
    if events is not None and not args.calibrate:
        ts = np.concatenate([[result.report["window_start"]], result.liq_times])
        real_long, real_short, _ = events_per_step(events, ts, params.step_ms)
        doc["liquidated"]["real_long"] = real_long.tolist()
        doc["liquidated"]["real_short"] = real_short.tolist()
    _write(doc, args.out)
    print(_summary(result, args.out), file=sys.stderr)
    return 0


def _bars(args: argparse.Namespace, params: Params, symbol: _Symbol) -> tuple[Bars, list[dict]]:
    """The bars of the klines and metrics files (and the steps skipped), after checking that
    every file is of the kind its flag says and of one symbol."""
    for paths, kind in (
        (args.klines, "klines"),
        (args.metrics, "metrics"),
        (args.liquidations, "liquidations"),
    ):
        for path in paths:
            _check_kind(path, kind)
            if kind != "liquidations":
                symbol.check(symbol_from_name(path), path)
    klines = _chain(_ordered(args.klines, read_klines, lambda r: r.open_time), read_klines)
    metrics = _chain(_ordered(args.metrics, read_metrics, lambda r: r.time), read_metrics)
    bars, skipped = build_bars(klines, symbol.rows(metrics), params.step_ms)
    if len(bars) < 2:
        raise EngineError(_too_few(len(bars), skipped))
    return bars, skipped


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

    def rows(self, metrics: Iterator) -> Iterator:
        for row in metrics:
            self.check(row.symbol, f"{row.source}:{row.line}")
            yield row


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


def _ordered(paths: list[str], reader: Callable, key: Callable) -> list[str]:
    """The files in the order of their first row's time (empty files last)."""
    firsts = []
    for path in paths:
        rows = reader(path)
        first = next(rows, None)
        rows.close()
        firsts.append(key(first) if first is not None else float("inf"))
    return [path for _, path in sorted(zip(firsts, paths, strict=True), key=lambda p: p[0])]


def _chain(paths: list[str], reader: Callable) -> Iterator:
    return itertools.chain.from_iterable(reader(path) for path in paths)


def _too_few(count: int, skipped: list[dict]) -> str:
    message = f"fewer than 2 complete steps ({count} built, {len(skipped)} skipped)"
    if skipped:
        first = skipped[0]
        message += f"; first skipped {iso_utc(first['ts'])}: {first['reason']}"
    return message


def _write(doc: dict, out: str) -> None:
    if out == "-":
        json.dump(doc, sys.stdout, allow_nan=False, separators=(",", ":"))
        sys.stdout.write("\n")
        return
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, allow_nan=False, separators=(",", ":"))


def _summary(result, out: str) -> str:
    report = result.report
    return (
        f"{out}: {report['steps']} steps to {iso_utc(result.as_of)}, {report['bins']} bins, "
        f"{report['columns']} columns, {len(report['skipped'])} steps skipped, "
        f"{len(report['gaps'])} gaps"
    )
