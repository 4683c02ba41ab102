"""manage.py track_markets <exchange> [--quote USDT] [--min-oi-usd 5e6]: cover a whole exchange."""

from __future__ import annotations

import math

from django.core.management.base import BaseCommand, CommandError, CommandParser

from maps.connectors import CONNECTORS, RETRYABLE_ERRORS, ConnectorError
from maps.coverage.services import exchange_markets_track


def usd_amount(text: str) -> float:
    """'5e6', '5000000', '5_000_000' or '5M' as dollars."""
    raw = text.strip().replace("_", "").replace(",", "")
    scale = {"k": 1e3, "m": 1e6, "b": 1e9}.get(raw[-1:].lower(), 1.0)
    if scale != 1.0:
        raw = raw[:-1]
    try:
        value = float(raw) * scale
    except ValueError:
        raise CommandError(f"--min-oi-usd {text!r} is not a USD amount like 5e6 or 5M") from None
    if not math.isfinite(value) or value < 0:
        raise CommandError(f"--min-oi-usd {text!r} must be a USD amount >= 0")
    return value


class Command(BaseCommand):
    help = (
        "List an exchange's linear perpetuals with their open interest (ccxt load_markets plus "
        "open interest), create and track those at or above --min-oi-usd, and untrack those "
        "tracked here that fell below it or were delisted. Nothing stored is deleted; demo "
        "markets and markets tracked by hand below the threshold are left as they are."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        exchanges = sorted(cls.slug for cls in CONNECTORS.values())
        parser.add_argument("exchange", help=f"one of {', '.join(exchanges)}")
        parser.add_argument("--quote", default="USDT", help="settlement currency [USDT]")
        parser.add_argument(
            "--min-oi-usd",
            default="5e6",
            help="open interest in USD a market needs to be tracked [5e6]",
        )

    def handle(self, *args, **options) -> None:
        threshold = usd_amount(options["min_oi_usd"])
        try:
            report = exchange_markets_track(
                exchange=options["exchange"], quote=options["quote"], min_oi_usd=threshold
            )
        except RETRYABLE_ERRORS as exc:
            raise CommandError(f"{options['exchange']} did not answer, try again: {exc}") from None
        except ConnectorError as exc:
            raise CommandError(str(exc)) from None
        for line in report.lines():
            self.stdout.write(line)
        if report.tracked:
            self.stdout.write(
                "New markets are backfilled by the beat's next minute (or 'Backfill the history "
                "now' in the admin)."
            )
