"""manage.py realign_open_interest [--market ID ...] [--all] [--stamping auto|start|end]

Re-aligns stored open interest with MODEL.md v2.1 from the stored raw rows, then recomputes the
maps. By default it takes the markets marked for it (stored under the v2.0 alignment, see
migration 0005); `--all` takes every real market, `--market` the ones named. `--stamping` also
changes the markets' stamping (what later imports and ingests use). Nothing is deleted: a bar
no row closes keeps its prices and is left out of the model.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from maps.engine.alignment import STAMPINGS
from maps.engine.types import EngineError
from maps.metrics_rows import market_open_interest_realign
from maps.models import Market
from maps.services import market_snapshots_compute


class Command(BaseCommand):
    help = "Re-align stored open interest from the stored raw rows (MODEL.md v2.1), recompute maps."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--market", type=int, action="append", default=[], help="market id")
        parser.add_argument("--all", action="store_true", help="every market with real data")
        parser.add_argument("--stamping", choices=STAMPINGS, help="set the markets' stamping")
        parser.add_argument("--no-compute", action="store_true", help="do not recompute maps")

    def handle(self, *args, **options) -> None:
        markets = self._markets(options)
        if not markets:
            self.stdout.write("no market awaits re-alignment")
            return
        for market in markets:
            if options["stamping"] and options["stamping"] != market.metrics_stamp:
                market.metrics_stamp = options["stamping"]
                market.save(update_fields=["metrics_stamp"])
            report = market_open_interest_realign(market=market)
            self.stdout.write(f"{market}: {report.summary()}")
            if options["no_compute"]:
                continue
            try:
                snapshots = market_snapshots_compute(market=market)
            except EngineError as exc:
                raise CommandError(
                    f"{market}: re-aligned, but computing maps failed: {exc}"
                ) from None
            self.stdout.write(f"  maps recomputed: {', '.join(s.window for s in snapshots)}")

    def _markets(self, options: dict) -> list[Market]:
        markets = Market.objects.select_related("exchange").order_by("pk")
        if options["market"]:
            found = list(markets.filter(pk__in=options["market"]))
            missing = set(options["market"]) - {m.pk for m in found}
            if missing:
                raise CommandError(f"no market with id {', '.join(map(str, sorted(missing)))}")
            return found
        if options["all"]:
            return list(markets.filter(is_demo=False))
        return list(markets.filter(oi_realign_pending=True))
