"""manage.py import_binance_vision: Binance bulk files into bars and events, nothing lost."""

from __future__ import annotations

import io
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError

from maps.models import Bar, Exchange, LiquidationEvent, MapSnapshot, Market
from maps.selectors import market_bars_arrays

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "binance_vision"
KLINES_1 = FIXTURES / "klines" / "BTCUSDT-1m-2024-03-01.csv"
KLINES_2 = FIXTURES / "klines" / "BTCUSDT-1m-2024-03-02.zip"
METRICS_1 = FIXTURES / "metrics" / "BTCUSDT-metrics-2024-03-01.zip"
METRICS_2 = FIXTURES / "metrics" / "BTCUSDT-metrics-2024-03-02.csv"
FORCE_ORDERS = FIXTURES / "liquidations" / "BTCUSDT-forceOrder-2024-03-01.jsonl"
BAR_COLUMNS = (
    "time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "taker_buy_volume",
    "open_interest",
    "long_short_ratio",
)
EVENT_COLUMNS = ("time", "side", "price", "quantity", "notional_usd", "source")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def run_import(*paths: Path, **options) -> str:
    out = io.StringIO()
    options.setdefault("no_compute", True)
    options.setdefault("quiet", True)
    call_command("import_binance_vision", *map(str, paths), symbol="BTCUSDT", stdout=out, **options)
    return out.getvalue()


def market() -> Market:
    return Market.objects.get(exchange__slug="binance", symbol="BTCUSDT")


def stored_bars() -> list[tuple]:
    return list(Bar.objects.order_by("time").values_list(*BAR_COLUMNS))


def stored_events() -> list[tuple]:
    return list(LiquidationEvent.objects.order_by("time", "price").values_list(*EVENT_COLUMNS))


def read_text(path: Path) -> str:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return archive.read(archive.namelist()[0]).decode()
    return path.read_text()


def write_like(source: Path, folder: Path, text: str) -> Path:
    """A copy of `source` in `folder` (same name, zipped if it was) holding `text`."""
    target = folder / source.name
    if source.suffix == ".zip":
        with zipfile.ZipFile(target, "w") as archive:
            archive.writestr(f"{source.stem}.csv", text)
    else:
        target.write_text(text)
    return target


def set_field(line: str, index: int, value: str) -> str:
    fields = line.split(",")
    fields[index] = value
    return ",".join(fields)


def edit_line(source: Path, folder: Path, number: int, change) -> Path:
    """A copy of `source` whose line `number` (from 1) becomes change(line); None drops it."""
    lines = read_text(source).splitlines(keepends=True)
    new = change(lines[number - 1].rstrip("\n"))
    lines[number - 1] = "" if new is None else new + "\n"
    return write_like(source, folder, "".join(lines))


@pytest.mark.django_db
def test_it_imports_a_folder_into_a_new_market() -> None:
    output = run_import(FIXTURES)

    btc = market()
    assert btc.exchange.name == "Binance"
    assert btc.exchange.ccxt_id == "binanceusdm"
    assert not btc.exchange.is_demo
    assert (btc.slug, btc.base, btc.quote, btc.ccxt_symbol) == (
        "btcusdt",
        "BTC",
        "USDT",
        "BTC/USDT:USDT",
    )
    assert btc.bars.count() == 72
    assert btc.bars.earliest("time").time == at("2024-03-01 21:00")
    assert btc.last_bar_at == at("2024-03-02 02:55")
    assert (
        "Binance BTCUSDT (created): 5 file(s) imported (2 klines, 2 metrics, 1 liquidations)"
        in output
    )
    assert "bars: 72 written, 2024-03-01T21:00:00Z to 2024-03-02T02:55:00Z" in output
    assert "11 read, 11 new, 0 already stored; 1 of other symbols ignored" in output
    assert "steps skipped: none" in output


