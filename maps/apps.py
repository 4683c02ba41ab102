from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class MapsConfig(AppConfig):
    name = "maps"
    verbose_name = "Markets and maps"

    def ready(self) -> None:
        from liqsite.checks import visibility_timeout_check
        from maps.levels.tasks import snapshots_computed_levels
        from maps.market_signals.receivers import snapshots_computed_refresh_signals
        from maps.signals import snapshots_computed
        from maps.whales.tasks import snapshots_computed_positioning

        checks.register(visibility_timeout_check, "celery")
        snapshots_computed.connect(
            snapshots_computed_refresh_signals, dispatch_uid="maps.market_signals.refresh"
        )
        snapshots_computed.connect(snapshots_computed_levels, dispatch_uid="maps.levels")
        snapshots_computed.connect(snapshots_computed_positioning, dispatch_uid="maps.whales")
