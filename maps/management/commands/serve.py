"""`manage.py serve [addrport] [--noreload]`: runserver, plus the embedded default's scheduler.

`make run` uses it. Without REDIS_URL (no Celery workers or beat) it starts the in-process
scheduler of `maps.embedded.scheduler` in the process that serves requests: every minute the demo
moves forward, tracked markets are ingested, maps recomputed and alerts checked.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from maps.embedded.scheduler import Scheduler, scheduler_wanted


class Command(BaseCommand):
    help = "Serve the site (runserver) and, on the embedded default, run its scheduler in-process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--noreload", action="store_false", dest="use_reloader")

    def handle(self, *args, **options) -> None:
        # With the autoreloader, the serving process is the child (RUN_MAIN=true): start it there.
        serving = not options["use_reloader"] or os.environ.get("RUN_MAIN") == "true"
        if serving and scheduler_wanted():
            Scheduler(settings.LIQSITE_SCHEDULER_SECONDS).start()
            self.stdout.write(
                f"Embedded scheduler: every {settings.LIQSITE_SCHEDULER_SECONDS} s the demo "
                "moves forward, maps are recomputed and alerts checked."
            )
        call_command("runserver", options["addrport"], use_reloader=options["use_reloader"])
