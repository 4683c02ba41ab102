"""manage.py load_brackets [--live] [--exchange SLUG] [--symbol SYMBOL] [--if-empty]: store the
exchanges' maintenance-margin tables on their markets (see maps/risk/tables/README.md)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from maps.models import MarginBracket, Market
from maps.risk.services import brackets_load


class Command(BaseCommand):
    help = (
        "Store each market's maintenance-margin brackets from the exchanges' published tables "
        "(recorded in maps/risk/tables/), or with --live from Bybit's and OKX's public endpoints "
        "(Binance's needs an API key: its recorded table is used). A market the table does not "
        "list keeps what it has, and is reported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--live", action="store_true", help="ask Bybit and OKX directly")
        parser.add_argument("--exchange", help="only this exchange (its URL name, e.g. okx)")
        parser.add_argument("--symbol", help="only this symbol (the exchange's own, e.g. BTCUSDT)")
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when any bracket is stored"
        )

    def handle(self, *args: object, **options: object) -> None:
        if options["if_empty"] and MarginBracket.objects.exists():
            self.stdout.write("Brackets already stored; nothing to do.")
            return
        markets = Market.objects.select_related("exchange").order_by("exchange__slug", "symbol")
        if options["exchange"]:
            markets = markets.filter(exchange__slug=str(options["exchange"]).lower())
        if options["symbol"]:
            markets = markets.filter(symbol__iexact=options["symbol"])
        markets = list(markets)
        if not markets and options["if_empty"]:
            self.stdout.write("No markets yet; nothing to do.")
            return
        if not markets:
            raise CommandError("no market matches; add markets first (or run seed_demo)")
        results = brackets_load(markets=markets, live=bool(options["live"]))
        for result in results:
            name = f"{result.market.exchange.slug}/{result.market.symbol}"
            if result.error:
                self.stdout.write(f"{name}: kept as is ({result.error})")
            else:
                self.stdout.write(self.style.SUCCESS(f"{name}: {result.loaded} brackets"))
        loaded = sum(1 for r in results if not r.error)
        self.stdout.write(f"{loaded} of {len(results)} markets have a published table.")
