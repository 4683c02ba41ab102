"""Real Binance data (HYPEUSDT, 2025-05-30/31, maps/demo_data/real): the alignment check, the
engine and the import on it, and the demo market that shows it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from maps.demo import REAL_SAMPLE, demo_real_sample
from maps.engine import run
from maps.engine.cli import main as cli_main
from maps.engine.inputs import build_bars, read_klines, read_metrics, stamp_checks
from maps.models import Market
from maps.selectors import market_bars_arrays
from maps.services import market_snapshots_compute

KLINES = sorted(REAL_SAMPLE.glob("HYPEUSDT-5m-*.zip"))
METRICS = sorted(REAL_SAMPLE.glob("HYPEUSDT-metrics-*.zip"))
STEP = 300_000


def test_the_files_are_binances_layout_of_the_shared_real_data():
    assert [p.name for p in KLINES] == ["HYPEUSDT-5m-2025-05-30.zip", "HYPEUSDT-5m-2025-05-31.zip"]
    klines = [read_klines(p) for p in KLINES]
    assert sum(len(t) for t in klines) == 383
    assert {t.interval_ms for t in klines} == {STEP}
    assert {t.interval_source for t in klines} == {"close_time"}
    assert sum(len(read_metrics(p)) for p in METRICS) == 384


def test_the_alignment_check_picks_the_snapshot_five_minutes_after_the_stamp():
    checks = stamp_checks([read_klines(p) for p in KLINES], [read_metrics(p) for p in METRICS])

    assert [c.applied for c in checks] == ["start", "start"]
    assert not any(c.contradicts for c in checks)
    for check in checks:
        assert check.median_start < 0.0004  # the close at T + 5 min: within 0.03 %
        assert check.median_end > 0.003  # the close at T: only within 0.35-0.41 %
        assert check.share_other < 0.1


def test_the_data_contradict_a_forced_reading_at_the_stamp(tmp_path, capsys):
    out = tmp_path / "result.json"

    files = ["--klines", *map(str, KLINES), "--metrics", *map(str, METRICS)]
    code = cli_main([*files, "--metrics-stamp", "end", "--out", str(out)])

    assert code == 0
    err = capsys.readouterr().err
    assert err.count("warning: HYPEUSDT-metrics-2025-05-3") == 2
    assert "contradict the stamping applied (end)" in err
    checks = json.loads(out.read_text())["report"]["metrics_checks"]
    assert all(c["contradicts"] for c in checks)


def headline(doc: dict) -> tuple[float, str]:
    """The nearest long cluster's distance (%) and the side of the largest cluster."""
    return round(doc["proximity"]["long"]["distance_pct"], 1), doc["clusters"][0]["side"]


def test_the_right_alignment_changes_the_headline(tmp_path):
    results = {}
    for stamping in ("auto", "end"):
        out = tmp_path / f"{stamping}.json"
        files = ["--klines", *map(str, KLINES), "--metrics", *map(str, METRICS)]
        assert cli_main([*files, "--metrics-stamp", stamping, "--out", str(out)]) == 0
        results[stamping] = json.loads(out.read_text())

    assert headline(results["end"]) == (-7.2, "short")  # the v2.0 alignment
    assert headline(results["auto"]) == (-3.2, "long")  # MODEL.md v2.1


@pytest.mark.django_db
def test_the_import_and_the_engine_agree_step_for_step():
    out = io.StringIO()
    call_command(
        "import_binance_vision", str(REAL_SAMPLE), symbol="HYPEUSDT", quiet=True, stdout=out
    )

    market = Market.objects.get(symbol="HYPEUSDT")
    stored = market_bars_arrays(market_id=market.pk)
    bars, skipped = build_bars(
        [read_klines(p) for p in KLINES], [read_metrics(p) for p in METRICS], STEP
    )
    for name in ("ts", "open", "high", "low", "close", "volume", "taker_buy_volume"):
        assert np.array_equal(getattr(stored, name), getattr(bars, name)), name
    assert np.array_equal(stored.open_interest, bars.open_interest)
    assert len(stored.ts) == 383
    assert skipped == [
        {"ts": 1748715900000, "reason": "no klines"}  # the row stamped 18:25 closes 18:25-18:30
    ]
    snapshot = market.snapshots.get(window="7d")
    result = run(bars, market.engine_params("7d"))
    assert snapshot.proximity["long"]["distance_pct"] == pytest.approx(
        result.proximity["long"]["distance_pct"]
    )
    assert "confirmed by 2 file(s), 382 rows" in out.getvalue()
    assert market.tracked is False and market.is_historical


@pytest.mark.django_db
def test_importing_the_real_files_again_changes_nothing():
    call_command("import_binance_vision", str(REAL_SAMPLE), symbol="HYPEUSDT", quiet=True)
    market = Market.objects.get(symbol="HYPEUSDT")
    before = list(market.bars.order_by("time").values_list())
    rows_before = list(market.metrics_rows.order_by("stamped_at").values_list())

    call_command(
        "import_binance_vision", str(REAL_SAMPLE), symbol="HYPEUSDT", quiet=True, no_compute=True
    )

    assert list(market.bars.order_by("time").values_list()) == before
    assert list(market.metrics_rows.order_by("stamped_at").values_list()) == rows_before


@pytest.mark.django_db
def test_the_demo_shows_it_as_a_real_historical_market(client):
    market, summary = demo_real_sample()
    market_snapshots_compute(market=market)

    assert summary.bars_written == 383 and not market.is_demo and not market.tracked
    assert demo_real_sample() == (market, None)  # imported once
    page = client.get(market.get_absolute_url()).content.decode()
    assert "REAL · HISTORICAL" in page and "Historical: real data, not followed live" in page
    assert "Stale" not in page and "DEMO DATA" not in page
    home = client.get("/").content.decode()
    assert "HYPEUSDT" in home and "HISTORY" in home


def test_the_real_files_are_built_by_the_fixture_script(tmp_path):
    from tests.fixtures.real.make_fixtures import main

    written = main(Path(__file__).parent / "fixtures" / "real" / "source", tmp_path)

    assert [p.name for p in written] == [p.name for p in KLINES + METRICS]
    for path in written:
        assert path.read_bytes() == (REAL_SAMPLE / path.name).read_bytes()