@pytest.mark.django_db
def test_it_aggregates_five_klines_and_the_metrics_row_that_closes_the_step() -> None:
    run_import(FIXTURES)

    bar = Bar.objects.get(time=at("2024-03-01 23:40"))
    assert (bar.open, bar.high, bar.low, bar.close) == (61720.4, 61727.5, 61012.4, 61012.4)
    assert bar.volume == pytest.approx(1441.122 + 456.532 + 79.857 + 230.704 + 154.548)
    assert bar.open_interest == 80738.5552662677  # the row stamped 23:45
    assert bar.long_short_ratio == 1.37407556


@pytest.mark.django_db
def test_it_joins_a_step_whose_klines_and_metrics_row_lie_in_files_of_two_days() -> None:
    run_import(KLINES_1, METRICS_1, KLINES_2, METRICS_2)

    last_of_day = Bar.objects.get(time=at("2024-03-01 23:55"))
    assert last_of_day.open_interest == 80657.1273543330  # 2024-03-02 00:00:00 in the second file
    assert last_of_day.close == 61084.4


@pytest.mark.django_db
def test_it_stores_the_liquidations_of_the_symbol_on_the_liquidated_side() -> None:
    run_import(FORCE_ORDERS)

    events = LiquidationEvent.objects.order_by("time")
    assert events.count() == 11
    assert [e.side for e in events].count("short") == 2
    big = events.get(quantity=12.004)
    assert (big.side, big.price, big.source) == ("long", 61104.5, "binance-vision")
    assert big.notional_usd == pytest.approx(12.004 * 61104.5)
    assert big.time == datetime.fromtimestamp(1709336491.766, tz=UTC)


@pytest.mark.django_db
def test_it_changes_nothing_when_the_same_files_are_imported_again() -> None:
    run_import(FIXTURES)
    bars, events = stored_bars(), stored_events()

    output = run_import(FIXTURES)

    assert stored_bars() == bars
    assert stored_events() == events
    assert len(bars) == 72
    assert len(events) == 11
    assert "11 read, 0 new, 11 already stored" in output
    assert "72 stored for this market" in output


@pytest.mark.django_db
def test_it_takes_overlapping_files_once_and_reports_no_skip_for_them(tmp_path: Path) -> None:
    run_import(FIXTURES)
    bars = stored_bars()
    Bar.objects.all().delete()
    monthly = tmp_path / "month"
    monthly.mkdir()
    klines_lines = read_text(KLINES_1).splitlines(keepends=True)
    klines_lines += read_text(KLINES_2).splitlines(keepends=True)
    metrics_lines = read_text(METRICS_1).splitlines(keepends=True)
    metrics_lines += read_text(METRICS_2).splitlines(keepends=True)[1:]
    month_klines = write_like(KLINES_1, monthly, "".join(klines_lines))
    month_metrics = write_like(METRICS_2, monthly, "".join(metrics_lines))

    output = run_import(month_klines, month_metrics, KLINES_2)

    assert stored_bars() == bars
    assert "steps skipped: none" in output


@pytest.mark.django_db
def test_it_reads_zip_files_and_klines_without_a_header_row() -> None:
    output = run_import(KLINES_2, METRICS_2)

    assert Bar.objects.count() == 36
    first = Bar.objects.earliest("time")
    assert first.time == at("2024-03-02 00:00")
    assert first.open == 61084.4
    assert "2024-03-01T23:55:00Z no klines" in output


@pytest.mark.django_db
def test_it_reads_klines_with_or_without_the_header_row_alike(tmp_path: Path) -> None:
    run_import(KLINES_1, METRICS_1)
    with_header = stored_bars()
    Bar.objects.all().delete()
    text = KLINES_1.read_text()
    assert text.startswith("open_time,")
    bare = write_like(KLINES_1, tmp_path, text.split("\n", 1)[1])

    run_import(bare, METRICS_1)

    assert stored_bars() == with_header
    assert len(with_header) == 35


