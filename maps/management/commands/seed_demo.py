"""manage.py seed_demo [--if-empty] [--days 90] [--seed N]: simulated demo exchanges and markets."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Max
from django.utils import timezone

from maps.binance_vision import ImportFailed
from maps.demo import COINS, STEP_MS, VENUES, demo_end_ms, demo_real_sample, demo_seed
from maps.engine.types import EngineError, iso_utc
from maps.market_signals.services import signals_summary
from maps.models import Bar, Market
from maps.services import market_calibrate, market_snapshots_compute
from maps.whales.services import positioning_summary

DEFAULT_SEED = 20240501
DEFAULT_DAYS = 90


class Command(BaseCommand):
    help = (
        "Create Binance, Bybit and OKX demo markets (BTC, ETH, SOL against USDT) holding "
        "simulated, deterministic 5-minute bars and liquidations, then compute their maps. "
        "Demo data is marked as such; markets holding real data are never touched. With --real, "
        "also import 32 hours of real Binance HYPEUSDT data once, shown as a historical market."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing when any market exists, unless all are demo markets whose data "
            "ended over a day ago: then seed them again up to now",
        )
        parser.add_argument(
            "--days",
            type=int,
            default=DEFAULT_DAYS,
            help=f"days of history [{DEFAULT_DAYS}: enough for every window the pages offer]",
        )
        parser.add_argument(
            "--seed", type=int, default=DEFAULT_SEED, help=f"random seed [{DEFAULT_SEED}]"
        )
        parser.add_argument(
            "--end",
            help="open time of the last bar, ISO 8601 UTC (default: the last whole 5-minute "
            "step before now); with the same seed and end the rows are identical",
        )
        parser.add_argument("--no-compute", action="store_true", help="do not compute the maps")
        parser.add_argument(
            "--real",
            action="store_true",
            help="also import the real Binance HYPEUSDT sample (maps/demo_data/) once, as a "
            "historical market (make setup does)",
        )

    def handle(self, *args, **options) -> None:
        self.verbosity = options["verbosity"]
        if options["if_empty"] and Market.objects.exists():
            if not self._demo_is_stale():
                self.stdout.write("Markets exist already: no demo data seeded.")
                if options["real"]:
                    self._real_sample(options["no_compute"])
                return
            self.stdout.write("The demo data ended over a day ago: seeding it again up to now.")
        days = options["days"]
        if not 1 <= days <= 120:
            raise CommandError(f"--days must lie between 1 and 120, not {days}")
        end_ms = self._end_ms(options["end"])
        started = time.perf_counter()
        summary = demo_seed(seed=options["seed"], days=days, end_ms=end_ms, progress=self._progress)
        seeded = time.perf_counter() - started
        for name in summary.kept:
            self.stdout.write(self.style.WARNING(f"{name} holds real data: left untouched"))
        self.stdout.write(
            f"Demo data: {len(summary.markets)} markets on {len(VENUES)} exchanges "
            f"({', '.join(c.base for c in COINS)}), {summary.bars} bars and {summary.events} "
            f"liquidation events up to {iso_utc(end_ms)}, seed {options['seed']} "
            f"({seeded:.1f} s)"
        )
        if not options["no_compute"]:
            self._compute(summary.markets)
            self._calibrate(summary.markets)
        if options["real"]:
            self._real_sample(options["no_compute"])

    def _real_sample(self, no_compute: bool) -> None:
        """Import the real HYPEUSDT sample once, and compute its maps when it is new."""
        try:
            market, summary = demo_real_sample()
        except ImportFailed as exc:
            raise CommandError(f"the real sample could not be imported: {exc}") from None
        if summary is None:
            return
        span = f"{iso_utc(summary.first_bar)} to {iso_utc(summary.last_bar)}"
        self.stdout.write(
            f"Real data: {market}, {summary.bars_written} bars of history ({span}), not tracked"
        )
        if not no_compute:
            self._compute([market])

    def _demo_is_stale(self) -> bool:
        """No real market is followed live, and the demo's newest bar is over a day old."""
        if Market.objects.filter(is_demo=False, tracked=True).exists():
            return False
        last = Bar.objects.filter(market__is_demo=True).aggregate(last=Max("time"))["last"]
        return last is None or timezone.now() - last > timedelta(days=1)

    def _end_ms(self, text: str | None) -> int:
        if not text:
            return demo_end_ms(int(timezone.now().timestamp() * 1000))
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise CommandError(f"--end {text!r} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ms = int(moment.timestamp() * 1000)
        if ms % STEP_MS:
            raise CommandError(f"--end {text!r} is not on a whole 5-minute step")
        return ms

    def _progress(self, line: str) -> None:
        if self.verbosity >= 2:
            self.stdout.write(f"  {line}")

    def _calibrate(self, markets: list[Market]) -> None:
        """Score the model against the simulated liquidations, so the demo shows its accuracy."""
        started = time.perf_counter()
        count = sum(market_calibrate(market=market) is not None for market in markets)
        self.stdout.write(
            f"Calibration: {count} of {len(markets)} markets scored against their liquidations "
            f"in {time.perf_counter() - started:.1f} s"
        )

    def _compute(self, markets: list[Market]) -> None:
        started = time.perf_counter()
        count = 0
        for market in markets:
            try:
                count += len(market_snapshots_compute(market=market))
            except EngineError as exc:
                raise CommandError(f"{market}: computing the maps failed: {exc}") from None
        self.stdout.write(
            f"Maps: {count} snapshots ({len(settings.LIQSITE_WINDOWS)} windows x "
            f"{len(markets)} markets) in {time.perf_counter() - started:.1f} s"
        )
        started = time.perf_counter()
        for market in markets:
            line = f"{signals_summary(market)}; {positioning_summary(market)}"
            if self.verbosity >= 2:
                self.stdout.write(f"  {market}: {line}")
        took = time.perf_counter() - started
        self.stdout.write(f"Signals and backtests: {len(markets)} markets in {took:.1f} s")
