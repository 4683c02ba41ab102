"""The command line on a month and a year of Binance files: wall time, and where it goes.

    .venv/bin/python benchmarks/cli_bench.py [--days 30 365]

Writes Binance-style daily zips (benchmarks/binance_files.py) into a temporary folder, then runs
`python -m maps.engine` on them in a child process (window inf, so the whole span is modelled) and
prints its wall time and peak RSS, and a split of one in-process run into reading the files
(parsing and building the steps), the model, and writing result.json. Targets (issue 10): a year
of files in under 5 s, 30 days in under 0.5 s.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from benchmarks.binance_files import write_days  # noqa: E402

START = datetime(2024, 1, 1, tzinfo=UTC)


def cli_args(folder: Path, out: Path) -> list[str]:
    return [
        "--klines",
        *sorted(str(p) for p in folder.glob("*-1m-*.zip")),
        "--metrics",
        *sorted(str(p) for p in folder.glob("*-metrics-*.zip")),
        "--window",
        "inf",
        "--out",
        str(out),
    ]


def run_child(folder: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `python -m maps.engine` in a fresh process."""
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "maps.engine", *cli_args(folder, out)],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - began
    if result.returncode:
        raise SystemExit(f"the command line failed:\n{result.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak


def split(folder: Path, out: Path) -> dict[str, float]:
    """Seconds spent reading, modelling and writing, measured inside one process."""
    from maps.engine import cli

    timings: dict[str, float] = {}
    originals = {name: getattr(cli, name) for name in ("_bars", "run", "_write")}

    def timed(name):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - began

        return wrapper

    for name in originals:
        setattr(cli, name, timed(name))
    try:
        began = time.perf_counter()
        if cli.main(cli_args(folder, out)):
            raise SystemExit("the command line failed")
        timings["total"] = time.perf_counter() - began
    finally:
        for name, original in originals.items():
            setattr(cli, name, original)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, nargs="+", default=[30, 365])
    args = parser.parse_args()
    for days in args.days:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            klines, metrics = write_days(folder, start=START, days=days)
            size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
            out = folder / "result.json"
            seconds, peak = run_child(folder, out)
            parts = split(folder, out)
            result_mib = out.stat().st_size / 2**20
        other = parts["total"] - parts["_bars"] - parts["run"] - parts["_write"]
        print(
            f"{days} days ({klines:,} kline rows + {metrics:,} metrics rows, {2 * days} zips, "
            f"{size:.1f} MiB): python -m maps.engine {seconds:.2f} s wall, "
            f"peak RSS {peak:.0f} MiB; "
            f"in-process {parts['total']:.2f} s = read {parts['_bars']:.2f} s + model "
            f"{parts['run']:.2f} s ({100 * parts['run'] / parts['total']:.0f} %) + write "
            f"{parts['_write']:.2f} s ({result_mib:.1f} MiB) + other {other:.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
