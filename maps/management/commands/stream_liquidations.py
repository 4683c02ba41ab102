"""`manage.py stream_liquidations`: the long-running liquidation stream (one process per site)."""

from __future__ import annotations

import asyncio
import signal

from django.core.management.base import BaseCommand, CommandError

from maps.connectors import CONNECTORS
from maps.stream import stream_run


class Command(BaseCommand):
    help = (
        "Subscribe to the liquidation streams of Binance, Bybit and OKX for the tracked markets "
        "and store the events. Runs until SIGTERM or SIGINT; reconnects by itself."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--exchange",
            action="append",
            choices=sorted(CONNECTORS),
            help="ccxt id of an exchange to stream (repeatable; default: all)",
        )
        parser.add_argument("--batch-size", type=int, default=200)
        parser.add_argument("--flush-seconds", type=float, default=2.0)
        parser.add_argument(
            "--refresh-seconds",
            type=float,
            default=300.0,
            help="how often the tracked markets are re-read",
        )

    def handle(self, *args, **options) -> None:
        if options["batch_size"] < 1 or options["flush_seconds"] <= 0:
            raise CommandError("--batch-size must be at least 1 and --flush-seconds positive")
        stats = asyncio.run(self._run(options))
        self.stdout.write(
            f"stopped: {stats.connects} connection(s), {stats.messages} message(s), "
            f"{stats.malformed} skipped, {stats.written} event(s) written"
        )

    async def _run(self, options: dict):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await stream_run(
            stop,
            ccxt_ids=options["exchange"],
            batch_size=options["batch_size"],
            flush_seconds=options["flush_seconds"],
            refresh_seconds=options["refresh_seconds"],
        )
