from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class MapsConfig(AppConfig):
    name = "maps"
    verbose_name = "Markets and maps"

    def ready(self) -> None:
        from liqsite.checks import visibility_timeout_check

        checks.register(visibility_timeout_check, "celery")
        from maps.market_signals.receivers import snapshots_computed_refresh_signals
        from maps.signals import snapshots_computed

        snapshots_computed.connect(
            snapshots_computed_refresh_signals, dispatch_uid="maps.market_signals.refresh"
        )
