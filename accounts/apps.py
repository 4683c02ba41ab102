from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts, watchlists and alerts"

    def ready(self) -> None:
        from accounts.receivers import snapshots_computed_check_alerts
        from maps.signals import snapshots_computed

        snapshots_computed.connect(
            snapshots_computed_check_alerts, dispatch_uid="accounts.check_alerts"
        )
