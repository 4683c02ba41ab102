"""manage.py import_binance_vision --symbol BTCUSDT [--exchange binance] PATH...

Reads Binance's public bulk files (https://data.binance.vision, USD-M futures): 1-minute `klines`
and 5-minute `metrics` as CSV or zip, and liquidation records as forceOrder JSON lines. PATHs are
files or folders (searched recursively); kinds are told apart by header or name.
"""

from __future__ import annotations

import re
import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import reset_queries
from django.utils import timezone
from tqdm import tqdm

from maps.binance_vision import (
    ImportFailed,
    ImportSummary,
    MarketImport,
    collect_files,
    market_discard_if_empty,
    market_for_symbol,
    plan_files,
)
from maps.engine.alignment import STAMPINGS
from maps.engine.types import EngineError, iso_utc
from maps.market_signals.services import signals_summary
from maps.models import Market
from maps.services import market_demo_clear, market_snapshots_compute
from maps.whales.services import positioning_summary

SHOWN_SKIPS = 20


class Command(BaseCommand):
    help = (
        "Import Binance bulk files (klines 1m, metrics, forceOrder JSON lines; CSV or zip; files "
        "or folders) into one market's bars and liquidation events, then recompute its maps."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
        parser.add_argument("--symbol", required=True, help="the Binance symbol, e.g. BTCUSDT")
        parser.add_argument(
            "--exchange", default="binance", help="slug of the exchange to import into [binance]"
        )
        parser.add_argument(
            "--no-compute", action="store_true", help="do not recompute the market's maps"
        )
        parser.add_argument(
            "--metrics-stamp",
            choices=STAMPINGS,
            help="how the metrics rows are stamped: auto (Binance's rule: the snapshot time "
            "before 2024-03-04, the start of its 5-minute period from then on), start or end; "
            "remembered for the market [the market's own, auto for a new one]",
        )
        parser.add_argument("--quiet", action="store_true", help="no progress bar")
        parser.add_argument(
            "--replace-demo",
            action="store_true",
            help="if the market holds demo data, delete it and make the market a real one",
        )

    def handle(self, *args, **options) -> None:
        self.verbosity = options["verbosity"]
        symbol = options["symbol"].strip().upper()
        exchange = options["exchange"].strip().lower()
        if not re.fullmatch(r"[A-Z0-9_]{2,40}", symbol):
            raise CommandError(f"--symbol {options['symbol']!r} is not a symbol like BTCUSDT")
        if not re.fullmatch(r"[a-z0-9-]{2,32}", exchange):
            raise CommandError(f"--exchange {options['exchange']!r} is not a slug like binance")
        try:
            plan = plan_files(collect_files(options["paths"]), symbol=symbol)
        except ImportFailed as exc:
            raise CommandError(str(exc)) from None
        if not plan:
            raise CommandError("no files to import (looked for .csv, .zip, .json, .jsonl)")
        market, created = market_for_symbol(exchange_slug=exchange, symbol=symbol)
        try:
            self._check_demo(market, options["replace_demo"])
            self._set_stamping(market, options["metrics_stamp"])
            importer = MarketImport(market, stamping=market.metrics_stamp)
            self._run(importer, plan, quiet=options["quiet"])
        finally:
            if created and market_discard_if_empty(market=market):
                self.stdout.write(f"{market}: nothing was imported, the market was not created")
        summary = importer.finish()
        self._report(market, created, summary)
        if not options["no_compute"]:
            self._compute(market)

    def _set_stamping(self, market: Market, stamping: str | None) -> None:
        if stamping and stamping != market.metrics_stamp:
            market.metrics_stamp = stamping
            market.save(update_fields=["metrics_stamp"])
            self.stdout.write(f"{market}: metrics rows read as stamped '{stamping}' from now on")

    def _check_demo(self, market: Market, replace: bool) -> None:
        if not market.is_demo:
            return
        if not replace:
            raise CommandError(
                f"{market} holds simulated demo data; add --replace-demo to delete it and "
                "import the real data in its place"
            )
        market_demo_clear(market=market)
        self.stdout.write(f"{market}: demo data deleted, the market now holds real data")

    def _run(self, importer: MarketImport, plan: list, *, quiet: bool) -> None:
        show = not quiet and sys.stderr.isatty()
        done = 0
        with tqdm(total=len(plan), unit="file", disable=not show, file=sys.stderr) as bar:
            for path, kind, first in plan:
                bar.set_postfix_str(path.name, refresh=False)
                try:
                    importer.import_file(path, kind, first)
                except ImportFailed as exc:
                    bar.close()
                    summary = importer.finish()
                    if done:
                        self._report(importer.market, False, summary)
                    raise CommandError(
                        f"{exc}\nThat file was not imported; the {done} file(s) before it were "
                        "and stay stored."
                    ) from None
                done += 1
                bar.update()
                reset_queries()  # with DEBUG on, Django would keep every query's SQL

    def _report(self, market: Market, created: bool, summary: ImportSummary) -> None:
        files = summary.files
        kinds = ", ".join(f"{count} {kind}" for kind, count in files.items() if count)
        self.stdout.write(
            f"{market}{' (created)' if created else ''}: "
            f"{sum(files.values())} file(s) imported{f' ({kinds})' if kinds else ''}"
        )
        span = ""
        if summary.first_bar is not None:
            span = f", {iso_utc(summary.first_bar)} to {iso_utc(summary.last_bar)}"
        self.stdout.write(
            f"  bars: {summary.bars_written} written{span}; "
            f"{market.bars.count()} stored for this market"
        )
        if summary.events_read or summary.events_other_symbols:
            self.stdout.write(
                f"  liquidation events: {summary.events_read} read, {summary.events_new} new, "
                f"{summary.events_read - summary.events_new} already stored"
                + (
                    f"; {summary.events_other_symbols} of other symbols ignored"
                    if summary.events_other_symbols
                    else ""
                )
            )
        dropped = summary.duplicates
        if any(dropped.values()) or summary.metrics_rows:
            self.stdout.write(
                f"  metrics rows kept: {summary.metrics_rows}; duplicate rows dropped: "
                f"{dropped['klines']} klines, {dropped['metrics']} metrics"
            )
        self._report_checks(market, summary)
        self._report_skipped(summary.skipped)

    def _report_checks(self, market: Market, summary: ImportSummary) -> None:
        """The alignment check of each metrics file: warnings one per file, agreement in one
        line (the importer keeps them on the market for its admin page)."""
        checks = summary.checks
        if not checks:
            return
        for check in checks:
            if check.contradicts:
                self.stdout.write(self.style.WARNING(f"  warning: {check.describe()}"))
            elif not check.confirms:
                self.stdout.write(f"  {check.describe()}")
        agreeing = [c for c in checks if c.confirms]
        if agreeing:
            rows = sum(c.checked for c in agreeing)
            worst = max(agreeing, key=lambda c: c.median_rule)
            self.stdout.write(
                f"  metrics stamping ({worst.applied}) confirmed by {len(agreeing)} file(s), "
                f"{rows} rows: median deviation of the implied price from the close at the "
                f"snapshot {100 * worst.median_rule:.3f} %, at the other reading "
                f"{100 * worst.median_other:.3f} % (worst file: {worst.source})"
            )

    def _report_skipped(self, skipped: list[tuple[int, str]]) -> None:
        if not skipped:
            self.stdout.write("  steps skipped: none")
            return
        self.stdout.write(self.style.WARNING(f"  steps skipped: {len(skipped)}"))
        shown = skipped if self.verbosity >= 2 else skipped[:SHOWN_SKIPS]
        for ts, reason in shown:
            self.stdout.write(f"    {iso_utc(ts)} {reason}")
        if len(shown) < len(skipped):
            self.stdout.write(f"    ... and {len(skipped) - len(shown)} more (-v 2 lists all)")

    def _compute(self, market: Market) -> None:
        try:
            snapshots = market_snapshots_compute(market=market)
        except EngineError as exc:
            market.last_error = f"compute: {exc}"
            market.last_error_at = timezone.now()
            market.save(update_fields=["last_error", "last_error_at"])
            raise CommandError(f"the data is stored, but computing maps failed: {exc}") from None
        if snapshots:
            windows = ", ".join(s.window for s in snapshots)
            self.stdout.write(f"  maps recomputed: {windows}")
        else:
            self.stdout.write("  maps: not enough bars yet (at least 2 steps are needed)")
            return
        self.stdout.write(f"  {signals_summary(market)}")
        self.stdout.write(f"  {positioning_summary(market)}")