@pytest.mark.django_db
def test_it_reports_the_steps_it_skips(tmp_path: Path) -> None:
    klines = edit_line(KLINES_1, tmp_path, 64, lambda line: None)  # 22:02 missing
    metrics = edit_line(METRICS_1, tmp_path, 19, lambda line: None)  # the 22:30 row missing

    output = run_import(klines, metrics, KLINES_2, METRICS_2)

    assert Bar.objects.count() == 70
    assert not Bar.objects.filter(time__in=[at("2024-03-01 22:00"), at("2024-03-01 22:25")])
    assert "steps skipped: 2" in output
    assert "2024-03-01T22:00:00Z klines incomplete (4 of 5 minutes)" in output
    assert "2024-03-01T22:25:00Z no metrics row for the snapshot at 2024-03-01T22:30:00Z" in output


@pytest.mark.django_db
def test_it_stops_at_a_malformed_kline_with_its_file_and_line(tmp_path: Path) -> None:
    bad = edit_line(KLINES_1, tmp_path, 50, lambda line: set_field(line, 2, "62000.0"))

    with pytest.raises(CommandError) as error:
        run_import(bad, METRICS_1)

    message = str(error.value)
    assert message.startswith(f"{bad}:50: ")
    assert message.split("\n")[0].endswith(":50: high 62000 is below low 62071.3")
    assert "That file was not imported" in message
    assert Bar.objects.count() == 0


@pytest.mark.django_db
def test_it_keeps_what_was_stored_before_a_bad_metrics_row(tmp_path: Path) -> None:
    run_import(KLINES_1, METRICS_1)
    bars_before = stored_bars()
    bad = edit_line(METRICS_2, tmp_path, 10, lambda line: line.replace("BTCUSDT,80", "BTCUSDT,x80"))

    with pytest.raises(CommandError) as error:
        run_import(FORCE_ORDERS, KLINES_2, bad)

    message = str(error.value)
    assert message.startswith(f"{bad}:10: sum_open_interest 'x80")
    assert "is not a number" in message
    assert "the 2 file(s) before it were and stay stored" in message
    assert stored_bars() == bars_before
    assert len(bars_before) == 35
    assert LiquidationEvent.objects.count() == 11
    assert market().last_bar_at == at("2024-03-01 23:50")


@pytest.mark.django_db
def test_it_stores_nothing_from_a_liquidations_file_with_a_bad_line(tmp_path: Path) -> None:
    bad = edit_line(FORCE_ORDERS, tmp_path, 9, lambda line: line[:40])

    with pytest.raises(CommandError, match=r"BTCUSDT-forceOrder-2024-03-01.jsonl:9: not JSON"):
        run_import(bad)

    assert LiquidationEvent.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_metrics_of_another_symbol(tmp_path: Path) -> None:
    text = METRICS_2.read_text().replace("BTCUSDT", "ETHUSDT")
    other = write_like(METRICS_2, tmp_path, text)

    with pytest.raises(CommandError, match=r":2: symbol ETHUSDT is not BTCUSDT"):
        run_import(KLINES_2, other)

    assert Bar.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_files_named_for_another_symbol_before_writing_anything(tmp_path) -> None:
    other = tmp_path / "ETHUSDT-1m-2024-03-01.csv"
    other.write_text(KLINES_1.read_text())

    with pytest.raises(CommandError, match=r"ETHUSDT-1m-2024-03-01.csv: the file is named for "):
        run_import(METRICS_1, other)

    assert not Market.objects.exists()


@pytest.mark.django_db
def test_it_names_the_file_and_line_of_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    lines = KLINES_1.read_bytes().splitlines(keepends=True)
    lines[11] = lines[11].replace(b"0,", b"0\xff,", 1)
    bad = tmp_path / KLINES_1.name
    bad.write_bytes(b"".join(lines))

    with pytest.raises(CommandError) as error:
        run_import(bad, METRICS_1)

    assert str(error.value).startswith(f"{bad}:12: not UTF-8 text (byte 0xff at column ")
    assert Bar.objects.count() == 0


