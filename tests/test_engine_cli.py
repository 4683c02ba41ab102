"""python -m maps.engine: arguments, result.json, and one clear line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from maps.engine.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "engine"
KLINES = str(FIXTURES / "BTCUSDT-1m-2024-01-01.csv")
METRICS = str(FIXTURES / "BTCUSDT-metrics-2024-01-01.csv")
ORDERS = str(FIXTURES / "BTCUSDT-forceOrder-2024-01-01.jsonl")
ROOT = Path(__file__).resolve().parent.parent


def run_cli(tmp_path, *extra) -> tuple[int, dict | None]:
    out = tmp_path / "result.json"
    code = main(["--klines", KLINES, "--metrics", METRICS, "--out", str(out), *extra])
    return code, json.loads(out.read_text()) if out.exists() else None


def test_it_writes_result_json_from_binance_files(tmp_path, capsys):
    code, doc = run_cli(tmp_path, "--holding", "2h", "--max-columns", "10", "--window", "3h")
    assert code == 0
    assert {
        "as_of", "last_close", "step_ms", "params", "bins", "map", "cumulative", "heatmap",
        "liquidated", "clusters", "proximity", "calibration", "report", "engine_version",
    } <= set(doc)  # fmt: skip
    assert doc["as_of"] == 1_704_067_200_000 + 47 * 300_000  # the last step's open time
    assert doc["step_ms"] == 300_000
    assert doc["params"]["holding_ms"] == 7_200_000 and doc["params"]["window_ms"] == 10_800_000
    assert doc["report"]["steps"] == 36
    assert len(doc["heatmap"]["times"]) == 9  # 35 simulated steps, every 4th
    bins = len(doc["bins"]["edges"]) - 1
    assert len(doc["map"]["long"]) == 5 and all(len(row) == bins for row in doc["map"]["short"])
    assert len(doc["liquidated"]["long"]) == 35
    assert doc["calibration"] is None
    assert doc["report"]["skipped"] == [
        {"ts": 1_704_066_900_000, "reason": "no klines", "time": "2023-12-31T23:55:00Z"}
    ]
    assert "result.json: 36 steps" in capsys.readouterr().err


def test_it_calibrates_against_liquidation_files(tmp_path):
    code, doc = run_cli(tmp_path, "--liquidations", ORDERS, "--calibrate", "--window", "inf")
    assert code == 0
    calibration = doc["calibration"]
    assert {"weights", "scale", "corr_long", "corr_short", "hit_rate", "coverage"} <= set(
        calibration
    )
    assert len(calibration["weights"]) == 5
    assert sum(calibration["weights"]) == pytest.approx(1.0)
    assert calibration["events_used"] + calibration["events_outside"] == 30
    assert doc["report"]["events_other_symbols"] == 1
    assert len(doc["liquidated"]["real_long"]) == len(doc["liquidated"]["times"])


def test_it_adds_real_liquidations_without_calibrating(tmp_path):
    code, doc = run_cli(tmp_path, "--liquidations", ORDERS)
    assert code == 0 and doc["calibration"] is None
    real = sum(doc["liquidated"]["real_long"]) + sum(doc["liquidated"]["real_short"])
    assert real > 0


def test_it_accepts_zipped_inputs_and_the_v1_model(tmp_path):
    archive = tmp_path / "BTCUSDT-1m-2024-01-01.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(KLINES, "BTCUSDT-1m-2024-01-01.csv")
    out = tmp_path / "r.json"
    args = ["--klines", str(archive), "--metrics", METRICS, "--holding", "inf", "--out", str(out)]
    assert main([*args, "--long-share", "ratio", "--tiers", "10:0.5,20:0.5"]) == 0
    doc = json.loads(out.read_text())
    assert doc["params"]["holding_ms"] is None
    assert doc["params"]["tiers"] == [
        {"leverage": 10, "weight": 0.5},
        {"leverage": 20, "weight": 0.5},
    ]


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--calibrate"], 2, "error: --calibrate needs --liquidations"),
        (["--tiers", "10:0.5"], 1, "error: tier weights must sum to 1, not 0.5"),
        (["--window", "1 fortnight"], 1, "error: bad duration '1 fortnight'"),
        (["--step", "90s"], 1, "error: the step must be a whole number of minutes"),
        (["--long-share", "vibes"], 2, "error: argument --long-share: invalid choice"),
        (["--bin-bps", "0.001"], 1, "bins (more than 20000); raise bin_bps"),
    ],
)
def test_it_ends_bad_arguments_with_one_line(tmp_path, capsys, extra, code, message):
    assert run_cli(tmp_path, *extra)[0] == code
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_it_names_the_bad_row_of_an_input_file(tmp_path, capsys):
    bad = tmp_path / "BTCUSDT-1m-2024-01-02.csv"
    lines = Path(KLINES).read_text().splitlines()
    fields = lines[17].split(",")
    fields[2], fields[3] = "41000", "41200"
    lines[17] = ",".join(fields)
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.json"
    assert main(["--klines", str(bad), "--metrics", METRICS, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: BTCUSDT-1m-2024-01-02.csv:18: high 41000 is below low 41200"
    assert not out.exists()


def test_it_refuses_swapped_or_missing_files(tmp_path, capsys):
    out = str(tmp_path / "r.json")
    assert main(["--klines", METRICS, "--metrics", METRICS, "--out", out]) == 1
    assert "looks like a metrics file, not klines" in capsys.readouterr().err
    assert main(["--klines", str(tmp_path / "nope.csv"), "--metrics", METRICS, "--out", out]) == 1
    assert "error: cannot use" in capsys.readouterr().err


def test_it_says_why_when_no_step_is_complete(tmp_path, capsys):
    metrics = tmp_path / "BTCUSDT-metrics-2024-02-01.csv"
    metrics.write_text(Path(METRICS).read_text().replace("2024-01-01", "2024-02-01"))
    out = str(tmp_path / "r.json")
    assert main(["--klines", KLINES, "--metrics", str(metrics), "--out", out]) == 1
    err = capsys.readouterr().err
    assert "error: fewer than 2 complete steps (0 built, " in err
    assert "no metrics row for the snapshot at" in err


def test_it_runs_as_a_module_and_exits_non_zero_without_a_traceback(tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "maps.engine", "--klines", KLINES, "--metrics", METRICS,
         "--out", "-", "--max-columns", "5"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["report"]["steps"] == 48
    bad = subprocess.run(
        [sys.executable, "-m", "maps.engine", "--klines", KLINES, "--metrics", KLINES,
         "--out", str(tmp_path / "r.json")],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")
    assert "Traceback" not in bad.stderr


def test_it_refuses_klines_and_metrics_of_two_symbols(tmp_path, capsys):
    eth = tmp_path / "ETHUSDT-metrics-2024-01-01.csv"
    eth.write_text(Path(METRICS).read_text().replace("BTCUSDT", "ETHUSDT"))
    unnamed = tmp_path / "metrics.csv"
    unnamed.write_text(eth.read_text())
    out = str(tmp_path / "r.json")

    assert main(["--klines", KLINES, "--metrics", str(eth), "--out", out]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {eth}: symbol ETHUSDT differs from BTCUSDT ({KLINES})\n"
    args = ["--klines", KLINES, "--metrics", str(unnamed), "--symbol", "btcusdt", "--out", out]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err == "error: metrics.csv:2: symbol ETHUSDT differs from BTCUSDT (--symbol)\n"


def test_it_names_the_line_of_bytes_that_are_not_utf8(tmp_path, capsys):
    bad = tmp_path / "BTCUSDT-1m-2024-01-01.csv"
    lines = Path(KLINES).read_bytes().splitlines(keepends=True)
    lines[6] = lines[6].replace(b",", b"\xe9,", 1)
    bad.write_bytes(b"".join(lines))

    assert main(["--klines", str(bad), "--metrics", METRICS, "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: BTCUSDT-1m-2024-01-01.csv:7: not UTF-8 text (byte 0xe9 at ")


def test_it_reports_a_damaged_zip_in_one_line(tmp_path, capsys):
    archive = tmp_path / "BTCUSDT-1m-2024-01-01.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(KLINES, "BTCUSDT-1m-2024-01-01.csv")
    data = bytearray(archive.read_bytes())
    data[2000:2010] = bytes(b ^ 0xFF for b in data[2000:2010])
    archive.write_bytes(bytes(data))

    args = ["--klines", str(archive), "--metrics", METRICS, "--out", str(tmp_path / "r.json")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: BTCUSDT-1m-2024-01-01.csv:")
    assert "damaged zip data" in err and err.count("\n") == 1


# --- real inputs: combined-stream lines, no events, hostile rows, stamping -------------------


def test_it_reads_combined_stream_lines_as_the_stream_receives_them(tmp_path):
    inner = json.loads(Path(ORDERS).read_text().splitlines()[1])
    order = inner.get("o", inner)
    wrapped = tmp_path / "BTCUSDT-forceOrder.jsonl"
    wrapped.write_text(
        json.dumps({"stream": "btcusdt@forceOrder", "data": {"e": "forceOrder", "o": order}}) + "\n"
    )

    code, doc = run_cli(tmp_path, "--liquidations", str(wrapped), "--window", "4h")

    assert code == 0
    real = doc["liquidated"]["real_long"] + doc["liquidated"]["real_short"]
    assert sum(real) == pytest.approx(float(order["z"]) * float(order["ap"]))


def test_it_calibrates_nothing_without_an_event_of_the_symbol_and_says_why(tmp_path, capsys):
    others = tmp_path / "ETHUSDT-forceOrder.jsonl"
    others.write_text(
        json.dumps({"s": "ETHUSDT", "S": "SELL", "T": 1704067500000, "q": "1", "p": "2300"}) + "\n"
    )

    code, doc = run_cli(tmp_path, "--liquidations", str(others), "--calibrate")

    assert code == 0
    calibration = doc["calibration"]
    assert calibration["scale"] is None
    assert calibration["weights"] == [0.15, 0.30, 0.25, 0.20, 0.10]
    assert (
        "no liquidation event of BTCUSDT in the files (1 of other symbols)"
        in (calibration["reason"])
    )
    assert "calibration: scale null: no liquidation event of BTCUSDT" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"s":"BTCUSDT","S":"SELL","T":1704067500000,"q":"1e200","p":"1e200"}', "price 1e+200"),
        ('{"s":"BTCUSDT","S":"SELL","T":-5000,"q":"1","p":"42000"}', "lies outside 2010-2100"),
        ('{"s":"BTCUSDT","S":"SELL","T":99999999999999999999,"q":"1","p":"1"}', "lies outside"),
        ("[" * 1000 + "]" * 1000, "JSON nested deeper than 32 levels"),
        ("[" * 50_000 + "]" * 50_000, "line longer than 65,536 bytes"),
    ],
)
def test_it_ends_hostile_liquidation_lines_with_one_clear_line(tmp_path, capsys, line, message):
    path = tmp_path / "BTCUSDT-forceOrder.jsonl"
    path.write_text(line + "\n")

    code, _ = run_cli(tmp_path, "--liquidations", str(path), "--calibrate")

    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err
    assert err.startswith("error: BTCUSDT-forceOrder.jsonl:1: ") and message in err


def test_it_skips_and_reports_a_step_whose_open_interest_reads_zero(tmp_path):
    lines = Path(METRICS).read_text().splitlines()
    fields = lines[5].split(",")
    fields[2] = "0"
    lines[5] = ",".join(fields)
    zero = tmp_path / "BTCUSDT-metrics-2024-01-01.csv"
    zero.write_text("\n".join(lines) + "\n")
    out = tmp_path / "result.json"

    code = main(["--klines", KLINES, "--metrics", str(zero), "--out", str(out)])

    assert code == 0
    skipped = json.loads(out.read_text())["report"]["skipped"]
    assert any("has an open interest of 0 (taken as missing)" in s["reason"] for s in skipped)


def test_it_refuses_klines_of_an_interval_it_cannot_build_steps_from(tmp_path, capsys):
    rows = [f"{1704067200000 + i * 180_000},1,1,1,1,1,{1704067200000 + (i + 1) * 180_000 - 1}"
            ",0,0,0,0,0" for i in range(3)]  # fmt: skip
    klines = tmp_path / "BTCUSDT-3m-2024-01-01.csv"
    klines.write_text("\n".join(rows) + "\n")

    code = main(["--klines", str(klines), "--metrics", METRICS, "--out", str(tmp_path / "r")])

    err = capsys.readouterr().err
    assert code == 1
    assert "klines of a 3m interval (from the close_time); a 5m step is built from 1m or 5m" in err


def test_it_takes_the_metrics_stamping_from_the_flag(tmp_path, capsys):
    code, doc = run_cli(tmp_path, "--metrics-stamp", "start")

    err = capsys.readouterr().err
    assert code == 0
    # read as taken 5 minutes after its stamp, each row closes the step that opens at its stamp:
    # the row stamped 00:00 now closes 00:00-00:05, the one stamped 04:00 a step with no klines
    assert doc["report"]["skipped"] == [
        {"ts": 1_704_081_600_000, "reason": "no klines", "time": "2024-01-01T04:00:00Z"}
    ]
    assert "metrics stamping: BTCUSDT-metrics-2024-01-01.csv: stamping not confirmed" in err
    code, _ = run_cli(tmp_path, "--metrics-stamp", "middle")
    assert code == 2 and "invalid choice: 'middle'" in capsys.readouterr().err
