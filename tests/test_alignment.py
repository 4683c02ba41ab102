"""MODEL.md v2.1's alignment: which step a metrics row closes, on a week that crosses the day
Binance changed its stamping, held to the plain reference reader, in the engine and the import."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from maps.engine import run
from maps.engine.alignment import (
    STAMP_CHANGE_MS,
    check_stamping,
    snapshot_time,
    snapshot_times,
    step_of_snapshot,
)
from maps.engine.cli import main as cli_main
from maps.engine.inputs import build_bars, read_klines, read_metrics, stamp_checks
from maps.engine.types import Bars, EngineError, Params
from maps.models import Market
from maps.selectors import market_bars_arrays
from tests import engine_reference as ref
from tests.test_engine_reference import Scenario, check_everything

STEP = 300_000
MINUTE = 60_000
START = datetime(2024, 3, 1, tzinfo=UTC)
DAYS = 7
KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)
METRICS_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,"
    "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
    "count_long_short_ratio,sum_taker_long_short_vol_ratio"
)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def write_zip(path: Path, lines: list[str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(path.with_suffix(".csv").name, "\n".join(lines) + "\n")
    return path


def week_of_files(folder: Path, *, doubled_day: int = 2, seed: int = 7) -> dict[str, list[Path]]:
    """A week of BTCUSDT 1-minute klines and 5-minute metrics from 2024-03-01, stamped as Binance
    stamps them: a row stamped T holds the snapshot taken at T before 2024-03-04, at T + 5 min
    from then on (so the implied price is the close at the snapshot). A few klines are missing;
    one day's metrics file holds every row twice, as Binance's 2020 files do."""
    rng = np.random.default_rng(seed)
    price, oi = 62_000.0, 80_000.0
    files: dict[str, list[Path]] = {"klines": [], "metrics": []}
    for day in range(DAYS):
        begin = START + timedelta(days=day)
        closes = price * np.exp(np.cumsum(rng.normal(0, 0.0008, 1440)))
        opens = np.concatenate([[price], closes[:-1]])
        lines = [KLINE_HEADER]
        for i in range(1440):
            if day == 5 and i in (100, 101):
                continue  # two minutes missing: their step is skipped
            t = ms(begin) + i * MINUTE
            o, c = round(float(opens[i]), 1), round(float(closes[i]), 1)
            h = round(max(o, c) * (1 + abs(rng.normal(0, 0.0004))), 1)
            lo = round(min(o, c) * (1 - abs(rng.normal(0, 0.0004))), 1)
            v = round(float(rng.uniform(50, 300)), 3)
            tb = round(v * float(rng.uniform(0.2, 0.8)), 3)
            lines.append(f"{t},{o},{h},{lo},{c},{v},{t + MINUTE - 1},{v * c:.2f},9,{tb},0,0")
        name = f"BTCUSDT-1m-{begin:%Y-%m-%d}"
        files["klines"].append(write_zip(folder / f"{name}.zip", lines))
        price = float(closes[-1])
        rows = []
        for k in range(288):
            stamp = begin + timedelta(minutes=5 * k)
            snapshot = stamp if ms(stamp) < STAMP_CHANGE_MS else stamp + timedelta(minutes=5)
            minute = int((snapshot - begin) / timedelta(minutes=1)) - 1
            close = float(closes[minute]) if 0 <= minute < 1440 else price
            oi *= float(np.exp(rng.normal(0.0002, 0.004)))
            ratio = 1.4 + 0.2 * float(rng.standard_normal())
            rows.append(
                f"{stamp:%Y-%m-%d %H:%M:%S},BTCUSDT,{oi:.4f},{oi * close:.4f},1.6,1.5,"
                f"{ratio:.5f},1.0"
            )
        if day == doubled_day:
            rows = rows + rows
        metrics = folder / f"BTCUSDT-metrics-{begin:%Y-%m-%d}.csv"
        metrics.write_text("\n".join([METRICS_HEADER, *rows]) + "\n")
        files["metrics"].append(metrics)
    return files


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> dict[str, list[Path]]:
    return week_of_files(tmp_path_factory.mktemp("week"))


def reference_bars(week) -> tuple[Bars, list[int]]:
    rows, skipped = ref.reference_bars_from_files(
        [str(p) for p in week["klines"]], [str(p) for p in week["metrics"]], STEP
    )
    columns = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    return Bars(**columns), skipped


# --- the rule --------------------------------------------------------------------------------


def test_it_reads_rows_stamped_before_2024_03_04_as_taken_at_their_stamp_and_later_ones_5_min_on():
    before, after = STAMP_CHANGE_MS - STEP, STAMP_CHANGE_MS
    assert snapshot_time(before) == before
    assert snapshot_time(after) == after + 300_000
    assert snapshot_times(np.array([before, after]), "start").tolist() == [
        before + 300_000,
        after + 300_000,
    ]
    assert snapshot_times(np.array([before, after]), "end").tolist() == [before, after]
    with pytest.raises(EngineError, match="auto, start, end"):
        snapshot_time(after, "middle")


def test_it_closes_the_step_that_ends_at_the_snapshot_and_no_step_off_the_grid():
    snapshots = np.array([STAMP_CHANGE_MS, STAMP_CHANGE_MS + 300_000])
    assert step_of_snapshot(snapshots, 300_000).tolist() == [
        STAMP_CHANGE_MS - 300_000,
        STAMP_CHANGE_MS,
    ]
    assert step_of_snapshot(snapshots, 900_000).tolist() == [STAMP_CHANGE_MS - 900_000, -1]


def test_it_warns_only_when_the_other_reading_fits_the_prices_clearly_better():
    stamps = STAMP_CHANGE_MS + 300_000 * np.arange(20)
    close_times = STAMP_CHANGE_MS + 300_000 * np.arange(25)
    closes = 100 + np.arange(25, dtype=float)
    taken_at_end = closes[:20]  # each row's implied price is the close at its own stamp
    check = check_stamping(
        source="m.csv",
        stamps=stamps,
        implied=taken_at_end,
        close_times=close_times,
        closes=closes,
    )
    assert check.applied == "start" and check.contradicts
    assert check.median_end == 0 and check.median_other == 0 and check.share_other == 1.0
    assert "contradict the stamping applied (start)" in check.describe()
    forced = check_stamping(
        source="m.csv",
        stamps=stamps,
        implied=taken_at_end,
        close_times=close_times,
        closes=closes,
        stamping="end",
    )
    assert not forced.contradicts and "confirmed on 20 rows" in forced.describe()
    few = check_stamping(
        source="m.csv",
        stamps=stamps[:3],
        implied=taken_at_end[:3],
        close_times=close_times,
        closes=closes,
    )
    assert not few.contradicts and "not checked" in few.describe()


# --- a week across 2024-03-04 ------------------------------------------------------------------


def test_it_builds_the_reference_steps_from_a_week_stamped_both_ways(week):
    expected, skipped_expected = reference_bars(week)
    klines = [read_klines(p) for p in week["klines"]]
    metrics = [read_metrics(p) for p in week["metrics"]]

    bars, skipped = build_bars(klines, metrics, STEP)

    for name in ("ts", "open", "high", "low", "close", "volume", "taker_buy_volume"):
        assert np.array_equal(getattr(bars, name), getattr(expected, name)), name
    assert np.array_equal(bars.open_interest, expected.open_interest)
    assert np.array_equal(bars.long_short_ratio, expected.long_short_ratio)
    assert [s["ts"] for s in skipped] == skipped_expected
    boundary = STAMP_CHANGE_MS - STEP  # no row's snapshot is taken at 2024-03-04 00:00
    assert {"ts": boundary, "reason": _no_row(boundary)} in skipped
    assert sum(table.duplicates for table in metrics) == 288


def _no_row(ts: int) -> str:
    moment = datetime.fromtimestamp((ts + STEP) / 1000, tz=UTC)
    return f"no metrics row for the snapshot at {moment:%Y-%m-%dT%H:%M:%SZ}"


def test_it_confirms_each_files_stamping_on_its_own_prices(week):
    klines = [read_klines(p) for p in week["klines"]]
    metrics = [read_metrics(p) for p in week["metrics"]]

    checks = stamp_checks(klines, metrics)

    assert [c.applied for c in checks] == ["end"] * 3 + ["start"] * 4
    assert not any(c.contradicts for c in checks)
    assert all(c.median_rule < 1e-6 < c.median_other for c in checks)


def test_the_command_line_matches_the_reference_model_on_the_week(week, tmp_path, capsys):
    expected_bars, _ = reference_bars(week)
    out = tmp_path / "result.json"

    files = ["--klines", *map(str, week["klines"]), "--metrics", *map(str, week["metrics"])]
    code = cli_main([*files, "--window", "7d", "--max-columns", "120", "--out", str(out)])

    assert code == 0
    doc = json.loads(out.read_text())
    params = Params(window_ms=7 * 86_400_000, max_columns=120)
    check_everything(Scenario(expected_bars, params, None))
    result = run(expected_bars, params)
    assert doc["as_of"] == result.as_of
    assert doc["liquidated"]["times"] == result.liq_times.tolist()
    assert doc["cumulative"]["long"] == result.cum_long.tolist()
    assert doc["clusters"] == json.loads(json.dumps(result.clusters))
    assert doc["report"]["duplicates_dropped"] == {"klines": 0, "metrics": 288}
    err = capsys.readouterr().err
    assert "duplicate rows dropped: 0 klines, 288 metrics" in err
    assert "metrics stamping confirmed on" in err


@pytest.mark.django_db
def test_the_import_stores_the_reference_steps_of_the_week(week):
    expected, _ = reference_bars(week)
    out = io.StringIO()

    call_command(
        "import_binance_vision",
        *map(str, week["klines"] + week["metrics"]),
        symbol="BTCUSDT",
        quiet=True,
        no_compute=True,
        stdout=out,
    )

    market = Market.objects.get(symbol="BTCUSDT")
    stored = market_bars_arrays(market_id=market.pk)
    for name in ("ts", "open", "high", "low", "close", "open_interest", "long_short_ratio"):
        assert np.array_equal(getattr(stored, name), getattr(expected, name)), name
    assert np.allclose(stored.volume, expected.volume, rtol=0, atol=1e-9)
    assert market.metrics_rows.count() == DAYS * 288
    report = out.getvalue()
    assert "duplicate rows dropped: 0 klines, 288 metrics" in report
    assert "metrics stamping (end and start) confirmed" not in report
    assert "confirmed by 7 file(s)" in report
    assert market.metrics_check["contradicted"] == 0 and len(market.metrics_check["files"]) == 7