@pytest.mark.django_db
def test_it_reports_a_damaged_zip_in_one_line(tmp_path: Path) -> None:
    run_import(KLINES_1, METRICS_1)
    before = stored_bars()
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{KLINES_2.stem}.csv", read_text(KLINES_2))
    data = bytearray(packed.getvalue())
    data[2000:2010] = bytes(b ^ 0xFF for b in data[2000:2010])
    damaged = tmp_path / KLINES_2.name
    damaged.write_bytes(bytes(data))

    with pytest.raises(CommandError) as error:
        run_import(damaged, METRICS_2)

    first_line = str(error.value).split("\n")[0]
    assert first_line.startswith(f"{KLINES_2.stem}.csv:38: damaged zip data (")
    assert first_line.endswith(f"(in {damaged})")
    assert stored_bars() == before


@pytest.mark.django_db
def test_it_refuses_a_missing_path_and_a_folder_without_files(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file or folder"):
        run_import(tmp_path / "nothing-here")
    (tmp_path / "notes.txt").write_text("not a bulk file")
    with pytest.raises(CommandError, match="no files to import"):
        run_import(tmp_path)
    assert not Market.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_file_of_unknown_kind(tmp_path: Path) -> None:
    odd = tmp_path / "prices.csv"
    odd.write_text("when,price\n2024-03-01,61000\n")

    with pytest.raises(CommandError, match=r"prices\.csv: cannot tell what kind of file this is"):
        run_import(odd, KLINES_1)

    assert Bar.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_it_exits_non_zero_with_a_clear_message_and_no_traceback(tmp_path, capsys) -> None:
    bad = edit_line(KLINES_1, tmp_path, 7, lambda line: line.replace(",", ";"))
    argv = ["manage.py", "import_binance_vision", "--symbol", "BTCUSDT", "--no-compute", str(bad)]

    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(argv)

    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert f"CommandError: {bad}:7: expected at least 10 fields, found 1" in err
    assert "Traceback" not in err


@pytest.mark.django_db
def test_it_refuses_to_mix_real_data_into_a_demo_market(market_factory, bar_factory) -> None:
    demo = market_factory(is_demo=True)
    bar_factory(demo, at("2024-01-01 00:00"))

    with pytest.raises(CommandError, match="holds simulated demo data; add --replace-demo"):
        run_import(FIXTURES)
    assert demo.bars.count() == 1

    output = run_import(FIXTURES, replace_demo=True)

    demo.refresh_from_db()
    assert not demo.is_demo
    assert demo.bars.count() == 72
    assert "demo data deleted" in output


@pytest.mark.django_db
def test_it_makes_a_demo_exchange_real_once_it_holds_real_data(market_factory) -> None:
    demo = market_factory("ETHUSDT", is_demo=True)
    Exchange.objects.filter(pk=demo.exchange_id).update(is_demo=True)

    run_import(KLINES_1, METRICS_1)

    assert Exchange.objects.get(slug="binance").is_demo is False
    assert Market.objects.get(symbol="ETHUSDT").is_demo is True


@pytest.mark.django_db
def test_it_creates_other_exchanges_with_their_names(tmp_path: Path) -> None:
    call_command(
        "import_binance_vision",
        str(FORCE_ORDERS),
        symbol="btcusdt",
        exchange="okx",
        no_compute=True,
        quiet=True,
        stdout=io.StringIO(),
    )
    okx = Exchange.objects.get(slug="okx")
    assert (okx.name, okx.ccxt_id) == ("OKX", "okx")
    assert okx.markets.get().symbol == "BTCUSDT"


@pytest.mark.django_db
def test_it_shows_a_progress_bar_only_on_a_terminal(capsys, monkeypatch) -> None:
    run_import(FORCE_ORDERS)
    assert capsys.readouterr().err == ""

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    run_import(FORCE_ORDERS, quiet=False)
    assert "1/1" in capsys.readouterr().err

    run_import(FORCE_ORDERS, quiet=True)
    assert capsys.readouterr().err == ""


@pytest.mark.django_db
def test_it_recomputes_the_maps_after_the_import() -> None:
    output = run_import(FIXTURES, no_compute=False)

    windows = set(MapSnapshot.objects.filter(market=market()).values_list("window", flat=True))
    assert windows == {"12h", "24h", "3d", "7d", "30d", "90d"}
    assert "maps recomputed: 12h, 24h, 3d, 7d, 30d, 90d" in output
    snapshot = MapSnapshot.objects.get(market=market(), window="7d")
    assert snapshot.as_of == at("2024-03-02 02:55")


@pytest.mark.postgres
@pytest.mark.django_db
def test_it_loads_the_imported_bars_back_as_arrays_by_binary_copy() -> None:
    run_import(FIXTURES)

    bars = market_bars_arrays(market_id=market().pk)

    rows = stored_bars()
    assert len(bars.ts) == 72
    assert bars.ts[0] == int(at("2024-03-01 21:00").timestamp() * 1000)
    assert np.array_equal(bars.close, [r[4] for r in rows])
    assert np.array_equal(bars.open_interest, [r[7] for r in rows])
    assert np.array_equal(bars.long_short_ratio, [r[8] for r in rows])


# --- real inputs: duplicates, intervals, stamping, zero open interest, hostile rows ----------


@pytest.mark.django_db
def test_it_imports_a_doubled_metrics_file_and_reports_the_dropped_rows(tmp_path: Path) -> None:
    text = read_text(METRICS_2)
    header, *rows = text.splitlines()
    doubled = write_like(METRICS_2, tmp_path, "\n".join([header, *rows, *rows]) + "\n")

    output = run_import(KLINES_1, METRICS_1, KLINES_2, doubled)

    assert f"duplicate rows dropped: 0 klines, {len(rows)} metrics" in output
    reference = stored_bars()
    Bar.objects.all().delete()
    run_import(KLINES_1, METRICS_1, KLINES_2, METRICS_2)
    assert stored_bars() == reference


@pytest.mark.django_db
def test_it_names_both_lines_of_two_metrics_rows_that_disagree(tmp_path: Path) -> None:
    text = read_text(METRICS_2)
    header, first, *rest = text.splitlines()
    changed = set_field(first, 2, "1.5")
    bad = write_like(METRICS_2, tmp_path, "\n".join([header, first, *rest, changed]) + "\n")

    with pytest.raises(CommandError) as error:
        run_import(KLINES_1, METRICS_1, KLINES_2, bad)

    last = len(rest) + 3
    assert (
        f"BTCUSDT-metrics-2024-03-02.csv:2 and BTCUSDT-metrics-2024-03-02.csv:{last}: two "
        "metrics rows at 2024-03-02T00:00:00Z with different values"
    ) in str(error.value)


@pytest.mark.django_db
def test_it_refuses_klines_of_an_interval_the_step_is_not_built_from(tmp_path: Path) -> None:
    rows = [
        f"{1709251200000 + i * 900_000},1,1,1,1,1,{1709251200000 + (i + 1) * 900_000 - 1},0,0,0,0,0"
        for i in range(4)
    ]
    path = tmp_path / "BTCUSDT-15m-2024-03-01.csv"
    path.write_text("\n".join(rows) + "\n")

    with pytest.raises(CommandError) as error:
        run_import(path)

    assert "klines of a 15m interval (from the close_time); a 5m step is built from 1m or 5m" in (
        str(error.value)
    )
    assert not Market.objects.filter(symbol="BTCUSDT").exists()


@pytest.mark.django_db
def test_it_reads_the_interval_from_the_spacing_of_open_times_without_close_times(
    tmp_path: Path,
) -> None:
    rows = [f"{1709251200000 + i * 180_000},1,1,1,1,1" for i in range(4)]
    header = "open_time,open,high,low,close,volume,taker_buy_volume"
    path = tmp_path / "BTCUSDT-1m-2024-03-01.csv"  # the name says 1m, the data say 3m
    path.write_text("\n".join([header, *[r + ",0" for r in rows]]) + "\n")

    with pytest.raises(
        CommandError, match=r"klines of a 3m interval \(from the open-time spacing\)"
    ):
        run_import(path)


@pytest.mark.django_db
def test_it_creates_no_market_and_no_exchange_when_nothing_is_imported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("open_time,open,high,low,close,volume\nnot,a,kline,at,all,!\n")

    with pytest.raises(CommandError):
        call_command(
            "import_binance_vision", str(bad), symbol="XRPUSDT", exchange="kraken", quiet=True
        )

    assert not Market.objects.filter(symbol="XRPUSDT").exists()
    assert not Exchange.objects.filter(slug="kraken").exists()


@pytest.mark.django_db
def test_it_never_creates_a_tracked_market(client) -> None:
    run_import(KLINES_1, METRICS_1)

    assert market().tracked is False
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_it_forces_a_stamping_remembers_it_and_warns_when_the_data_disagree() -> None:
    output = run_import(KLINES_1, METRICS_1, KLINES_2, METRICS_2, metrics_stamp="start")

    assert "metrics rows read as stamped 'start' from now on" in output
    assert "the data contradict the stamping applied (start)" in output
    assert market().metrics_stamp == "start"
    assert market().metrics_check["contradicted"] == 2


@pytest.mark.django_db
def test_it_skips_a_step_whose_open_interest_reads_zero(tmp_path: Path) -> None:
    zero = edit_line(METRICS_1, tmp_path, 4, lambda line: set_field(line, 2, "0"))

    output = run_import(KLINES_1, zero)

    stamp = read_text(METRICS_1).splitlines()[3].split(",")[0]
    step = at(stamp.replace(" ", "T")) - (at("2024-03-01T00:05:00") - at("2024-03-01T00:00:00"))
    assert not Bar.objects.filter(time=step).exists()
    assert "has an open interest of 0 (taken as missing)" in output


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (
            '{"S":"SELL","T":1709251300000,"q":"1e200","p":"1e200"}',
            "price 1e\\+200 is above 1000000000",
        ),
        ('{"S":"SELL","T":-5000,"q":"1","p":"60000"}', "T -5000: time -5000 ms lies outside"),
        ('{"S":"SELL","T":1709251300000,"q":"1e9","p":"60000"}', "notional 6e\\+13 USD is above"),
    ],
)
def test_it_refuses_liquidations_no_market_can_have(
    tmp_path: Path, order: str, reason: str
) -> None:
    path = tmp_path / "BTCUSDT-forceOrder-2024-03-01.jsonl"
    path.write_text(order + "\n")
    run_import(KLINES_1, METRICS_1)
    before = stored_bars()

    with pytest.raises(CommandError, match=reason):
        run_import(path)

    assert not LiquidationEvent.objects.exists()
    assert stored_bars() == before


@pytest.mark.django_db
def test_it_refuses_a_zip_member_declared_too_large_before_reading_it(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr("maps.engine.inputs.MAX_MEMBER_BYTES", 1000)

    with pytest.raises(CommandError, match=r"expands to [\d,]+ bytes, more than the 1,000"):
        run_import(KLINES_2)


@pytest.mark.django_db
def test_it_stops_a_zip_bomb_of_one_endless_line_in_flat_memory(tmp_path: Path) -> None:
    import tracemalloc

    bomb = tmp_path / "BTCUSDT-1m-2024-03-03.zip"
    chunk = b"1" * (1 << 20)
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("BTCUSDT-1m-2024-03-03.csv", "w") as member,
    ):
        for _ in range(256):  # 256 MiB of one line, about 250 KiB zipped
            member.write(chunk)
    assert bomb.stat().st_size < 1 << 20

    tracemalloc.start()
    try:
        with pytest.raises(CommandError, match="line longer than 65,536 bytes"):
            run_import(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20
